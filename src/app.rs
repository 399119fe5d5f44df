//! Builds the running relay from a validated configuration and owns start-up and shutdown order.
//!
//! Start: sections (splitter, PreReg, rings, destinations), then the senders and health checks of every
//! destination (they dial lazily), the accumulators and their writers, then the listeners, then the admin server.
//! Shutdown: stop the listeners (connections route what they already read), let the accumulators flush
//! everything pending and the writers write it, close the destination queues, let the senders drain them for up to
//! `shutdown_timeout`, then stop the senders and count what is left as dropped (`shutdown`); the admin server and
//! self-stats stop last.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accumulator::bins::Bins;
use crate::accumulator::clock::Clock;
use crate::accumulator::task::{Accumulator, Task};
use crate::api::{self, stats::History, AdminState};
use crate::backend::{Backend, DestParams, HealthParams, NewMember, Runtime};
use crate::config::{AccTarget, Config, Format, Listen, MsgType, PreRegConfig, Section as SectionConfig};
use crate::listener::{self, Bound};
use crate::prereg::PreReg;
use crate::section::{Router, Section};
use crate::selfstats;
use crate::splitter::{RegexSplitter, Splitter};
use crate::writer;

/// Why the relay could not start (after a valid config: sockets, mostly).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("[{section}] listen {listen}: {source}")]
    Listen {
        section: String,
        listen: String,
        source: std::io::Error,
    },
    #[error("accumulator of group {group}: {message}")]
    Accumulator { group: String, message: String },
    #[error("could not build the HTTP client for outgoing connections: {0}")]
    HttpClient(#[from] reqwest::Error),
}

