//! The file writer (spec §10.2): one TAB-separated line per point appended to `<dsn>_<secs>s`, rotated to
//! `<name>.<YYYYmmddHHMMSS>` (local time) when it grows past `max_file_size`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncWriteExt, BufWriter};

use super::WriterError;
use crate::clock::Clock;
use crate::line::Point;

/// `max_file_size` default: 100 MiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 104_857_600;
/// How often the size is checked (and at open).
pub const ROTATE_CHECK_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct FileWriter {
    path: PathBuf,
    /// `None` after an I/O error; the next write or check reopens the file.
    file: Option<BufWriter<File>>,
    max_size: u64,
    /// Wall time for rotation names; on tokio time so paused-time tests get distinct names.
    clock: Clock,
    buf: Vec<u8>,
}

impl FileWriter {
    /// Open (create or append) `<dsn>_<bin_secs>s`, rotating it first if it is already too large.
    pub async fn open(dsn: &str, bin_secs: u64, options: &toml::Table) -> Result<FileWriter, WriterError> {
        if dsn.is_empty() {
            return Err(WriterError::MissingDsn("file"));
        }
        let max_size = max_file_size(options)?;
        for name in options.keys().filter(|k| k.as_str() != "max_file_size") {
            tracing::warn!(option = %name, "file writer: unknown option ignored");
        }
        let path = PathBuf::from(format!("{dsn}_{bin_secs}s"));
        let file = Some(open_append(&path).await?);
        let mut w = FileWriter {
            path,
            file,
            max_size,
            clock: Clock::new(),
            buf: Vec::new(),
        };
        w.check_rotate().await?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// Append one line per point and flush the batch to the file. On error the handle is dropped (a partly
    /// written batch may remain; a retry may then duplicate lines) and reopened on the next call.
    pub async fn write(&mut self, points: &[Point]) -> Result<(), WriterError> {
        self.buf.clear();
        for p in points {
            format_line(&mut self.buf, p);
        }
        let file = match self.file.as_mut() {
            Some(f) => f,
            None => self.file.insert(open_append(&self.path).await?),
        };
        let buf = &self.buf;
        let res = async {
            file.write_all(buf).await?;
            file.flush().await
        }
        .await;
        if let Err(e) = res {
            self.file = None;
            return Err(io_err(&self.path, e));
        }
        Ok(())
    }

    /// If the file is larger than `max_file_size`, rename it to `<name>.<YYYYmmddHHMMSS>` and start a new one.
    /// Returns whether it rotated. A file that vanished (moved away by an operator) is simply recreated.
    pub async fn check_rotate(&mut self) -> Result<bool, WriterError> {
        let size = match tokio::fs::metadata(&self.path).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.close().await;
                self.file = Some(open_append(&self.path).await?);
                return Ok(false);
            }
            Err(e) => return Err(io_err(&self.path, e)),
        };
        if size <= self.max_size {
            return Ok(false);
        }
        self.close().await;
        let stamp = local_stamp(i64::try_from(self.clock.now_ms() / 1000).unwrap_or(i64::MAX));
        let mut target = PathBuf::from(format!("{}.{stamp}", self.path.display()));
        // Never overwrite an earlier rotation from the same second.
        let mut n = 1;
        while tokio::fs::try_exists(&target).await.unwrap_or(false) {
            target = PathBuf::from(format!("{}.{stamp}.{n}", self.path.display()));
            n += 1;
        }
        tokio::fs::rename(&self.path, &target)
            .await
            .map_err(|e| io_err(&self.path, e))?;
        tracing::info!(file = %self.path.display(), rotated = %target.display(), size, "file writer: rotated");
        self.file = Some(open_append(&self.path).await?);
        Ok(true)
    }

    /// Flush and release the file.
    pub async fn close(&mut self) {
        if let Some(mut f) = self.file.take() {
            if let Err(e) = f.flush().await {
                tracing::error!(file = %self.path.display(), error = %e, "file writer: flush on close failed, data lost");
            }
        }
    }
}

async fn open_append(path: &Path) -> Result<BufWriter<File>, WriterError> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|e| io_err(path, e))?;
    Ok(BufWriter::new(f))
}

