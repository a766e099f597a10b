//! The stop signal `server` hands to everything that runs until shutdown.
//!
//! Contract: [`Stop::cancel`] is given once, after the drain period and the
//! producer's flush; from then on
//! - async tasks waiting in [`Stop::cancelled`] (a
//!   `tokio_util::sync::CancellationToken`) resume at once,
//! - plain threads blocked in [`Stop::wait_timeout`] return `true` at once
//!   (a condition variable, not a flag looked at every few milliseconds),
//! - receivers from [`Stop::subscribe`] see `true` (for the interfaces
//!   still typed on a `watch::Receiver<bool>`).
//!
//! Cancelling twice is harmless; clones share one signal.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A stop signal shared by async tasks and plain threads.
#[derive(Debug, Clone)]
pub struct Stop {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    token: CancellationToken,
    /// Set under the mutex, so a thread that found it false and then waits
    /// on `wake` cannot miss the notification.
    stopped: Mutex<bool>,
    wake: Condvar,
    watch: watch::Sender<bool>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop::new()
    }
}

impl Stop {
    pub fn new() -> Stop {
        Stop {
            inner: Arc::new(Inner {
                token: CancellationToken::new(),
                stopped: Mutex::new(false),
                wake: Condvar::new(),
                watch: watch::Sender::new(false),
            }),
        }
    }

    /// Gives the signal to every task, thread and receiver.
    pub fn cancel(&self) {
        let i = &self.inner;
        *i.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        i.wake.notify_all();
        i.watch.send_replace(true);
        i.token.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.token.is_cancelled()
    }

    /// Resolves once the signal was given.
    pub async fn cancelled(&self) {
        self.inner.token.cancelled().await
    }

    /// The token itself, for code that selects on it.
    pub fn token(&self) -> CancellationToken {
        self.inner.token.clone()
    }

    /// Blocks the calling thread until the signal or `timeout`, whichever
    /// comes first; true when the signal was given. For plain threads only
    /// (it blocks).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let i = &self.inner;
        let guard = i.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = i
            .wake
            .wait_timeout_while(guard, timeout, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner);
        *guard
    }

    /// A receiver that turns `true` on the signal.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.inner.watch.subscribe()
    }

    /// A stop signal given when `stop` turns true (or its sender is gone),
    /// for a thread handed a `watch::Receiver<bool>`. The bridge is a task
    /// on the current Tokio runtime, else a small thread of its own.
    pub fn from_watch(mut stop: watch::Receiver<bool>) -> Stop {
        let out = Stop::new();
        let signal = out.clone();
        let bridge = async move {
            // An error means the sender was dropped: no signal can come any
            // more, and the owner is gone, so stop as well.
            let _ = stop.wait_for(|s| *s).await;
            signal.cancel();
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(bridge);
            }
            Err(_) => {
                let rt = tokio::runtime::Builder::new_current_thread().build();
                let spawned = rt.and_then(|rt| {
                    std::thread::Builder::new()
                        .name("stop-bridge".into())
                        .spawn(move || rt.block_on(bridge))
                });
                if spawned.is_err() {
                    // Without the bridge the thread could never be stopped.
                    out.cancel();
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_waiting_thread_wakes_at_once() {
        let stop = Stop::new();
        let waiter = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                (stop.wait_timeout(Duration::from_secs(30)), t.elapsed())
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        stop.cancel();
        let (stopped, waited) = waiter.join().unwrap();
        assert!(stopped);
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        // Already stopped: no wait at all.
        assert!(stop.wait_timeout(Duration::from_secs(30)));
    }

    #[test]
    fn a_wait_without_the_signal_times_out() {
        let stop = Stop::new();
        assert!(!stop.wait_timeout(Duration::from_millis(10)));
        assert!(!stop.is_cancelled());
    }

    #[tokio::test]
    async fn tasks_and_receivers_see_the_signal() {
        let stop = Stop::new();
        let mut rx = stop.subscribe();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move { stop.cancelled().await }
        });
        stop.cancel();
        task.await.unwrap();
        assert!(*rx.wait_for(|s| *s).await.unwrap());
        assert!(stop.token().is_cancelled());
    }

    #[tokio::test]
    async fn a_watch_receiver_bridges_to_a_thread_signal() {
        let (tx, rx) = watch::channel(false);
        let stop = Stop::from_watch(rx);
        assert!(!stop.is_cancelled());
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), stop.cancelled())
            .await
            .unwrap();
        assert!(stop.wait_timeout(Duration::from_secs(30)));
    }
}
