//! Request handling of the admin/stats server; see the module table in `api`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};

use super::guard::{cross_site, jsonp_callback_ok, Hosts};
use super::stats::{accumulator_report, History, TICK};
use crate::accumulator::Accumulator;
use crate::backend::NewMember;
use crate::config::{DestUrl, IpCidr, Listen, Target};
use crate::reader::ReaderStats;
use crate::ring::{default_hashkey, validate_hashkey, Ring};
use crate::section::Section;

/// Most connections the admin server serves at once.
const ADMIN_CONNECTIONS: usize = 256;

/// Synthetic keys used to estimate how much of the key space a dry-run change moves.
pub(super) const DRY_RUN_SAMPLE: usize = 100_000;

/// One section as the admin server reports it.
#[derive(Clone)]
pub struct SectionView {
    pub section: Arc<Section>,
    /// Its per-tick history (`*_list`, `current_*`), kept across reloads.
    pub history: Arc<History>,
    /// Its accumulator, if it has one.
    pub accumulator: Option<Arc<Accumulator>>,
    /// Its listener as configured, and the address it is bound to (`None` for unix sockets and `backend_only`).
    pub listen: Listen,
    pub bound: Option<SocketAddr>,
}

/// What `POST /reload` hands whoever carries reloads out: a reply channel for the result (a summary, or every
/// error).
pub type ReloadRequest = oneshot::Sender<Result<String, String>>;

/// What the admin server serves.
pub struct AdminState {
    /// In config order; replaced whole by a reload.
    pub sections: ArcSwap<Vec<SectionView>>,
    /// Where `POST /reload` asks for one (`None`: this relay cannot reload, the answer is 501).
    pub reload: Option<mpsc::Sender<ReloadRequest>>,
    pub started: Instant,
    pub index_dir: Option<PathBuf>,
    pub allow: Vec<IpCidr>,
    /// The `Host` names it answers to.
    pub hosts: Hosts,
    /// Each reader API's group and counters.
    pub readers: Vec<(String, Arc<ReaderStats>)>,
}

impl AdminState {
    fn view(&self, name: &str) -> Option<SectionView> {
        self.sections.load().iter().find(|v| v.section.name == name).cloned()
    }

    /// The sections as they are now.
    pub fn views(&self) -> Arc<Vec<SectionView>> {
        self.sections.load_full()
    }

    fn server_stats(&self, v: &SectionView) -> Value {
        let mut stats = v.history.server_stats(&v.section, self.started.elapsed());
        if let (Some(acc), Value::Object(m)) = (&v.accumulator, &mut stats) {
            m.insert("writers".into(), crate::api::stats::writers(acc));
        }
        stats
    }
}

type Resp = Response<Full<Bytes>>;

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("private, max-age=0, no-cache"));
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

fn text(status: StatusCode, body: impl Into<String>) -> Resp {
    respond(status, "text/plain; charset=utf-8", body.into())
}

fn json_resp(v: &Value) -> Resp {
    respond(StatusCode::OK, "application/json", v.to_string())
}

/// Serves until `stop`. Every `TICK` the per-section histories advance.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AdminState>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    tracker.spawn(advance_histories(state.clone(), stop.clone()));
    let handler = move |req, peer: SocketAddr| {
        let state = state.clone();
        async move { handle(&state, req, peer).await }
    };
    let limit = Arc::new(tokio::sync::Semaphore::new(ADMIN_CONNECTIONS));
    crate::accept::serve_http("admin", listener, limit, handler, tracker, stop).await;
}

async fn advance_histories(state: Arc<AdminState>, stop: CancellationToken) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        for v in state.views().iter() {
            v.history.tick(&v.section);
        }
    }
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

