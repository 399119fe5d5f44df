//! ServerStats (spec §11.2): totals read live from the counters, and per-tick history kept by [`History`], which
//! a task updates every [`TICK`].

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::accumulator::Accumulator;
use crate::section::Section;

/// How often the `current_*` values and the `*_list` histories advance.
pub const TICK: Duration = Duration::from_secs(5);

/// The counters of ServerStats, in a fixed order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub valid: u64,
    pub worker: u64,
    pub invalid: u64,
    pub success_send: u64,
    pub fail_send: u64,
    pub unsendable: u64,
    pub unknown: u64,
    pub all: u64,
    pub redirected: u64,
    pub rejected: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub dropped: u64,
}

impl Totals {
    pub fn of(s: &Section) -> Totals {
        let st = &s.stats;
        let mut t = Totals {
            valid: st.valid_lines.load(Relaxed),
            worker: st.worker_lines.load(Relaxed),
            invalid: st.invalid_total(),
            all: st.all_lines.load(Relaxed),
            unknown: st.no_server_lines.load(Relaxed),
            redirected: st.redirected_lines.load(Relaxed),
            rejected: st.rejected_lines.load(Relaxed),
            bytes_read: st.bytes_read.load(Relaxed),
            ..Totals::default()
        };
        for d in s.backend.destinations() {
            t.success_send += d.stats.sent_lines.load(Relaxed);
            t.fail_send += d.stats.write_failures.load(Relaxed) + d.stats.connect_failures.load(Relaxed);
            t.unsendable += d.stats.dropped_total();
            t.bytes_written += d.stats.sent_bytes.load(Relaxed);
        }
        t.dropped = t.unsendable + t.unknown;
        t
    }

    fn minus(&self, o: &Totals) -> Totals {
        Totals {
            valid: self.valid - o.valid,
            worker: self.worker - o.worker,
            invalid: self.invalid - o.invalid,
            success_send: self.success_send - o.success_send,
            fail_send: self.fail_send - o.fail_send,
            unsendable: self.unsendable - o.unsendable,
            unknown: self.unknown - o.unknown,
            all: self.all - o.all,
            redirected: self.redirected - o.redirected,
            rejected: self.rejected - o.rejected,
            bytes_read: self.bytes_read - o.bytes_read,
            bytes_written: self.bytes_written - o.bytes_written,
            dropped: self.dropped - o.dropped,
        }
    }
}

/// The ServerStats names of one [`Totals`] field (the Go original's JSON, spec §11.2): the total, the last tick
/// (`current_*`), the history (`*_list`) and the rate since start (`*_persec`); `""` where it has none.
struct TotalNames {
    total: &'static str,
    current: &'static str,
    list: &'static str,
    persec: &'static str,
    of: fn(&Totals) -> u64,
}

const fn names(
    total: &'static str,
    current: &'static str,
    list: &'static str,
    persec: &'static str,
    of: fn(&Totals) -> u64,
) -> TotalNames {
    TotalNames {
        total,
        current,
        list,
        persec,
        of,
    }
}

#[rustfmt::skip]
const TOTAL_NAMES: [TotalNames; 13] = [
    names("valid_line_count", "current_valid_line_count", "valid_line_count_list", "valid_line_count_persec", |t| t.valid),
    names("worker_line_count", "current_worker_line_count", "worker_line_count_list", "worker_line_count_persec", |t| t.worker),
    names("invalid_line_count", "current_invalid_line_count", "invalid_line_count_list", "invalid_line_count_persec", |t| t.invalid),
    names("success_send_count", "current_success_send_count", "success_send_count_list", "success_send_count_persec", |t| t.success_send),
    names("fail_send_count", "current_fail_send_count", "fail_send_count_list", "", |t| t.fail_send),
    names("unsendable_send_count", "current_unsendable_send_count", "unsendable_send_count_list", "unsendable_count_persec", |t| t.unsendable),
    names("unknown_send_count", "current_unknown_send_count", "unknown_send_count_list", "unknown_send_count_persec", |t| t.unknown),
    names("all_lines_count", "current_all_lines_count", "all_lines_count_list", "all_lines_count_persec", |t| t.all),
    names("redirected_lines_count", "current_redirected_lines_count", "redirected_lines_count_list", "redirected_lines_count_persec", |t| t.redirected),
    names("rejected_lines_count", "current_rejected_lines_count", "rejected_lines_count_list", "rejected_lines_count_persec", |t| t.rejected),
    names("bytes_read", "current_bytes_read_count", "bytes_read_count_list", "bytes_read_count_persec", |t| t.bytes_read),
    names("bytes_written", "current_bytes_written_count", "bytes_written_count_list", "bytes_written_count_persec", |t| t.bytes_written),
    names("dropped_lines_count", "", "", "", |t| t.dropped),
];

/// Live tasks of a section: its listener, open connections and senders.
pub fn tasks(s: &Section) -> u64 {
    let senders: u64 = s
        .backend
        .destinations()
        .iter()
        .filter(|d| !d.is_purged())
        .map(|d| d.config.max_pool_connections as u64)
        .sum();
    1 + s.stats.connections_open.load(Relaxed) + senders
}

#[derive(Debug, Default)]
struct Ticks {
    last: Totals,
    current: Totals,
    deltas: VecDeque<Totals>,
    tasks: VecDeque<u64>,
    times_ms: VecDeque<u64>,
}

/// The per-tick history of one section, `points` long.
#[derive(Debug)]
pub struct History {
    points: usize,
    ticks: Mutex<Ticks>,
}

impl History {
    pub fn new(points: usize) -> History {
        History {
            points: points.max(1),
            ticks: Mutex::default(),
        }
    }

