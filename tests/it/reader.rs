//! The reader API without a database: routes, JSON errors for every failure, and its counters in `/metrics`.
//! (What it reads from Cassandra and MySQL, behind graphite-api and graphite-web, is in `tests/storage/reader.rs`.)

use serde_json::Value;

use crate::{metric_value, start_with_prereg};

async fn call(method: &str, url: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .request(method.parse().expect("method"), url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = r.status().as_u16();
    assert_eq!(
        r.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{method} {url}"
    );
    let body = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {body}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_over_a_store_it_cannot_read_answers_json_errors_and_counts_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = "[default]\ninternal_health_server_listen = \"127.0.0.1:0\"\n\
                [in]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"statsd\"\n\
                [[in.servers]]\nservers = [\"tcp://127.0.0.1:9\"]\n";
    let prereg = format!(
        "[g]\nlisten_server = \"in\"\ndefault_backend = \"in\"\n[[g.map]]\nnoop = \"true\"\n\
         [g.accumulator]\nbackend = \"BLACKHOLE\"\ninput_format = \"statsd\"\noutput_format = \"graphite\"\n\
         [g.accumulator.writer]\nmetrics = {{ driver = \"file\", dsn = \"{}\" }}\n\
         [g.accumulator.api]\nlisten = \"127.0.0.1:0\"\nbase_path = \"graphite\"\nlog_file = \"none\"\n",
        dir.path().join("bins").display()
    );
    let relay = start_with_prereg(main, &prereg).await;
    let r = format!(
        "http://{}/graphite",
        relay.reader_addr("g").expect("the reader is bound")
    );
    let unsupported = Value::from("reader not implemented for driver file");
    assert_eq!(
        call("GET", &format!("{r}/paths?query=*")).await,
        (503, serde_json::json!({ "error": unsupported }))
    );
    assert_eq!(
        call("GET", &format!("{r}//find/")).await.0,
        503,
        "duplicate slashes, trailing slash"
    );
    assert_eq!(call("POST", &format!("{r}/render?target=a.b")).await.0, 503);
    assert_eq!(call("GET", &format!("{r}/expand?query=a.*")).await.0, 503);
    let (status, e) = call("GET", &format!("{r}/metrics")).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("Target is required")));
    let (status, e) = call("GET", &format!("{r}/metrics?target=a.b&from=-1w")).await;
    assert_eq!(status, 400);
    assert!(e["error"].as_str().expect("error").contains("-1w"), "{e}");
    let (status, e) = call("GET", &format!("{r}/metrics?target=a.b&from=-10y")).await;
    assert_eq!(status, 400, "ten years at 5 s");
    assert!(e["error"].as_str().expect("error").contains("narrow"), "{e}");
    let (status, e) = call("GET", &format!("{r}/paths?query=a.%7Bb")).await;
    assert_eq!(
        (status, e["error"].as_str().map(|s| s.contains("unclosed {"))),
        (400, Some(true))
    );
    let (status, e) = call("GET", &format!("{r}/elsewhere")).await;
    assert_eq!(status, 404);
    assert_eq!(
        e["error"],
        "Nothing here .. try /graphite/find or /graphite/render or /graphite/expand"
    );
    assert_eq!(call("DELETE", &format!("{r}/paths")).await.0, 405);

    let admin = relay.admin_addr().expect("admin");
    let body = crate::get_body(format!("http://{admin}/metrics")).await;
    let value = |family: &str| metric_value(&body, &format!("{family}{{group=\"g\"}}"));
    assert_eq!(value("consthash_reader_requests_total"), Some(10), "{body}");
    assert_eq!(value("consthash_reader_store_errors_total"), Some(4));
    assert_eq!(value("consthash_reader_client_errors_total"), Some(6));
    assert_eq!(
        value("consthash_reader_failed_series_total"),
        Some(1),
        "the render's one series"
    );
    relay.shutdown().await;
}
