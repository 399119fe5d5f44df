//! The reader API behind the real Graphite front ends: consthash writes a statsd burst into each store, two
//! consthash readers serve that store, and graphite-api 1.1.3 and graphite-web 1.1.10 (each with the stock
//! cyanite 0.4.6 finder, using both readers round-robin) list the tree and render, slot by slot, what was sent.
//! Grafana's own requests (POST forms, `maxDataPoints`) are replayed against graphite-api.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::services::{self, FrontEnd};
use crate::store::Db;
use crate::{early_in_interval, free_port, send_udp, unique, wait_for, Stack, LONG};

/// The series sent, and per part the counter value of each.
const SERIES: [(&str, f64); 4] = [
    ("app.web1.cpu", 1.0),
    ("app.web2.cpu", 10.0),
    ("app.db1.cpu", 100.0),
    // a series that is also a prefix (of app.web1.cpu)
    ("app.web1", 1000.0),
];

fn sent(part: usize) -> Vec<String> {
    SERIES
        .iter()
        .map(|(k, v)| format!("{k}:{}|c", v * (part + 1) as f64))
        .collect()
}

/// A consthash writing to `db` with a reader API on its own port.
async fn stack(db: &Db, dsn: &str) -> (Stack, String) {
    let port = free_port();
    let writer = format!(
        "{}[g.accumulator.api]\nlisten = \"127.0.0.1:{port}\"\nbase_path = \"/graphite\"\nlog_file = \"stderr\"\n",
        db.writer_toml(dsn, true)
    );
    let s = Stack::start(r#"times = ["5s:1h", "1m:2h"]"#, &writer, "").await;
    crate::binary::wait_listening(([127, 0, 0, 1], port).into()).await;
    (s, format!("http://127.0.0.1:{port}/graphite"))
}

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let body = r.text().await.expect("body");
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"));
    (status, v)
}

async fn post(url: &str, form: &[(&str, &str)]) -> Value {
    let r = reqwest::Client::new()
        .post(url)
        .form(form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    assert!(r.status().is_success(), "POST {url} {form:?}: {}", r.status());
    let body = r.text().await.expect("body");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("POST {url}: not JSON ({e}): {body}"))
}

/// `(text, leaf, expandable)` of a find answer, sorted.
fn nodes(v: &Value) -> BTreeSet<(String, i64, i64)> {
    v.as_array()
        .unwrap_or_else(|| panic!("a list: {v}"))
        .iter()
        .map(|n| {
            (
                n["text"].as_str().expect("text").to_string(),
                n["leaf"].as_i64().expect("leaf"),
                n["expandable"].as_i64().expect("expandable"),
            )
        })
        .collect()
}

/// A graphite render answer: target → (timestamp → value), nulls left out.
fn rendered(v: &Value) -> BTreeMap<String, BTreeMap<i64, f64>> {
    v.as_array()
        .unwrap_or_else(|| panic!("a list of series: {v}"))
        .iter()
        .map(|s| {
            let points = s["datapoints"]
                .as_array()
                .expect("datapoints")
                .iter()
                .filter_map(|p| Some((p[1].as_i64()?, p[0].as_f64()?)))
                .collect();
            (s["target"].as_str().expect("target").to_string(), points)
        })
        .collect()
}

