//! Prometheus text exposition (spec §13.2) of the relay's counters and gauges, served at `/metrics`.
//!
//! Series exist for what this relay has: lines received, invalid, rejected, redirected, sent and dropped, bytes,
//! connections, health transitions, ring membership and queue depths. Labels come from a small fixed set
//! (section, proto, reason, destination, ring, state); never from traffic.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::section::Section;
use crate::telemetry::{DropReason, InvalidReason};
use crate::writer::WriterStats;

/// Escapes a label value (backslash, double quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", esc(v))).collect();
        let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
    }
}

fn proto(listening: &str) -> &str {
    listening.split_once("://").map_or("backend", |(p, _)| p)
}

/// Renders every family for `sections`.
pub fn render(sections: &[std::sync::Arc<Section>], uptime: Duration) -> String {
    let mut out = String::new();
    let mut f = Family { out: &mut out };
    let counter = "counter";
    let gauge = "gauge";

    f.head(
        "consthash_lines_received_total",
        counter,
        "Framed lines received, valid or not.",
    );
    for s in sections {
        f.sample(
            "consthash_lines_received_total",
            &[("section", &s.name), ("proto", proto(&s.listening))],
            s.stats.all_lines.load(Relaxed),
        );
    }
    f.head(
        "consthash_lines_invalid_total",
        counter,
        "Lines dropped as invalid, by reason.",
    );
    for s in sections {
        for (i, reason) in InvalidReason::LABELS.iter().enumerate() {
            f.sample(
                "consthash_lines_invalid_total",
                &[("section", &s.name), ("reason", reason)],
                s.stats.invalid_lines[i].load(Relaxed),
            );
        }
    }
    f.head(
        "consthash_lines_rejected_total",
        counter,
        "Lines rejected by a PreReg rule.",
    );
    for s in sections {
        f.sample(
            "consthash_lines_rejected_total",
            &[("section", &s.name)],
            s.stats.rejected_lines.load(Relaxed),
        );
    }
    f.head(
        "consthash_lines_redirected_total",
        counter,
        "Lines a PreReg rule redirected to another section's rings.",
    );
    for s in sections {
        for (i, n) in s.stats.redirected_to.iter().enumerate() {
            if let Some(b) = s.backends.get(i).filter(|_| i != s.index) {
                f.sample(
                    "consthash_lines_redirected_total",
                    &[("section", &s.name), ("backend", &b.name)],
                    n.load(Relaxed),
                );
            }
        }
    }
    f.head(
        "consthash_lines_accumulated_total",
        counter,
        "Lines handed to the section's accumulator.",
    );
    for s in sections.iter().filter(|s| s.accumulator.is_some()) {
        f.sample(
            "consthash_lines_accumulated_total",
            &[("section", &s.name)],
            s.stats.accumulated_lines.load(Relaxed),
        );
    }
    f.head(
        "consthash_accumulator_flushes_total",
        counter,
        "Base flushes of the section's accumulator.",
    );
    for s in sections {
        if let Some(a) = &s.accumulator {
            f.sample(
                "consthash_accumulator_flushes_total",
                &[("section", &s.name)],
                a.stats.flushes.load(Relaxed),
            );
        }
    }
    f.head(
        "consthash_accumulator_keys",
        gauge,
        "Keys the section's accumulator holds now.",
    );
    for s in sections {
        if let Some(a) = &s.accumulator {
            f.sample("consthash_accumulator_keys", &[("section", &s.name)], a.keys());
        }
    }
    let writers = |f: &mut Family<'_>, name: &str, help: &str, pick: fn(&WriterStats) -> &AtomicU64, driver: bool| {
        f.head(name, counter, help);
        for s in sections {
            let Some(a) = &s.accumulator else { continue };
            for (bin, drv, st) in a.writer_stats.get().into_iter().flatten() {
                let bin = bin.to_string();
                let mut labels = vec![("group", a.group.as_str()), ("bin", bin.as_str())];
                if driver {
                    labels.push(("driver", drv));
                }
                f.sample(name, &labels, pick(st).load(Relaxed));
            }
        }
    };
    writers(
        &mut f,
        "consthash_writer_records_total",
        "Records written.",
        |w| &w.records,
        true,
    );
    writers(
        &mut f,
        "consthash_writer_errors_total",
        "Failed writes.",
        |w| &w.errors,
        true,
    );
    writers(
        &mut f,
        "consthash_writer_skipped_flushes_total",
        "Bin flushes skipped: queue full.",
        |w| &w.skipped_flushes,
        false,
    );
    f.head("consthash_lines_sent_total", counter, "Lines written to a destination.");
    for s in sections {
        for d in s.backend.destinations() {
            f.sample(
                "consthash_lines_sent_total",
                &[("section", &s.name), ("destination", &d.url.raw)],
                d.stats.sent_lines.load(Relaxed),
            );
        }
    }
    f.head(
        "consthash_lines_dropped_total",
        counter,
        "Lines dropped, by destination and reason (no_server: no destination).",
    );
    for s in sections {
        for d in s.backend.destinations() {
            for r in DropReason::ALL {
                f.sample(
                    "consthash_lines_dropped_total",
                    &[("section", &s.name), ("destination", &d.url.raw), ("reason", r.label())],
                    d.stats.dropped(r),
                );
            }
        }
        f.sample(
            "consthash_lines_dropped_total",
            &[
                ("section", &s.name),
                ("destination", ""),
                ("reason", DropReason::NoServer.label()),
            ],
            s.stats.no_server_lines.load(Relaxed),
        );
    }
    f.head("consthash_bytes_read_total", counter, "Bytes read by the listener.");
    for s in sections {
        f.sample(
            "consthash_bytes_read_total",
            &[("section", &s.name)],
            s.stats.bytes_read.load(Relaxed),
        );
    }
    f.head(
        "consthash_bytes_written_total",
        counter,
        "Bytes written to a destination.",
    );
    for s in sections {
        for d in s.backend.destinations() {
            f.sample(
                "consthash_bytes_written_total",
                &[("section", &s.name), ("destination", &d.url.raw)],
                d.stats.sent_bytes.load(Relaxed),
            );
        }
    }
    f.head("consthash_connections_total", counter, "Incoming connections accepted.");
    for s in sections {
        f.sample(
            "consthash_connections_total",
            &[("section", &s.name)],
            s.stats.connections.load(Relaxed),
        );
    }
    f.head(
        "consthash_health_transitions_total",
        counter,
        "Health-check transitions of a destination.",
    );
    for s in sections {
        for d in s.backend.destinations() {
            for (state, n) in [("down", &d.stats.health_down), ("up", &d.stats.health_up)] {
                f.sample(
                    "consthash_health_transitions_total",
                    &[("section", &s.name), ("destination", &d.url.raw), ("state", state)],
                    n.load(Relaxed),
                );
            }
        }
    }
    f.head(
        "consthash_destination_up",
        gauge,
        "1 while a ring member passes its health checks.",
    );
    for s in sections {
        let dests = s.backend.destinations();
        for (ring, members) in s.backend.members().iter().enumerate() {
            for m in members {
                let url = &dests[m.dest as usize].url.raw;
                f.sample(
                    "consthash_destination_up",
                    &[("section", &s.name), ("ring", &ring.to_string()), ("destination", url)],
                    u8::from(m.up),
                );
            }
        }
    }
    f.head("consthash_ring_members", gauge, "Members in a ring's current snapshot.");
    for s in sections {
        for (ring, r) in s.backend.load().rings.iter().enumerate() {
            f.sample(
                "consthash_ring_members",
                &[("section", &s.name), ("ring", &ring.to_string())],
                r.members(),
            );
        }
    }
    f.head("consthash_out_queue_lines", gauge, "Lines queued for a destination.");
    for s in sections {
        for d in s.backend.destinations() {
            f.sample(
                "consthash_out_queue_lines",
                &[("section", &s.name), ("destination", &d.url.raw)],
                d.queue.depth().0,
            );
        }
    }
    f.head("consthash_out_queue_bytes", gauge, "Bytes queued for a destination.");
    for s in sections {
        for d in s.backend.destinations() {
            f.sample(
                "consthash_out_queue_bytes",
                &[("section", &s.name), ("destination", &d.url.raw)],
                d.queue.depth().1,
            );
        }
    }
    f.head("consthash_connections_open", gauge, "Incoming connections open now.");
    for s in sections {
        f.sample(
            "consthash_connections_open",
            &[("section", &s.name)],
            s.stats.connections_open.load(Relaxed),
        );
    }
    f.head("consthash_uptime_seconds", gauge, "Seconds since start.");
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
