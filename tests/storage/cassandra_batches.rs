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
    let cfg = DriverConfig {
        driver: Driver::Cassandra,
        dsn: addr.to_string(),
        options: toml::from_str(&format!("keyspace = \"{keyspace}\"\ncreate_schema = true")).expect("options"),
    };
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
