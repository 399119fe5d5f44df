//! The reader's HTTP server (spec §12): routes under `base_path`, parameters from the query string and POST
//! forms, JSON replies (errors too, as `{"error": …}`), and one access-log line per request.
//!
//! Routes (each also with a trailing `/`; duplicate slashes collapse): `find` = `paths` (a JSON list of nodes; a
//! name that is a series and a prefix is listed twice, as leaf and as branch), `expand` (`{"results": […]}`),
//! `metrics` = `render` (`{"from", "to", "step", "series": {leaf: [v | null, …]}}`, for `path=` and `target=`
//! alike: exactly `(to − from) / step` values per series).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::glob::Glob;
use super::query::{parse_time, slots, window, Column};
use super::Reader;

/// Connections served at once.
const CONNECTIONS: usize = 256;
/// Most values (series × slots) one render answers: a glob over a million series, or years at the finest bin,
/// is refused instead of read.
const MAX_VALUES: i64 = 10_000_000;
/// Largest POST form accepted.
const MAX_BODY: usize = 1 << 20;

type Resp = Response<Full<Bytes>>;

/// Where access-log lines go.
pub struct AccessLog(Option<Mutex<Box<dyn Write + Send>>>);

impl AccessLog {
    /// `stdout`, `stderr`, `none`, or a file path (created if missing, appended to).
    pub fn open(target: &str) -> std::io::Result<AccessLog> {
        let out: Option<Box<dyn Write + Send>> = match target {
            "none" => None,
            "stdout" => Some(Box::new(std::io::stdout())),
            "stderr" => Some(Box::new(std::io::stderr())),
            path => Some(Box::new(std::io::LineWriter::new(
                std::fs::OpenOptions::new().create(true).append(true).open(path)?,
            ))),
        };
        Ok(AccessLog(out.map(Mutex::new)))
    }

    /// `YYYY/MM/DD HH:MM:SS <Host> <RemoteAddr> "<METHOD> <URI> <PROTO>" <status> <bytes> "<User-Agent>" <latency>`
    fn log(&self, head: &RequestHead, peer: SocketAddr, status: StatusCode, bytes: usize, took: std::time::Duration) {
        let Some(out) = &self.0 else { return };
        let line = format!(
            "{} {} {peer} \"{} {} {:?}\" {} {bytes} \"{}\" {took:?}\n",
            jiff::Zoned::now().strftime("%Y/%m/%d %H:%M:%S"),
            head.host,
            head.method,
            head.uri,
            head.version,
            status.as_u16(),
            head.agent,
        );
        let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = out.write_all(line.as_bytes()) {
            tracing::debug!(error = %e, "reader access log: write failed");
        }
    }
}

/// What the access log needs of a request, taken before its body is read.
struct RequestHead {
    method: Method,
    uri: String,
    version: hyper::Version,
    host: String,
    agent: String,
}

/// Serves `reader` on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    reader: Arc<Reader>,
    log: Arc<AccessLog>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let handler = move |req: Request<Incoming>, peer: SocketAddr| {
        let (reader, log) = (reader.clone(), log.clone());
        async move {
            let started = Instant::now();
            let header = |name| {
                req.headers()
                    .get(name)
                    .and_then(|v: &HeaderValue| v.to_str().ok())
                    .unwrap_or("-")
                    .to_string()
            };
            // taken only when there is a log to write it to
            let head = log.0.is_some().then(|| RequestHead {
                method: req.method().clone(),
                uri: req.uri().to_string(),
                version: req.version(),
                host: header(HOST),
                agent: header(USER_AGENT),
            });
            let resp = handle(&reader, req).await;
            let stats = &reader.stats;
            stats.requests.fetch_add(1, Relaxed);
            if resp.status().is_client_error() {
                stats.client_errors.fetch_add(1, Relaxed);
            } else if resp.status().is_server_error() {
                stats.store_errors.fetch_add(1, Relaxed);
            }
            if let Some(head) = &head {
                let bytes = hyper::body::Body::size_hint(resp.body()).exact().unwrap_or(0) as usize;
                log.log(head, peer, resp.status(), bytes, started.elapsed());
            }
            resp
        }
    };
    let limit = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS));
    crate::accept::serve_http("reader", listener, limit, handler, tracker, stop).await;
}

fn reply(status: StatusCode, body: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    let cache = if status.is_success() {
        "public, max-age=60, cache"
    } else {
        "private, max-age=0, no-cache"
    };
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, text: impl Into<String>) -> Resp {
    reply(status, &json!({ "error": text.into() }))
}

/// The routes of §12.
enum Route {
    Find,
    Expand,
    Render,
}

/// The route of `path` under `base` (which starts and ends with `/`), duplicate slashes collapsed.
fn route(path: &str, base: &str) -> Option<Route> {
    let mut clean = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && clean.ends_with('/')) {
            clean.push(c);
        }
    }
    let rest = clean.strip_prefix(base)?;
    match rest.trim_end_matches('/') {
        "find" | "paths" => Some(Route::Find),
        "expand" => Some(Route::Expand),
        "metrics" | "render" => Some(Route::Render),
        _ => None,
    }
}

/// The parameters of the query string, then of a POST form body, in order.
async fn params(req: Request<Incoming>) -> Result<Vec<(String, String)>, Resp> {
    let mut out: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    if req.method() == Method::POST {
        let body = Limited::new(req.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| error(StatusCode::PAYLOAD_TOO_LARGE, format!("request body: {e}")))?
            .to_bytes();
        out.extend(url::form_urlencoded::parse(&body).into_owned());
    }
    Ok(out)
}