fn io_err(path: &Path, source: std::io::Error) -> WriterError {
    WriterError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `max_file_size`: a positive integer or a string of digits (bytes).
fn max_file_size(options: &toml::Table) -> Result<u64, WriterError> {
    let bad = |reason: String| WriterError::Option {
        name: "max_file_size",
        reason,
    };
    match options.get("max_file_size") {
        None => Ok(DEFAULT_MAX_FILE_SIZE),
        Some(toml::Value::Integer(i)) => u64::try_from(*i).map_err(|_| bad(format!("{i} is negative"))),
        Some(toml::Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map_err(|_| bad(format!("{s:?} is too large")))
        }
        Some(v) => Err(bad(format!("expected bytes as an integer or digit string, got {v}"))),
    }
}

/// One line: statname, sum, mean, min, max (`%.6f`), count, resolution (`%.2f`), nano_timestamp, nano_ttl (TTL in
/// seconds, as consthash wrote it).
pub fn format_line(out: &mut Vec<u8>, p: &Point) {
    // Writing into a Vec<u8> cannot fail.
    let _ = writeln!(
        out,
        "{}\t{:.6}\t{:.6}\t{:.6}\t{:.6}\t{}\t{:.2}\t{}\t{}",
        p.key,
        p.sum,
        p.mean,
        p.min,
        p.max,
        p.count,
        p.resolution as f64,
        p.time.saturating_mul(1_000_000_000),
        p.ttl
    );
}

/// `YYYYmmddHHMMSS` in the system's time zone (`TZ`, else `/etc/localtime`; UTC when neither is usable).
fn local_stamp(unix_secs: i64) -> String {
    stamp(unix_secs, &jiff::tz::TimeZone::system())
}

/// `YYYYmmddHHMMSS` in `tz`.
fn stamp(unix_secs: i64, tz: &jiff::tz::TimeZone) -> String {
    let t = jiff::Timestamp::from_second(unix_secs).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    t.to_zoned(tz.clone()).strftime("%Y%m%d%H%M%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn point(key: &str) -> Point {
        Point {
            key: key.into(),
            sum: 13.0,
            mean: 13.0 / 3.0,
            min: 1.0,
            max: 10.0,
            count: 3,
            time: 1457989005,
            resolution: 5,
            ttl: 604800,
        }
    }

    #[test]
    fn line_format_matches_spec_example() {
        let mut out = Vec::new();
        format_line(&mut out, &point("gorets"));
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "gorets\t13.000000\t4.333333\t1.000000\t10.000000\t3\t5.00\t1457989005000000000\t604800\n"
        );
    }

    #[test]
    fn max_file_size_option() {
        let t = |s: &str| -> toml::Table { toml::from_str(s).expect("toml") };
        assert_eq!(max_file_size(&t("")).expect("default"), DEFAULT_MAX_FILE_SIZE);
        assert_eq!(max_file_size(&t("max_file_size = 200")).expect("int"), 200);
        assert_eq!(max_file_size(&t("max_file_size = \"4096\"")).expect("digits"), 4096);
        assert!(max_file_size(&t("max_file_size = -1")).is_err());
        assert!(max_file_size(&t("max_file_size = \"10MB\"")).is_err());
        assert!(max_file_size(&t("max_file_size = \"\"")).is_err());
        assert!(max_file_size(&t("max_file_size = 1.5")).is_err());
    }

    #[test]
    fn stamps_in_a_time_zone() {
        let utc = |secs| stamp(secs, &jiff::tz::TimeZone::UTC);
        assert_eq!(utc(0), "19700101000000");
        assert_eq!(utc(1457989005), "20160314205645");
        assert_eq!(utc(951_782_400), "20000229000000");
        let plus2 = jiff::tz::TimeZone::fixed(jiff::tz::offset(2));
        assert_eq!(stamp(1457989005, &plus2), "20160314225645");
        assert_eq!(local_stamp(1457989005).len(), 14);
    }

    #[tokio::test]
    async fn appends_to_dsn_with_bin_suffix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dsn = dir.path().join("moo");
        let dsn = dsn.to_str().expect("utf8 path");
        std::fs::write(format!("{dsn}_5s"), "old\n").expect("seed");
        let mut w = FileWriter::open(dsn, 5, &toml::Table::new()).await.expect("open");
        assert_eq!(w.path(), Path::new(&format!("{dsn}_5s")));
        w.write(&[point("a"), point("b")]).await.expect("write");
        w.write(&[point("c")]).await.expect("write");
        let text = std::fs::read_to_string(w.path()).expect("read");
        let keys: Vec<&str> = text.lines().map(|l| l.split('\t').next().unwrap_or("")).collect();
        assert_eq!(keys, vec!["old", "a", "b", "c"]);
        w.close().await;
        assert!(FileWriter::open("", 5, &toml::Table::new()).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn rotates_past_max_file_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dsn = dir.path().join("moo");
        let dsn = dsn.to_str().expect("utf8 path");
        let opts: toml::Table = toml::from_str("max_file_size = 200").expect("toml");
        let mut w = FileWriter::open(dsn, 60, &opts).await.expect("open");
        w.write(&[point("a")]).await.expect("write");
        assert!(!w.check_rotate().await.expect("check"), "under the limit");
        w.write(&[point("b"), point("c")]).await.expect("write");
        assert!(w.check_rotate().await.expect("check"));
        w.write(&[point("d")]).await.expect("write");
        // A second rotation in the same wall second keeps both files.
        w.write(&[point("e"), point("f")]).await.expect("write");
        assert!(w.check_rotate().await.expect("check"));
        w.close().await;

        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(names[0], "moo_60s");
        assert!(
            names[1].starts_with("moo_60s.") && names[1].len() == "moo_60s.".len() + 14,
            "{names:?}"
        );
        assert_eq!(names[2], format!("{}.1", names[1]));
        assert_eq!(std::fs::metadata(dir.path().join("moo_60s")).expect("stat").len(), 0);
        let first = std::fs::read_to_string(dir.path().join(&names[1])).expect("read");
        assert_eq!(first.lines().count(), 3);
    }

    #[tokio::test]
    async fn rotates_at_open_when_already_too_large() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dsn = dir.path().join("moo");
        let dsn = dsn.to_str().expect("utf8 path");
        std::fs::write(format!("{dsn}_5s"), vec![b'x'; 300]).expect("seed");
        let opts: toml::Table = toml::from_str("max_file_size = \"200\"").expect("toml");
        let w = FileWriter::open(dsn, 5, &opts).await.expect("open");
        assert_eq!(std::fs::metadata(w.path()).expect("stat").len(), 0);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 2);
    }
}
