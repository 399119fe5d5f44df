//! Time bins (spec §9.5): every base flush's records are merged into every bin; each bin is drained at its own
//! aligned tick into [`Point`]s for that bin's writer.
//!
//! A bin holds its records in a `Vec` in arrival order, with a hash index (record positions keyed by the record's
//! key) built only when a second base flush arrives before the bin drains. A bin whose interval equals the base
//! interval therefore takes each flush's records as they are, without hashing or copying a key. This relies on
//! one invariant of the accumulator: the records of one base flush have distinct keys (each shard pushes one record
//! per key, and shards hold disjoint keys).

use foldhash::fast::FixedState;
use hashbrown::HashTable;
use std::hash::BuildHasher;
use std::time::Duration;

use crate::config::Bin;
use crate::line::{Point, Record};

#[derive(Debug)]
struct BinState {
    interval: Duration,
    /// Resolution and file/table suffix in whole seconds (rounded; at least 1 for sub-second bins).
    secs: u64,
    ttl_secs: u64,
    records: Vec<Record>,
    /// Positions in `records`, by key; covers all of `records` when `indexed`, else is empty.
    index: HashTable<u32>,
    indexed: bool,
}

impl BinState {
    /// Merge one base flush's records (distinct keys) into this bin.
    fn absorb(&mut self, incoming: Vec<Record>) {
        if self.records.is_empty() {
            self.records = incoming;
            self.indexed = false;
            return;
        }
        if !self.indexed {
            self.index.clear();
            self.index.reserve(self.records.len() + incoming.len(), |_| 0);
            let held = std::mem::take(&mut self.records);
            self.records.reserve(held.len() + incoming.len());
            self.indexed = true;
            for r in held {
                self.add(r);
            }
        }
        for r in incoming {
            self.add(r);
        }
    }

    /// Merge `r` into the record of its key, or append it.
    fn add(&mut self, r: Record) {
        let hasher = FixedState::default();
        let hash = hasher.hash_one(r.key.as_str());
        let records = &mut self.records;
        match self.index.find(hash, |&i| records[i as usize].key == r.key) {
            Some(&i) => records[i as usize].merge(&r),
            None => {
                let i = u32::try_from(records.len()).expect("a bin holds fewer than 2^32 keys");
                records.push(r);
                self.index
                    .insert_unique(hash, i, |&j| hasher.hash_one(records[j as usize].key.as_str()));
            }
        }
    }
}

/// The bins of one accumulator, in `times` order.
#[derive(Debug)]
pub struct Bins {
    bins: Vec<BinState>,
}

impl Bins {
    pub fn new(bins: &[Bin]) -> Bins {
        Bins {
            bins: bins
                .iter()
                .map(|b| BinState {
                    interval: b.interval,
                    secs: b.secs(),
                    ttl_secs: b.ttl.as_secs(),
                    records: Vec::new(),
                    index: HashTable::new(),
                    indexed: false,
                })
                .collect(),
        }
    }

    /// Merge one base flush's records into every bin (§9.5 merge rule). The records' keys are distinct (see the
    /// module doc); the last bin takes them, every other bin a copy.
    pub fn merge(&mut self, records: Vec<Record>) {
        let Some((last, others)) = self.bins.split_last_mut() else {
            return;
        };
        for bin in others {
            bin.absorb(records.clone());
        }
        last.absorb(records);
    }

    /// Take bin `bin`'s records as points stamped with `tick_secs`, the bin's resolution and TTL, leaving the bin
    /// empty. An unknown bin index yields nothing.
    pub fn drain(&mut self, bin: usize, tick_secs: i64) -> Vec<Point> {
        let Some(b) = self.bins.get_mut(bin) else {
            return Vec::new();
        };
        let (resolution, ttl) = (b.secs, b.ttl_secs);
        b.index.clear();
        b.indexed = false;
        std::mem::take(&mut b.records)
            .into_iter()
            .map(|r| Point {
                mean: r.mean(),
                key: r.key,
                sum: r.sum,
                min: r.min,
                max: r.max,
                count: r.count,
                time: tick_secs,
                resolution,
                ttl,
            })
            .collect()
    }

