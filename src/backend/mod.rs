//! Backends: the rings of a section and the destinations they name.
//!
//! A [`Backend`] holds an immutable [`RingSet`] snapshot behind an `ArcSwap`; routers load it once per read and
//! never lock. Membership changes (health, API) build a new snapshot from the ordered member list of each ring,
//! so placement always equals a fresh start with that list (spec §7.1). Destinations are identified by URL within
//! a section: a URL present in two rings is one destination that receives two copies of a line. A destination's
//! index in [`RingSet::dests`] never changes; removed destinations stay in the list, purged and in no ring.

mod destination;
mod queue;
mod sender;

pub use self::sender::DIAL_TIMEOUT;

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::destination::{DestParams, Destination};
pub use self::queue::{DestQueue, PushError};
use crate::config::DestUrl;
use crate::ring::{Ring, RingSpec};
use crate::telemetry::DropReason;

/// One ring member: its ring identity and its destination.
#[derive(Clone, Debug)]
pub struct Member {
    pub hashkey: String,
    pub dest: u32,
    /// Health state; members that are down are left out of the ring (`server_down_policy = "remove_node"`).
    pub up: bool,
}

/// What routers read: the rings, the destinations they index, and the replica count.
#[derive(Debug)]
pub struct RingSet {
    pub rings: Vec<Ring>,
    pub dests: Vec<Arc<Destination>>,
    /// `num_dupe_replicas`: destinations per ring per line.
    pub replicas: usize,
}

/// The outgoing side of a section.
#[derive(Debug)]
pub struct Backend {
    pub name: String,
    spec: RingSpec,
    snapshot: ArcSwap<RingSet>,
    /// Ordered member list per ring; the source every snapshot is built from.
    members: Mutex<Vec<Vec<Member>>>,
}

impl Backend {
    /// Builds the rings from `(url, hashkey)` lists per ring. Destinations are created per distinct URL.
    pub fn new(
        name: &str,
        spec: RingSpec,
        replicas: usize,
        rings: &[Vec<(DestUrl, String)>],
        params: &DestParams,
    ) -> Backend {
        let mut dests: Vec<Arc<Destination>> = Vec::new();
        let mut members = Vec::new();
        for ring in rings {
            let mut list = Vec::new();
            for (url, hashkey) in ring {
                let dest = match dests.iter().position(|d| d.url.raw == url.raw) {
                    Some(i) => i,
                    None => {
                        dests.push(Arc::new(Destination::new(name, url.clone(), params.clone())));
                        dests.len() - 1
                    }
                };
                list.push(Member {
                    hashkey: hashkey.clone(),
                    dest: dest as u32,
                    up: true,
                });
            }
            members.push(list);
        }
        let snapshot = RingSet {
            rings: build_rings(&spec, &members),
            dests,
            replicas: replicas.max(1),
        };
        Backend {
            name: name.to_string(),
            spec,
            snapshot: ArcSwap::from_pointee(snapshot),
            members: Mutex::new(members),
        }
    }

    /// The current snapshot (cheap; routers call it once per read).
    pub fn load(&self) -> Arc<RingSet> {
        self.snapshot.load_full()
    }

    /// Every destination ever created for this backend.
    pub fn destinations(&self) -> Vec<Arc<Destination>> {
        self.snapshot.load().dests.clone()
    }

    /// Starts `max_pool_connections` senders per destination on `tracker`; they stop at `stop` or when their
    /// queue is closed and drained.
    pub fn start_senders(&self, tracker: &TaskTracker, stop: &CancellationToken, http: &reqwest::Client) {
        for dest in self.snapshot.load().dests.iter() {
            for _ in 0..dest.params.max_connections.max(1) {
                tracker.spawn(sender::run(dest.clone(), http.clone(), stop.clone()));
            }
        }
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

    /// Rebuilds the rings from the member lists (after a membership or health change).
    pub fn rebuild(&self) {
        let members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.snapshot.load();
        let next = RingSet {
            rings: build_rings(&self.spec, &members),
            dests: old.dests.clone(),
            replicas: old.replicas,
        };
        self.snapshot.store(Arc::new(next));
    }
}

fn build_rings(spec: &RingSpec, members: &[Vec<Member>]) -> Vec<Ring> {
    members
        .iter()
        .map(|list| {
            let up: Vec<(String, u32)> = list
                .iter()
                .filter(|m| m.up)
                .map(|m| (m.hashkey.clone(), m.dest))
                .collect();
            Ring::new(spec, &up)
        })
        .collect()
}
