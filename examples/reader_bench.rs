//! The tools of `benches/reader.sh`.
//!
//! * `load cassandra|mysql DSN NAME PATHS SERIES POINTS` — through consthash's own writer and indexer code: indexes
//!   PATHS paths `rb.s<a>.h<b>.m<c>` (a cube of side ⌈PATHS^⅓⌉, cut at PATHS) and SERIES series `rb.render.r<i>`,
//!   and stores POINTS points of 10 s (TTL 2 days) per render series, ending at the last aligned 10 s tick. NAME
//!   is the Cassandra keyspace or the MySQL table prefix (`NAME`, `NAME_path`); schemas are created.
//! * `latency N URL [T0 T1 DT]` — N GETs of URL one after another, `{n}` in URL replaced by the request number
//!   and `{t}`, `{u}` by `T0 − n·DT`, `T1 − n·DT` (to vary a query or a time window past the reader's caches);
//!   every answer must be 200 with a JSON body. Prints
//!   `requests=N p50_ms=… p99_ms=… max_ms=… bytes=…` (bytes of the last answer).
//!
//!     cargo run --release --example reader_bench -- load cassandra 127.0.0.1:19042 rbench 1000000 100 8640
use std::sync::Arc;
use std::time::{Duration, Instant};

use consthash::config::{Driver, DriverConfig};
use consthash::line::Point;
use consthash::writer::{Indexer, Progress, Seen, Store, Writer};

type Error = Box<dyn std::error::Error + Send + Sync>;

const CHUNK: usize = 10_000;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> Result<&str, Error> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| "missing argument (see the doc comment of examples/reader_bench.rs)".into())
    };
    match arg(0)? {
        "load" => {
            let (driver, dsn, name) = (arg(1)?, arg(2)?, arg(3)?);
            let (paths, series, points) = (arg(4)?.parse()?, arg(5)?.parse()?, arg(6)?.parse()?);
            load(driver, dsn, name, paths, series, points).await
        }
        "latency" => {
            let window = if args.len() > 3 {
                (arg(3)?.parse()?, arg(4)?.parse()?, arg(5)?.parse()?)
            } else {
                (0, 0, 0)
            };
            latency(arg(1)?.parse()?, arg(2)?, window).await
        }
        _ => Err(
            "usage: reader_bench load cassandra|mysql DSN NAME PATHS SERIES POINTS | latency N URL [T0 T1 DT]".into(),
        ),
    }
}

fn index_paths(n: usize) -> Vec<String> {
    let side = (1..).find(|s: &usize| s * s * s >= n).unwrap_or(1);
    (0..n)
        .map(|i| format!("rb.s{}.h{}.m{}", i / (side * side), (i / side) % side, i % side))
        .collect()
}

async fn load(driver: &str, dsn: &str, name: &str, paths: usize, series: usize, points: usize) -> Result<(), Error> {
    let mut keys = index_paths(paths);
    let render: Vec<String> = (0..series).map(|i| format!("rb.render.r{i}")).collect();
    keys.extend(render.iter().cloned());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let last = now / 10 * 10;
    let mut pts = Vec::with_capacity(series * points);
    for (s, key) in render.iter().enumerate() {
        for j in 0..points {
            let v = (s + j % 7) as f64;
            pts.push(Point {
                key: key.clone(),
                sum: v,
                mean: v,
                min: v,
                max: v,
                count: 1,
                time: last - 10 * j as i64,
                resolution: 10,
                ttl: 2 * 86_400,
            });
        }
    }
    let mut options = toml::Table::new();
    let driver = match driver {
        "cassandra" => {
            options.insert("keyspace".into(), name.into());
            options.insert("write_workers".into(), 512.into());
            Driver::Cassandra
        }
        "mysql" => {
            options.insert("table".into(), name.into());
            options.insert("path_table".into(), format!("{name}_path").into());
            Driver::Mysql
        }
        other => return Err(format!("unknown driver {other}").into()),
    };
    options.insert("create_schema".into(), true.into());
    let cfg = DriverConfig {
        driver,
        dsn: dsn.to_string(),
        options,
    };
    let t = Instant::now();
    let mut index = Indexer::open(&cfg, Arc::new(Seen::new(keys.len() * 2)))?.ok_or("the driver keeps no index")?;
    store_all(&mut index, &mut keys).await?;
    eprintln!("index: {} keys in {:.1} s", keys.len(), t.elapsed().as_secs_f64());
    store_all(&mut Writer::for_bin(&cfg, 10).await?, &mut pts).await?;
    println!(
        "loaded paths={} series={series} points={} last={last} secs={:.1}",
        keys.len(),
        pts.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Everything into `store` through the writers' own calls (connect and schema first), in chunks; a partial write is
/// an error here: the bench wants everything stored.
async fn store_all<S: Store>(store: &mut S, items: &mut [S::Item]) -> Result<(), Error> {
    store.maintain().await?;
    for chunk in items.chunks_mut(CHUNK) {
        let mut p = Progress::default();
        store.write(chunk, &mut p).await?;
        if p.done != chunk.len() {
            return Err(format!("stored {} of {}", p.done, chunk.len()).into());
        }
    }
    Ok(())
}

async fn latency(n: usize, url: &str, (t0, t1, dt): (i64, i64, i64)) -> Result<(), Error> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let mut took = Vec::with_capacity(n);
    let mut bytes = 0;
    for i in 0..n {
        let shift = dt * i as i64;
        let u = url
            .replace("{n}", &i.to_string())
            .replace("{t}", &(t0 - shift).to_string())
            .replace("{u}", &(t1 - shift).to_string());
        let t = Instant::now();
        let r = client.get(&u).send().await?;
        let status = r.status();
        let body = r.bytes().await?;
        took.push(t.elapsed().as_secs_f64() * 1000.0);
        if !status.is_success() {
            return Err(format!("{u}: {status}: {}", String::from_utf8_lossy(&body)).into());
        }
        serde_json::from_slice::<serde_json::Value>(&body).map_err(|e| format!("{u}: not JSON: {e}"))?;
        bytes = body.len();
    }
    took.sort_by(f64::total_cmp);
    let q = |f: f64| took[((took.len() as f64 * f).ceil() as usize).clamp(1, took.len()) - 1];
    println!(
        "requests={n} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} bytes={bytes}",
        q(0.5),
        q(0.99),
        took[took.len() - 1]
    );
    Ok(())
}