    /// Each bin's interval, in `times` order (what the runtime ticks on).
    pub fn intervals(&self) -> Vec<Duration> {
        self.bins.iter().map(|b| b.interval).collect()
    }

    /// Number of bins.
    pub fn len(&self) -> usize {
        self.bins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bins.is_empty()
    }

    /// Keys pending in bin `bin`.
    pub fn pending(&self, bin: usize) -> usize {
        self.bins.get(bin).map_or(0, |b| b.records.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accumulator::graphite::GraphiteState;
    use proptest::prelude::*;

    fn rec(key: &str, sum: f64, min: f64, max: f64, count: u64) -> Record {
        Record {
            key: key.into(),
            sum,
            min,
            max,
            count,
        }
    }

    fn bins(spec: &[(u64, u64)]) -> Bins {
        let cfg: Vec<Bin> = spec
            .iter()
            .map(|&(i, t)| Bin {
                interval: Duration::from_secs(i),
                ttl: Duration::from_secs(t),
            })
            .collect();
        Bins::new(&cfg)
    }

    #[test]
    fn merge_rule_vectors() {
        let mut b = bins(&[(5, 604800)]);
        b.merge(vec![rec("k", 5.0, 1.0, 3.0, 4)]);
        b.merge(vec![rec("k", 5.0, 1.0, 3.0, 4)]);
        let p = b.drain(0, 100);
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].sum, p[0].min, p[0].max, p[0].count, p[0].mean),
            (10.0, 1.0, 3.0, 8, 1.25)
        );

