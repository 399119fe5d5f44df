//! Builds the running relay from a validated configuration and owns start-up, reload and shutdown order.
//!
//! Start and reload are one step, [`Relay::apply`], from nothing or from the running configuration: first what
//! can fail (the sockets of new listeners, the writers of new accumulators), then the backends (kept by section
//! name and reconfigured in place, new ones started, removed ones retired), the new generation of every section,
//! the accumulators (kept, started, or replaced: flushed), the listeners (kept by URL and handed the new
//! generation, new ones started, removed ones stopped), and what the admin server shows. Start then adds the
//! reader APIs and the admin server (ARCHITECTURE.md, "Reload: generations").
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

use tokio::sync::{mpsc, watch};
use tokio::time::timeout_at;

use crate::accumulator::bins::Bins;
use crate::accumulator::task::Output;
use crate::accumulator::{Accumulator, AccumulatorTask};
use crate::api::{self, stats::History, AdminState, ReloadRequest, SectionView};
use crate::backend::{Backend, Runtime};
use crate::clock::Clock;
use crate::config::{
    AccTarget, AccumulatorConfig, ApiConfig, Bin, Config, InputConfig, Listen, PreRegConfig, WriterConfig,
};
use crate::line::KeyedBatch;
use crate::listener::{self, Bound, Socket};
use crate::prereg::PreReg;
use crate::reader::{self, server::AccessLog, Reader, ReaderStats};
use crate::section::{AccumulatorInput, Section, Sections};
use crate::selfstats;
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
async fn log_stats_every(period: Duration, sections: Sections, stop: CancellationToken) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        for s in sections.load().iter() {
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
    /// The configuration running now.
    config: Config,
    sections: Vec<(Arc<Section>, Bound)>,
    /// The accumulator of each section, by section index.
    accumulator_of: Vec<Option<Arc<Accumulator>>>,
    /// The current generation of every section, for the accumulators' outputs, self-stats and the stats log.
    registry: Sections,
    /// The running listeners, by listen URL.
    listening: Vec<Listening>,
    /// The running accumulators.
    accumulating: Vec<Accumulating>,
    /// Backends of sections a reload removed (draining; counted at shutdown).
    retired: Vec<Arc<Backend>>,
    runtime: Runtime,
    admin: Option<SocketAddr>,
    admin_state: Option<Arc<AdminState>>,
    /// Where `POST /reload` asks for a reload; the caller of [`Relay::reload_request`] carries it out.
    reload_requests: mpsc::Receiver<ReloadRequest>,
    reload_sender: mpsc::Sender<ReloadRequest>,
    /// Each reader API's group, bound address and counters.
    readers: Vec<(String, SocketAddr, Arc<ReaderStats>)>,
    /// The reader settings of every group as started (a reload does not restart readers).
    reader_configs: Vec<String>,
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

/// A running listener: its socket stays bound across reloads while a section listens on the same URL.
struct Listening {
    url: String,
    /// Hands the loop the section generation it routes into.
    section: watch::Sender<Arc<Section>>,
    stop: CancellationToken,
    bound: Bound,
    /// What was fixed when it was bound.
    input: InputConfig,
}

/// A running accumulator: kept by a reload while its group, section and configuration stay the same.
struct Accumulating {
    section: String,
    acc: Arc<Accumulator>,
    input: Arc<AccumulatorInput>,
    /// Its task alone (closed once spawned), and its stop.
    task: TaskTracker,
    stop: CancellationToken,
}

/// An accumulator prepared by [`Relay::apply`]: its writers run, its task does not yet.
struct NewAccumulator {
    section: String,
    acc: Arc<Accumulator>,
    input: Arc<AccumulatorInput>,
    /// By shard.
    rx: Vec<mpsc::Receiver<KeyedBatch>>,
    writers: Vec<writer::WriterQueue>,
}

/// Builds the sections of `config` without starting anything (the relay, and `consthash hashcheck`).
pub fn build_sections(config: &Config, prereg: Option<&PreRegConfig>) -> Built {
    let backends: Arc<[Arc<Backend>]> = config.sections.iter().map(|s| Arc::new(Backend::new(s))).collect();
    let mut accumulators = Vec::new();
    let sections = generation(
        config,
        prereg,
        backends,
        |section, group| {
            let cfg = group.accumulator.as_ref()?;
            let acc = Accumulator::new(&group.name, cfg.clone(), Clock::new());
            let (tx, rx) = AccumulatorInput::new(&config.sections[section].name, acc.shards(), cfg.input_format);
            let output = match &cfg.backend {
                AccTarget::Section(name) => config.sections.iter().position(|s| s.name == *name),
                AccTarget::Blackhole => None,
            };
            let input = Arc::new(tx);
            accumulators.push(PendingAccumulator {
                acc,
                section,
                input: rx,
                output,
            });
            Some(input)
        },
        |_| None,
    );
    Built { sections, accumulators }
}

/// One generation of the sections of `config` over `backends` (every section's, by index): `input_of` gives the
/// accumulator input of a section's group, `previous` the generation a section replaces.
fn generation(
    config: &Config,
    prereg: Option<&PreRegConfig>,
    backends: Arc<[Arc<Backend>]>,
    mut input_of: impl FnMut(usize, &crate::config::Group) -> Option<Arc<AccumulatorInput>>,
    previous: impl Fn(&str) -> Option<Arc<Section>>,
) -> Vec<Arc<Section>> {
    let index_of = |name: &str| config.sections.iter().position(|s| s.name == name);
    let mut sections = Vec::new();
    for (i, s) in config.sections.iter().enumerate() {
        let group = prereg.and_then(|p| p.group_for(&s.name));
        let rules = group.map(|g| PreReg::new(g, i, index_of));
        let input = group.and_then(|g| input_of(i, g));
        let before = previous(&s.name);
        sections.push(Arc::new(Section::new(
            s,
            i,
            backends.clone(),
            rules,
            input,
            before.as_deref(),
        )));
    }
    sections
}

/// What a reader API depends on, per group that has one.
fn reader_configs(prereg: Option<&PreRegConfig>) -> Vec<String> {
    let groups = prereg.iter().flat_map(|p| &p.groups);
    groups
        .filter_map(|g| {
            let a = g.accumulator.as_ref()?;
            a.api
                .as_ref()
                .map(|api| format!("{} {api:?} {:?} {:?}", g.name, a.writer, a.times))
        })
        .collect()
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
    /// By shard.
    pub input: Vec<mpsc::Receiver<KeyedBatch>>,
    /// Index of the section its output goes to (`None` = `BLACKHOLE`).
    pub output: Option<usize>,
}

impl Relay {
    /// Starts every section of `config` in the order of the module doc. A failure (a bind, a writer that cannot
    /// open) stops what was started.
    pub async fn start(config: &Config, prereg: Option<&PreRegConfig>) -> Result<Relay, StartError> {
        let http = reqwest::Client::builder()
            .connect_timeout(crate::backend::DIAL_TIMEOUT)
            .build()?;
        let (senders, stop_senders, stop_checks) =
            (TaskTracker::new(), CancellationToken::new(), CancellationToken::new());
        let (reload_sender, reload_requests) = mpsc::channel(1);
        let mut relay = Relay {
            config: Config {
                globals: config.globals.clone(),
                sections: Vec::new(),
                warnings: Vec::new(),
            },
            sections: Vec::new(),
            accumulator_of: Vec::new(),
            registry: Sections::default(),
            listening: Vec::new(),
            accumulating: Vec::new(),
            retired: Vec::new(),
            runtime: Runtime {
                tracker: senders.clone(),
                stop_senders: stop_senders.clone(),
                stop_checks: stop_checks.clone(),
                http,
            },
            admin: None,
            admin_state: None,
            reload_requests,
            reload_sender,
            readers: Vec::new(),
            reader_configs: Vec::new(),
            listeners: TaskTracker::new(),
            stop_listeners: CancellationToken::new(),
            senders,
            stop_senders,
            stop_checks,
            accumulators: TaskTracker::new(),
            stop_accumulators: CancellationToken::new(),
            stop_writers: CancellationToken::new(),
            writers: TaskTracker::new(),
            services: TaskTracker::new(),
            stop_services: CancellationToken::new(),
            shutdown_timeout: config.globals.shutdown_timeout,
        };
        let started = match relay.apply(config, prereg).await {
            Ok(_) => relay.start_readers(prereg).await,
            Err(e) => Err(e),
        };
        match started.and(Ok(())) {
            Ok(()) => match relay.start_services(config).await {
                Ok(()) => Ok(relay),
                Err(e) => {
                    relay.shutdown().await;
                    Err(e)
                }
            },
            Err(e) => {
                relay.shutdown().await;
                Err(e)
            }
        }
    }

    /// Replaces the running configuration with `config` (spec: reload without loss). Sections, rings, PreReg
    /// rules and accumulators are rebuilt; a destination whose URL and outgoing settings remain keeps its queue
    /// and connections, a removed one drains for `shutdown_timeout` and counts the rest as dropped; a listener
    /// whose URL remains keeps its socket and connections (they take the new generation between two reads); an
    /// accumulator whose group, section and settings remain keeps its state, a replaced one flushes everything it
    /// holds. New sockets and writers are opened first: when one fails, nothing changed. Returns a summary.
    pub async fn reload(&mut self, config: &Config, prereg: Option<&PreRegConfig>) -> Result<String, StartError> {
        let mut notes = Vec::new();
        let mut fixed = config.globals.clone();
        fixed.shutdown_timeout = self.config.globals.shutdown_timeout;
        if fixed != self.config.globals {
            notes.push("[default] settings other than shutdown_timeout apply at the next restart".to_string());
        }
        self.shutdown_timeout = config.globals.shutdown_timeout;
        let readers_before = self.reader_configs.clone();
        notes.extend(self.apply(config, prereg).await?);
        if reader_configs(prereg) != readers_before {
            notes.push("reader API ([<group>.accumulator.api]) changes apply at the next restart".to_string());
        }
        for n in &notes {
            tracing::info!("reload: {n}");
        }
        Ok(notes.join("; "))
    }

    /// Waits for the next `POST /reload` of the admin server; the caller reloads and answers it.
    pub async fn reload_request(&mut self) -> Option<ReloadRequest> {
        self.reload_requests.recv().await
    }

    /// Brings the running relay to `config`: the start-up (from nothing) and every reload. See [`Relay::reload`].
    async fn apply(&mut self, config: &Config, prereg: Option<&PreRegConfig>) -> Result<Vec<String>, StartError> {
        let drain = config.globals.shutdown_timeout;
        // 1. what can fail: the sockets of new listeners, the writers of new accumulators
        let mut sockets: Vec<Option<(Socket, Bound)>> = Vec::new();
        for s in &config.sections {
            let url = s.listen.url();
            if s.listen == Listen::BackendOnly || self.listening.iter().any(|l| l.url == url) {
                sockets.push(None);
                continue;
            }
            let failed = |source| StartError::Listen {
                section: s.name.clone(),
                listen: url.clone(),
                source,
            };
            let sock = listener::bind(&s.listen, &s.input).await.map_err(failed)?;
            let bound = sock.bound().map_err(failed)?;
            sockets.push(Some((sock, bound)));
        }
        let mut kept: Vec<Option<Accumulating>> =
            std::mem::take(&mut self.accumulating).into_iter().map(Some).collect();
        let mut plans: Vec<Option<Result<Accumulating, NewAccumulator>>> = Vec::new();
        for s in &config.sections {
            let Some((group, cfg)) = prereg
                .and_then(|p| p.group_for(&s.name))
                .and_then(|g| g.accumulator.as_ref().map(|a| (g, a)))
            else {
                plans.push(None);
                continue;
            };
            let same = kept.iter().position(|a| {
                a.as_ref()
                    .is_some_and(|a| a.section == s.name && a.acc.group == group.name && a.acc.config == *cfg)
            });
            if let Some(i) = same {
                plans.push(kept[i].take().map(Ok));
                continue;
            }
            match self.prepare_accumulator(&s.name, &group.name, cfg).await {
                Ok(n) => plans.push(Some(Err(n))),
                Err(e) => {
                    // nothing changed: the running accumulators stay
                    self.accumulating = kept
                        .into_iter()
                        .flatten()
                        .chain(plans.into_iter().flatten().filter_map(Result::ok))
                        .collect();
                    return Err(e);
                }
            }
        }
        // 2. the backends: kept and reconfigured by name, new ones started, removed ones drained
        let mut notes = Vec::new();
        let old: Vec<Arc<Section>> = self.sections.iter().map(|(s, _)| s.clone()).collect();
        let backends: Arc<[Arc<Backend>]> = config
            .sections
            .iter()
            .map(|s| match old.iter().find(|o| o.name == s.name) {
                Some(o) => {
                    o.backend.reconfigure(s, drain);
                    o.backend.clone()
                }
                None => {
                    let b = Arc::new(Backend::new(s));
                    b.start(self.runtime.clone());
                    b
                }
            })
            .collect();
        for o in old.iter().filter(|o| config.section(&o.name).is_none()) {
            o.backend.retire_all(drain);
            self.retired.push(o.backend.clone());
            notes.push(format!("section {} removed", o.name));
        }
        notes.extend(
            config
                .sections
                .iter()
                .filter(|s| !old.iter().any(|o| o.name == s.name) && !old.is_empty())
                .map(|s| format!("section {} added", s.name)),
        );
        // 3. the new generation of every section
        let sections = generation(
            config,
            prereg,
            backends,
            |i, _| match &plans[i] {
                Some(Ok(a)) => Some(a.input.clone()),
                Some(Err(n)) => Some(n.input.clone()),
                None => None,
            },
            |name| old.iter().find(|o| o.name == name).cloned(),
        );
        drop(old);
        self.registry.store(Arc::new(sections.clone()));
        // 4. accumulators: kept ones go on, new ones start, replaced ones flush what they hold and end
        let mut accumulator_of = Vec::new();
        for plan in plans {
            let running = match plan {
                None => {
                    accumulator_of.push(None);
                    continue;
                }
                Some(Ok(a)) => a,
                Some(Err(n)) => self.spawn_accumulator(n),
            };
            accumulator_of.push(Some(running.acc.clone()));
            self.accumulating.push(running);
        }
        for a in kept.into_iter().flatten() {
            notes.push(format!(
                "accumulator of group {} replaced: its state is flushed",
                a.acc.group
            ));
            let Accumulating { input, task, stop, .. } = a;
            drop(input);
            // it ends once no router holds its input any more; at the latest after the drain time
            self.accumulators.spawn(async move {
                if tokio::time::timeout(drain, task.wait()).await.is_err() {
                    stop.cancel();
                    task.wait().await;
                }
            });
        }
        // 5. listeners: kept ones take the new generation, new ones start, removed ones stop
        let mut listening = Vec::new();
        let mut bounds = Vec::new();
        for ((s, section), sock) in config.sections.iter().zip(&sections).zip(sockets) {
            let url = s.listen.url();
            if let Some((sock, bound)) = sock {
                let (tx, rx) = watch::channel(section.clone());
                let stop = self.stop_listeners.child_token();
                sock.spawn(rx, &self.listeners, &stop);
                tracing::info!(section = %s.name, listen = %url, bound = ?bound, "listening");
                bounds.push(bound.clone());
                listening.push(Listening {
                    url,
                    section: tx,
                    stop,
                    bound,
                    input: s.input,
                });
            } else if let Some(i) = self.listening.iter().position(|l| l.url == url) {
                let l = self.listening.remove(i);
                if (l.input.read_buffer_size, l.input.max_connections)
                    != (s.input.read_buffer_size, s.input.max_connections)
                {
                    notes.push(format!(
                        "[{}] read_buffer_size and max_connections of a running listener apply at the next restart",
                        s.name
                    ));
                }
                l.section.send_replace(section.clone());
                bounds.push(l.bound.clone());
                listening.push(l);
            } else {
                bounds.push(Bound::None);
            }
        }
        for l in std::mem::take(&mut self.listening) {
            notes.push(format!("listener {} closed", l.url));
            l.stop.cancel();
        }
        self.listening = listening;
        // 6. what the admin server shows
        if let Some(state) = &self.admin_state {
            let before = state.sections.load();
            let views = config
                .sections
                .iter()
                .zip(&sections)
                .zip(&accumulator_of)
                .zip(&bounds)
                .map(|(((cfg, section), accumulator), bound)| SectionView {
                    section: section.clone(),
                    history: before.iter().find(|v| v.section.name == cfg.name).map_or_else(
                        || Arc::new(History::new(cfg.internal_health_server_points)),
                        |v| v.history.clone(),
                    ),
                    accumulator: accumulator.clone(),
                    listen: cfg.listen.clone(),
                    bound: bound.addr(),
                })
                .collect();
            state.sections.store(Arc::new(views));
        }
        self.sections = sections.into_iter().zip(bounds).collect();
        self.accumulator_of = accumulator_of;
        self.config = config.clone();
        self.reader_configs = reader_configs(prereg);
        Ok(notes)
    }

    /// Opens the writers of a new accumulator (one per bin) and its input; the task starts in
    /// [`Relay::spawn_accumulator`].
    async fn prepare_accumulator(
        &mut self,
        section: &str,
        group: &str,
        cfg: &AccumulatorConfig,
    ) -> Result<NewAccumulator, StartError> {
        let writers = match &cfg.writer {
            Some(w) => writer::start(group, w, &cfg.times, cfg.max_keys, &self.writers, &self.stop_writers)
                .await
                .map_err(|e| StartError::Accumulator {
                    group: group.to_string(),
                    message: e.to_string(),
                })?,
            None => Vec::new(),
        };
        let acc = Accumulator::new(group, cfg.clone(), Clock::new());
        let _ = acc.writer_stats.set(writer::statuses(&writers));
        let (input, rx) = AccumulatorInput::new(section, acc.shards(), cfg.input_format);
        Ok(NewAccumulator {
            section: section.to_string(),
            acc,
            input: Arc::new(input),
            rx,
            writers,
        })
    }

    /// Starts an accumulator's task, whose output goes through a bypass router into the current generation of its
    /// backend section.
    fn spawn_accumulator(&self, n: NewAccumulator) -> Accumulating {
        let cfg = &n.acc.config;
        let task = AccumulatorTask {
            acc: n.acc.clone(),
            input: n.rx,
            output: match &cfg.backend {
                AccTarget::Section(target) => Some(Output::new(target, self.registry.clone(), cfg.output_format)),
                AccTarget::Blackhole => None,
            },
            bins: Bins::new(&cfg.times),
            writers: n.writers,
        };
        let (tracker, stop) = (TaskTracker::new(), self.stop_accumulators.child_token());
        self.accumulators.spawn(tracker.track_future(task.run(stop.clone())));
        tracker.close();
        Accumulating {
            section: n.section,
            acc: n.acc,
            input: n.input,
            task: tracker,
            stop,
        }
    }

    /// The reader APIs of the groups that have one (started once; see [`Relay::reload`]).
    async fn start_readers(&mut self, prereg: Option<&PreRegConfig>) -> Result<(), StartError> {
        for g in prereg.iter().flat_map(|p| &p.groups) {
            let Some(cfg) = &g.accumulator else { continue };
            if let (Some(api), Some(w)) = (&cfg.api, &cfg.writer) {
                self.start_reader(&g.name, api, w, &cfg.times).await?;
            }
        }
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

    /// The admin server, self-stats and the `stats_tick` log lines.
    async fn start_services(&mut self, config: &Config) -> Result<(), StartError> {
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
                .zip(&self.sections)
                .zip(&self.accumulator_of)
                .map(|((cfg, (section, bound)), accumulator)| SectionView {
                    section: section.clone(),
                    history: Arc::new(History::new(cfg.internal_health_server_points)),
                    accumulator: accumulator.clone(),
                    listen: cfg.listen.clone(),
                    bound: bound.addr(),
                })
                .collect();
            let state = Arc::new(AdminState {
                sections: arc_swap::ArcSwap::from_pointee(views),
                reload: Some(self.reload_sender.clone()),
                started: std::time::Instant::now(),
                index_dir: g.internal_health_server_path.clone(),
                allow: g.internal_health_server_admin_allow.clone(),
                hosts: api::guard::Hosts::new(&g.internal_health_server_hosts),
                readers: self.readers.iter().map(|(g, _, s)| (g.clone(), s.clone())).collect(),
            });
            self.admin_state = Some(state.clone());
            self.services
                .spawn(api::serve(l, state, self.services.clone(), self.stop_services.clone()));
        }
        if let Some(server) = &g.statsd_server {
            self.services.spawn(selfstats::run(
                server.clone(),
                g.statsd_prefix.clone(),
                g.statsd_interval,
                self.registry.clone(),
                self.stop_services.clone(),
            ));
        }
        if g.stats_tick {
            self.listeners.spawn(log_stats_every(
                STATS_TICK,
                self.registry.clone(),
                self.stop_listeners.clone(),
            ));
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
        for b in self.backends() {
            b.drop_remaining();
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
        for b in self.backends() {
            b.close_queues();
        }
    }

    /// Every backend: the running sections' and those a reload removed.
    fn backends(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.sections.iter().map(|(s, _)| &s.backend).chain(&self.retired)
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
        assert_eq!(s0.redirected_to.len(), 2);
        assert_eq!(s1.routes, [1]);
        assert_eq!(s1.redirected_to.len(), 1);
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
