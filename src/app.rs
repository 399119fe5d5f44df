//! Builds the running relay from a validated configuration and owns start-up and shutdown order.
//!
//! Start: sections (splitter, PreReg, rings, destinations), then the senders and health checks of every
//! destination (they dial lazily), the accumulators and their writers, then the listeners, then the admin server.
//! Shutdown, all within one `shutdown_timeout` from its start: stop the listeners (connections route what they
//! already read; HTTP requests get a short grace), let the accumulators flush everything pending and the writers
//! write it, close the destination queues, let the senders drain them, then stop the senders and count what is
//! left as dropped (`shutdown`); the admin server and self-stats stop last. A listener or accumulator still waiting
//! for room in a full queue when the time is up gets its queues closed: what it held is counted as dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use tokio::sync::mpsc;
use tokio::time::timeout_at;

use crate::accumulator::bins::Bins;
use crate::accumulator::{Accumulator, AccumulatorTask};
use crate::api::{self, stats::History, AdminState, SectionView};
use crate::backend::{Backend, Runtime};
use crate::clock::Clock;
use crate::config::{AccTarget, ApiConfig, Bin, Config, Format, PreRegConfig, WriterConfig};
use crate::framing::Framing;
use crate::line::Batch;
use crate::listener::{self, Bound};
use crate::prereg::PreReg;
use crate::reader::{self, server::AccessLog, Reader, ReaderStats};
use crate::router::Router;
use crate::section::{AccumulatorInput, Section};
use crate::selfstats;
use crate::splitter::{GraphiteNames, Splitter};
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
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    // `None` = unlimited
    let want = lim.maximum.unwrap_or(u64::MAX).min(999_999);
    if lim.current.is_some_and(|cur| want > cur) {
        lim.current = Some(want);
        setrlimit(Resource::Nofile, lim).map_err(|e| (want, e.into()))?;
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
    /// The accumulator of each section, by section index.
    accumulator_of: Vec<Option<Arc<Accumulator>>>,
    admin: Option<SocketAddr>,
    /// Each reader API's group, bound address and counters.
    readers: Vec<(String, SocketAddr, Arc<ReaderStats>)>,
    listeners: TaskTracker,
    stop_listeners: CancellationToken,
    senders: TaskTracker,
    stop_senders: CancellationToken,
    stop_checks: CancellationToken,
    accumulators: TaskTracker,
    stop_accumulators: CancellationToken,
    /// Cancelled when `shutdown_timeout` ends: writers stop retrying and count what is left.
    stop_writers: CancellationToken,
    writers: TaskTracker,
    /// The admin server and self-stats: stopped last.
    services: TaskTracker,
    stop_services: CancellationToken,
    shutdown_timeout: Duration,
}

/// Builds the sections of `config` without starting anything (the relay, and `consthash hashcheck`).
pub fn build_sections(config: &Config, prereg: Option<&PreRegConfig>) -> Built {
    let backends: Arc<[Arc<Backend>]> = config.sections.iter().map(|s| Arc::new(Backend::new(s))).collect();
    let index_of = |name: &str| config.sections.iter().position(|s| s.name == name);
    let mut built = Built {
        sections: Vec::new(),
        accumulators: Vec::new(),
    };
    for (i, s) in config.sections.iter().enumerate() {
        let group = prereg.and_then(|p| p.group_for(&s.name));
        let rules = group.map(|g| PreReg::new(g, i, index_of));
        let mut input = None;
        if let Some((g, cfg)) = group.and_then(|g| g.accumulator.as_ref().map(|a| (g, a))) {
            let (tx, rx) = AccumulatorInput::new(&s.name);
            let output = match &cfg.backend {
                AccTarget::Section(name) => index_of(name),
                AccTarget::Blackhole => None,
            };
            built.accumulators.push(PendingAccumulator {
                acc: Accumulator::new(&g.name, cfg.clone(), Clock::new()),
                section: i,
                input: rx,
                output,
            });
            input = Some(tx);
        }
        built
            .sections
            .push(Arc::new(Section::new(s, i, backends.clone(), rules, input)));
    }
    built
}

/// The sections of a configuration and the accumulators still to start.
pub struct Built {
    pub sections: Vec<Arc<Section>>,
    pub accumulators: Vec<PendingAccumulator>,
}

