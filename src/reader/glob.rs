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
    /// Per dot-separated part, when no `{…}` or `[…]` holds a dot.
    parts: Option<Vec<Part>>,
    /// The regex with classes widened to `[^.]`: matches at least what the pattern matches.
    portable: String,
}

/// One dot-separated part of a pattern.
#[derive(Clone, Debug)]
pub enum Part {
    Literal(String),
    /// A part with one `{…}` of plain alternatives (`web{1,2}`, `{cpu,mem}`): the names it stands for.
    Literals(Vec<String>),
    /// Matches one whole part (anchored).
    Wild(Regex),
}

impl Part {
    pub fn matches(&self, part: &str) -> bool {
        match self {
            Part::Literal(l) => l == part,
            Part::Literals(ls) => ls.iter().any(|l| l == part),
            Part::Wild(re) => re.is_match(part),
        }
    }
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
        translate(&mut chars, &mut re, false, false)?;
        re.push('$');
        let regex = Regex::new(&re).map_err(|e| format!("bad pattern {pattern:?}: {e}"))?;
        let mut portable = String::from("^");
        translate(&mut pattern.chars().peekable(), &mut portable, false, true)?;
        portable.push('$');
        let wild = pattern.find(['*', '?', '[', '{']);
        let prefix = pattern[..wild.unwrap_or(pattern.len())].to_string();
        let depth = depth(pattern);
        let split: Vec<&str> = pattern.split('.').collect();
        let parts = if split.len() == depth {
            let part = |p: &str| -> Result<Part, String> {
                if !p.contains(['*', '?', '[', '{']) {
                    return Ok(Part::Literal(p.to_string()));
                }
                if let Some(names) = alternatives(p) {
                    return Ok(Part::Literals(names));
                }
                let mut re = String::from("^");
                translate(&mut p.chars().peekable(), &mut re, false, false)?;
                re.push('$');
                Regex::new(&re)
                    .map(Part::Wild)
                    .map_err(|e| format!("bad pattern {p:?}: {e}"))
            };
            Some(split.into_iter().map(part).collect::<Result<Vec<_>, _>>()?)
        } else {
            None
        };
        Ok(Glob {
            regex,
            prefix,
            depth,
            literal: wild.is_none(),
            parts,
            portable,
        })
    }

    /// A regex (no class intersection, so MariaDB's PCRE takes it) that matches every path the pattern matches,
    /// and perhaps more: a store can filter with it, the reader then matches exactly.
    pub fn portable_regex(&self) -> &str {
        &self.portable
    }

    /// The pattern part by part, if every part can be matched on its own (no dot inside `{…}` or `[…]`).
    pub fn parts(&self) -> Option<&[Part]> {
        self.parts.as_deref()
    }

    /// Whether a literal part follows a wildcard part (`a.*.c`): walking the tree level by level then visits far
    /// fewer nodes than listing every path of the pattern's depth under its prefix.
    pub fn narrows_after_a_wildcard(&self) -> bool {
        self.parts().is_some_and(|parts| {
            parts
                .iter()
                .skip_while(|p| !matches!(p, Part::Wild(_)))
                .any(|p| !matches!(p, Part::Wild(_)))
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

/// `pre{a,b}post` with plain alternatives and no other wildcard: `["preapost", "prebpost"]`.
fn alternatives(part: &str) -> Option<Vec<String>> {
    let open = part.find('{')?;
    let close = open + part[open..].find('}')?;
    let (pre, alts, post) = (&part[..open], &part[open + 1..close], &part[close + 1..]);
    let plain = |s: &str| !s.contains(['*', '?', '[', ']', '{', '}']);
    if !(plain(pre) && plain(post) && plain(alts)) {
        return None;
    }
    let mut names: Vec<String> = alts.split(',').map(|a| format!("{pre}{a}{post}")).collect();
    names.sort();
    names.dedup();
    Some(names)
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
/// `portable` writes classes as `[^.]` (a superset), for regex engines without class intersection (MariaDB's).
fn translate(
    chars: &mut std::iter::Peekable<std::str::Chars>,
    re: &mut String,
    in_braces: bool,
    portable: bool,
) -> Result<(), String> {
    while let Some(&c) = chars.peek() {
        if in_braces && (c == ',' || c == '}') {
            return Ok(());
        }
        chars.next();
        match c {
            '*' => re.push_str("[^.]*"),
            '?' => re.push_str("[^.]"),
            '[' => class(chars, re, portable)?,
            '{' => {
                re.push_str("(?:");
                loop {
                    translate(chars, re, true, portable)?;
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
fn class(chars: &mut std::iter::Peekable<std::str::Chars>, re: &mut String, portable: bool) -> Result<(), String> {
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
    if portable {
        re.push_str("[^.]");
    } else if negate {
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
    fn parts_match_one_part_each() {
        let g = Glob::new("a.b*.{x,y}.c").expect("pattern");
        let parts = g.parts().expect("parts");
        assert_eq!(parts.len(), 4);
        assert!(parts[0].matches("a") && !parts[0].matches("ab"));
        assert!(parts[1].matches("b") && parts[1].matches("bcd") && !parts[1].matches("c"));
        assert!(parts[2].matches("y") && !parts[2].matches("xy"));
        assert!(g.narrows_after_a_wildcard());
        assert!(matches!(&parts[2], Part::Literals(l) if l == &["x", "y"]));
        let g = Glob::new("a.*.web{1,2}x").expect("pattern");
        assert!(matches!(&g.parts().expect("parts")[2], Part::Literals(l) if l == &["web1x", "web2x"]));
        assert!(g.narrows_after_a_wildcard());
        assert!(matches!(
            &Glob::new("a.{b*,c}").expect("pattern").parts().expect("parts")[1],
            Part::Wild(_)
        ));
        assert!(!Glob::new("a.b.*").expect("pattern").narrows_after_a_wildcard());
        assert!(!Glob::new("a.b.c").expect("pattern").narrows_after_a_wildcard());
        assert!(Glob::new("*.b").expect("pattern").narrows_after_a_wildcard());
        assert!(Glob::new("a.{b.c,d}").expect("pattern").parts().is_none());
    }

    #[test]
    fn the_portable_regex_is_a_superset_without_intersections() {
        let g = Glob::new("a.[bc]*.{x,y?}.d-e").expect("pattern");
        assert_eq!(g.portable_regex(), r"^a\.[^.][^.]*\.(?:x|y[^.])\.d\-e$");
        let re = Regex::new(g.portable_regex()).expect("regex");
        for p in ["a.bq.x.d-e", "a.c.yz.d-e"] {
            assert!(g.matches(p) && re.is_match(p), "{p}");
        }
        assert!(
            !g.matches("a.q.x.d-e") && re.is_match("a.q.x.d-e"),
            "wider, never narrower"
        );
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(Glob::new("a.{b,c").is_err());
        assert!(Glob::new("a.[bc").is_err());
    }
}
