//! The admin/stats HTTP server (spec §11) on `internal_health_server_listen`.
//!
//! | path | method | answer |
//! |---|---|---|
//! | `/` | GET | the status page ([`status`]), or `<internal_health_server_path>/index.html` when set |
//! | `/overview` | GET | what the status page shows: per section totals, members with state, queue and drops, accumulator, writers |
//! | `/placement` | GET | per section: replica factor; per ring member: health, share of the key space as first and further replica |
//! | unknown paths | GET | `<internal_health_server_path>/index.html`; 404 if unset or missing |
//! | `/ops/status`, `/ping`, `/status` | GET | `200 ok` |
//! | `/stats` (`?jsonp=cb`) | GET | `{"<section>": ServerStats}` |
//! | `/hashcheck?key=K` | GET | per section: `to_servers`, `hash_key`, `hash_value` |
//! | `/servers` | GET | per section: its endpoint paths |
//! | `/metrics` | GET | Prometheus text |
//! | `/<s>`, `/<s>/stats` | GET | ServerStats of section s |
//! | `/<s>/ops/status`, `/<s>/ping`, `/<s>/status` | GET | `200 ok`, or `503 all servers down` when no ring has members |
//! | `/<s>/accumulator` | GET | the accumulator's state not yet flushed; `501 No accumulators defined` without one |
//! | `/<s>/addserver`, `/<s>/purgeserver` | POST, PUT | live membership change (`dry_run=1`: what would move) |
//! | `/reload` | POST, PUT | re-read `--config` and `--prereg` and apply them, as SIGHUP does (`400` with every error) |
//!
//! Every answer carries `Cache-Control: private, max-age=0, no-cache`. A request whose `Host` does not name this
//! server is refused with 403, an invalid `jsonp` callback with 400 ([`guard`]). Mutations are refused with 405 for
//! other methods and with 403 for clients outside `internal_health_server_admin_allow` and for requests a web page
//! could have sent (cross-site, or a form body without `X-Requested-By`). Fixed routes take precedence
//! over section names; an unknown section under a section route is `400 Invalid server name`.

mod admin;
pub mod guard;
pub mod metrics;
pub mod stats;
pub mod status;

pub use self::admin::{hashcheck, serve, AdminState, ReloadRequest, SectionView};
