//! Backends: the rings of a section, the destinations they name, their health, and live membership changes.
//!
//! A [`Backend`] holds an immutable [`RingSet`] snapshot behind an `ArcSwap`; routers load it once per read and
//! never lock. Membership changes (health transitions, the admin API's addserver/purgeserver) edit the ordered
//! member list of a ring under a mutex and build a new snapshot from it, so placement always equals a fresh start
//! with that list (spec §7.1). Destinations are identified by URL within a section: a URL present in two rings
//! is one destination that receives two copies of a line. A destination's index in [`RingSet::dests`] never
//! changes; purged destinations stay in the list, closed and in no ring.

mod backoff;
mod destination;
mod health;
mod queue;
mod sender;
mod unacked;

use arc_swap::ArcSwap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::backoff::Backoff;
pub use self::destination::Destination;
pub use self::health::check;
pub use self::queue::{DestQueue, PushError};
pub use self::sender::DIAL_TIMEOUT;
use crate::config::{DestUrl, DownPolicy, HealthConfig, OutgoingConfig, RingConfig, SectionConfig};
use crate::ring::{Ring, RingSpec};
use crate::telemetry::DropReason;

/// One ring member.
#[derive(Clone, Debug)]
pub struct Member {
    /// Ring identity (spec §7.5).
    pub hashkey: String,
    /// Index into [`RingSet::dests`].
    pub dest: u32,
    /// Health-check URL.
    pub check: DestUrl,
    /// Health state (members start up).
    pub up: bool,
    /// Stops this member's health checks when it is purged.
    pub stop_checks: CancellationToken,
}

/// What routers read: the rings, the destinations they index, and the replica count.
#[derive(Debug)]
pub struct RingSet {
    pub rings: Vec<Ring>,
    pub dests: Vec<Arc<Destination>>,
    /// `num_dupe_replicas`: destinations per ring per line.
    pub replicas: usize,
}

/// A member to create: destination URL, health-check URL, ring identity.
#[derive(Clone, Debug)]
pub struct NewMember {
    pub url: DestUrl,
    pub check: DestUrl,
    pub hashkey: String,
}

impl NewMember {
    /// The members of a configured ring, in order.
    fn of_ring(r: &RingConfig) -> impl Iterator<Item = NewMember> + '_ {
        r.servers.iter().enumerate().map(|(i, url)| NewMember {
            url: url.clone(),
            check: r.check_servers.get(i).cloned().unwrap_or_else(|| url.clone()),
            hashkey: r.hashkeys.get(i).cloned().unwrap_or_else(|| url.raw.clone()),
        })
    }
}

/// Handles a running backend needs to start senders and health checks for members added later.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub tracker: TaskTracker,
    /// Hard stop of the senders (shutdown deadline).
    pub stop_senders: CancellationToken,
    /// Stops health checks (shutdown start).
    pub stop_checks: CancellationToken,
    pub http: reqwest::Client,
}

#[derive(Debug)]
struct State {
    rings: Vec<Vec<Member>>,
    dests: Vec<Arc<Destination>>,
    settings: Settings,
}

/// A section's settings its backend applies (replaced by a reload).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Settings {
    spec: RingSpec,
    outgoing: OutgoingConfig,
    health: HealthConfig,
    /// `num_dupe_replicas`, at least 1.
    replicas: usize,
}

impl Settings {
    fn of(cfg: &SectionConfig) -> Settings {
        Settings {
            spec: cfg.hashing.ring_spec,
            outgoing: cfg.outgoing,
            health: cfg.health,
            replicas: cfg.num_dupe_replicas.max(1),
        }
    }
}

/// Why a membership change was refused (the admin API answers 400 with these texts).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("Replica index Too large")]
    RingTooLarge,
    #[error("Server {0} is not in the ring")]
    NotAMember(String),
}

/// The outgoing side of a section.
#[derive(Debug)]
pub struct Backend {
    pub name: String,
    snapshot: ArcSwap<RingSet>,
    state: Mutex<State>,
    runtime: OnceLock<Runtime>,
}

