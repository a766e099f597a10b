//! Model-based test of the spool, after the model tests of Vector's disk
//! buffer: proptest generates random interleavings of appends, sync
//! rounds, replay rounds, broker acknowledgements and failures, process and
//! machine crashes, torn writes, flipped bits and failing writes and fsyncs
//! (`ENOSPC`, `EIO`), and runs them against the real spool on the in-memory
//! file system of `testfs`, with the threads' rounds driven by hand so each
//! run is deterministic. The model is what the client was told: a request
//! answered 200 (append succeeded and, with `fsync = "always"`, its sync
//! round succeeded). At the end every record answered 200 and not damaged on
//! disk must have been acknowledged by the broker, and each visitor's
//! records in the order they were answered.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;

use super::testfs::{Faults, MemFs};
use super::*;
use crate::sink::memory::MemorySink;

/// Visitors the records are spread over.
const VISITORS: u8 = 3;
/// A small segment size, so that segments roll and get deleted often.
const SEGMENT_BYTES: u64 = 700;
/// Rounds of the final drain before the test gives up.
const DRAIN_ROUNDS: usize = 200;

#[derive(Debug, Clone)]
enum Action {
    /// One request of `records` records of one visitor.
    Append {
        visitor: u8,
        records: u8,
    },
    /// One round of the syncer.
    Sync,
    /// One round of the replayer.
    Replay,
    /// The broker acknowledges the `n` oldest records in flight.
    Ack(u8),
    /// Every record in flight times out (the broker went away).
    FailInFlight,
    Broker(bool),
    /// Writes (or fsyncs) start failing with this errno.
    FailWrites(i32),
    FailSyncs(i32),
    /// The next write stops after this many bytes.
    Tear(u16),
    /// The disk works again.
    Heal,
    /// The process dies (`machine`: the machine, losing what was not
    /// synced but `torn` bytes of it).
    Crash {
        machine: bool,
        torn: u16,
    },
    /// One bit of a segment file flips on disk.
    Flip {
        file: prop::sample::Index,
        byte: prop::sample::Index,
        bit: u8,
    },
}

fn errno() -> impl Strategy<Value = i32> {
    prop_oneof![Just(libc::ENOSPC), Just(libc::EIO)]
}

fn action(machine_crashes: bool) -> impl Strategy<Value = Action> {
    prop_oneof![
        8 => (0..VISITORS, 1u8..5).prop_map(|(visitor, records)| Action::Append { visitor, records }),
        5 => Just(Action::Sync),
        4 => Just(Action::Replay),
        5 => (1u8..8).prop_map(Action::Ack),
        1 => Just(Action::FailInFlight),
        1 => any::<bool>().prop_map(Action::Broker),
        1 => errno().prop_map(Action::FailWrites),
        1 => errno().prop_map(Action::FailSyncs),
        1 => (0u16..300).prop_map(Action::Tear),
        2 => Just(Action::Heal),
        1 => (any::<bool>(), 0u16..300).prop_map(move |(m, torn)| Action::Crash { machine: m && machine_crashes, torn }),
        1 => (any::<prop::sample::Index>(), any::<prop::sample::Index>(), 0u8..8)
            .prop_map(|(file, byte, bit)| Action::Flip { file, byte, bit }),
    ]
}

/// The spool under test and what the client and the broker saw.
struct Harness {
    fs: MemFs,
    cfg: SpoolConfig,
    spool: Arc<Spool>,
    sink: Arc<MemorySink>,
    broker_up: bool,
    next_value: u64,
    /// Requests appended, waiting for their sync round: their records.
    waiting: Vec<(Appended, Vec<(u8, u64)>)>,
    /// Records answered 200, by visitor, in the order they were answered.
    promised: Vec<(u8, u64)>,
    /// Records whose frame a flipped bit damaged.
    damaged: HashSet<u64>,
    /// Every record ever appended (answered or not).
    attempted: HashSet<u64>,
    /// Records the broker acknowledged, in that order (repeats included).
    acked: Vec<(u8, u64)>,
}

fn spool_dir() -> PathBuf {
    PathBuf::from("/spool")
}

