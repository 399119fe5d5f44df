//! Prometheus text exposition (spec §13.2) of the relay's counters and gauges, served at `/metrics`.
//!
//! Series exist for what this relay has: lines received, invalid, rejected, redirected, sent and dropped, bytes,
//! connections, health transitions, ring membership and queue depths. Labels come from a small fixed set
//! (section, proto, reason, destination, ring, state); never from traffic.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::admin::SectionView;
use crate::accumulator::Accumulator;
use crate::backend::Destination;
use crate::section::Section;
use crate::telemetry::{DropReason, InvalidReason};
use crate::writer::WriterStats;

/// Escapes a label value (backslash, double quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
    views: &'a [SectionView],
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", esc(v))).collect();
        let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
    }

    /// A family with one sample per section.
    fn per_section(&mut self, name: &str, kind: &str, help: &str, value: impl Fn(&Section) -> u64) {
        self.head(name, kind, help);
        for s in sections(self.views) {
            let v = value(s);
            self.sample(name, &[("section", &s.name)], v);
        }
    }

    /// A family with one sample per destination.
    fn per_destination(&mut self, name: &str, kind: &str, help: &str, value: impl Fn(&Destination) -> u64) {
        self.head(name, kind, help);
        for s in sections(self.views) {
            for d in s.backend.destinations() {
                self.sample(name, &[("section", &s.name), ("destination", &d.url.raw)], value(&d));
            }
        }
    }

    /// A family with one sample per accumulator (sections without one have none).
    fn per_accumulator(&mut self, name: &str, kind: &str, help: &str, value: impl Fn(&Section, &Accumulator) -> u64) {
        self.head(name, kind, help);
        for v in self.views {
            if let Some(a) = &v.accumulator {
                let n = value(&v.section, a);
                self.sample(name, &[("section", &v.section.name)], n);
            }
        }
    }

    /// A writer family: one sample per accumulator bin.
    fn per_writer(&mut self, name: &str, help: &str, value: fn(&WriterStats) -> &AtomicU64, with_driver: bool) {
        self.head(name, COUNTER, help);
        for v in self.views {
            let Some(a) = &v.accumulator else { continue };
            for (bin, driver, st) in a.writer_stats.get().into_iter().flatten() {
                let bin = bin.to_string();
                let mut labels = vec![("group", a.group.as_str()), ("bin", bin.as_str())];
                if with_driver {
                    labels.push(("driver", driver));
                }
                self.sample(name, &labels, value(st).load(Relaxed));
            }
        }
    }
}

fn sections(views: &[SectionView]) -> impl Iterator<Item = &Section> {
    views.iter().map(|v| &*v.section)
}

const COUNTER: &str = "counter";
const GAUGE: &str = "gauge";

fn proto(listening: &str) -> &str {
    listening.split_once("://").map_or("backend", |(p, _)| p)
}