async fn front_ends_read(db: Db, dsn: &str) {
    let (writer, reader1) = stack(&db, dsn).await;
    // a second consthash over the same store: front ends use both readers round-robin
    let (_other, reader2) = stack(&db, dsn).await;
    let mut bins: Vec<i64> = Vec::new();
    for part in 0..2 {
        early_in_interval(5).await;
        send_udp(writer.statsd, &sent(part)).await;
        let rows = wait_for(&format!("part {part} stored"), LONG, || async {
            let rows = db.rows(5).await?;
            if rows.len() == SERIES.len() * (part + 1) {
                Ok(rows)
            } else {
                Err(format!("{} rows", rows.len()))
            }
        })
        .await;
        bins = rows
            .iter()
            .map(|r| r.time)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
    }
    assert_eq!(bins.len(), 2, "two 5 s bins: {bins:?}");
    let expected = |key: &str| -> BTreeMap<i64, f64> {
        let v = SERIES.iter().find(|(k, _)| *k == key).expect("series").1;
        bins.iter().enumerate().map(|(i, &t)| (t, v * (i + 1) as f64)).collect()
    };
    let sum_of = |keys: &[&str]| -> BTreeMap<i64, f64> {
        let mut m = BTreeMap::new();
        for k in keys {
            for (t, v) in expected(k) {
                *m.entry(t).or_insert(0.0) += v;
            }
        }
        m
    };
    let (from, until) = ((bins[0] - 30).to_string(), (bins[1] + 10).to_string());
    let window = format!("&from={from}&until={until}&format=json");

    reader_direct(&reader1, &reader2, &bins).await;

    for kind in ["api", "web"] {
        let fe = FrontEnd::start(kind, &[reader1.clone(), reader2.clone()]).await;
        let what = format!("graphite-{kind}");
        let (_, top) = get(&fe.url("/metrics/find?query=*")).await;
        assert!(nodes(&top).contains(&("app".into(), 0, 1)), "{what}: top level {top}");
        let (_, level) = get(&fe.url("/metrics/find?query=app.*")).await;
        let texts: BTreeSet<String> = nodes(&level).into_iter().map(|n| n.0).collect();
        assert_eq!(
            texts,
            ["db1", "web1", "web2"].map(String::from).into(),
            "{what}: {level}"
        );
        assert!(
            nodes(&level).contains(&("web1".into(), 0, 1)),
            "{what}: web1 can be opened: {level}"
        );
        // the leaf-and-branch name: its children are listed and it renders as a series
        let (_, below) = get(&fe.url("/metrics/find?query=app.web1.*")).await;
        assert_eq!(nodes(&below), [("cpu".to_string(), 1, 0)].into(), "{what}: {below}");
        let (_, r) = get(&fe.url(&format!("/render?target=app.web1{window}"))).await;
        assert_eq!(rendered(&r)["app.web1"], expected("app.web1"), "{what}: {r}");

        if kind == "api" {
            let (_, e) = get(&fe.url("/metrics/expand?query=app.*.cpu")).await;
            assert_eq!(
                e["results"],
                serde_json::json!(["app.db1.cpu", "app.web1.cpu", "app.web2.cpu"]),
                "{what}: {e}"
            );
        }
        let (_, r) = get(&fe.url(&format!("/render?target=sumSeries(app.*.cpu){window}"))).await;
        assert_eq!(
            rendered(&r)["sumSeries(app.*.cpu)"],
            sum_of(&["app.web1.cpu", "app.web2.cpu", "app.db1.cpu"]),
            "{what}: {r}"
        );
        let (_, r) = get(&fe.url(&format!("/render?target=app.{{web1,db1}}.cpu{window}"))).await;
        let got = rendered(&r);
        assert_eq!(got.len(), 2, "{what}: {r}");
        assert_eq!(got["app.web1.cpu"], expected("app.web1.cpu"), "{what}: {r}");
        assert_eq!(got["app.db1.cpu"], expected("app.db1.cpu"), "{what}: {r}");
        let (_, r) = get(&fe.url(&format!("/render?target=sumSeries(app.web[12].cpu){window}"))).await;
        assert_eq!(
            rendered(&r)["sumSeries(app.web[12].cpu)"],
            sum_of(&["app.web1.cpu", "app.web2.cpu"]),
            "{what}: {r}"
        );

        if kind == "api" {
            // Grafana's Graphite datasource: POST /render (form) with maxDataPoints, POST /metrics/find.
            let r = post(
                &fe.url("/render"),
                &[
                    ("target", "sumSeries(app.*.cpu)"),
                    ("from", &from),
                    ("until", &until),
                    ("format", "json"),
                    ("maxDataPoints", "1000"),
                ],
            )
            .await;
            assert_eq!(
                rendered(&r)["sumSeries(app.*.cpu)"],
                sum_of(&["app.web1.cpu", "app.web2.cpu", "app.db1.cpu"]),
                "grafana render: {r}"
            );
            let r = post(
                &fe.url("/render"),
                &[
                    ("target", "app.web2.cpu"),
                    ("from", &from),
                    ("until", &until),
                    ("format", "json"),
                    ("maxDataPoints", "2"),
                ],
            )
            .await;
            let points = r[0]["datapoints"].as_array().expect("datapoints");
            assert!(
                !points.is_empty() && points.len() <= 2,
                "consolidated to maxDataPoints: {r}"
            );
            let f = post(&fe.url("/metrics/find"), &[("query", "app.*")]).await;
            assert_eq!(nodes(&f), nodes(&level), "POST find = GET find");
        }
    }
    writer
        .child
        .wait_log("an access-log line per request", |l| {
            l.contains("\"GET /graphite/paths?query=") && l.contains(" 200 ")
        })
        .await;
}

