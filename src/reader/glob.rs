//! Graphite globs (spec §12): a pattern is matched against whole dot-separated paths of exactly its depth.
//!
//! Per part: `*` any run of characters but `.`, `?` one character but `.`, `[…]` a character class (`[!…]`
//! negated, as fnmatch), `{a,b}` alternatives (each may hold globs itself). `..` reads as `.`. Everything else
//! is literal. A pattern compiles once into an anchored [`Regex`]; [`Glob::prefix`] is the literal text before
//! the first wildcard, which the stores use to narrow a scan.

use regex::Regex;

/// A compiled pattern.
#[derive(Clone, Debug)]
pub struct Glob {
    regex: Regex,
    prefix: String,
    depth: usize,
    literal: bool,
}

impl Glob {
    /// Compiles `pattern`; an empty pattern means `*`.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        let mut pattern = pattern.trim().to_string();
        while pattern.contains("..") {
            pattern = pattern.replace("..", ".");
        }
        let pattern = pattern.trim_matches('.');
        let pattern = if pattern.is_empty() { "*" } else { pattern };
        let mut re = String::with_capacity(pattern.len() * 2 + 2);
        re.push('^');
        let mut chars = pattern.chars().peekable();
        translate(&mut chars, &mut re, false)?;
        re.push('$');
        let regex = Regex::new(&re).map_err(|e| format!("bad pattern {pattern:?}: {e}"))?;
        let wild = pattern.find(['*', '?', '[', '{']);
        let prefix = pattern[..wild.unwrap_or(pattern.len())].to_string();
        Ok(Glob {
            regex,
            prefix,
            depth: depth(pattern),
            literal: wild.is_none(),
        })
    }

    pub fn matches(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }

    /// The literal text before the first wildcard: every match starts with it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Number of dot-separated parts a match has.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// No wildcard at all: the pattern is one path (the prefix).
    pub fn is_literal(&self) -> bool {
        self.literal
    }
}

/// Parts of a pattern: dots outside `{…}` and `[…]`, plus one.
fn depth(pattern: &str) -> usize {
    let (mut braces, mut class, mut dots) = (0usize, false, 0);
    for c in pattern.chars() {
        match c {
            '[' if !class => class = true,
            ']' if class => class = false,
            '{' if !class => braces += 1,
            '}' if !class && braces > 0 => braces -= 1,
            '.' if !class && braces == 0 => dots += 1,
            _ => {}
        }
    }
    dots + 1
}

/// Translates up to the end (or, inside braces, up to the `}` or `,` that ends an alternative).
fn translate(chars: &mut std::iter::Peekable<std::str::Chars>, re: &mut String, in_braces: bool) -> Result<(), String> {
    while let Some(&c) = chars.peek() {
        if in_braces && (c == ',' || c == '}') {
            return Ok(());
        }
        chars.next();
        match c {
            '*' => re.push_str("[^.]*"),
            '?' => re.push_str("[^.]"),
            '[' => class(chars, re)?,
            '{' => {
                re.push_str("(?:");
                loop {
                    translate(chars, re, true)?;
                    match chars.next() {
                        Some(',') => re.push('|'),
                        Some('}') => break,
                        _ => return Err("unclosed {".into()),
                    }
                }
                re.push(')');
            }
            c => {
                let mut buf = [0u8; 4];
                re.push_str(&regex::escape(c.encode_utf8(&mut buf)));
            }
        }
    }
    if in_braces {
        return Err("unclosed {".into());
    }
    Ok(())
}

/// `[…]` after its `[`: members copied with regex escapes; `!` or `^` first negates; never matches `.`.
fn class(chars: &mut std::iter::Peekable<std::str::Chars>, re: &mut String) -> Result<(), String> {
    let mut body = String::new();
    let negate = matches!(chars.peek(), Some('!' | '^'));
    if negate {
        chars.next();
    }
    let mut first = true;
    loop {
        match chars.next() {
            None => return Err("unclosed [".into()),
            Some(']') if !first => break,
            Some('-') if !first && chars.peek() != Some(&']') => body.push('-'),
            Some(c) => {
                if matches!(c, '\\' | '[' | ']' | '^' | '-' | '&' | '~') {
                    body.push('\\');
                }
                body.push(c);
            }
        }
        first = false;
    }
    if negate {
        re.push_str(&format!("[^.{body}]"));
    } else {
        re.push_str(&format!("[{body}&&[^.]]"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, path: &str) -> bool {
        Glob::new(p).expect("pattern").matches(path)
    }

    #[test]
    fn stars_and_questions_stay_within_a_part() {
        assert!(m("*", "stats"));
        assert!(!m("*", "stats.web"));
        assert!(m("stats.*", "stats.web"));
        assert!(!m("stats.*", "stats.web.cpu"));
        assert!(m("stats.*.cpu", "stats.web.cpu"));
        assert!(m("stats.w?b.cpu", "stats.web.cpu"));
        assert!(!m("stats.w?b.cpu", "stats.wb.cpu"));
        assert!(m("st*s.web", "stats.web"));
        assert!(m("stats.*b", "stats.web"));
        assert!(!m("stats.*", "stats"));
    }

    #[test]
    fn classes_and_alternatives() {
        assert!(m("a.[bc].d", "a.b.d"));
        assert!(m("a.[bc].d", "a.c.d"));
        assert!(!m("a.[bc].d", "a.e.d"));
        assert!(m("a.[a-c]x", "a.bx"));
        assert!(!m("a.[!a-c]x", "a.bx"));
        assert!(m("a.[!a-c]x", "a.zx"));
        assert!(!m("a[!b]c", "a.c"), "a negated class never matches the separator");
        assert!(m("a.{web,db}.cpu", "a.web.cpu"));
        assert!(m("a.{web,db}.cpu", "a.db.cpu"));
        assert!(!m("a.{web,db}.cpu", "a.dns.cpu"));
        assert!(m("a.{w*,db}.cpu", "a.www1.cpu"));
        assert!(m("a.{w*,db}.cpu", "a.db.cpu"));
        assert!(m("a.b{,c}", "a.b"));
        assert!(m("a.b{,c}", "a.bc"));
    }

    #[test]
    fn literals_are_escaped_and_double_dots_collapse() {
        assert!(m("a.b+c.d", "a.b+c.d"));
        assert!(!m("a.b+c.d", "a.bbc.d"));
        assert!(m("a..b", "a.b"));
        assert!(m("a.(x)", "a.(x)"));
        assert!(m("", "top"));
    }

    #[test]
    fn prefix_depth_and_literal() {
        let g = Glob::new("stats.web*.cpu").expect("pattern");
        assert_eq!((g.prefix(), g.depth(), g.is_literal()), ("stats.web", 3, false));
        let g = Glob::new("stats.web.cpu").expect("pattern");
        assert_eq!((g.prefix(), g.depth(), g.is_literal()), ("stats.web.cpu", 3, true));
        let g = Glob::new("*").expect("pattern");
        assert_eq!((g.prefix(), g.depth()), ("", 1));
        assert_eq!(Glob::new("a.{b,c}.d").expect("pattern").depth(), 3);
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(Glob::new("a.{b,c").is_err());
        assert!(Glob::new("a.[bc").is_err());
    }
}