impl Backend {
    /// The backend of section `cfg`: its rings from the member lists, a destination per distinct URL.
    pub fn new(cfg: &SectionConfig) -> Backend {
        let mut state = State {
            rings: Vec::new(),
            dests: Vec::new(),
            settings: Settings::of(cfg),
        };
        for ring in &cfg.rings {
            let list = NewMember::of_ring(ring).map(|m| state.member(&cfg.name, &m)).collect();
            state.rings.push(list);
        }
        let snapshot = state.snapshot();
        Backend {
            name: cfg.name.clone(),
            snapshot: ArcSwap::from_pointee(snapshot),
            state: Mutex::new(state),
            runtime: OnceLock::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current snapshot (cheap; routers call it once per read).
    pub fn load(&self) -> Arc<RingSet> {
        self.snapshot.load_full()
    }

    pub fn spec(&self) -> RingSpec {
        self.state().settings.spec
    }

    /// The health-check settings its members' checks use.
    pub fn health(&self) -> HealthConfig {
        self.state().settings.health
    }

    /// Every destination ever created for this backend.
    pub fn destinations(&self) -> Vec<Arc<Destination>> {
        self.snapshot.load().dests.clone()
    }

    /// The ordered member lists, one per ring.
    pub fn members(&self) -> Vec<Vec<Member>> {
        self.state().rings.clone()
    }

    /// Starts `max_pool_connections` senders per destination and the health checks of every member.
    pub fn start(self: &Arc<Self>, runtime: Runtime) {
        let runtime = self.runtime.get_or_init(|| runtime).clone();
        let state = self.state();
        for dest in &state.dests {
            start_senders(dest, &runtime);
        }
        for (ring, members) in state.rings.iter().enumerate() {
            for m in members {
                self.start_checks(&runtime, ring, m);
            }
        }
    }

    fn start_checks(self: &Arc<Self>, runtime: &Runtime, ring: usize, m: &Member) {
        let stop = m.stop_checks.clone();
        let global = runtime.stop_checks.clone();
        let (backend, check, dest, http, up) = (self.clone(), m.check.clone(), m.dest, runtime.http.clone(), m.up);
        runtime.tracker.spawn(async move {
            tokio::select! {
                _ = health::run(&backend, ring, dest, up, &check, &http) => {}
                _ = stop.cancelled() => {}
                _ = global.cancelled() => {}
            }
        });
    }

    /// Health transition of a member (called by its checker): updates the member, the destination's state and,
    /// with `remove_node`, the ring.
    fn set_member_up(&self, ring: usize, dest: u32, up: bool) {
        let mut state = self.state();
        let Some(m) = state
            .rings
            .get_mut(ring)
            .and_then(|r| r.iter_mut().find(|m| m.dest == dest))
        else {
            return; // purged meanwhile
        };
        if m.up == up {
            return;
        }
        m.up = up;
        let d = state.dests[dest as usize].clone();
        // A destination in several rings is down only when every member using it is.
        let any_up = state.rings.iter().flatten().any(|m| m.dest == dest && m.up);
        d.set_health_down(!any_up);
        self.rebuild(&state);
    }

    /// Appends a member to ring `ring` (ignored when its URL is already in that ring); creates its destination,
    /// senders and health checks. Returns whether the ring changed.
    pub fn add_server(self: &Arc<Self>, ring: usize, new: NewMember) -> Result<bool, MembershipError> {
        let mut state = self.state();
        if ring >= state.rings.len() {
            return Err(MembershipError::RingTooLarge);
        }
        if state.rings[ring]
            .iter()
            .any(|m| state.dests[m.dest as usize].url.raw == new.url.raw)
        {
            return Ok(false);
        }
        let known = state.dests.len();
        let member = state.member(&self.name, &new);
        if let Some(rt) = self.runtime.get() {
            if state.dests.len() > known {
                start_senders(&state.dests[member.dest as usize], rt);
            }
            self.start_checks(rt, ring, &member);
        }
        state.rings[ring].push(member);
        self.rebuild(&state);
        Ok(true)
    }

    /// Removes the member with this URL from ring `ring` for good. When no ring uses its destination any more,
    /// the destination's connections close and its queue is dropped (counted as `purged`).
    pub fn purge_server(&self, ring: usize, url: &str) -> Result<(), MembershipError> {
        let mut state = self.state();
        if ring >= state.rings.len() {
            return Err(MembershipError::RingTooLarge);
        }
        let dests = state.dests.clone();
        let Some(pos) = state.rings[ring]
            .iter()
            .position(|m| dests[m.dest as usize].url.raw == url)
        else {
            return Err(MembershipError::NotAMember(url.to_string()));
        };
        let m = state.rings[ring].remove(pos);
        m.stop_checks.cancel();
        if !state.rings.iter().flatten().any(|o| o.dest == m.dest) {
            dests[m.dest as usize].purge();
        }
        self.rebuild(&state);
        Ok(())
    }

    /// What the ring set would be with `change` applied to a copy of the member lists (for dry runs).
    pub fn preview(&self, change: impl FnOnce(&mut Vec<Vec<(String, u32)>>)) -> Vec<Ring> {
        let state = self.state();
        let policy = state.settings.health.server_down_policy;
        let mut lists: Vec<Vec<(String, u32)>> = state.rings.iter().map(|r| live_members(r, policy)).collect();
        change(&mut lists);
        lists.iter().map(|l| Ring::new(&state.settings.spec, l)).collect()
    }

    /// Publishes the snapshot of `state`; returns the one it replaces.
    fn rebuild(&self, state: &State) -> Arc<RingSet> {
        self.snapshot.swap(Arc::new(state.snapshot()))
    }

    /// Applies a reloaded section config: its settings, and rings built from its member lists as a fresh start
    /// would. A destination whose URL and outgoing settings remain is kept, with its queue, connections and
    /// counters; a member that remains in the same ring keeps its health. Destinations no ring uses any more
    /// are retired ([`retire`]): they drain for `drain`, then what is left is counted as dropped.
    pub fn reconfigure(self: &Arc<Self>, cfg: &SectionConfig, drain: std::time::Duration) {
        let mut state = self.state();
        let old_rings = std::mem::take(&mut state.rings);
        state.settings = Settings::of(cfg);
        let outgoing = state.settings.outgoing;
        let known = state.dests.len();
        for (i, ring) in cfg.rings.iter().enumerate() {
            let list: Vec<Member> = NewMember::of_ring(ring)
                .map(|new| {
                    let mut m = state.member_with(&self.name, &new, outgoing);
                    let kept = old_rings.get(i).into_iter().flatten();
                    if let Some(old) = kept
                        .into_iter()
                        .find(|o| o.dest == m.dest && o.check.raw == m.check.raw)
                    {
                        m.up = old.up;
                    }
                    m
                })
                .collect();
            state.rings.push(list);
        }
        for m in old_rings.iter().flatten() {
            m.stop_checks.cancel();
        }
        let used = |d: usize| state.rings.iter().flatten().any(|m| m.dest as usize == d);
        let retired: Vec<Arc<Destination>> = (0..state.dests.len())
            .filter(|&d| {
                !used(d) && state.dests[d].is_live() && old_rings.iter().flatten().any(|m| m.dest as usize == d)
            })
            .map(|d| state.dests[d].clone())
            .collect();
        for d in &retired {
            d.set_health_down(false);
        }
        for (d, dest) in state.dests.iter().enumerate().filter(|(d, _)| used(*d)) {
            let any_up = state.rings.iter().flatten().any(|m| m.dest as usize == d && m.up);
            dest.set_health_down(!any_up);
        }
        if let Some(rt) = self.runtime.get() {
            for dest in &state.dests[known..] {
                start_senders(dest, rt);
            }
            for (ring, members) in state.rings.iter().enumerate() {
                for m in members {
                    self.start_checks(rt, ring, m);
                }
            }
        }
        let previous = self.rebuild(&state);
        drop(state);
        if !retired.is_empty() {
            retire(&self.name, previous, retired, drain, self.runtime.get().cloned());
        }
    }

    /// Retires the whole backend (its section was removed by a reload): no ring routes to it any more, and its
    /// destinations drain for `drain` as in [`Backend::reconfigure`].
    pub fn retire_all(&self, drain: std::time::Duration) {
        let mut state = self.state();
        for m in std::mem::take(&mut state.rings).iter().flatten() {
            m.stop_checks.cancel();
        }
        state.rings = vec![Vec::new(); state.rings.len()];
        let live: Vec<Arc<Destination>> = state.dests.iter().filter(|d| d.is_live()).cloned().collect();
        let previous = self.rebuild(&state);
        drop(state);
        retire(&self.name, previous, live, drain, self.runtime.get().cloned());
    }

    /// Closes every destination queue: no more pushes; senders drain what is left.
    pub fn close_queues(&self) {
        for d in self.snapshot.load().dests.iter() {
            d.queue.close();
        }
    }

    /// Counts what is still queued as dropped (`shutdown`) and empties the queues.
    pub fn drop_remaining(&self) {
        for d in self.snapshot.load().dests.iter() {
            let lines = d.queue.clear();
            d.drop_batch(DropReason::Shutdown, lines);
        }
    }
}

impl State {
    fn snapshot(&self) -> RingSet {
        let s = &self.settings;
        RingSet {
            rings: build_rings(&s.spec, s.health.server_down_policy, &self.rings),
            dests: self.dests.clone(),
            replicas: s.replicas,
        }
    }

    /// A member for `m` with the backend's outgoing settings.
    fn member(&mut self, section: &str, m: &NewMember) -> Member {
        let outgoing = self.settings.outgoing;
        self.member_with(section, m, outgoing)
    }

    /// A member for `m`, reusing the live destination with the same URL and outgoing settings or creating one (a
    /// purged or retired destination stays closed: adding its URL again makes a fresh one).
    fn member_with(&mut self, section: &str, m: &NewMember, outgoing: OutgoingConfig) -> Member {
        let reusable = |d: &Arc<Destination>| d.url.raw == m.url.raw && d.config == outgoing && d.is_live();
        let dest = match self.dests.iter().position(reusable) {
            Some(i) => i,
            None => {
                self.dests
                    .push(Arc::new(Destination::new(section, m.url.clone(), outgoing)));
                self.dests.len() - 1
            }
        };
        Member {
            hashkey: m.hashkey.clone(),
            dest: dest as u32,
            check: m.check.clone(),
            up: true,
            stop_checks: CancellationToken::new(),
        }
    }
}

fn start_senders(dest: &Arc<Destination>, rt: &Runtime) {
    let stop = dest.stop_senders.get_or_init(|| rt.stop_senders.child_token()).clone();
    for _ in 0..dest.config.max_pool_connections.max(1) {
        let run = sender::run(dest.clone(), rt.http.clone(), stop.clone());
        rt.tracker.spawn(dest.senders.track_future(run));
    }
}

/// How often a retiring backend looks whether routers still hold the ring snapshot that routed to its retired
/// destinations.
const RETIRE_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// Drains destinations no ring routes to any more. Routers that loaded `previous` (the last snapshot that could
/// route to them) may still push into them, so their queues stay open until no router holds it; then they close,
/// the senders deliver what is queued and end. What is still queued or unacknowledged after `drain` is counted as
/// dropped (`shutdown`), as at shutdown. The destinations are marked retired at once, so that a member added again
/// gets a fresh destination.
fn retire(
    section: &str,
    previous: Arc<RingSet>,
    dests: Vec<Arc<Destination>>,
    drain: std::time::Duration,
    runtime: Option<Runtime>,
) {
    for d in &dests {
        d.retire();
    }
    let urls: Vec<String> = dests.iter().map(|d| d.url.raw.clone()).collect();
    tracing::info!(section, destinations = ?urls, ?drain, "destinations removed by the reload: draining");
    let Some(rt) = runtime else {
        return; // never started (hashcheck): nothing to drain
    };
    let (section, stop) = (section.to_string(), rt.stop_senders.clone());
    rt.tracker.spawn(async move {
        let deadline = tokio::time::Instant::now() + drain;
        let held = || Arc::strong_count(&previous) > 1 && tokio::time::Instant::now() < deadline;
        while held() && !stop.is_cancelled() {
            tokio::time::sleep(RETIRE_POLL).await;
        }
        drop(previous);
        for d in &dests {
            d.queue.close();
            d.senders.close();
        }
        for d in &dests {
            let drained = tokio::select! {
                r = tokio::time::timeout_at(deadline, d.senders.wait()) => r.is_ok(),
                _ = stop.cancelled() => false,
            };
            if !drained {
                if let Some(stop) = d.stop_senders.get() {
                    stop.cancel();
                }
                d.senders.wait().await;
            }
            let lines = d.queue.clear();
            if lines > 0 {
                tracing::warn!(%section, destination = %d.url.raw, lines, "removed destination not drained in time");
            }
            d.drop_batch(DropReason::Shutdown, lines);
        }
    });
}

/// The members a ring is built from: all of them, or with `remove_node` only those that are up.
fn live_members(list: &[Member], policy: DownPolicy) -> Vec<(String, u32)> {
    list.iter()
        .filter(|m| m.up || policy != DownPolicy::RemoveNode)
        .map(|m| (m.hashkey.clone(), m.dest))
        .collect()
}

fn build_rings(spec: &RingSpec, policy: DownPolicy, members: &[Vec<Member>]) -> Vec<Ring> {
    members
        .iter()
        .map(|list| Ring::new(spec, &live_members(list, policy)))
        .collect()
}