async fn handle(state: &AdminState, req: Request<Incoming>, peer: SocketAddr) -> Resp {
    if !state.hosts.allow(req.headers()) {
        return text(
            StatusCode::FORBIDDEN,
            "Forbidden: unknown Host (add it to internal_health_server_hosts)",
        );
    }
    let path = req.uri().path().to_string();
    match &path[..] {
        "/ops/status" | "/ping" | "/status" => return text(StatusCode::OK, "ok"),
        "/stats" => return all_stats(state, &req),
        "/hashcheck" => {
            return match query(&req).get("key") {
                Some(key) => json_resp(&hashcheck(state.views().iter().map(|v| &*v.section), key.as_bytes())),
                None => text(StatusCode::NOT_FOUND, "Please provide a 'key' to process"),
            }
        }
        "/servers" => return json_resp(&endpoints(state)),
        "/overview" => return json_resp(&super::status::overview(state)),
        "/placement" => return json_resp(&super::status::placement(state)),
        "/reload" => return reload(state, req, peer.ip()).await,
        "/" | "/index.html" if state.index_dir.is_none() => {
            let mut r = respond(StatusCode::OK, "text/html; charset=utf-8", super::status::PAGE);
            // The page's own inline script and styles, and requests to this server only.
            r.headers_mut().insert(
                CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                     form-action 'none'; frame-ancestors 'none'",
                ),
            );
            return r;
        }
        "/metrics" => {
            let body = super::metrics::render(&state.views(), &state.readers, state.started.elapsed());
            return respond(StatusCode::OK, "text/plain; version=0.0.4", body);
        }
        _ => {}
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (name, route) = match parts.as_slice() {
        [name] | [name, ""] => match state.view(name) {
            Some(v) => return json_resp(&state.server_stats(&v)),
            None => return index(state).await,
        },
        [name, rest @ ..] => match SectionRoute::parse(rest) {
            Some(route) => (name, route),
            None => return index(state).await,
        },
        [] => return index(state).await,
    };
    let Some(v) = state.view(name) else {
        return text(StatusCode::BAD_REQUEST, "Invalid server name");
    };
    let v = &v;
    match route {
        SectionRoute::Stats => json_resp(&state.server_stats(v)),
        SectionRoute::Status if v.section.backend.load().rings.iter().any(|r| !r.is_empty()) => {
            text(StatusCode::OK, "ok")
        }
        SectionRoute::Status => text(StatusCode::SERVICE_UNAVAILABLE, "all servers down"),
        SectionRoute::Accumulator => match &v.accumulator {
            Some(acc) => json_resp(&accumulator_report(acc).await),
            None => text(StatusCode::NOT_IMPLEMENTED, "No accumulators defined"),
        },
        SectionRoute::AddServer => match mutation(state, &v.section, req, peer.ip()).await {
            Ok(m) if v.listen.receives(&m.server.target, v.bound) => bad(format!(
                "Server {} is this section's own listener: every line would loop",
                m.server.raw
            )),
            Ok(m) => add_server(&v.section, m),
            Err(refused) => refused,
        },
        SectionRoute::PurgeServer => match mutation(state, &v.section, req, peer.ip()).await {
            Ok(m) => purge_server(&v.section, m),
            Err(refused) => refused,
        },
    }
}

/// `/stats` (`?jsonp=cb` wraps it in a call).
fn all_stats(state: &AdminState, req: &Request<Incoming>) -> Resp {
    let mut m = Map::new();
    for v in state.views().iter() {
        m.insert(v.section.name.clone(), state.server_stats(v));
    }
    let body = Value::Object(m).to_string();
    match query(req).get("jsonp").filter(|cb| !cb.is_empty()) {
        Some(cb) if !jsonp_callback_ok(cb) => bad("Invalid jsonp callback: a JavaScript identifier is required"),
        Some(cb) => respond(StatusCode::OK, "application/javascript", format!("{cb}({body})")),
        None => respond(StatusCode::OK, "application/json", body),
    }
}

/// `/servers`: per section, its endpoint paths.
fn endpoints(state: &AdminState) -> Value {
    const PATHS: [&str; 7] = [
        "",
        "/ping",
        "/ops/status",
        "/stats",
        "/addserver",
        "/purgeserver",
        "/accumulator",
    ];
    let mut m = Map::new();
    for v in state.views().iter() {
        let n = &v.section.name;
        m.insert(
            n.clone(),
            PATHS.iter().map(|p| format!("/{n}{p}")).collect::<Vec<_>>().into(),
        );
    }
    Value::Object(m)
}

/// The routes under `/<section>/`.
enum SectionRoute {
    Stats,
    Status,
    Accumulator,
    AddServer,
    PurgeServer,
}

impl SectionRoute {
    fn parse(rest: &[&str]) -> Option<SectionRoute> {
        Some(match rest {
            ["stats"] | ["stats", ""] => SectionRoute::Stats,
            ["ops", "status"] | ["ops", "status", ""] | ["ping"] | ["status"] => SectionRoute::Status,
            ["accumulator"] => SectionRoute::Accumulator,
            ["addserver"] => SectionRoute::AddServer,
            ["purgeserver"] => SectionRoute::PurgeServer,
            _ => return None,
        })
    }
}

async fn index(state: &AdminState) -> Resp {
    let Some(dir) = &state.index_dir else {
        return text(StatusCode::NOT_FOUND, "Not found");
    };
    match tokio::fs::read(dir.join("index.html")).await {
        Ok(body) => respond(StatusCode::OK, "text/html; charset=utf-8", body),
        Err(_) => text(StatusCode::NOT_FOUND, "Not found"),
    }
}

