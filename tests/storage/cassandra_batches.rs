//! The Cassandra writer's unlogged batches against the real server: every point is stored once with its values and
//! TTL, each row's partition has the token the writer sorted it by (the server's own `token(id)`), and the batches
//! the writer cuts draw no warning from a stock server, while a batch four times as big does.

use std::collections::HashMap;

use consthash::config::{Driver, DriverConfig};
use consthash::line::Point;
use consthash::writer::cassandra::{self, BATCH_ROWS};
use consthash::writer::{Progress, Store, Writer};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;

use crate::store::{MetricId, MetricPoint};
use crate::{services, unique};

/// A Cassandra writer's config for a keyspace of its own, created by the writer.
fn config(addr: &str, keyspace: &str) -> DriverConfig {
    DriverConfig {
        driver: Driver::Cassandra,
        dsn: addr.to_string(),
        options: toml::from_str(&format!("keyspace = \"{keyspace}\"\ncreate_schema = true")).expect("options"),
    }
}

/// Short keys, keys of 300 bytes (ten of them are over the size bound), keys too big to share a batch, and the
/// keys whose tokens `cassandra::token`'s unit test pins.
fn points(time: i64) -> Vec<Point> {
    let short = (0..200).map(|i| format!("b.k{i}"));
    let long = (0..30).map(|i| format!("b.ü.{i}.{}", "x".repeat(290)));
    let huge = (0..3).map(|i| format!("b.huge.{i}.{}", "y".repeat(5000)));
    let pinned = [("stats.web.cpu", 10), ("stats.web.cpu", 60), ("ü", 1)];
    let keys = short
        .chain(long)
        .chain(huge)
        .map(|k| (if k.len() % 2 == 0 { 5 } else { 60 }, k));
    keys.chain(pinned.map(|(k, r)| (r, k.to_string())))
        .enumerate()
        .map(|(i, (resolution, key))| Point {
            key,
            sum: i as f64,
            mean: i as f64 / 2.0,
            min: 0.5,
            max: i as f64 + 1.0,
            count: 2,
            time,
            resolution,
            ttl: 3600,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cassandra_writer_s_batches_store_every_point_where_its_token_says_without_server_warnings() {
    let addr = services::cassandra();
    let keyspace = unique("batches");
    let cfg = config(addr, &keyspace);
    let time = 1_700_000_000;
    let mut points = points(time);
    cassandra::by_token(&mut points);
    let tokens: Vec<i64> = points.iter().map(cassandra::token).collect();
    assert!(tokens.windows(2).all(|w| w[0] <= w[1]), "by_token orders by token");
    let cuts: Vec<usize> = cassandra::batches(&points).map(<[Point]>::len).collect();
    assert!(
        cuts.contains(&BATCH_ROWS) && cuts.contains(&1),
        "full batches and single inserts: {cuts:?}"
    );

    let mut writer = Writer::for_bin(&cfg, 5).await.expect("writer");
    writer.maintain().await.expect("connect and create the schema");
    let mut progress = Progress::default();
    writer.write(&mut points, &mut progress).await.expect("write");
    assert_eq!(progress.done, points.len());

    let session = SessionBuilder::new().known_node(addr).build().await.expect("connect");
    let cql = format!("SELECT id, time, point, TTL(point), token(id) FROM {keyspace}.metric");
    let res = session
        .query_unpaged(cql, ())
        .await
        .expect("select")
        .into_rows_result()
        .expect("rows");
    let mut stored = HashMap::new();
    for row in res
        .rows::<(MetricId, i64, MetricPoint, Option<i32>, i64)>()
        .expect("row type")
    {
        let (id, t, p, ttl, token) = row.expect("row");
        let ttl = ttl.expect("rows carry a TTL");
        assert!((3000..=3600).contains(&ttl), "{}: TTL {ttl}", id.path);
        assert_eq!(t, time * 1_000_000_000);
        let before = stored.insert((id.path.clone(), id.resolution), (p, token));
        assert!(before.is_none(), "{} stored twice", id.path);
    }
    assert_eq!(stored.len(), points.len());
    for p in &points {
        let (s, token) = &stored[&(p.key.clone(), p.resolution as i32)];
        assert_eq!(*token, cassandra::token(p), "{}: the server's token(id)", p.key);
        assert_eq!((s.sum, s.mean, s.min, s.max, s.count), (p.sum, p.mean, p.min, p.max, 2));
    }

    // The server's warnings, for the writer's own cuts and for a batch four times the row bound.
    let insert = session
        .prepare(cassandra::metric_insert_cql(&keyspace, "metric"))
        .await
        .expect("prepare");
    for batch in cassandra::batches(&points).filter(|b| b.len() > 1) {
        let w = warnings(&session, &insert, batch).await;
        assert_eq!(w, Vec::<String>::new(), "a batch of {} rows", batch.len());
    }
    let control = warnings(&session, &insert, &points[..4 * BATCH_ROWS]).await;
    assert!(
        control.iter().any(|w| w.contains("exceeding specified threshold")),
        "{control:?}"
    );
}

/// What the server warns of when `points` are stored as one unlogged batch.
async fn warnings(session: &Session, insert: &PreparedStatement, points: &[Point]) -> Vec<String> {
    let b = cassandra::unlogged(insert, points.len());
    let values: Vec<_> = points.iter().map(cassandra::values).collect();
    let res = session.batch(&b, values).await.expect("batch");
    res.warnings().map(str::to_string).collect()
}

/// Keys sharing prefixes at every depth, keys with segments long enough to fill a batch alone, and the spec's
/// `stats.web.cpu`: more keys than one chunk of the indexer.
fn index_keys() -> Vec<String> {
    let tree = (0..400).map(|i| format!("stats.host{}.cpu{}.{i}", i % 17, i % 11));
    let long = (0..12).map(|i| format!("stats.ü{}.{}.{}", i % 3, "z".repeat(1500 + i), i % 2));
    let mut keys: Vec<String> = tree.chain(long).collect();
    keys.push("stats.web.cpu".into());
    keys.sort();
    keys.dedup();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cassandra_indexer_s_batches_store_every_index_row_where_its_token_says_without_server_warnings() {
    use consthash::writer::cassandra::{index_batches, index_rows, IndexRow, INDEX_CHUNK_KEYS};
    use consthash::writer::{Indexer, Seen};
    use std::collections::BTreeSet;
    use std::sync::Arc;

    let addr = services::cassandra();
    let keyspace = unique("index_batches");
    let cfg = config(addr, &keyspace);
    let keys = index_keys();
    assert!(keys.len() > INDEX_CHUNK_KEYS, "the keys span chunks");
    let all: Vec<IndexRow<'_>> = keys.iter().flat_map(|k| index_rows(k, |_| true)).collect();
    let (segment_rows, path_rows): (Vec<&IndexRow<'_>>, Vec<&IndexRow<'_>>) =
        all.iter().partition(|r| matches!(r, IndexRow::Segment { .. }));
    let want_segments: BTreeSet<(i32, String)> = segment_rows
        .iter()
        .map(|r| r.segment_values())
        .map(|(pos, segment)| (pos, segment.to_string()))
        .collect();
    let want_tree: BTreeSet<(i32, String, String, i32, bool)> = path_rows
        .iter()
        .map(|r| r.path_values())
        .map(|(at, path, length, has_data)| (at.pos, at.segment.to_string(), path.to_string(), length, has_data))
        .collect();

    let seen = Arc::new(Seen::new(1 << 20));
    let mut indexer = Indexer::open(&cfg, seen)
        .expect("indexer")
        .expect("an indexer is configured");
    indexer.maintain().await.expect("connect and create the schema");
    let mut progress = Progress::default();
    let mut items = keys.clone();
    indexer.write(&mut items, &mut progress).await.expect("write the index");
    assert_eq!(progress.done, keys.len());

    let db = crate::store::Db::cassandra(addr, &keyspace).await;
    let index = db.index().await.expect("read the index");
    same("segment rows", &index.segments, &want_segments);
    same("path rows", &index.tree, &want_tree);
    assert!(index
        .tree
        .contains(&(1, "stats.web".into(), "stats.web.cpu".into(), 2, true)));

    // The server's token of every stored row's partition is the one the indexer sorted it by.
    let session = SessionBuilder::new().known_node(addr).build().await.expect("connect");
    let rows = |cql: String| {
        let session = &session;
        async move {
            let res = session.query_unpaged(cql, ()).await.expect("select");
            res.into_rows_result().expect("rows")
        }
    };
    let res = rows(format!("SELECT pos, segment, token(pos) FROM {keyspace}.segment")).await;
    let mut checked = 0;
    for row in res.rows::<(i32, String, i64)>().expect("row type") {
        let (pos, segment, token) = row.expect("row");
        let r = IndexRow::Segment { pos, segment: &segment };
        assert_eq!(token, r.token(), "{r:?}");
        checked += 1;
    }
    let res = rows(format!(
        "SELECT segment, path, length, has_data, token(segment) FROM {keyspace}.path"
    ))
    .await;
    for row in res
        .rows::<(crate::store::SegmentPos, String, i32, bool, i64)>()
        .expect("row type")
    {
        let (s, path, length, has_data, token) = row.expect("row");
        let r = IndexRow::Path {
            pos: s.pos,
            segment: &s.segment,
            path: &path,
            length,
            has_data,
        };
        assert_eq!(token, r.token(), "{r:?}");
        checked += 1;
    }
    assert_eq!(checked, want_segments.len() + want_tree.len());

    // Each batch the indexer cuts from all the rows at once, stored alone, draws no warning.
    let segment = session
        .prepare(cassandra::segment_insert_cql(&keyspace, "segment"))
        .await
        .expect("prepare");
    let path = session
        .prepare(cassandra::path_insert_cql(&keyspace, "path"))
        .await
        .expect("prepare");
    let batches = index_batches(all.clone());
    assert!(
        batches.iter().any(|b| b.len() > 10),
        "batches of one partition's many rows"
    );
    for batch in batches.iter().filter(|b| b.len() > 1) {
        let res = match batch[0] {
            IndexRow::Segment { .. } => {
                let values: Vec<_> = batch.iter().map(IndexRow::segment_values).collect();
                session.batch(&cassandra::unlogged(&segment, batch.len()), values).await
            }
            IndexRow::Path { .. } => {
                let values: Vec<_> = batch.iter().map(IndexRow::path_values).collect();
                session.batch(&cassandra::unlogged(&path, batch.len()), values).await
            }
        };
        let res = res.expect("batch");
        let warnings: Vec<&str> = res.warnings().collect();
        assert_eq!(warnings, Vec::<&str>::new(), "a batch of {} rows", batch.len());
    }
}

/// Fails naming the first rows missing from or extra in `got`, shortened (the long keys are 1.5 KB).
fn same<T: Ord + std::fmt::Debug>(
    what: &str,
    got: &std::collections::BTreeSet<T>,
    want: &std::collections::BTreeSet<T>,
) {
    let short = |rows: Vec<&T>| -> Vec<String> {
        rows.iter()
            .take(5)
            .map(|r| format!("{r:?}").chars().take(120).collect())
            .collect()
    };
    let missing = short(want.difference(got).collect());
    let extra = short(got.difference(want).collect());
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} stored, {} expected; missing {missing:#?}, extra {extra:#?}",
        got.len(),
        want.len()
    );
}
