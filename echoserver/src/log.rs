//! Log lines on stderr in the Go `log` package's shape: `2006/01/02 15:04:05 message` (UTC).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The current UTC time as `YYYY/MM/DD HH:MM:SS`.
pub fn stamp() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format_stamp(secs)
}

fn format_stamp(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let rem = unix % 86_400;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}/{month:02}/{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Writes `<stamp> <message>` to stderr.
pub fn line(msg: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{} {msg}", stamp());
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_like_go_log() {
        assert_eq!(super::format_stamp(0), "1970/01/01 00:00:00");
        assert_eq!(super::format_stamp(951_782_400), "2000/02/29 00:00:00");
        assert_eq!(super::format_stamp(1_700_000_000), "2023/11/14 22:13:20");
    }
}
