//! Typed getters over `toml` values. Every getter reports a problem as an error naming the full key path and carries on,
//! so that one pass over a file collects every mistake in it.
//!
//! The getters also record every value they look at. A key is declared by the code that reads it, nowhere else:
//! when a file has been read, [`Diag::finish`] reports every key nobody read as unknown (or, if its table lists it
//! as legacy, warns that it has no effect). These reports are placed where the table's reading began, so a file's
//! diagnostics read top to bottom.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Display;
use std::time::Duration;

use toml::{Table, Value};

use super::duration::parse_duration;
use super::ConfigErrors;

/// Collects the errors and warnings of one file, each prefixed with the file name, and what was read.
#[derive(Debug)]
pub(crate) struct Diag {
    file: String,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// Every value a getter looked at (read, or reported as having the wrong type).
    read: HashSet<*const Value>,
    /// Tables whose reading began, by address: where their unknown-key reports go.
    entered: HashMap<*const Table, Entered>,
    /// Tables passed on whole (driver options): their keys are not checked here.
    opaque: HashSet<*const Table>,
}

#[derive(Debug)]
struct Entered {
    path: String,
    legacy: &'static [&'static str],
    /// Error and warning counts when the table was entered, and the entry's rank among equal counts.
    at: (usize, usize, usize),
}

/// The unknown-key reports of one table and where they go.
struct Report {
    at: (usize, usize, usize),
    errors: Vec<String>,
    warnings: Vec<String>,
}

impl Diag {
    pub fn new(file: &str) -> Diag {
        Diag {
            file: file.to_string(),
            errors: Vec::new(),
            warnings: Vec::new(),
            read: HashSet::new(),
            entered: HashMap::new(),
            opaque: HashSet::new(),
        }
    }

    /// An error about the key at `path`. Repeats (an inherited `[default]` value read by several sections) are
    /// reported once.
    pub fn error(&mut self, path: &str, msg: impl Display) {
        let e = format!("{}: {}: {}", self.file, path, msg);
        if !self.errors.contains(&e) {
            self.errors.push(e);
        }
    }

    /// An error about the whole file.
    pub fn file_error(&mut self, msg: impl Display) {
        self.errors.push(format!("{}: {}", self.file, msg));
    }

    pub fn warn(&mut self, path: &str, msg: impl Display) {
        let w = format!("{}: {}: {}", self.file, path, msg);
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    /// Records that `v` was looked at: its key is known.
    pub fn mark(&mut self, v: &Value) {
        self.read.insert(v as *const Value);
    }

    /// Marks `v` read and leaves the tables it holds unchecked (a key that has no effect where it is).
    pub fn mark_whole(&mut self, v: &Value) {
        self.mark(v);
        let tables: Vec<&Table> = match v {
            Value::Table(t) => vec![t],
            Value::Array(items) => items.iter().filter_map(Value::as_table).collect(),
            _ => Vec::new(),
        };
        self.opaque.extend(tables.into_iter().map(|t| t as *const Table));
    }

    pub fn was_read(&self, v: &Value) -> bool {
        self.read.contains(&(v as *const Value))
    }

    /// Starts reading table `t`: its keys that nothing reads are reported here when the file is finished; keys in
    /// `legacy` are accepted with a warning instead.
    pub fn enter(&mut self, t: Tbl, legacy: &'static [&'static str]) {
        let at = (self.errors.len(), self.warnings.len(), self.entered.len());
        self.entered.entry(t.t as *const Table).or_insert(Entered {
            path: t.path.to_string(),
            legacy,
            at,
        });
    }

