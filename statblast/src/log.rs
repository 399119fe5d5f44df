//! Log lines on stderr in the Go `log` package's shape: `2006/01/02 15:04:05 message` (UTC).

pub use consthash::telemetry::go_log_line as line;
