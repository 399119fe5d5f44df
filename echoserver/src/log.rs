//! Log lines on stderr in the Go `log` package's shape: `2006/01/02 15:04:05 message` (UTC).

use std::time::{SystemTime, UNIX_EPOCH};

pub use consthash::telemetry::go_log_line as line;

/// The current UTC time as `YYYY/MM/DD HH:MM:SS` (the prefix of echoed lines).
pub fn stamp() -> String {
    consthash::telemetry::go_log_stamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    )
}