/// An accumulator whose task is not running yet.
pub struct PendingAccumulator {
    pub acc: Arc<Accumulator>,
    /// Index of the section whose lines it folds.
    pub section: usize,
    pub input: mpsc::Receiver<Batch>,
    /// Index of the section its output goes to (`None` = `BLACKHOLE`).
    pub output: Option<usize>,
}

/// The splitter that re-splits an accumulator's output lines: the target section's own when it reads that format
/// (so its name rules apply), else the default one.
fn output_splitter(format: Format, target: &Section) -> Splitter {
    match (format, &target.splitter) {
        (Format::Graphite, s @ Splitter::Graphite(_))
        | (Format::Statsd, s @ (Splitter::Statsd | Splitter::StatsdProxy)) => s.clone(),
        (Format::Graphite, _) => Splitter::Graphite(GraphiteNames::Consthash),
        (Format::Statsd, _) => Splitter::Statsd,
    }
}

impl Relay {
    /// Starts every section of `config` in the order of the module doc. A failure (a bind, a writer that cannot
    /// open) stops what was started.
    pub async fn start(config: &Config, prereg: Option<&PreRegConfig>) -> Result<Relay, StartError> {
        let mut relay = Relay {
            sections: Vec::new(),
            accumulator_of: Vec::new(),
            admin: None,
            readers: Vec::new(),
            listeners: TaskTracker::new(),
            stop_listeners: CancellationToken::new(),
            senders: TaskTracker::new(),
            stop_senders: CancellationToken::new(),
            stop_checks: CancellationToken::new(),
            accumulators: TaskTracker::new(),
            stop_accumulators: CancellationToken::new(),
            stop_writers: CancellationToken::new(),
            writers: TaskTracker::new(),
            services: TaskTracker::new(),
            stop_services: CancellationToken::new(),
            shutdown_timeout: config.globals.shutdown_timeout,
        };
        let Built { sections, accumulators } = build_sections(config, prereg);
        // Known to the relay from here on, so that a failed start shuts every section down.
        relay.sections = sections.iter().map(|s| (s.clone(), Bound::None)).collect();
        match relay.start_all(config, accumulators).await {
            Ok(()) => Ok(relay),
            Err(e) => {
                relay.shutdown().await;
                Err(e)
            }
        }
    }

    async fn start_all(&mut self, config: &Config, accumulators: Vec<PendingAccumulator>) -> Result<(), StartError> {
        self.start_backends()?;
        self.accumulator_of = vec![None; self.sections.len()];
        for p in accumulators {
            self.accumulator_of[p.section] = Some(p.acc.clone());
            self.start_accumulator(p).await?;
        }
        self.start_listeners(config).await?;
        self.start_services(config).await
    }

    /// The senders and health checks of every destination (they dial lazily).
    fn start_backends(&self) -> Result<(), StartError> {
        let http = reqwest::Client::builder()
            .connect_timeout(crate::backend::DIAL_TIMEOUT)
            .build()?;
        let runtime = Runtime {
            tracker: self.senders.clone(),
            stop_senders: self.stop_senders.clone(),
            stop_checks: self.stop_checks.clone(),
            http,
        };
        for s in self.sections() {
            s.backend.start(runtime.clone());
        }
        Ok(())
    }

    /// An accumulator's writers (one per bin), then its task, whose output goes through a bypass router into the
    /// accumulator's backend section.
    async fn start_accumulator(&mut self, p: PendingAccumulator) -> Result<(), StartError> {
        let cfg = &p.acc.config;
        let writers = match &cfg.writer {
            Some(w) => writer::start(
                &p.acc.group,
                w,
                &cfg.times,
                cfg.max_keys,
                &self.writers,
                &self.stop_writers,
            )
            .await
            .map_err(|e| StartError::Accumulator {
                group: p.acc.group.clone(),
                message: e.to_string(),
            })?,
            None => Vec::new(),
        };
        let _ = p.acc.writer_stats.set(writer::statuses(&writers));
        if let (Some(api), Some(w)) = (&cfg.api, &cfg.writer) {
            self.start_reader(&p.acc.group, api, w, &cfg.times).await?;
        }
        let target = p.output.map(|i| self.sections[i].0.clone());
        let task = AccumulatorTask {
            acc: p.acc.clone(),
            input: p.input,
            framing: target.as_ref().map_or(Framing::new(usize::MAX), |s| s.framing),
            output: target.map(|s| {
                let splitter = output_splitter(cfg.output_format, &s);
                Router::bypass(s, splitter)
            }),
            bins: Bins::new(&cfg.times),
            writers,
        };
        self.accumulators.spawn(task.run(self.stop_accumulators.clone()));
        Ok(())
    }