/// Renders every family for `sections`.
pub fn render(views: &[SectionView], uptime: Duration) -> String {
    let mut out = String::new();
    let mut f = Family { out: &mut out, views };

    f.head(
        "consthash_lines_received_total",
        COUNTER,
        "Framed lines received, valid or not.",
    );
    for s in sections(views) {
        let labels = [("section", s.name.as_str()), ("proto", proto(&s.listening))];
        f.sample(
            "consthash_lines_received_total",
            &labels,
            s.stats.all_lines.load(Relaxed),
        );
    }
    f.head(
        "consthash_lines_invalid_total",
        COUNTER,
        "Lines dropped as invalid, by reason.",
    );
    for s in sections(views) {
        for (i, reason) in InvalidReason::LABELS.iter().enumerate() {
            let labels = [("section", s.name.as_str()), ("reason", reason)];
            f.sample(
                "consthash_lines_invalid_total",
                &labels,
                s.stats.invalid_lines[i].load(Relaxed),
            );
        }
    }
    f.per_section(
        "consthash_lines_rejected_total",
        COUNTER,
        "Lines rejected by a PreReg rule.",
        |s| s.stats.rejected_lines.load(Relaxed),
    );
    f.head(
        "consthash_lines_redirected_total",
        COUNTER,
        "Lines a PreReg rule redirected to another section's rings.",
    );
    for s in sections(views) {
        for (i, n) in s.stats.redirected_to.iter().enumerate() {
            if let Some(b) = s.backends.get(i).filter(|_| i != s.index) {
                let labels = [("section", s.name.as_str()), ("backend", b.name.as_str())];
                f.sample("consthash_lines_redirected_total", &labels, n.load(Relaxed));
            }
        }
    }
    f.per_accumulator(
        "consthash_lines_accumulated_total",
        COUNTER,
        "Lines handed to the section's accumulator.",
        |s, _| s.stats.accumulated_lines.load(Relaxed),
    );
    f.per_accumulator(
        "consthash_accumulator_flushes_total",
        COUNTER,
        "Base flushes of the accumulator.",
        |_, a| a.stats.flushes.load(Relaxed),
    );
    f.per_accumulator(
        "consthash_accumulator_input_dropped_total",
        COUNTER,
        "Lines dropped because the accumulator's input was full (UDP) or closed.",
        |s, _| s.accumulator.as_ref().map_or(0, |i| i.dropped.load(Relaxed)),
    );
    f.per_accumulator(
        "consthash_accumulator_keys",
        GAUGE,
        "Keys the accumulator holds now.",
        |_, a| a.keys() as u64,
    );
    f.per_writer(
        "consthash_writer_records_total",
        "Records written.",
        |w| &w.records,
        true,
    );
    f.per_writer("consthash_writer_errors_total", "Failed writes.", |w| &w.errors, true);
    f.per_writer(
        "consthash_writer_skipped_flushes_total",
        "Bin flushes skipped: queue full.",
        |w| &w.skipped_flushes,
        false,
    );
    f.per_destination(
        "consthash_lines_sent_total",
        COUNTER,
        "Lines written to a destination.",
        |d| d.stats.sent_lines.load(Relaxed),
    );
    f.head(
        "consthash_lines_dropped_total",
        COUNTER,
        "Lines dropped, by destination and reason (no_server: no destination).",
    );
    for s in sections(views) {
        for d in s.backend.destinations() {
            for r in DropReason::ALL {
                let labels = [
                    ("section", s.name.as_str()),
                    ("destination", d.url.raw.as_str()),
                    ("reason", r.label()),
                ];
                f.sample("consthash_lines_dropped_total", &labels, d.stats.dropped(r));
            }
        }
        let labels = [
            ("section", s.name.as_str()),
            ("destination", ""),
            ("reason", DropReason::NoServer.label()),
        ];
        f.sample(
            "consthash_lines_dropped_total",
            &labels,
            s.stats.no_server_lines.load(Relaxed),
        );
    }
    f.per_section(
        "consthash_bytes_read_total",
        COUNTER,
        "Bytes read by the listener.",
        |s| s.stats.bytes_read.load(Relaxed),
    );
    f.per_destination(
        "consthash_bytes_written_total",
        COUNTER,
        "Bytes written to a destination.",
        |d| d.stats.sent_bytes.load(Relaxed),
    );
    f.per_section(
        "consthash_connections_total",
        COUNTER,
        "Incoming connections accepted.",
        |s| s.stats.connections.load(Relaxed),
    );
    f.head(
        "consthash_health_transitions_total",
        COUNTER,
        "Health-check transitions of a destination.",
    );
    for s in sections(views) {
        for d in s.backend.destinations() {
            for (state, n) in [("down", &d.stats.health_down), ("up", &d.stats.health_up)] {
                let labels = [
                    ("section", s.name.as_str()),
                    ("destination", d.url.raw.as_str()),
                    ("state", state),
                ];
                f.sample("consthash_health_transitions_total", &labels, n.load(Relaxed));
            }
        }
    }
    f.head(
        "consthash_destination_up",
        GAUGE,
        "1 while a ring member passes its health checks.",
    );
    for s in sections(views) {
        let dests = s.backend.destinations();
        for (ring, members) in s.backend.members().iter().enumerate() {
            for m in members {
                let (ring, url) = (ring.to_string(), dests[m.dest as usize].url.raw.as_str());
                let labels = [
                    ("section", s.name.as_str()),
                    ("ring", ring.as_str()),
                    ("destination", url),
                ];
                f.sample("consthash_destination_up", &labels, u8::from(m.up));
            }
        }
    }
    f.head("consthash_ring_members", GAUGE, "Members in a ring's current snapshot.");
    for s in sections(views) {
        for (ring, r) in s.backend.load().rings.iter().enumerate() {
            let ring = ring.to_string();
            f.sample(
                "consthash_ring_members",
                &[("section", &s.name), ("ring", &ring)],
                r.members(),
            );
        }
    }
    f.per_destination(
        "consthash_out_queue_lines",
        GAUGE,
        "Lines queued for a destination.",
        |d| d.queue.depth().0 as u64,
    );
    f.per_destination(
        "consthash_out_queue_bytes",
        GAUGE,
        "Bytes queued for a destination.",
        |d| d.queue.depth().1 as u64,
    );
    f.per_section(
        "consthash_connections_open",
        GAUGE,
        "Incoming connections open now.",
        |s| s.stats.connections_open.load(Relaxed),
    );
    f.head("consthash_uptime_seconds", GAUGE, "Seconds since start.");
    let _ = writeln!(f.out, "consthash_uptime_seconds {}", uptime.as_secs_f64());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(esc("x\ny"), "x\\ny");
    }

    #[test]
    fn proto_of_listen_urls() {
        assert_eq!(proto("tcp://0.0.0.0:2003"), "tcp");
        assert_eq!(proto("unix:///run/x.sock"), "unix");
        assert_eq!(proto("BACKEND-ONLY"), "backend");
    }
}