/// `/hashcheck`: per section, the name it forwards for metric `name` and the key it hashes (its name rules,
/// §7.8), the destinations of every ring for that key and the key's ring position (§7.6).
pub fn hashcheck<'a>(sections: impl IntoIterator<Item = &'a Section>, name: &[u8]) -> Value {
    let mut m = Map::new();
    let mut ids = Vec::new();
    for s in sections {
        let check = s.splitter.apply_names(name);
        let key = &check.key[..];
        let set = s.backend.load();
        let (mut to, mut hv) = (Vec::new(), Vec::new());
        for ring in &set.rings {
            ring.get_n(key, set.replicas, &mut ids);
            for &id in &ids {
                to.push(Value::from(set.dests[id as usize].url.raw.clone()));
                hv.push(Value::from(ring.position(key)));
            }
        }
        let all_empty = set.rings.iter().all(Ring::is_empty);
        m.insert(
            s.name.clone(),
            json!({
                "to_servers": if all_empty { Value::Null } else { Value::Array(to) },
                "name": String::from_utf8_lossy(&check.name),
                "hash_key": String::from_utf8_lossy(key),
                "hash_value": hv,
            }),
        );
    }
    Value::Object(m)
}

fn allowed(state: &AdminState, ip: IpAddr) -> bool {
    state.allow.iter().any(|c| c.contains(ip))
}

fn bad(msg: impl Into<String>) -> Resp {
    text(StatusCode::BAD_REQUEST, msg)
}

/// The parameters of an addserver or purgeserver request (§11.1), from the query string and a form body.
struct Mutation {
    params: HashMap<String, String>,
    server: DestUrl,
    ring: usize,
    dry_run: bool,
}

/// Checks method, client and the common parameters of a ring change; `Err` is the refusal to send.
/// Refuses a change request that is not a POST or PUT, comes from a client outside
/// `internal_health_server_admin_allow`, or could have been sent by a web page.
fn refuse_change(state: &AdminState, req: &Request<Incoming>, ip: IpAddr) -> Option<Resp> {
    if req.method() != Method::POST && req.method() != Method::PUT {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed: use POST or PUT");
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("POST, PUT"));
        return Some(r);
    }
    if !allowed(state, ip) {
        return Some(text(
            StatusCode::FORBIDDEN,
            format!("Forbidden: {ip} may not change the configuration"),
        ));
    }
    cross_site(req.headers()).map(|why| text(StatusCode::FORBIDDEN, format!("Forbidden: {why}")))
}