fn open(fs: &MemFs, cfg: &SpoolConfig, up: bool) -> (Arc<Spool>, Arc<MemorySink>) {
    let sink = MemorySink::new();
    sink.set_up(up);
    let (spool, _) =
        Spool::open_on(cfg, sink.clone(), Arc::new(fs.clone()), None).expect("the spool reopens");
    let listener: Arc<dyn DeliveryListener> = spool.clone();
    sink.set_listener(Arc::downgrade(&listener));
    (spool, sink)
}

/// visitor and value of a record the sink was sent.
fn parse(key: Option<&[u8]>, value: &[u8]) -> (u8, u64) {
    let visitor = key.and_then(|k| k.get(1)).map_or(0, |b| b - b'0');
    let value = std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    (visitor, value)
}

impl Harness {
    fn new(fsync: FsyncPolicy) -> Harness {
        let fs = MemFs::new();
        let cfg = SpoolConfig {
            dir: spool_dir(),
            max_bytes: 1 << 30,
            segment_bytes: SEGMENT_BYTES,
            fsync,
            ..SpoolConfig::default()
        };
        let (spool, sink) = open(&fs, &cfg, true);
        Harness {
            fs,
            cfg,
            spool,
            sink,
            broker_up: true,
            next_value: 0,
            waiting: Vec::new(),
            promised: Vec::new(),
            damaged: HashSet::new(),
            attempted: HashSet::new(),
            acked: Vec::new(),
        }
    }

    fn apply(&mut self, a: &Action) {
        match a {
            Action::Append { visitor, records } => self.append(*visitor, *records),
            Action::Sync => {
                worker::sync_round(&self.spool);
                self.resolve();
            }
            Action::Replay => {
                let mut buf = Vec::new();
                worker::replay_round(&self.spool, &mut buf);
            }
            Action::Ack(n) => self.ack(usize::from(*n)),
            Action::FailInFlight => {
                self.sink.report(Delivery::Retry);
            }
            Action::Broker(up) => {
                self.broker_up = *up;
                self.sink.set_up(*up);
            }
            Action::FailWrites(e) => self.fs.set_faults(Faults {
                write: Some(*e),
                ..self.fs.faults()
            }),
            Action::FailSyncs(e) => self.fs.set_faults(Faults {
                sync: Some(*e),
                ..self.fs.faults()
            }),
            Action::Tear(n) => self.fs.set_faults(Faults {
                tear_next_write: Some(usize::from(*n)),
                ..self.fs.faults()
            }),
            Action::Heal => self.fs.set_faults(Faults::default()),
            Action::Crash { machine, torn } => self.crash(*machine, usize::from(*torn)),
            Action::Flip { file, byte, bit } => self.flip(file, byte, *bit),
        }
    }

    fn append(&mut self, visitor: u8, records: u8) {
        let mut batch = Batch::new();
        let mut values = Vec::new();
        for _ in 0..records {
            let value = self.next_value;
            self.next_value += 1;
            self.attempted.insert(value);
            values.push((visitor, value));
            let key = format!("v{visitor}");
            batch.begin_record(RecordKind::Event, "t", Some(key.as_bytes()), &[]);
            batch.buf.extend_from_slice(value.to_string().as_bytes());
            batch.finish_record();
        }
        let Ok(reservation) = self.spool.reserve(batch.bytes()) else {
            return; // 503
        };
        if let Ok(appended) = self.spool.append(&mut batch, reservation) {
            self.waiting.push((appended, values));
            self.resolve();
        }
    }

    /// Requests whose sync round ran get their answer.
    fn resolve(&mut self) {
        let mut still = Vec::new();
        for (appended, values) in self.waiting.drain(..) {
            match appended.try_durable() {
                Some(Ok(())) => self.promised.extend(values),
                Some(Err(_)) => {} // 503
                None => still.push((appended, values)),
            }
        }
        self.waiting = still;
    }

    fn ack(&mut self, n: usize) {
        let sent: HashMap<RecordId, (u8, u64)> = self
            .sink
            .sent()
            .iter()
            .map(|r| (r.id, parse(r.key.as_deref(), &r.value)))
            .collect();
        for id in self.sink.report_oldest(n, Delivery::Acked) {
            if let Some(v) = sent.get(&id) {
                self.acked.push(*v);
            }
        }
    }

