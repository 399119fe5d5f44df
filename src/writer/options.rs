//! A driver's `options` table read key by key: typed getters that name the option in their error, and a warning
//! for every option the driver does not know.

use std::time::Duration;

use super::WriterError;
use crate::config::parse_duration;

/// The options of one driver, as the getters have read them so far.
pub struct Options<'a> {
    table: &'a toml::Table,
    driver: &'static str,
    known: Vec<&'static str>,
}

impl<'a> Options<'a> {
    pub fn new(table: &'a toml::Table, driver: &'static str) -> Options<'a> {
        Options {
            table,
            driver,
            known: Vec::new(),
        }
    }

    fn get(&mut self, name: &'static str) -> Option<&'a toml::Value> {
        self.known.push(name);
        self.table.get(name)
    }

    /// An option accepted for compatibility that has no effect here.
    pub fn accept(&mut self, name: &'static str) {
        self.known.push(name);
    }

    pub fn string(&mut self, name: &'static str, default: &str) -> Result<String, WriterError> {
        match self.get(name) {
            None => Ok(default.to_string()),
            Some(toml::Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(bad(name, format!("expected a string, got {v}"))),
        }
    }

    /// A table or column name: letters, digits, `_` and `$` only (it is put into statements as is).
    pub fn identifier(&mut self, name: &'static str, default: &str) -> Result<String, WriterError> {
        let s = self.string(name, default)?;
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$') {
            return Err(bad(
                name,
                format!("{s:?} is not a plain identifier (letters, digits, _)"),
            ));
        }
        Ok(s)
    }

    pub fn bool(&mut self, name: &'static str, default: bool) -> Result<bool, WriterError> {
        match self.get(name) {
            None => Ok(default),
            Some(toml::Value::Boolean(b)) => Ok(*b),
            Some(toml::Value::String(s)) if s == "true" => Ok(true),
            Some(toml::Value::String(s)) if s == "false" => Ok(false),
            Some(v) => Err(bad(name, format!("expected true or false, got {v}"))),
        }
    }

    /// A positive integer (or a string of digits) at most `max`.
    pub fn count(&mut self, name: &'static str, default: u64, max: u64) -> Result<u64, WriterError> {
        let n = match self.get(name) {
            None => return Ok(default),
            Some(toml::Value::Integer(i)) => u64::try_from(*i).ok(),
            Some(toml::Value::String(s)) => s.parse().ok(),
            Some(_) => None,
        };
        match n {
            Some(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(bad(name, format!("expected an integer from 1 to {max}"))),
        }
    }

    /// A duration string (`"30s"`) or an integer of milliseconds.
    pub fn duration(&mut self, name: &'static str, default: Duration) -> Result<Duration, WriterError> {
        match self.get(name) {
            None => Ok(default),
            Some(toml::Value::Integer(ms)) if *ms > 0 => Ok(Duration::from_millis(*ms as u64)),
            Some(toml::Value::String(s)) => match parse_duration(s) {
                Ok(d) if !d.is_zero() => Ok(d),
                Ok(_) => Err(bad(name, "must be more than zero".into())),
                Err(e) => Err(bad(name, e)),
            },
            Some(v) => Err(bad(name, format!("expected a duration such as \"30s\", got {v}"))),
        }
    }

    /// Warns about every option no getter asked for.
    pub fn finish(self, role: &str) {
        for name in self.table.keys().filter(|k| !self.known.contains(&k.as_str())) {
            tracing::warn!(driver = self.driver, role, option = %name, "unknown writer option ignored");
        }
    }
}

fn bad(name: &'static str, reason: String) -> WriterError {
    WriterError::Option { name, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> toml::Table {
        toml::from_str(s).expect("toml")
    }

    #[test]
    fn getters_read_defaults_values_and_name_the_bad_option() {
        let t = table(
            "table = 'm'\nbad_table = 'a; drop'\nflag = 'true'\nn = '12'\nbig = 70000\nd = '2s'\nms = 1500\nzero = '0s'",
        );
        let mut o = Options::new(&t, "mysql");
        assert_eq!(o.identifier("table", "metrics").unwrap(), "m");
        assert_eq!(o.identifier("path_table", "metric_path").unwrap(), "metric_path");
        assert!(matches!(
            o.identifier("bad_table", "x"),
            Err(WriterError::Option { name: "bad_table", .. })
        ));
        assert!(o.bool("flag", false).unwrap());
        assert!(!o.bool("create_schema", false).unwrap());
        assert_eq!(o.count("n", 1, 100).unwrap(), 12);
        assert!(matches!(
            o.count("big", 1, 65535),
            Err(WriterError::Option { name: "big", .. })
        ));
        assert_eq!(o.duration("d", Duration::ZERO).unwrap(), Duration::from_secs(2));
        assert_eq!(o.duration("ms", Duration::ZERO).unwrap(), Duration::from_millis(1500));
        assert!(o.duration("zero", Duration::ZERO).is_err());
        assert_eq!(o.known.len(), 10);
    }
}