    /// A group's reader API (spec §12), served until the services stop.
    async fn start_reader(
        &mut self,
        group: &str,
        api: &ApiConfig,
        writer: &WriterConfig,
        times: &[Bin],
    ) -> Result<(), StartError> {
        let failed = |message: String| StartError::Accumulator {
            group: group.to_string(),
            message,
        };
        let reader = Reader::new(group, api, writer, times).map_err(|e| failed(format!("reader: {e}")))?;
        let log = AccessLog::open(&api.log_file)
            .map_err(|e| failed(format!("[{group}.accumulator.api] log_file {}: {e}", api.log_file)))?;
        let l = tokio::net::TcpListener::bind(api.listen.as_str())
            .await
            .map_err(|source| StartError::Listen {
                section: format!("{group}.accumulator.api"),
                listen: api.listen.clone(),
                source,
            })?;
        let bound = l.local_addr().ok();
        if let reader::Store::Unsupported(driver) = &reader.store {
            tracing::warn!(
                group,
                driver,
                "reader not implemented for this driver: the reader API answers 503"
            );
        }
        tracing::info!(group, listen = %api.listen, bound = ?bound, base_path = %api.base_path, "reader API listening");
        if let Some(a) = bound {
            self.readers.push((group.to_string(), a, reader.stats.clone()));
        }
        self.services.spawn(reader::server::serve(
            l,
            Arc::new(reader),
            Arc::new(log),
            self.services.clone(),
            self.stop_services.clone(),
        ));
        Ok(())
    }

    /// Where group `group`'s reader API is bound, if it has one.
    pub fn reader_addr(&self, group: &str) -> Option<SocketAddr> {
        self.readers.iter().find(|(g, _, _)| g == group).map(|(_, a, _)| *a)
    }

    async fn start_listeners(&mut self, config: &Config) -> Result<(), StartError> {
        for (i, s) in config.sections.iter().enumerate() {
            let section = self.sections[i].0.clone();
            let bound = listener::start(
                &s.listen,
                section,
                s.input.read_buffer_size,
                &self.listeners,
                &self.stop_listeners,
            )
            .await
            .map_err(|source| StartError::Listen {
                section: s.name.clone(),
                listen: s.listen.url(),
                source,
            })?;
            tracing::info!(section = %s.name, listen = %s.listen.url(), bound = ?bound, "listening");
            self.sections[i].1 = bound;
        }
        Ok(())
    }

    /// The admin server, self-stats and the `stats_tick` log lines.
    async fn start_services(&mut self, config: &Config) -> Result<(), StartError> {
        let all: Vec<Arc<Section>> = self.sections().cloned().collect();
        let g = &config.globals;
        if let Some(addr) = &g.internal_health_server_listen {
            let l = tokio::net::TcpListener::bind(addr.as_str())
                .await
                .map_err(|source| StartError::Listen {
                    section: "default".into(),
                    listen: format!("internal_health_server_listen {addr}"),
                    source,
                })?;
            self.admin = l.local_addr().ok();
            tracing::info!(listen = %addr, bound = ?self.admin, "admin/stats server listening");
            let views = config
                .sections
                .iter()
                .zip(&all)
                .zip(&self.accumulator_of)
                .map(|((cfg, section), accumulator)| SectionView {
                    section: section.clone(),
                    history: History::new(cfg.internal_health_server_points),
                    accumulator: accumulator.clone(),
                    listen: cfg.listen.clone(),
                    bound: self.bound(&cfg.name).and_then(Bound::addr),
                })
                .collect();
            let state = AdminState {
                sections: views,
                started: std::time::Instant::now(),
                index_dir: g.internal_health_server_path.clone(),
                allow: g.internal_health_server_admin_allow.clone(),
                hosts: api::guard::Hosts::new(&g.internal_health_server_hosts),
                readers: self.readers.iter().map(|(g, _, s)| (g.clone(), s.clone())).collect(),
            };
            self.services.spawn(api::serve(
                l,
                Arc::new(state),
                self.services.clone(),
                self.stop_services.clone(),
            ));
        }
        if let Some(server) = &g.statsd_server {
            self.services.spawn(selfstats::run(
                server.clone(),
                g.statsd_prefix.clone(),
                g.statsd_interval,
                all.clone(),
                self.stop_services.clone(),
            ));
        }
        if g.stats_tick {
            self.listeners
                .spawn(log_stats_every(STATS_TICK, all, self.stop_listeners.clone()));
        }
        Ok(())
    }

