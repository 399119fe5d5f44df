//! The floor for `benches/writers.sh`: how fast this machine's database takes the writers' statements with the
//! same driver and no consthash around them.
//!
//! * `mysql DSN TABLE POINTS BATCH [CONNECTIONS]` — multi-row `INSERT`s of `BATCH` rows (the writer's statement:
//!   same columns, `FROM_UNIXTIME(?)`) in key order, as the writer issues them; one after another on one
//!   connection, or with `CONNECTIONS` > 1 that many in flight on as many connections.
//! * `cassandra HOST KEYSPACE TABLE POINTS CONCURRENCY [BATCH]` — the writer's prepared `INSERT … USING TTL ?` in
//!   unlogged batches of `BATCH` inserts (default the writer's [`BATCH_ROWS`]: the bench's short keys are cut
//!   by rows, not bytes), at most `CONCURRENCY` batches in flight (LZ4, token-aware, the driver's default pool);
//!   `BATCH` 1 is one insert per request.
//!
//! The table must exist (the consthash run of the bench creates it). Keys are `floor.k<i>`, built before the clock
//! starts. Prints one line: `points=<n> secs=<s> points_per_s=<r>`.
//!
//!     cargo run --release --example writer_floor -- cassandra 127.0.0.1:19042 consthash_bench metric 1000000 256
use std::time::Instant;

use consthash::writer::cassandra::{metric_insert_cql, unlogged, MetricId, MetricPoint, BATCH_ROWS};
use consthash::writer::mysql::insert_sql;
use futures_util::stream::{FuturesOrdered, FuturesUnordered, StreamExt};
use scylla::client::session_builder::SessionBuilder;
use scylla::frame::Compression;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> Result<usize, Error> {
        let s = args
            .get(i)
            .ok_or("missing argument (see the doc comment of examples/writer_floor.rs)")?;
        Ok(s.parse()?)
    };
    let (points, secs) =
        match args.first().map(String::as_str) {
            Some("mysql") => {
                let points = num(3)?;
                let connections = if args.len() > 5 { num(5)? } else { 1 };
                (
                    points,
                    mysql(&args[1], &args[2], points, num(4)?, connections).await?,
                )
            }
            Some("cassandra") => {
                let points = num(4)?;
                let batch = if args.len() > 6 { num(6)? } else { BATCH_ROWS };
                (
                    points,
                    cassandra(&args[1], &args[2], &args[3], points, num(5)?, batch).await?,
                )
            }
            _ => return Err(
                "usage: writer_floor mysql DSN TABLE POINTS BATCH [CONNECTIONS] | cassandra HOST KEYSPACE TABLE POINTS CONCURRENCY [BATCH]"
                    .into(),
            ),
        };
    println!(
        "points={points} secs={secs:.3} points_per_s={:.0}",
        points as f64 / secs
    );
    Ok(())
}

fn keys(points: usize) -> Vec<String> {
    (0..points).map(|i| format!("floor.k{i}")).collect()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn mysql(dsn: &str, table: &str, points: usize, batch: usize, connections: usize) -> Result<f64, Error> {
    let connections = connections.max(1);
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(connections as u32)
        .min_connections(connections as u32)
        .connect(dsn)
        .await?;
    let mut keys = keys(points);
    keys.sort_unstable();
    let time = unix_now() / 10 * 10;
    let full = insert_sql(table, batch);
    let start = Instant::now();
    let mut in_flight = FuturesOrdered::new();
    for chunk in keys.chunks(batch) {
        if in_flight.len() == connections {
            in_flight.next().await.transpose()?;
        }
        let (pool, full) = (&pool, &full);
        in_flight.push_back(async move {
            let partial;
            let text = if chunk.len() == batch {
                full
            } else {
                partial = insert_sql(table, chunk.len());
                &partial
            };
            let mut q = sqlx::query(text);
            for k in chunk {
                q = q
                    .bind(k.as_str())
                    .bind(1.0f64)
                    .bind(1.0f64)
                    .bind(1.0f64)
                    .bind(1.0f64)
                    .bind(1i64)
                    .bind(10i32)
                    .bind(time);
            }
            q.execute(pool).await
        });
    }
    while let Some(r) = in_flight.next().await {
        r?;
    }
    Ok(start.elapsed().as_secs_f64())
}

async fn cassandra(
    host: &str,
    keyspace: &str,
    table: &str,
    points: usize,
    concurrency: usize,
    batch: usize,
) -> Result<f64, Error> {
    let session = SessionBuilder::new()
        .known_node(host)
        .compression(Some(Compression::Lz4))
        .build()
        .await?;
    let insert = session.prepare(metric_insert_cql(keyspace, table)).await?;
    let keys = keys(points);
    let time = unix_now() / 10 * 10 * 1_000_000_000;
    // Built before the clock starts, as the writer builds its batches once (the last, shorter one is built late).
    let full = unlogged(&insert, batch.max(1));
    let (session, insert, full) = (&session, &insert, &full);
    let mut in_flight = FuturesUnordered::new();
    let mut next = keys.chunks(batch.max(1));
    let start = Instant::now();
    loop {
        while in_flight.len() < concurrency.max(1) {
            let Some(chunk) = next.next() else { break };
            in_flight.push(async move {
                if chunk.len() == 1 {
                    session
                        .execute_unpaged(insert, value(&chunk[0], time))
                        .await
                        .map(|_| ())
                } else {
                    let values: Vec<_> = chunk.iter().map(|k| value(k, time)).collect();
                    if chunk.len() == batch {
                        session.batch(full, values).await.map(|_| ())
                    } else {
                        session.batch(&unlogged(insert, chunk.len()), values).await.map(|_| ())
                    }
                }
            });
        }
        match in_flight.next().await {
            None => break,
            Some(r) => r?,
        }
    }
    Ok(start.elapsed().as_secs_f64())
}

/// The bound values of one insert: a 10 s point of `key` at `time` (ns) with a 1 h TTL.
fn value(key: &str, time: i64) -> (MetricId<'_>, i64, MetricPoint, i32) {
    let point = MetricPoint {
        max: 1.0,
        mean: 1.0,
        min: 1.0,
        sum: 1.0,
        count: 1,
    };
    (
        MetricId {
            path: key,
            resolution: 10,
        },
        time,
        point,
        3600,
    )
}