/// The reader's own answers: both readers agree; leaf-and-branch listed twice; `[]` for no match; JSON errors;
/// duplicate slashes; long request lines.
async fn reader_direct(r1: &str, r2: &str, bins: &[i64]) {
    for q in [
        "/paths?query=app.*",
        "/paths?query=*",
        "/find?query=app.web%5B12%5D.cpu",
        "/expand?query=app.%7Bweb1,db1%7D.*",
    ] {
        assert_eq!(get(&format!("{r1}{q}")).await, get(&format!("{r2}{q}")).await, "{q}");
    }
    let (_, level) = get(&format!("{r1}/paths?query=app.*")).await;
    let web1: Vec<&Value> = level
        .as_array()
        .expect("list")
        .iter()
        .filter(|n| n["path"] == "app.web1")
        .collect();
    assert_eq!(web1.len(), 2, "app.web1 as leaf and as branch: {level}");
    assert_eq!((web1[0]["leaf"].as_i64(), web1[1]["leaf"].as_i64()), (Some(1), Some(0)));
    assert_eq!(
        get(&format!("{r1}/paths?query=no.such.*")).await,
        (200, serde_json::json!([]))
    );
    assert_eq!(
        get(&format!("{r1}/paths")).await,
        get(&format!("{r1}/paths?query=*")).await,
        "no query is *"
    );
    let (status, err) = get(&format!("{r1}/elsewhere")).await;
    assert_eq!(status, 404);
    assert!(
        err["error"].as_str().expect("error").starts_with("Nothing here"),
        "{err}"
    );
    let (status, err) = get(&format!("{r1}/metrics")).await;
    assert_eq!((status, err["error"].as_str()), (400, Some("Target is required")));
    let (status, _) = get(&format!("{r1}/metrics?path=a&from=-2days")).await;
    assert_eq!(status, 400, "a bad time");

    let (from, to) = (bins[0] - 10, bins[1] + 10);
    let q = format!("/metrics?path=app.web1.cpu&path=app.db1.cpu&from={from}&to={to}");
    let (_, m) = get(&format!("{r1}{q}")).await;
    assert_eq!(get(&format!("{r2}{q}")).await.1, m, "both readers render the same");
    let step = m["step"].as_i64().expect("step");
    let slots = ((m["to"].as_i64().expect("to") - m["from"].as_i64().expect("from")) / step) as usize;
    assert_eq!(step, 5);
    for (key, v) in [("app.web1.cpu", 1.0), ("app.db1.cpu", 100.0)] {
        let values = m["series"][key].as_array().unwrap_or_else(|| panic!("{key} in {m}"));
        assert_eq!(values.len(), slots, "{m}");
        let filled: Vec<(i64, f64)> = values
            .iter()
            .enumerate()
            .filter_map(|(i, x)| Some((m["from"].as_i64()? + step * i as i64, x.as_f64()?)))
            .collect();
        assert_eq!(filled, [(bins[0], v), (bins[1], 2.0 * v)], "{key}: {m}");
    }
    // a long request line, as graphite-api sends for many leaves, and duplicate slashes
    let many: String = (0..1500).map(|i| format!("&path=app.no{i}.cpu")).collect();
    assert!(many.len() > 16 * 1024);
    let base = r1.replacen("/graphite", "//graphite/", 1);
    let (status, m) = get(&format!("{base}/metrics?from={from}&to={to}{many}&path=app.web2.cpu")).await;
    assert_eq!(status, 200);
    assert_eq!(m["series"].as_object().expect("series").len(), 1501);
    assert_eq!(
        m["series"]["app.no7.cpu"]
            .as_array()
            .map(|a| a.iter().all(Value::is_null)),
        Some(true)
    );
    assert_eq!(
        m["series"]["app.web2.cpu"]
            .as_array()
            .map(|a| a.iter().filter(|x| x.is_number()).count()),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphite_api_and_graphite_web_read_what_consthash_wrote_to_cassandra() {
    let addr = services::cassandra();
    front_ends_read(Db::cassandra(addr, &unique("reader")).await, addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphite_api_and_graphite_web_read_what_consthash_wrote_to_mariadb() {
    let dsn = services::mariadb();
    front_ends_read(Db::mysql(dsn, &unique("reader")).await, dsn).await;
}