    fn crash(&mut self, machine: bool, torn: usize) {
        // Requests not answered yet never will be.
        self.waiting.clear();
        if machine {
            self.fs.crash_machine(torn);
        }
        let (spool, sink) = open(&self.fs, &self.cfg, self.broker_up);
        self.spool = spool;
        self.sink = sink;
    }

    fn flip(&mut self, file: &prop::sample::Index, byte: &prop::sample::Index, bit: u8) {
        let Ok(ids) = segment::list(&self.fs, &spool_dir()) else {
            return;
        };
        if ids.is_empty() {
            return;
        }
        let path = segment::path(&spool_dir(), ids[file.index(ids.len())]);
        let Some(data) = self.fs.contents(&path) else {
            return;
        };
        let body = segment::SEGMENT_HEADER as usize;
        if data.len() <= body {
            return;
        }
        let at = body + byte.index(data.len() - body);
        self.note_damage(&data, at);
        self.fs.flip(&path, at, bit);
    }

    /// Marks the record whose verified frame holds byte `at` damaged.
    fn note_damage(&mut self, data: &[u8], at: usize) {
        let Ok(scanned) = segment::scan_bytes(data) else {
            return;
        };
        let Some(salt) = segment::segment_salt(data).ok().flatten() else {
            return;
        };
        for slot in &scanned.slots {
            let start = slot.offset as usize;
            let end = start + slot.len as usize;
            if (start..end).contains(&at) {
                if let Ok((f, _)) = frame::decode(&data[start..end], salt) {
                    self.damaged.insert(parse(f.record.key, f.record.value).1);
                }
            }
        }
    }

    /// The disk heals, the broker returns, the process restarts, and the
    /// spool drains.
    fn drain(&mut self) {
        self.fs.set_faults(Faults::default());
        worker::sync_round(&self.spool);
        self.resolve();
        self.broker_up = true;
        self.crash(false, 0);
        for _ in 0..DRAIN_ROUNDS {
            worker::sync_round(&self.spool);
            let mut buf = Vec::new();
            worker::replay_round(&self.spool, &mut buf);
            self.ack(usize::MAX);
            if self.spool.open_records() == 0 && self.sink.pending() == 0 {
                break;
            }
        }
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let acked: HashSet<u64> = self.acked.iter().map(|(_, v)| *v).collect();
        for (_, v) in &self.promised {
            prop_assert!(
                acked.contains(v) || self.damaged.contains(v),
                "record {} was answered 200 and is not damaged, but never reached the broker",
                v
            );
        }
        for v in &acked {
            prop_assert!(self.attempted.contains(v), "record {} was never written", v);
        }
        // Per visitor, the first acknowledgements of records answered 200
        // come in the order they were answered.
        let promised: HashSet<u64> = self.promised.iter().map(|(_, v)| *v).collect();
        let mut seen = HashSet::new();
        let mut last: HashMap<u8, u64> = HashMap::new();
        for (visitor, v) in &self.acked {
            if !promised.contains(v) || !seen.insert(*v) {
                continue;
            }
            if let Some(prev) = last.insert(*visitor, *v) {
                prop_assert!(
                    prev < *v,
                    "visitor {}: record {} reached the broker before record {}",
                    visitor,
                    v,
                    prev
                );
            }
        }
        Ok(())
    }
}

fn run(fsync: FsyncPolicy, actions: &[Action]) -> Result<(), TestCaseError> {
    let mut h = Harness::new(fsync);
    for a in actions {
        h.apply(a);
    }
    h.drain();
    prop_assert_eq!(h.spool.open_records(), 0, "the spool drained");
    h.check()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// `fsync = "always"`: the 200 waits for the fsync, so even a machine
    /// crash loses no record answered 200.
    #[test]
    fn with_fsync_always_every_record_answered_200_and_not_damaged_is_delivered_in_order(
        actions in proptest::collection::vec(action(true), 1..120),
    ) {
        run(FsyncPolicy::Always, &actions)?;
    }

    /// `fsync = "interval"`: the 200 follows the write, so a process crash
    /// (not a machine crash) loses no record answered 200.
    #[test]
    fn with_fsync_interval_every_record_answered_200_survives_process_crashes(
        actions in proptest::collection::vec(action(false), 1..120),
    ) {
        run(FsyncPolicy::Interval, &actions)?;
    }
}