    pub fn section(&self, name: &str) -> Option<&Arc<Section>> {
        self.sections.iter().find(|(s, _)| s.name == name).map(|(s, _)| s)
    }

    /// The accumulator of section `name`, if it has one.
    pub fn accumulator(&self, name: &str) -> Option<&Arc<Accumulator>> {
        let i = self.sections.iter().position(|(s, _)| s.name == name)?;
        self.accumulator_of.get(i)?.as_ref()
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

    /// Graceful shutdown (spec §2): stop reading, route what was read, drain the queues, all within
    /// `shutdown_timeout`; count the rest as dropped; stop the admin server and self-stats last.
    pub async fn shutdown(self) {
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        self.stop_listeners.cancel();
        self.stop_checks.cancel();
        self.finish_or_close_queues(&self.listeners, deadline, "listeners")
            .await;
        // accumulators: a final flush of everything pending, into the queues and the writer queues
        self.stop_accumulators.cancel();
        self.finish_or_close_queues(&self.accumulators, deadline, "accumulators")
            .await;
        self.writers.close();
        if timeout_at(deadline, self.writers.wait()).await.is_err() {
            tracing::error!(timeout = ?self.shutdown_timeout, "writers did not finish in time: the rest is counted as lost");
            self.stop_writers.cancel();
            self.writers.wait().await;
        }
        self.close_queues();
        self.senders.close();
        if timeout_at(deadline, self.senders.wait()).await.is_err() {
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

    /// Waits for `tasks` until `deadline`; tasks still waiting for room in full queues then get the queues
    /// closed (what they push is counted as dropped), and are waited for again.
    async fn finish_or_close_queues(&self, tasks: &TaskTracker, deadline: tokio::time::Instant, what: &str) {
        tasks.close();
        if timeout_at(deadline, tasks.wait()).await.is_err() {
            tracing::warn!(timeout = ?self.shutdown_timeout, "{what} still waiting for full queues: closing them");
            self.close_queues();
            tasks.wait().await;
        }
    }

    /// Closes every destination queue: pushes are refused (counted as dropped, `shutdown`), senders drain the rest.
    fn close_queues(&self) {
        for (s, _) in &self.sections {
            s.backend.close_queues();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_a_section_holds_does_not_grow_with_the_number_of_sections() {
        let mut text = String::from("[default]\n");
        for i in 0..300 {
            text += &format!("[s{i}]\nlisten = 'tcp://127.0.0.1:0'\nmsg_type = 'graphite'\n[[s{i}.servers]]\nservers = ['tcp://127.0.0.1:9']\n");
        }
        let config = crate::config::load_main(&text, "t.toml").expect("valid");
        let prereg = crate::config::load_prereg(
            "[g]\nlisten_server = 's0'\ndefault_backend = 's0'\n[[g.map]]\nprefix = 'x'\nbackend = 's7'\n",
            "p.toml",
            &config,
        )
        .expect("valid");
        let built = super::build_sections(&config, Some(&prereg));
        let (s0, s1) = (&built.sections[0], &built.sections[1]);
        assert_eq!(s0.routes, [0, 7], "itself and its one redirect target");
        assert_eq!(s0.stats.redirected_to.len(), 2);
        assert_eq!(s1.routes, [1]);
        assert_eq!(s1.stats.redirected_to.len(), 1);
        assert!(
            std::sync::Arc::ptr_eq(&s0.backends, &s1.backends),
            "one backend list for all sections"
        );
    }

    #[test]
    fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
        use rustix::process::{getrlimit, Resource};
        super::raise_nofile_limit().expect("raise");
        let lim = getrlimit(Resource::Nofile);
        let want = lim.maximum.unwrap_or(u64::MAX).min(999_999);
        assert!(lim.current.is_none_or(|cur| cur >= want), "{lim:?}, want {want}");
    }
}