    /// Reports every unread key of every table read from `root` (see the module doc); `Ok` with the warnings if
    /// no error was recorded.
    pub fn finish(mut self, root: &Table) -> Result<Vec<String>, ConfigErrors> {
        let mut reports = Vec::new();
        self.report_unread(root, "", &mut reports);
        // Last anchor first, so that earlier anchors stay valid.
        reports.sort_by_key(|r| r.at);
        for r in reports.into_iter().rev() {
            self.errors.splice(r.at.0..r.at.0, r.errors);
            self.warnings.splice(r.at.1..r.at.1, r.warnings);
        }
        if self.errors.is_empty() {
            Ok(self.warnings)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    /// The reports of `t` and of every read table under it. A table its reader did not enter reports at the end.
    fn report_unread(&self, t: &Table, path: &str, out: &mut Vec<Report>) {
        if self.opaque.contains(&(t as *const Table)) {
            return;
        }
        let (path, legacy, at) = match self.entered.get(&(t as *const Table)) {
            Some(e) => (e.path.as_str(), e.legacy, e.at),
            None => (path, &[][..], (self.errors.len(), self.warnings.len(), usize::MAX)),
        };
        let mut r = Report {
            at,
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        for (k, v) in t {
            let p = join(path, k);
            if !self.was_read(v) {
                if legacy.contains(&k.as_str()) {
                    r.warnings
                        .push(format!("{}: {p}: legacy key ignored (no effect)", self.file));
                } else {
                    r.errors.push(format!("{}: {p}: unknown key", self.file));
                }
                continue;
            }
            match v {
                Value::Table(sub) => self.report_unread(sub, &p, out),
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Value::Table(sub) = item {
                            self.report_unread(sub, &format!("{p}[{i}]"), out);
                        }
                    }
                }
                _ => {}
            }
        }
        out.push(r);
    }
}

/// `prefix.key`, or `key` at the top level.
pub(crate) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Parses TOML text into a table, or the parse error as one line with its position.
pub(crate) fn parse_toml(text: &str, file: &str) -> Result<Table, ConfigErrors> {
    text.parse::<Table>().map_err(|e| {
        let pos = match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line} column {col}: ")
            }
            None => String::new(),
        };
        let msg = e.message().trim().replace('\n', " ");
        ConfigErrors(vec![format!("{file}: {pos}TOML syntax error: {msg}")])
    })
}

/// The top-level keys of `text` in file order (a `toml::Table` is sorted by name).
pub(crate) fn top_level_order(text: &str, table: &Table) -> Vec<String> {
    match toml::from_str::<BTreeMap<toml::Spanned<String>, Value>>(text) {
        Ok(map) => {
            let mut keys: Vec<(usize, String)> = map.into_keys().map(|k| (k.span().start, k.into_inner())).collect();
            keys.sort();
            keys.into_iter().map(|(_, k)| k).collect()
        }
        Err(_) => table.keys().cloned().collect(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_table) => "an array of tables",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

pub(crate) fn type_error(d: &mut Diag, path: &str, expected: &str, v: &Value) {
    d.error(path, format!("expected {expected}, found {}", type_name(v)));
}

/// A view of one table with its key path, giving typed access to its keys. A section's view inherits from
/// `[default]`: a key the section does not set is read from there (and reported under `default.` when wrong).
#[derive(Clone, Copy)]
pub(crate) struct Tbl<'a> {
    pub t: &'a Table,
    pub path: &'a str,
    parent: Option<(&'a Table, &'a str)>,
}

/// How a bare integer is read for a duration key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntUnit {
    Secs,
    Millis,
}

