//! CPU-heavy request work kept off the reactor.
//!
//! Decompressing and splitting a large body (a 2,500-event batch is about
//! 1.5 MB) costs milliseconds of CPU in one go. Run on a runtime worker,
//! every other connection that worker serves would wait that long, so the
//! p99 of small requests would follow the size of the largest batches.
//!
//! - Work on owned data (inflating a body) goes to the blocking pool
//!   ([`heavy_owned`]): its threads are kept and reused, so memory stays
//!   where the first large request put it.
//! - Work whose result borrows the request (splitting a batch into slices of
//!   its body) runs under `block_in_place` ([`heavy`]): the worker first
//!   hands its other tasks to another thread.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Inputs at least this large are worked on off the reactor. Below it the
/// work takes well under a millisecond and a hand-off would cost more than
/// it saves.
pub const OFFLOAD_BYTES: usize = 128 * 1024;

/// Runs `f`, whose input is `len` bytes, where it cannot stall other
/// connections. On a current-thread runtime (tests, benches) there is no
/// other worker to hand tasks to, so `f` simply runs.
pub fn heavy<T>(len: usize, f: impl FnOnce() -> T) -> T {
    let multi_thread =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if len >= OFFLOAD_BYTES && multi_thread {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// Runs `f`, whose input is `len` bytes, on the blocking pool when it is
/// large; `None` if it panicked there.
pub async fn heavy_owned<T: Send + 'static>(
    len: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    if len >= OFFLOAD_BYTES {
        tokio::task::spawn_blocking(f).await.ok()
    } else {
        Some(f())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_inputs_and_current_thread_runtimes_run_inline() {
        assert_eq!(heavy(OFFLOAD_BYTES, || 1), 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert_eq!(rt.block_on(async { heavy(OFFLOAD_BYTES, || 2) }), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn large_owned_work_runs_on_the_blocking_pool_and_small_work_inline() {
        let here = std::thread::current().id();
        let small = heavy_owned(10, move || std::thread::current().id()).await;
        assert_eq!(small, Some(here));
        let large = heavy_owned(OFFLOAD_BYTES, move || std::thread::current().id()).await;
        assert!(large.is_some_and(|t| t != here));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn large_inputs_leave_the_worker_free_for_other_tasks() {
        // The only worker runs `heavy`; another task still completes while
        // it blocks, because the worker's tasks were handed off.
        let (tx, rx) = std::sync::mpsc::channel();
        let other = tokio::spawn(async move {
            let _ = tx.send(());
        });
        let got = heavy(OFFLOAD_BYTES, || {
            rx.recv_timeout(std::time::Duration::from_secs(5)).is_ok()
        });
        assert!(got, "another task ran while the heavy work blocked");
        other.await.expect("task");
    }
}