async fn handle(reader: &Reader, req: Request<Incoming>) -> Resp {
    let Some(route) = route(req.uri().path(), &reader.base_path) else {
        let b = &reader.base_path;
        return error(
            StatusCode::NOT_FOUND,
            format!("Nothing here .. try {b}find or {b}render or {b}expand"),
        );
    };
    if req.method() != Method::GET && req.method() != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "GET or POST");
    }
    let params = match params(req).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let all = |name: &str| values(&params, name);
    match route {
        Route::Find | Route::Expand => {
            let query = all("query").into_iter().find(|q| !q.trim().is_empty()).unwrap_or("*");
            let glob = match Glob::new(query) {
                Ok(g) => g,
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            };
            let nodes = match reader.find(&glob, query.trim()).await {
                Ok(n) => n,
                Err(e) => return unavailable(reader, e),
            };
            if let Route::Expand = route {
                let mut results: Vec<&str> = nodes.iter().map(|n| n.path.as_str()).collect();
                results.dedup();
                return reply(StatusCode::OK, &json!({ "results": results }));
            }
            let mut list = Vec::with_capacity(nodes.len());
            for n in &nodes {
                let text = n.path.rsplit('.').next().unwrap_or(&n.path);
                let entry = |leaf: bool| {
                    let (l, more) = if leaf { (1, 0) } else { (0, 1) };
                    json!({"path": n.path, "text": text, "id": n.path, "leaf": l, "expandable": more, "allowChildren": more})
                };
                if n.leaf {
                    list.push(entry(true));
                }
                if n.branch {
                    list.push(entry(false));
                }
            }
            reply(StatusCode::OK, &Value::Array(list))
        }
        Route::Render => {
            let mut targets: Vec<String> = all("target").iter().flat_map(|t| split_targets(t)).collect();
            targets.extend(
                all("path")
                    .iter()
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty()),
            );
            if targets.is_empty() {
                return error(StatusCode::BAD_REQUEST, "Target is required");
            }
            let time = |name: &str, default: &str| {
                let v = all(name).into_iter().find(|v| !v.trim().is_empty()).unwrap_or(default);
                parse_time(v, now())
            };
            let (from, to) = match (time("from", "-1h"), time("to", "now")) {
                (Ok(f), Ok(t)) => (f, t),
                (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, e),
            };
            render(reader, &targets, from, to).await
        }
    }
}

/// Every value of parameter `name`.
fn values<'a>(params: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    params
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn unavailable(reader: &Reader, e: String) -> Resp {
    if reader.store_errors.allow().is_some() {
        tracing::warn!(group = %reader.group, error = %e, "reader: store read failed");
    }
    error(StatusCode::SERVICE_UNAVAILABLE, e)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Targets joined by `,` are split at the commas outside `{…}` (which belong to a glob).
fn split_targets(t: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0usize);
    for c in t.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

async fn render(reader: &Reader, targets: &[String], from: i64, to: i64) -> Resp {
    let (start, end, step) = window(&reader.bins, from, to, now());
    let mut leaves: Vec<String> = Vec::new();
    for t in targets {
        let glob = match Glob::new(t) {
            Ok(g) => g,
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        };
        if glob.is_literal() {
            leaves.push(glob.prefix().to_string());
            continue;
        }
        match reader.find(&glob, t).await {
            Ok(nodes) => leaves.extend(nodes.into_iter().filter(|n| n.leaf).map(|n| n.path)),
            Err(e) => return unavailable(reader, e),
        }
    }
    leaves.sort();
    leaves.dedup();
    let values = leaves.len() as i64 * ((end - start) / step).max(0);
    if values > MAX_VALUES {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "{} series x {} steps of {step} s is more than {MAX_VALUES} values: narrow the targets or the time range",
                leaves.len(),
                (end - start) / step
            ),
        );
    }
    let mut series = Map::new();
    if end > start {
        let read = reader.points(&leaves, step, start, end).await;
        let mut failed = None;
        for (path, points) in leaves.iter().zip(read) {
            match points {
                Ok(points) => {
                    let values = slots(&points, Column::of(path), start, end, step);
                    series.insert(path.clone(), json!(values));
                }
                Err(e) => {
                    reader.stats.failed_series.fetch_add(1, Relaxed);
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            if series.is_empty() {
                return unavailable(reader, e);
            }
            if reader.store_errors.allow().is_some() {
                tracing::warn!(group = %reader.group, error = %e, "reader: series omitted, its read failed");
            }
        }
    }
    reply(
        StatusCode::OK,
        &json!({ "from": start, "to": end, "step": step, "series": series }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_under_the_base_path() {
        assert!(matches!(route("/graphite/paths", "/graphite/"), Some(Route::Find)));
        assert!(matches!(route("/graphite//paths", "/graphite/"), Some(Route::Find)));
        assert!(matches!(
            route("//graphite/metrics/", "/graphite/"),
            Some(Route::Render)
        ));
        assert!(matches!(route("/find", "/"), Some(Route::Find)));
        assert!(matches!(route("/expand/", "/"), Some(Route::Expand)));
        assert!(matches!(route("/render", "/"), Some(Route::Render)));
        assert!(route("/graphite/other", "/graphite/").is_none());
        assert!(route("/paths", "/graphite/").is_none());
    }

    #[test]
    fn targets_split_outside_braces() {
        assert_eq!(split_targets("a.b, c.{d,e}.f ,,g"), ["a.b", "c.{d,e}.f", "g"]);
    }
}
