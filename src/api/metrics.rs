//! Prometheus text exposition (spec §13.2) of the relay's counters and gauges, served at `/metrics`.
//!
//! Series exist for what this relay has: lines received, invalid, rejected, redirected, sent and dropped, bytes,
//! connections, health transitions, ring membership and queue depths. Labels come from a small fixed set
//! (section, proto, reason, destination, ring, state); never from traffic.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::admin::SectionView;
use crate::accumulator::Accumulator;
use crate::backend::Destination;
use crate::reader::ReaderStats;
use crate::section::Section;
use crate::telemetry::{DropReason, InvalidReason, DEST_STATS, SECTION_STATS};
use crate::writer::QueueStatus;

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

    /// The families of [`SECTION_STATS`]: one sample per section.
    fn section_stats(&mut self) {
        for stat in SECTION_STATS.iter().filter(|s| !s.metric.is_empty()) {
            self.head(stat.metric, stat.kind.label(), stat.help);
            for s in sections(self.views) {
                let proto = [("section", s.name.as_str()), ("proto", proto(&s.listening))];
                let labels = if stat.by_proto { &proto[..] } else { &proto[..1] };
                self.sample(stat.metric, labels, (stat.read)(&s.stats));
            }
        }
    }

    /// The families of [`DEST_STATS`]: one sample per destination.
    fn dest_stats(&mut self) {
        for stat in DEST_STATS.iter().filter(|s| !s.metric.is_empty()) {
            self.per_destination(stat.metric, stat.kind.label(), stat.help, |d| (stat.read)(&d.stats));
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

    /// A writer family: one sample per accumulator bin (`bin` = its seconds), or per indexer (`indexer`);
    /// labelled with the driver except `*_skipped_flushes_total` (spec §13.2).
    fn per_queue(&mut self, name: &str, kind: &str, help: &str, indexer: bool, value: fn(&QueueStatus) -> u64) {
        let with_driver = !name.ends_with("_skipped_flushes_total");
        self.head(name, kind, help);
        for v in self.views {
            let Some(a) = &v.accumulator else { continue };
            for q in a.writer_stats.get().into_iter().flatten() {
                if q.bin.is_some() == indexer {
                    continue;
                }
                let bin = q.bin.map(|b| b.to_string());
                let mut labels = vec![("group", a.group.as_str())];
                if let Some(bin) = &bin {
                    labels.push(("bin", bin.as_str()));
                }
                if with_driver {
                    labels.push(("driver", q.driver));
                }
                self.sample(name, &labels, value(q));
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

/// Renders every family for `views`.
pub fn render(views: &[SectionView], readers: &[(String, Arc<ReaderStats>)], uptime: Duration) -> String {
    let mut out = String::new();
    let mut f = Family { out: &mut out, views };
    f.section_stats();
    f.lines_invalid();
    f.lines_redirected();
    f.accumulators();
    f.writers();
    f.dest_stats();
    f.lines_dropped();
    f.health();
    f.rings();
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
    f.readers(readers);
    f.head("consthash_uptime_seconds", GAUGE, "Seconds since start.");
    let _ = writeln!(f.out, "consthash_uptime_seconds {}", uptime.as_secs_f64());
    out
}

/// The families with a label of their own (reasons, targets, states, rings).
impl Family<'_> {
    /// The reader APIs' requests and failures, per group.
    fn readers(&mut self, readers: &[(String, Arc<ReaderStats>)]) {
        type Read = fn(&ReaderStats) -> u64;
        let families: [(&str, &str, Read); 4] = [
            (
                "consthash_reader_requests_total",
                "Requests the reader API answered.",
                |s| s.requests.load(Relaxed),
            ),
            (
                "consthash_reader_failed_series_total",
                "Series left out of a render because reading them failed.",
                |s| s.failed_series.load(Relaxed),
            ),
            (
                "consthash_reader_store_errors_total",
                "Reader requests answered 503 because the store failed.",
                |s| s.store_errors.load(Relaxed),
            ),
            (
                "consthash_reader_client_errors_total",
                "Reader requests answered 4xx (a bad or incomplete request).",
                |s| s.client_errors.load(Relaxed),
            ),
        ];
        if readers.is_empty() {
            return;
        }
        for (name, help, read) in families {
            self.head(name, COUNTER, help);
            for (group, stats) in readers {
                self.sample(name, &[("group", group)], read(stats));
            }
        }
    }

    fn lines_invalid(&mut self) {
        let name = "consthash_lines_invalid_total";
        self.head(name, COUNTER, "Lines dropped as invalid, by reason.");
        for s in sections(self.views) {
            for (i, reason) in InvalidReason::LABELS.iter().enumerate() {
                let labels = [("section", s.name.as_str()), ("reason", reason)];
                self.sample(name, &labels, s.stats.invalid_lines[i].load(Relaxed));
            }
        }
    }

    fn lines_redirected(&mut self) {
        let name = "consthash_lines_redirected_total";
        self.head(
            name,
            COUNTER,
            "Lines a PreReg rule redirected to another section's rings.",
        );
        for s in sections(self.views) {
            for (target, n) in s.routes.iter().zip(&s.redirected_to).skip(1) {
                if let Some(b) = s.backends.get(*target) {
                    let labels = [("section", s.name.as_str()), ("backend", b.name.as_str())];
                    self.sample(name, &labels, n.load(Relaxed));
                }
            }
        }
    }

    fn accumulators(&mut self) {
        self.per_accumulator(
            "consthash_lines_accumulated_total",
            COUNTER,
            "Lines handed to the section's accumulator.",
            |s, _| s.stats.accumulated_lines.load(Relaxed),
        );
        self.per_accumulator(
            "consthash_accumulator_flushes_total",
            COUNTER,
            "Base flushes of the accumulator.",
            |_, a| a.stats.flushes.load(Relaxed),
        );
        self.per_accumulator(
            "consthash_accumulator_records_total",
            COUNTER,
            "Records (one key's aggregate of one base flush) the accumulator produced; each goes into every bin.",
            |_, a| a.stats.records.load(Relaxed),
        );
        self.per_accumulator(
            "consthash_accumulator_input_dropped_total",
            COUNTER,
            "Lines dropped because the accumulator's input was full (UDP) or closed.",
            |s, _| s.accumulator.as_ref().map_or(0, |i| i.dropped.load(Relaxed)),
        );
        self.per_accumulator(
            "consthash_accumulator_invalid_samples_total",
            COUNTER,
            "Samples the accumulator could not parse.",
            |_, a| a.stats.invalid.load(Relaxed),
        );
        self.per_accumulator(
            "consthash_accumulator_max_keys_dropped_total",
            COUNTER,
            "Samples dropped because their key was new and the accumulator held max_keys keys.",
            |_, a| a.stats.over_max_keys.load(Relaxed),
        );
        self.per_accumulator(
            "consthash_accumulator_keys",
            GAUGE,
            "Keys the accumulator holds now.",
            |_, a| a.keys() as u64,
        );
    }

    fn writers(&mut self) {
        for (prefix, indexer, what) in [
            ("consthash_writer", false, "Records"),
            ("consthash_indexer", true, "Keys"),
        ] {
            self.per_queue(
                &format!("{prefix}_records_total"),
                COUNTER,
                &format!("{what} stored."),
                indexer,
                |q| q.stats.records.load(Relaxed),
            );
            self.per_queue(
                &format!("{prefix}_errors_total"),
                COUNTER,
                "Failed write attempts.",
                indexer,
                |q| q.stats.errors.load(Relaxed),
            );
            self.per_queue(
                &format!("{prefix}_skipped_flushes_total"),
                COUNTER,
                "Bin flushes skipped: queue full.",
                indexer,
                |q| q.stats.skipped_flushes.load(Relaxed),
            );
            self.per_queue(
                &format!("{prefix}_dropped_records_total"),
                COUNTER,
                &format!("{what} lost: skipped flushes, batches dropped after failed attempts, left at shutdown."),
                indexer,
                |q| q.stats.dropped_records.load(Relaxed),
            );
            self.per_queue(
                &format!("{prefix}_queued_records"),
                GAUGE,
                &format!("{what} queued or being written."),
                indexer,
                |q| q.queued() as u64,
            );
            self.per_queue(
                &format!("{prefix}_queue_capacity"),
                GAUGE,
                "The queue's length.",
                indexer,
                |q| q.capacity as u64,
            );
        }
    }

    fn lines_dropped(&mut self) {
        let name = "consthash_lines_dropped_total";
        self.head(
            name,
            COUNTER,
            "Lines dropped, by destination and reason (no_server: no destination).",
        );
        for s in sections(self.views) {
            for d in s.backend.destinations() {
                for r in DropReason::ALL {
                    let labels = [
                        ("section", s.name.as_str()),
                        ("destination", d.url.raw.as_str()),
                        ("reason", r.label()),
                    ];
                    self.sample(name, &labels, d.stats.dropped(r));
                }
            }
            let labels = [
                ("section", s.name.as_str()),
                ("destination", ""),
                ("reason", DropReason::NoServer.label()),
            ];
            self.sample(name, &labels, s.stats.no_server_lines.load(Relaxed));
        }
    }

    fn health(&mut self) {
        let name = "consthash_health_transitions_total";
        self.head(name, COUNTER, "Health-check transitions of a destination.");
        for s in sections(self.views) {
            for d in s.backend.destinations() {
                for (state, n) in [("down", &d.stats.health_down), ("up", &d.stats.health_up)] {
                    let labels = [
                        ("section", s.name.as_str()),
                        ("destination", d.url.raw.as_str()),
                        ("state", state),
                    ];
                    self.sample(name, &labels, n.load(Relaxed));
                }
            }
        }
        let name = "consthash_destination_up";
        self.head(name, GAUGE, "1 while a ring member passes its health checks.");
        for s in sections(self.views) {
            let dests = s.backend.destinations();
            for (ring, members) in s.backend.members().iter().enumerate() {
                for m in members {
                    let (ring, url) = (ring.to_string(), dests[m.dest as usize].url.raw.as_str());
                    let labels = [
                        ("section", s.name.as_str()),
                        ("ring", ring.as_str()),
                        ("destination", url),
                    ];
                    self.sample(name, &labels, u8::from(m.up));
                }
            }
        }
    }

    fn rings(&mut self) {
        let name = "consthash_ring_members";
        self.head(name, GAUGE, "Members in a ring's current snapshot.");
        for s in sections(self.views) {
            for (ring, r) in s.backend.load().rings.iter().enumerate() {
                let ring = ring.to_string();
                self.sample(name, &[("section", &s.name), ("ring", &ring)], r.members());
            }
        }
    }
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
