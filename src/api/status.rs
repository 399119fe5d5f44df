//! The status page served at `/` (compiled into the binary; `internal_health_server_path` overrides it) and the
//! `/overview` JSON it refreshes itself from: per section its totals, ring members with their state, queue and
//! drops, its accumulator and writers. The page computes rates from successive totals, so it needs no history
//! here; it talks to nothing but this server.
//!
//! `/placement` is the cluster view of the rings: per section the replica factor and, per ring member, its health
//! and the share of the key space it owns as first and as further replica, estimated over a fixed set of synthetic
//! keys, so that nodes with the same member list answer the same.

use std::sync::atomic::Ordering::Relaxed;

use serde_json::{json, Value};

use super::admin::{AdminState, SectionView, DRY_RUN_SAMPLE};
use super::stats::{writers, Totals};

/// The page: one self-contained HTML file (styles and script inline, no external requests).
pub const PAGE: &str = include_str!("status.html");

/// `/overview`.
pub fn overview(state: &AdminState) -> Value {
    let sections: Vec<Value> = state.views().iter().map(section).collect();
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

/// The keys `/placement` estimates shares over (the same on every node).
fn sample_keys() -> impl Iterator<Item = Vec<u8>> {
    (0..DRY_RUN_SAMPLE).map(|i| format!("consthash.placement.key{i}").into_bytes())
}

/// `/placement`.
pub fn placement(state: &AdminState) -> Value {
    let mut sections = serde_json::Map::new();
    for v in state.views().iter() {
        let s = &v.section;
        let set = s.backend.load();
        let dests = s.backend.destinations();
        let members = s.backend.members();
        let mut ids = Vec::new();
        let rings: Vec<Value> = set
            .rings
            .iter()
            .zip(&members)
            .map(|(ring, members)| {
                // Keys whose first (and further) replica each destination is.
                let (mut first, mut further) = (vec![0u64; dests.len()], vec![0u64; dests.len()]);
                for key in sample_keys() {
                    ring.get_n(&key, set.replicas, &mut ids);
                    for (i, &id) in ids.iter().enumerate() {
                        let counts = if i == 0 { &mut first } else { &mut further };
                        counts[id as usize] += 1;
                    }
                }
                let share = |n: u64| n as f64 / DRY_RUN_SAMPLE as f64;
                let list: Vec<Value> = members
                    .iter()
                    .map(|m| {
                        let d = m.dest as usize;
                        json!({
                            "url": dests[d].url.raw,
                            "hashkey": m.hashkey,
                            "up": m.up,
                            "first": share(first[d]),
                            "further": share(further[d]),
                        })
                    })
                    .collect();
                Value::from(list)
            })
            .collect();
        sections.insert(
            s.name.clone(),
            json!({
                "ring_kind": s.backend.spec().kind.name(),
                "replica_factor": set.replicas,
                "sample": DRY_RUN_SAMPLE,
                "rings": rings,
            }),
        );
    }
    Value::Object(sections)
}