/// Raises the soft RLIMIT_NOFILE to min(999999, hard limit) (spec §2; the tools do the same). Returns the limit
/// it asked for when raising failed.
pub fn raise_nofile_limit() -> Result<(), (u64, std::io::Error)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Ok(());
    }
    let want = lim.rlim_max.min(999_999);
    if want > lim.rlim_cur {
        lim.rlim_cur = want;
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err((want, std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Period of the `stats_tick` log lines.
const STATS_TICK: Duration = Duration::from_secs(5);

/// `stats_tick = true`: one INFO line of counters per section every `period`.
async fn log_stats_every(period: Duration, sections: Vec<Arc<Section>>, stop: CancellationToken) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        for s in &sections {
            let dests = s.backend.destinations();
            let sent: u64 = dests.iter().map(|d| d.stats.sent_lines.load(Relaxed)).sum();
            let dropped: u64 = dests.iter().map(|d| d.stats.dropped_total()).sum();
            let queued: usize = dests.iter().map(|d| d.queue.depth().0).sum();
            tracing::info!(
                section = %s.name,
                lines = s.stats.all_lines.load(Relaxed),
                valid = s.stats.valid_lines.load(Relaxed),
                invalid = s.stats.invalid_total(),
                no_server = s.stats.no_server_lines.load(Relaxed),
                sent,
                dropped,
                queued,
                connections_open = s.stats.connections_open.load(Relaxed),
                "stats"
            );
        }
    }
}

/// The running relay.
pub struct Relay {
    sections: Vec<(Arc<Section>, Bound)>,
    admin: Option<SocketAddr>,
    listeners: TaskTracker,
    stop_listeners: CancellationToken,
    senders: TaskTracker,
    stop_senders: CancellationToken,
    stop_checks: CancellationToken,
    accumulators: TaskTracker,
    stop_accumulators: CancellationToken,
    writers: TaskTracker,
    /// The admin server and self-stats: stopped last.
    services: TaskTracker,
    stop_services: CancellationToken,
    shutdown_timeout: Duration,
}

fn splitter_of(s: &SectionConfig) -> Splitter {
    match s.msg_type {
        MsgType::Graphite => Splitter::Graphite,
        MsgType::Statsd => Splitter::Statsd,
        MsgType::Regex => Splitter::Regex(
            s.msg_regex
                .clone()
                .and_then(RegexSplitter::new)
                .expect("config validation: a regex section has a msg_regex with a Key group"),
        ),
    }
}

fn backend_of(s: &SectionConfig) -> Backend {
    let params = DestParams {
        method: s.sending_method,
        max_connections: s.max_pool_connections,
        buffer_size: s.pool_buffersize,
        write_timeout: s.write_timeout,
        block_timeout: s.out_block_timeout,
        backoff_max: s.reconnect_backoff_max,
        queue_lines: s.out_queue_lines,
        queue_bytes: s.out_queue_bytes,
    };
    let health = HealthParams {
        delay: s.heartbeat_time_delay,
        timeout: s.heartbeat_time_timeout,
        failures: s.failed_heartbeat_count.max(1),
        policy: s.server_down_policy,
    };
    let rings: Vec<Vec<NewMember>> = s
        .rings
        .iter()
        .map(|r| {
            r.servers
                .iter()
                .enumerate()
                .map(|(i, url)| NewMember {
                    url: url.clone(),
                    check: r.check_servers.get(i).cloned().unwrap_or_else(|| url.clone()),
                    hashkey: r.hashkeys.get(i).cloned().unwrap_or_else(|| url.raw.clone()),
                })
                .collect()
        })
        .collect();
    Backend::new(&s.name, s.ring_spec, s.num_dupe_replicas, &rings, &params, health)
}

/// Builds the sections of `config` without starting anything (the relay, and `consthash hashcheck`).
pub fn build_sections(config: &Config, prereg: Option<&PreRegConfig>) -> Result<Built, StartError> {
    let backends: Vec<Arc<Backend>> = config.sections.iter().map(|s| Arc::new(backend_of(s))).collect();
    let index_of = |name: &str| config.sections.iter().position(|s| s.name == name);
    let mut built = Built {
        sections: Vec::new(),
        accumulators: Vec::new(),
    };
    for (i, s) in config.sections.iter().enumerate() {
        let group = prereg.and_then(|p| p.group_for(&s.name));
        let rules = group.map(|g| PreReg::new(g, i, index_of));
        let mut accumulator = None;
        if let Some((g, cfg)) = group.and_then(|g| g.accumulator.as_ref().map(|a| (g, a))) {
            let (acc, input) =
                Accumulator::new(&s.name, &g.name, cfg.clone(), Clock::new()).map_err(|e| StartError::Accumulator {
                    group: g.name.clone(),
                    message: e,
                })?;
            let output = match &cfg.backend {
                AccTarget::Section(name) => index_of(name),
                AccTarget::Blackhole => None,
            };
            built.accumulators.push(PendingAccumulator {
                acc: acc.clone(),
                input,
                output,
            });
            accumulator = Some(acc);
        }
        let listening = match s.listen {
            Listen::BackendOnly => "BACKEND-ONLY".to_string(),
            _ => s.listen.url(),
        };
        let section = Section::new(
            &s.name,
            listening,
            splitter_of(s),
            backends[i].clone(),
            s.max_line_length,
            s.max_read_buffer_size,
        )
        .with_routing(i, backends.clone(), rules, accumulator);
        built.sections.push(Arc::new(section));
    }
    Ok(built)
}

/// The sections of a configuration and the accumulators still to start.
pub struct Built {
    pub sections: Vec<Arc<Section>>,
    pub accumulators: Vec<PendingAccumulator>,
}

/// An accumulator whose task is not running yet.
pub struct PendingAccumulator {
    pub acc: Arc<Accumulator>,
    pub input: tokio::sync::mpsc::Receiver<crate::line::Batch>,
    /// Index of the section its output goes to (`None` = `BLACKHOLE`).
    pub output: Option<usize>,
}

/// The splitter that re-splits an accumulator's output lines.
fn output_splitter(format: Format) -> Splitter {
    match format {
        Format::Graphite => Splitter::Graphite,
        Format::Statsd => Splitter::Statsd,
    }
}

impl Relay {
    /// Starts every section of `config`: senders and health checks, then the listeners, then the admin server
    /// and self-stats. A bind failure stops what was started.
    pub async fn start(config: &Config, prereg: Option<&PreRegConfig>) -> Result<Relay, StartError> {
        let http = reqwest::Client::builder()
            .connect_timeout(crate::backend::DIAL_TIMEOUT)
            .build()?;
        let mut relay = Relay {
            sections: Vec::new(),
            admin: None,
            listeners: TaskTracker::new(),
            stop_listeners: CancellationToken::new(),
            senders: TaskTracker::new(),
            stop_senders: CancellationToken::new(),
            stop_checks: CancellationToken::new(),
            accumulators: TaskTracker::new(),
            stop_accumulators: CancellationToken::new(),
            writers: TaskTracker::new(),
            services: TaskTracker::new(),
            stop_services: CancellationToken::new(),
            shutdown_timeout: config.globals.shutdown_timeout,
        };
        let runtime = Runtime {
            tracker: relay.senders.clone(),
            stop_senders: relay.stop_senders.clone(),
            stop_checks: relay.stop_checks.clone(),
            http,
        };
        let Built { sections, accumulators } = build_sections(config, prereg)?;
        for section in &sections {
            section.backend.start(runtime.clone());
        }
        // Known to the relay from here on, so that a failed start shuts every section down.
        relay.sections = sections.iter().map(|s| (s.clone(), Bound::None)).collect();
        for pending in accumulators {
            if let Err(e) = relay.start_accumulator(pending, &sections).await {
                relay.shutdown().await;
                return Err(e);
            }
        }
        for (i, s) in config.sections.iter().enumerate() {
            let section = sections[i].clone();
            match listener::start(
                &s.listen,
                section,
                s.read_buffer_size,
                &relay.listeners,
                &relay.stop_listeners,
            )
            .await
            {
                Ok(bound) => {
                    tracing::info!(section = %s.name, listen = %s.listen.url(), bound = ?bound, "listening");
                    relay.sections[i].1 = bound;
                }
                Err(source) => {
                    relay.shutdown().await;
                    return Err(StartError::Listen {
                        section: s.name.clone(),
                        listen: s.listen.url(),
                        source,
                    });
                }
            }
        }
        let all: Vec<Arc<Section>> = relay.sections().cloned().collect();
        let g = &config.globals;
        if let Some(addr) = &g.internal_health_server_listen {
            let l = match tokio::net::TcpListener::bind(addr.as_str()).await {
                Ok(l) => l,
                Err(source) => {
                    relay.shutdown().await;
                    return Err(StartError::Listen {
                        section: "default".into(),
                        listen: format!("internal_health_server_listen {addr}"),
                        source,
                    });
                }
            };
            relay.admin = l.local_addr().ok();
            tracing::info!(listen = %addr, bound = ?relay.admin, "admin/stats server listening");
            let state = AdminState {
                histories: config
                    .sections
                    .iter()
                    .map(|s| History::new(s.internal_health_server_points))
                    .collect(),
                sections: all.clone(),
                started: std::time::Instant::now(),
                index_dir: g.internal_health_server_path.clone(),
                allow: g.internal_health_server_admin_allow.clone(),
            };
            relay.services.spawn(api::serve(
                l,
                Arc::new(state),
                relay.services.clone(),
                relay.stop_services.clone(),
            ));
        }
        if let Some(server) = &g.statsd_server {
            relay.services.spawn(selfstats::run(
                server.clone(),
                g.statsd_prefix.clone(),
                g.statsd_interval,
                all.clone(),
                relay.stop_services.clone(),
            ));
        }
        if g.stats_tick {
            relay
                .listeners
                .spawn(log_stats_every(STATS_TICK, all, relay.stop_listeners.clone()));
        }
        Ok(relay)
    }

    async fn start_accumulator(&self, p: PendingAccumulator, sections: &[Arc<Section>]) -> Result<(), StartError> {
        let cfg = &p.acc.config;
        let writers = match &cfg.writer {
            Some(w) => writer::start(&p.acc.group, w, &cfg.times, &self.writers)
                .await
                .map_err(|e| StartError::Accumulator {
                    group: p.acc.group.clone(),
                    message: e.to_string(),
                })?,
            None => Vec::new(),
        };
        let _ = p.acc.writer_stats.set(
            writers
                .iter()
                .map(|q| (q.bin_secs(), q.driver(), q.stats().clone()))
                .collect(),
        );
        let output = p
            .output
            .and_then(|i| sections.get(i))
            .map(|s| Router::bypass(s.clone(), output_splitter(cfg.output_format)));
        let max_line_length = p
            .output
            .and_then(|i| sections.get(i))
            .map_or(usize::MAX, |s| s.max_line_length);
        let task = Task {
            acc: p.acc.clone(),
            input: p.input,
            output,
            max_line_length,
            bins: Bins::new(&cfg.times),
            writers,
        };
        self.accumulators.spawn(task.run(self.stop_accumulators.clone()));
        Ok(())
    }

    pub fn section(&self, name: &str) -> Option<&Arc<Section>> {
        self.sections.iter().find(|(s, _)| s.name == name).map(|(s, _)| s)
    }

    pub fn sections(&self) -> impl Iterator<Item = &Arc<Section>> {
        self.sections.iter().map(|(s, _)| s)
    }

    /// Where a section's listener is bound (ports resolved).
    pub fn bound(&self, name: &str) -> Option<&Bound> {
        self.sections.iter().find(|(s, _)| s.name == name).map(|(_, b)| b)
    }

    /// Where the admin/stats server is bound, if configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Graceful shutdown (spec §2): stop reading, route what was read, drain the queues for up to
    /// `shutdown_timeout`, count the rest as dropped; stop the admin server and self-stats last.
    pub async fn shutdown(self) {
        self.stop_listeners.cancel();
        self.stop_checks.cancel();
        self.listeners.close();
        self.listeners.wait().await;
        // accumulators: a final flush of everything pending, into the queues and the writer queues
        self.stop_accumulators.cancel();
        self.accumulators.close();
        self.accumulators.wait().await;
        self.writers.close();
        if tokio::time::timeout(self.shutdown_timeout, self.writers.wait())
            .await
            .is_err()
        {
            tracing::error!(timeout = ?self.shutdown_timeout, "writers did not finish in time: records lost");
        }
        for (s, _) in &self.sections {
            s.backend.close_queues();
        }
        self.senders.close();
        if tokio::time::timeout(self.shutdown_timeout, self.senders.wait())
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?self.shutdown_timeout, "outgoing queues not drained in time");
            self.stop_senders.cancel();
            self.senders.wait().await;
        }
        for (s, _) in &self.sections {
            s.backend.drop_remaining();
        }
        self.stop_services.cancel();
        self.services.close();
        self.services.wait().await;
    }
}
