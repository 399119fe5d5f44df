//! The status page served at `/` (compiled into the binary; `internal_health_server_path` overrides it) and the
//! `/overview` JSON it refreshes itself from: per section its totals, ring members with their state, queue and
//! drops, its accumulator and writers. The page computes rates from successive totals, so it needs no history
//! here; it talks to nothing but this server.

use std::sync::atomic::Ordering::Relaxed;

use serde_json::{json, Value};

use super::admin::{AdminState, SectionView};
use super::stats::{writers, Totals};

/// The page: one self-contained HTML file (styles and script inline, no external requests).
pub const PAGE: &str = include_str!("status.html");

/// `/overview`.
pub fn overview(state: &AdminState) -> Value {
    let sections: Vec<Value> = state.sections.iter().map(section).collect();
    json!({
        "uptime_sec": state.started.elapsed().as_secs_f64(),
        "sections": sections,
    })
}

fn section(v: &SectionView) -> Value {
    let s = &v.section;
    let t = Totals::of(s);
    let dests = s.backend.destinations();
    let (mut queued, mut in_flight) = (0u64, 0u64);
    for d in &dests {
        queued += d.queue.depth().0 as u64;
        in_flight += d.stats.in_flight_lines.load(Relaxed);
    }
    let rings: Vec<Value> = s
        .backend
        .members()
        .iter()
        .map(|ring| {
            let members: Vec<Value> = ring
                .iter()
                .map(|m| {
                    let d = &dests[m.dest as usize];
                    let state = match (m.up, d.is_stalled()) {
                        (false, _) => "down",
                        (true, true) => "stalled",
                        (true, false) => "up",
                    };
                    json!({
                        "url": d.url.raw,
                        "hashkey": m.hashkey,
                        "state": state,
                        "queued": d.queue.depth().0,
                        "sent": d.stats.sent_lines.load(Relaxed),
                        "dropped": d.stats.dropped_total(),
                    })
                })
                .collect();
            Value::from(members)
        })
        .collect();
    let accumulator = v.accumulator.as_ref().map(|a| {
        json!({
            "group": a.group,
            "keys": a.keys(),
            "flushes": a.stats.flushes.load(Relaxed),
            "last_flush_ms": a.last_flush_ms(),
            "last_flush_duration_ms": a.last_flush_duration().as_secs_f64() * 1000.0,
        })
    });
    json!({
        "name": s.name,
        "listening": s.listening,
        "kind": s.backend.spec().kind.name(),
        "replicas": s.backend.load().replicas,
        "totals": {
            "received": t.all,
            "valid": t.valid,
            "sent": t.success_send,
            "invalid": t.invalid,
            "rejected": t.rejected,
            "redirected": t.redirected,
            "dropped": t.dropped,
            "queued": queued,
            "in_flight": in_flight,
        },
        "rings": rings,
        "accumulator": accumulator,
        "writers": v.accumulator.as_ref().map_or_else(|| Value::from(Vec::<Value>::new()), |a| writers(a)),
    })
}