        b.merge(vec![rec("k", 5.0, 1.0, 3.0, 4)]);
        b.merge(vec![rec("k", 5.0, 1.0, 3.0, 4)]);
        b.merge(vec![rec("k", 5.0, 0.0, 8.0, 4)]);
        let p = b.drain(0, 105);
        assert_eq!((p[0].sum, p[0].min, p[0].max, p[0].count), (15.0, 0.0, 8.0, 12));
        assert_eq!(p[0].mean, 1.25);
    }

    #[test]
    fn records_go_to_every_bin_and_drain_per_bin() {
        let mut b = bins(&[(5, 604800), (60, 2592000)]);
        assert_eq!(b.len(), 2);
        assert_eq!(b.intervals(), vec![Duration::from_secs(5), Duration::from_secs(60)]);
        b.merge(vec![rec("a", 1.0, 1.0, 1.0, 1), rec("b", 2.0, 2.0, 2.0, 1)]);
        let mut p = b.drain(0, 1457989005);
        p.sort_by(|x, y| x.key.cmp(&y.key));
        assert_eq!(
            p[0],
            Point {
                key: "a".into(),
                sum: 1.0,
                mean: 1.0,
                min: 1.0,
                max: 1.0,
                count: 1,
                time: 1457989005,
                resolution: 5,
                ttl: 604800,
            }
        );
        assert_eq!(b.pending(0), 0);
        assert_eq!(b.pending(1), 2, "the 60 s bin keeps accumulating");

        b.merge(vec![rec("a", 3.0, 0.5, 3.0, 2)]);
        assert_eq!(b.drain(0, 1457989010).len(), 1);
        let mut p = b.drain(1, 1457989020);
        p.sort_by(|x, y| x.key.cmp(&y.key));
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].sum, p[0].min, p[0].max, p[0].count), (4.0, 0.5, 3.0, 3));
        assert_eq!((p[0].time, p[0].resolution, p[0].ttl), (1457989020, 60, 2592000));
        assert!(b.drain(1, 1457989080).is_empty());
        assert!(b.drain(7, 0).is_empty(), "unknown bin");
    }

    #[test]
    fn flushes_merge_by_key_until_the_bin_drains() {
        let mut b = bins(&[(60, 1)]);
        b.merge(vec![rec("a", 1.0, 1.0, 1.0, 1), rec("b", 2.0, 2.0, 2.0, 1)]);
        b.merge(vec![rec("b", 4.0, 4.0, 4.0, 1), rec("c", 8.0, 8.0, 8.0, 1)]);
        b.merge(vec![rec("c", 16.0, 16.0, 16.0, 1), rec("a", 32.0, 32.0, 32.0, 1)]);
        assert_eq!(b.pending(0), 3);
        let mut p = b.drain(0, 60);
        p.sort_by(|x, y| x.key.cmp(&y.key));
        let got: Vec<_> = p
            .iter()
            .map(|p| (p.key.as_str(), p.sum, p.min, p.max, p.count))
            .collect();
        assert_eq!(
            got,
            [
                ("a", 33.0, 1.0, 32.0, 2),
                ("b", 6.0, 2.0, 4.0, 2),
                ("c", 24.0, 8.0, 16.0, 2)
            ]
        );
        // after a drain the bin starts over: the old index must not match the new records
        b.merge(vec![rec("c", 1.0, 1.0, 1.0, 1)]);
        b.merge(vec![rec("a", 1.0, 1.0, 1.0, 1), rec("c", 1.0, 1.0, 1.0, 1)]);
        let mut p = b.drain(0, 120);
        p.sort_by(|x, y| x.key.cmp(&y.key));
        let got: Vec<_> = p.iter().map(|p| (p.key.as_str(), p.count)).collect();
        assert_eq!(got, [("a", 1), ("c", 2)]);
    }

    #[test]
    fn sub_second_bins_round_to_whole_seconds() {
        let bin_secs = |interval| {
            Bin {
                interval,
                ttl: Duration::ZERO,
            }
            .secs()
        };
        assert_eq!(bin_secs(Duration::from_millis(200)), 1);
        assert_eq!(bin_secs(Duration::from_millis(1500)), 2);
        assert_eq!(bin_secs(Duration::from_secs(600)), 600);
    }

    fn value() -> impl Strategy<Value = f64> {
        // Integers keep float sums exact whatever the association order.
        (-1000i32..1000).prop_map(f64::from)
    }

    fn records_of(acc: &mut GraphiteState) -> Vec<Record> {
        let (mut out, mut recs) = (Vec::new(), Vec::new());
        acc.flush(0, crate::config::Format::Graphite, Some(&mut out), &mut recs);
        recs
    }

    proptest! {
        /// Feeding a sample stream through the graphite accumulator in any split into base flushes and merging
        /// the records into the bins equals the record of the whole stream in one flush.
        #[test]
        fn merge_of_parts_is_aggregate_of_whole(
            values in prop::collection::vec(value(), 1..60),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut cut_points: Vec<usize> = cuts.iter().map(|c| c.index(values.len())).collect();
            cut_points.push(0);
            cut_points.push(values.len());
            cut_points.sort_unstable();
            cut_points.dedup();
            let mut b = bins(&[(5, 1), (10, 1)]);
            let mut acc = GraphiteState::new(false);
            for w in cut_points.windows(2) {
                for v in &values[w[0]..w[1]] {
                    let line = format!("k.stat {v} 1");
                    prop_assert!(acc.add(line.as_bytes()).is_ok());
                }
                b.merge(records_of(&mut acc));
            }
            let mut whole = GraphiteState::new(false);
            for v in &values {
                let line = format!("k.stat {v} 1");
                prop_assert!(whole.add(line.as_bytes()).is_ok());
            }
            let want = records_of(&mut whole);
            prop_assert_eq!(want.len(), 1);
            let want = &want[0];
            prop_assert_eq!(want.sum, values.iter().sum::<f64>());
            prop_assert_eq!(want.count, values.len() as u64);
            for bin in 0..2 {
                let p = b.drain(bin, 0);
                prop_assert_eq!(p.len(), 1);
                prop_assert_eq!(&p[0].key, &want.key);
                prop_assert_eq!(p[0].sum, want.sum);
                prop_assert_eq!(p[0].min, want.min);
                prop_assert_eq!(p[0].max, want.max);
                prop_assert_eq!(p[0].count, want.count);
                prop_assert_eq!(p[0].mean, want.mean());
            }
        }
    }
}