/// The finding of issue 20: an fsync that fails (EIO) answered 200.
#[test]
fn a_failed_fsync_fails_the_request_and_readiness_until_the_disk_works_again() {
    let mut h = Harness::new(FsyncPolicy::Always);
    h.fs.set_faults(Faults {
        sync: Some(libc::EIO),
        ..Faults::default()
    });
    h.append(0, 3);
    worker::sync_round(&h.spool);
    let (appended, _) = h.waiting.pop().expect("appended");
    assert!(matches!(
        appended.try_durable(),
        Some(Err(SpoolError::SyncFailed))
    ));
    assert_eq!(h.spool.unhealthy(), Some(REASON_IO_ERROR));
    assert!(matches!(
        h.spool.reserve(100),
        Err(SpoolError::Unhealthy(REASON_IO_ERROR))
    ));
    // Still failing: the probe fails, the spool stays unhealthy.
    worker::sync_round(&h.spool);
    assert!(h.spool.unhealthy().is_some());
    h.fs.set_faults(Faults::default());
    worker::sync_round(&h.spool);
    assert_eq!(h.spool.unhealthy(), None);
    h.append(0, 1);
    worker::sync_round(&h.spool);
    let (appended, _) = h.waiting.pop().expect("appended");
    assert!(matches!(appended.try_durable(), Some(Ok(()))));
}

#[test]
fn a_full_disk_fails_the_request_and_reports_disk_full() {
    let h = Harness::new(FsyncPolicy::Interval);
    h.fs.set_faults(Faults {
        write: Some(libc::ENOSPC),
        ..Faults::default()
    });
    let mut batch = Batch::new();
    batch.begin_record(RecordKind::Event, "t", None, &[]);
    batch.buf.extend_from_slice(b"1");
    batch.finish_record();
    let r = h.spool.reserve(batch.bytes()).expect("room");
    assert!(h.spool.append(&mut batch, r).is_err());
    assert_eq!(h.spool.unhealthy(), Some(REASON_DISK_FULL));
    h.fs.set_faults(Faults::default());
    worker::sync_round(&h.spool);
    assert_eq!(h.spool.unhealthy(), None);
}

/// The finding of issue 20: a bit flipped in the middle frame of a segment
/// made recovery cut every record after it.
#[test]
fn a_flipped_bit_in_the_middle_frame_loses_that_record_only_and_quarantines_it() {
    let mut h = Harness::new(FsyncPolicy::Interval);
    h.sink.set_up(false);
    h.broker_up = false;
    for _ in 0..5 {
        h.append(1, 1);
    }
    let path = segment::path(&spool_dir(), 1);
    let data = h.fs.contents(&path).expect("segment");
    let scanned = segment::scan_bytes(&data).expect("scan");
    assert_eq!(scanned.slots.len(), 5);
    // The length field of the middle frame.
    h.fs.flip(&path, scanned.slots[2].offset as usize + 5, 3);
    h.crash(false, 0);
    let quarantined =
        h.fs.list(&spool_dir().join(QUARANTINE))
            .expect("quarantine");
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(h.spool.stats().corrupt.load(Ordering::Relaxed), 1);
    h.sink.set_up(true);
    h.broker_up = true;
    h.drain();
    let mut got: Vec<u64> = h.acked.iter().map(|(_, v)| *v).collect();
    got.sort_unstable();
    got.dedup();
    assert_eq!(got, [0, 1, 3, 4]);
}

#[test]
fn the_quarantine_holds_the_damaged_bytes() {
    let fs = MemFs::new();
    let mut data = Vec::new();
    data.extend_from_slice(b"damaged");
    super::recover::quarantine(&fs, Path::new("/spool"), 3, 77, &data);
    let q = fs
        .contents(Path::new(
            "/spool/quarantine/00000000000000000003-000000000077.bin",
        ))
        .expect("quarantined");
    assert_eq!(q, data);
}