/// `POST /reload`: re-read `--config` and `--prereg` and apply them (what SIGHUP does); `200` with a summary,
/// or `400` with every error while the running configuration stays.
async fn reload(state: &AdminState, req: Request<Incoming>, ip: IpAddr) -> Resp {
    if let Some(refused) = refuse_change(state, &req, ip) {
        return refused;
    }
    let Some(requests) = &state.reload else {
        return text(
            StatusCode::NOT_IMPLEMENTED,
            "this relay cannot reload (it was not started from files)",
        );
    };
    let (tx, rx) = oneshot::channel();
    if requests.send(tx).await.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match rx.await {
        Ok(Ok(summary)) => text(StatusCode::OK, format!("reloaded: {summary}\n")),
        Ok(Err(errors)) => text(
            StatusCode::BAD_REQUEST,
            format!("reload refused, the running configuration stays:\n{errors}\n"),
        ),
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}

async fn mutation(state: &AdminState, s: &Section, req: Request<Incoming>, ip: IpAddr) -> Result<Mutation, Resp> {
    if let Some(refused) = refuse_change(state, &req, ip) {
        return Err(refused);
    }
    let mut params = query(&req);
    let form = req
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/x-www-form-urlencoded"));
    if let Ok(body) = Limited::new(req.into_body(), 64 * 1024).collect().await {
        if form {
            params.extend(url::form_urlencoded::parse(&body.to_bytes()).into_owned());
        }
    }
    let Some(server) = params.get("server").and_then(|u| DestUrl::parse(u).ok()) else {
        return Err(bad("Not a valid server URL"));
    };
    let ring = match params.get("replica").map(|r| r.trim().parse::<i64>()) {
        None => 0,
        Some(Err(_)) => return Err(bad("Replica index is not an int")),
        Some(Ok(r)) if r < 0 => return Err(bad("Replica index Too small")),
        Some(Ok(r)) if r as usize >= s.backend.members().len() => return Err(bad("Replica index Too large")),
        Some(Ok(r)) => r as usize,
    };
    let dry_run = params
        .get("dry_run")
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
    Ok(Mutation {
        params,
        server,
        ring,
        dry_run,
    })
}

/// `/<s>/addserver` (§11.1).
fn add_server(s: &Section, m: Mutation) -> Resp {
    let Mutation {
        params,
        server,
        ring,
        dry_run,
    } = m;
    let check = match params.get("check_server").filter(|c| !c.is_empty()) {
        None => server.clone(),
        Some(c) => match DestUrl::parse(c) {
            Err(_) => return bad("Not a valid Check server URL"),
            Ok(u) if !matches!(u.target, Target::Tcp(_) | Target::Http(_) | Target::Https(_)) => {
                return bad("Check server can only be TCP or HTTP")
            }
            Ok(u) => u,
        },
    };
    // The ring identity: given, or derived from the URL as at start-up (spec §7.5).
    let kind = s.backend.spec().kind;
    let hashkey = match params.get("hashkey").filter(|h| !h.is_empty()) {
        Some(h) => h.clone(),
        None if kind.is_peer() => match server.host_port() {
            Some(hp) => default_hashkey(&kind, &hp),
            None => return bad("Not a valid hashkey: this ring needs a host:port member"),
        },
        None => server.raw.clone(),
    };
    if let Err(e) = validate_hashkey(&kind, &hashkey) {
        return bad(format!("Not a valid hashkey: {e}"));
    }
    if dry_run {
        // The new member gets the next destination index (purged destinations keep theirs).
        let id = s.backend.destinations().len() as u32;
        return json_resp(&dry_run_report(s, "addserver", &server.raw, ring, |lists| {
            lists[ring].push((hashkey, id));
        }));
    }
    let new = NewMember {
        url: server.clone(),
        check,
        hashkey,
    };
    match s.backend.add_server(ring, new) {
        Ok(changed) => {
            if changed {
                tracing::warn!(section = %s.name, server = %server.raw, ring, "server added through the API");
            }
            text(StatusCode::OK, format!("Server {} Added", server.raw))
        }
        Err(e) => bad(e.to_string()),
    }
}

/// `/<s>/purgeserver` (§11.1).
fn purge_server(s: &Section, m: Mutation) -> Resp {
    let Mutation {
        server, ring, dry_run, ..
    } = m;
    if dry_run {
        let dests = s.backend.destinations();
        let url = server.raw.clone();
        return json_resp(&dry_run_report(s, "purgeserver", &url, ring, |lists| {
            lists[ring].retain(|(_, d)| dests.get(*d as usize).is_none_or(|x| x.url.raw != url));
        }));
    }
    match s.backend.purge_server(ring, &server.raw) {
        Ok(()) => {
            tracing::warn!(section = %s.name, server = %server.raw, ring, "server purged through the API");
            text(StatusCode::OK, format!("Server {} Purged", server.raw))
        }
        Err(e) => bad(e.to_string()),
    }
}

/// What a membership change would move: over `DRY_RUN_SAMPLE` synthetic keys (an estimate of the key space)
/// and over the section's sample of recently routed keys. Compares the primary destination of each key.
fn dry_run_report(
    s: &Section,
    action: &str,
    server: &str,
    ring: usize,
    change: impl FnOnce(&mut Vec<Vec<(String, u32)>>),
) -> Value {
    let before = s.backend.preview(|_| {});
    let after = s.backend.preview(change);
    let dests = s.backend.destinations();
    let name = |id: u32| {
        dests
            .get(id as usize)
            .map_or_else(|| server.to_string(), |d| d.url.raw.clone())
    };
    let synthetic: Vec<Vec<u8>> = (0..DRY_RUN_SAMPLE)
        .map(|i| format!("consthash.dryrun.key{i}").into_bytes())
        .collect();
    let recent = s.recent_keys();
    let report = |keys: &[Vec<u8>]| {
        // Primary destination before → after; `None` when the ring is (or becomes) empty.
        let mut moves: HashMap<(Option<u32>, Option<u32>), usize> = HashMap::new();
        for k in keys {
            let (from, to) = (before[ring].get(k), after[ring].get(k));
            if from != to {
                *moves.entry((from, to)).or_default() += 1;
            }
        }
        let n = keys.len().max(1) as f64;
        let label = |id: Option<u32>| id.map_or(Value::Null, |id| Value::from(name(id)));
        let mut list: Vec<Value> = moves
            .iter()
            .map(|((f, t), c)| json!({"from": label(*f), "to": label(*t), "keys": c, "fraction": *c as f64 / n}))
            .collect();
        list.sort_by(|x, y| y["keys"].as_u64().cmp(&x["keys"].as_u64()));
        let moved: usize = moves.values().sum();
        json!({"sample": keys.len(), "moved": moved, "moved_fraction": moved as f64 / n, "moves": list})
    };
    json!({
        "section": s.name,
        "action": action,
        "server": server,
        "replica": ring,
        "dry_run": true,
        "key_space": report(&synthetic),
        "recent_keys": report(&recent),
    })
}