    /// Records one tick for `s`.
    pub fn tick(&self, s: &Section) {
        let now = Totals::of(s);
        let mut t = self.ticks.lock().unwrap_or_else(|p| p.into_inner());
        let delta = now.minus(&t.last);
        t.last = now;
        t.current = delta;
        t.deltas.push_back(delta);
        t.tasks.push_back(tasks(s));
        t.times_ms.push_back(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        );
        while t.deltas.len() > self.points {
            t.deltas.pop_front();
            t.tasks.pop_front();
            t.times_ms.pop_front();
        }
    }

    /// The ServerStats JSON object of `s`.
    pub fn server_stats(&self, s: &Section, uptime: Duration) -> Value {
        let total = Totals::of(s);
        let t = self.ticks.lock().unwrap_or_else(|p| p.into_inner());
        let secs = uptime.as_secs_f64().max(0.001);
        let list = |f: fn(&Totals) -> u64| Value::from(t.deltas.iter().map(f).collect::<Vec<u64>>());
        let rate = |v: u64| json!(v as f64 / secs);
        let (up, down, checking) = servers(s);
        let queued: usize = s.backend.destinations().iter().map(|d| d.queue.depth().0).sum();
        let mut m = Map::new();
        for n in &TOTAL_NAMES {
            let named = [
                (n.total, Value::from((n.of)(&total))),
                (n.current, Value::from((n.of)(&t.current))),
                (n.list, list(n.of)),
                (n.persec, rate((n.of)(&total))),
            ];
            for (name, v) in named.into_iter().filter(|(name, _)| !name.is_empty()) {
                m.insert(name.into(), v);
            }
        }
        m.insert(
            "go_routines_list".into(),
            Value::from(t.tasks.iter().copied().collect::<Vec<u64>>()),
        );
        m.insert(
            "ticks_list".into(),
            Value::from(t.times_ms.iter().copied().collect::<Vec<u64>>()),
        );
        m.insert("go_routines".into(), tasks(s).into());
        m.insert("uptime_sec".into(), json!(uptime.as_secs_f64()));
        m.insert("listening".into(), s.listening.clone().into());
        m.insert("servers_up".into(), up.into());
        m.insert("servers_down".into(), down.into());
        let (mut stalled, mut in_flight) = (Vec::new(), 0u64);
        for d in s.backend.destinations().iter() {
            if d.is_stalled() {
                stalled.push(d.url.raw.clone());
            }
            in_flight += d.stats.in_flight_lines.load(Relaxed);
        }
        m.insert("servers_stalled".into(), stalled.into());
        m.insert("in_flight_lines".into(), in_flight.into());
        m.insert("udp_kernel_drops".into(), s.stats.kernel_drops.load(Relaxed).into());
        m.insert("servers_checking".into(), checking.into());
        m.insert(
            "current_read_buffer_size".into(),
            s.stats.read_buffer_bytes.load(Relaxed).into(),
        );
        m.insert("max_read_buffer_size".into(), s.max_read_buffer_size.into());
        m.insert("input_queue_size".into(), 0.into());
        m.insert("work_queue_size".into(), queued.into());
        Value::Object(m)
    }
}

/// The writer queues of an accumulator (its bins in order, then its indexer with `"bin": null`): what was stored,
/// what failed, and what was lost (`skipped_flushes`, `dropped_records`), with the queue's depth and length.
pub fn writers(acc: &Accumulator) -> Value {
    let list: Vec<Value> = acc
        .writer_stats
        .get()
        .into_iter()
        .flatten()
        .map(|q| {
            json!({
                "group": q.group,
                "bin": q.bin,
                "role": if q.bin.is_some() { "metrics" } else { "indexer" },
                "driver": q.driver,
                "records": q.stats.records.load(Relaxed),
                "errors": q.stats.errors.load(Relaxed),
                "skipped_flushes": q.stats.skipped_flushes.load(Relaxed),
                "dropped_records": q.stats.dropped_records.load(Relaxed),
                "queued": q.queued(),
                "queue_length": q.capacity,
            })
        })
        .collect();
    Value::from(list)
}

/// (ring identities of members up, of members down, check URLs), over all rings.
pub fn servers(s: &Section) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut up, mut down, mut checking) = (Vec::new(), Vec::new(), Vec::new());
    for m in s.backend.members().into_iter().flatten() {
        if m.up {
            up.push(m.hashkey.clone());
        } else {
            down.push(m.hashkey.clone());
        }
        checking.push(m.check.raw.clone());
    }
    (up, down, checking)
}

/// `/<s>/accumulator`: the accumulator's state not yet flushed (spec §11), each entry stamped with now and the
/// resolution and TTL of the first bin.
pub async fn accumulator_report(acc: &Accumulator) -> Value {
    let now_ms = acc.clock.now_ms();
    let first = acc.config.times.first();
    let resolution = first.map_or(acc.config.accumulate_flush, |b| b.interval).as_secs();
    let ttl = first.map_or(0, |b| b.ttl.as_secs());
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    let time = crate::telemetry::rfc3339(now_ms);
    let stats: Vec<Value> = acc
        .snapshot()
        .await
        .into_iter()
        .map(|s| {
            json!({
                "key": s.key, "stat_key": s.stat_key, "min": finite(s.min), "max": finite(s.max),
                "sum": finite(s.sum), "mean": finite(s.mean), "count": s.count, "time_ns": time,
                "resolution": resolution, "ttl": ttl,
            })
        })
        .collect();
    json!({
        "min_time": acc.last_flush_ms().unwrap_or(now_ms) / 1000,
        "max_time": now_ms / 1000,
        "stats": stats,
    })
}