impl<'a> Tbl<'a> {
    pub fn new(t: &'a Table, path: &'a str) -> Tbl<'a> {
        Tbl { t, path, parent: None }
    }

    /// This table, reading the keys it lacks from `parent`.
    pub fn inheriting(self, parent: Tbl<'a>) -> Tbl<'a> {
        Tbl {
            parent: Some((parent.t, parent.path)),
            ..self
        }
    }

    /// Whether this view falls back to another table.
    pub fn inherits(&self) -> bool {
        self.parent.is_some()
    }

    /// This table alone, without what it inherits.
    pub fn own(self) -> Tbl<'a> {
        Tbl { parent: None, ..self }
    }

    /// The table `key` is read from, and its path.
    fn holder(&self, key: &str) -> (&'a Table, &'a str) {
        match self.parent {
            Some(parent) if !self.t.contains_key(key) && parent.0.contains_key(key) => parent,
            _ => (self.t, self.path),
        }
    }

    pub fn path_of(&self, key: &str) -> String {
        join(self.holder(key).1, key)
    }

    pub fn has(&self, key: &str) -> bool {
        self.holder(key).0.contains_key(key)
    }

    /// The value of `key`, marked as read.
    fn get(&self, d: &mut Diag, key: &str) -> Option<&'a Value> {
        let v = self.holder(key).0.get(key)?;
        d.mark(v);
        Some(v)
    }

    pub fn str(&self, d: &mut Diag, key: &str) -> Option<String> {
        match self.get(d, key)? {
            Value::String(s) => Some(s.clone()),
            v => {
                type_error(d, &self.path_of(key), "a string", v);
                None
            }
        }
    }

    pub fn bool(&self, d: &mut Diag, key: &str) -> Option<bool> {
        match self.get(d, key)? {
            Value::Boolean(b) => Some(*b),
            v => {
                type_error(d, &self.path_of(key), "a boolean", v);
                None
            }
        }
    }

    pub fn int(&self, d: &mut Diag, key: &str) -> Option<i64> {
        match self.get(d, key)? {
            Value::Integer(i) => Some(*i),
            v => {
                type_error(d, &self.path_of(key), "an integer", v);
                None
            }
        }
    }

    /// A non-negative integer within `range` (a bound that keeps start-up from failing or hanging); out of it,
    /// an error and `None`.
    pub fn usize_in(&self, d: &mut Diag, key: &str, range: std::ops::RangeInclusive<usize>) -> Option<usize> {
        let v = self.usize(d, key)?;
        let why = if v < *range.start() {
            format!("must be at least {}, found {v}", range.start())
        } else if v > *range.end() {
            format!("must be at most {}, found {v}", range.end())
        } else {
            return Some(v);
        };
        d.error(&self.path_of(key), why);
        None
    }

    pub fn usize(&self, d: &mut Diag, key: &str) -> Option<usize> {
        let i = self.int(d, key)?;
        match usize::try_from(i) {
            Ok(u) => Some(u),
            Err(_) => {
                d.error(
                    &self.path_of(key),
                    format!("expected a non-negative integer, found {i}"),
                );
                None
            }
        }
    }

    pub fn u32(&self, d: &mut Diag, key: &str) -> Option<u32> {
        let i = self.int(d, key)?;
        match u32::try_from(i) {
            Ok(u) => Some(u),
            Err(_) => {
                d.error(
                    &self.path_of(key),
                    format!("expected an integer between 0 and {}, found {i}", u32::MAX),
                );
                None
            }
        }
    }

    /// A float; integers are accepted.
    pub fn f64(&self, d: &mut Diag, key: &str) -> Option<f64> {
        match self.get(d, key)? {
            Value::Float(f) => Some(*f),
            Value::Integer(i) => Some(*i as f64),
            v => {
                type_error(d, &self.path_of(key), "a number", v);
                None
            }
        }
    }

    /// A duration: an integer in `unit`, or a Go duration string.
    pub fn dur(&self, d: &mut Diag, key: &str, unit: IntUnit) -> Option<Duration> {
        match self.get(d, key)? {
            Value::Integer(i) => match u64::try_from(*i) {
                Ok(u) => Some(match unit {
                    IntUnit::Secs => Duration::from_secs(u),
                    IntUnit::Millis => Duration::from_millis(u),
                }),
                Err(_) => {
                    d.error(
                        &self.path_of(key),
                        format!("expected a non-negative duration, found {i}"),
                    );
                    None
                }
            },
            Value::String(s) => match parse_duration(s) {
                Ok(v) => Some(v),
                Err(e) => {
                    d.error(&self.path_of(key), e);
                    None
                }
            },
            v => {
                let unit = match unit {
                    IntUnit::Secs => "seconds",
                    IntUnit::Millis => "milliseconds",
                };
                type_error(
                    d,
                    &self.path_of(key),
                    &format!("a duration (integer {unit} or a string such as \"10s\")"),
                    v,
                );
                None
            }
        }
    }

    /// A duration given only as a string.
    pub fn dur_str(&self, d: &mut Diag, key: &str) -> Option<Duration> {
        let s = match self.get(d, key)? {
            Value::String(s) => s,
            v => {
                type_error(d, &self.path_of(key), "a duration string such as \"10s\"", v);
                return None;
            }
        };
        match parse_duration(s) {
            Ok(v) => Some(v),
            Err(e) => {
                d.error(&self.path_of(key), e);
                None
            }
        }
    }

    /// An array of strings; elements of another type are reported one by one and skipped.
    pub fn str_array(&self, d: &mut Diag, key: &str) -> Option<Vec<String>> {
        let arr = match self.get(d, key)? {
            Value::Array(a) => a,
            v => {
                type_error(d, &self.path_of(key), "an array of strings", v);
                return None;
            }
        };
        let mut out = Vec::with_capacity(arr.len());
        for (i, v) in arr.iter().enumerate() {
            match v {
                Value::String(s) => out.push(s.clone()),
                v => type_error(d, &format!("{}[{i}]", self.path_of(key)), "a string", v),
            }
        }
        Some(out)
    }

    pub fn table(&self, d: &mut Diag, key: &str) -> Option<&'a Table> {
        match self.get(d, key)? {
            Value::Table(t) => Some(t),
            v => {
                type_error(d, &self.path_of(key), "a table", v);
                None
            }
        }
    }

    /// A table passed on whole (driver options): read, and its keys left to whoever interprets it.
    pub fn opaque_table(&self, d: &mut Diag, key: &str) -> Option<&'a Table> {
        let t = self.table(d, key)?;
        d.opaque.insert(t as *const Table);
        Some(t)
    }

    /// An array of tables (`[[x.key]]`); other elements are reported and skipped. Indices are kept.
    pub fn table_array(&self, d: &mut Diag, key: &str) -> Option<Vec<(usize, &'a Table)>> {
        let arr = match self.get(d, key)? {
            Value::Array(a) => a,
            v => {
                type_error(d, &self.path_of(key), "an array of tables", v);
                return None;
            }
        };
        let mut out = Vec::with_capacity(arr.len());
        for (i, v) in arr.iter().enumerate() {
            match v {
                Value::Table(t) => out.push((i, t)),
                v => type_error(d, &format!("{}[{i}]", self.path_of(key)), "a table", v),
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_value_getters_report_paths() {
        let t: Table = "a = 1\nb = \"x\"\nc = 1.5\nd = -3\ne = [\"x\", 2]\nf = \"10q\"\n"
            .parse()
            .unwrap();
        let mut d = Diag::new("f.toml");
        let tb = Tbl::new(&t, "sec");
        assert_eq!(tb.f64(&mut d, "a"), Some(1.0));
        assert_eq!(tb.int(&mut d, "b"), None);
        assert_eq!(tb.usize(&mut d, "d"), None);
        assert_eq!(tb.str_array(&mut d, "e"), Some(vec!["x".to_string()]));
        assert_eq!(tb.dur(&mut d, "f", IntUnit::Secs), None);
        assert_eq!(tb.dur(&mut d, "a", IntUnit::Millis), Some(Duration::from_millis(1)));
        assert_eq!(tb.bool(&mut d, "c"), None);
        assert_eq!(tb.str(&mut d, "missing"), None);
        assert_eq!(
            d.errors,
            vec![
                "f.toml: sec.b: expected an integer, found a string",
                "f.toml: sec.d: expected a non-negative integer, found -3",
                "f.toml: sec.e[1]: expected a string, found an integer",
                "f.toml: sec.f: invalid duration \"10q\": unknown unit \"q\"",
                "f.toml: sec.c: expected a boolean, found a float",
            ]
        );
    }

    #[test]
    fn config_value_top_level_order_is_file_order() {
        let text = "[zeta]\na=1\n[alpha]\nb=2\n[[mid.servers]]\nc=3\n";
        let t = parse_toml(text, "x").unwrap();
        assert_eq!(top_level_order(text, &t), vec!["zeta", "alpha", "mid"]);
    }

    #[test]
    fn config_value_syntax_error_has_position() {
        let e = parse_toml("[a]\nb = = 1\n", "x.toml").unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert!(e.0[0].starts_with("x.toml: line 2 column"), "{}", e.0[0]);
    }
}
