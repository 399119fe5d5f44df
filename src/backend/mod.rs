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
    spec: RingSpec,
    outgoing: OutgoingConfig,
    health: HealthConfig,
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
        };
        for ring in &cfg.rings {
            let list = NewMember::of_ring(ring)
                .map(|m| state.member(&cfg.name, &m, cfg.outgoing))
                .collect();
            state.rings.push(list);
        }
        let spec = cfg.hashing.ring_spec;
        let snapshot = RingSet {
            rings: build_rings(&spec, cfg.health.server_down_policy, &state.rings),
            dests: state.dests.clone(),
            replicas: cfg.num_dupe_replicas.max(1),
        };
        Backend {
            name: cfg.name.clone(),
            spec,
            outgoing: cfg.outgoing,
            health: cfg.health,
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

    pub fn spec(&self) -> &RingSpec {
        &self.spec
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
        let (backend, check, dest, http) = (self.clone(), m.check.clone(), m.dest, runtime.http.clone());
        runtime.tracker.spawn(async move {
            tokio::select! {
                _ = health::run(&backend, ring, dest, &check, &http) => {}
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
        let member = state.member(&self.name, &new, self.outgoing);
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
        let mut lists: Vec<Vec<(String, u32)>> = state
            .rings
            .iter()
            .map(|r| live_members(r, self.health.server_down_policy))
            .collect();
        change(&mut lists);
        lists.iter().map(|l| Ring::new(&self.spec, l)).collect()
    }

    fn rebuild(&self, state: &State) {
        let replicas = self.snapshot.load().replicas;
        let next = RingSet {
            rings: build_rings(&self.spec, self.health.server_down_policy, &state.rings),
            dests: state.dests.clone(),
            replicas,
        };
        self.snapshot.store(Arc::new(next));
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
    /// A member for `m`, reusing the live destination with the same URL or creating one (a purged destination
    /// stays closed: adding its URL again makes a fresh one).
    fn member(&mut self, section: &str, m: &NewMember, outgoing: OutgoingConfig) -> Member {
        let dest = match self.dests.iter().position(|d| d.url.raw == m.url.raw && !d.is_purged()) {
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
    for _ in 0..dest.config.max_pool_connections.max(1) {
        rt.tracker
            .spawn(sender::run(dest.clone(), rt.http.clone(), rt.stop_senders.clone()));
    }
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
