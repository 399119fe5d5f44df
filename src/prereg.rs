//! PreReg routing (spec §4.2): ordered rules over a line's key decide, before any accumulation, whether a line
//! is rejected, redirected to another section's rings, or stays in its section (its accumulator if the group has
//! one, else its rings). The first matching rule wins; no match means the group's `default_backend`.
//!
//! A short rule list is scanned in order with precompiled matchers (prefix compare, `memmem` finder, regex).
//! A long one compiles into one `RegexSet` (a prefix is `^literal`, a substring `literal`, `noop` the empty
//! pattern), so a key is scanned once whatever the number of rules; the lowest matching rule index wins.

use memchr::memmem::Finder;
use regex::bytes::{Regex, RegexSet};

use crate::config::{Group, Matcher};

/// What happens to a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Dropped and counted (`rejected`).
    Reject,
    /// To the rings of the section with this index, bypassing its PreReg and accumulator (counted `redirected`).
    Redirect(usize),
    /// Stays in this section: its accumulator if any, else its rings.
    Own,
}

/// From this many rules on, one `RegexSet` beats scanning the rules one by one (see `benches/prereg.rs`).
const SET_FROM_RULES: usize = 32;

/// The compiled rules of one group.
#[derive(Clone, Debug)]
pub struct PreReg {
    rules: Rules,
    actions: Vec<Action>,
    default: Action,
}

#[derive(Clone, Debug)]
enum Rules {
    Scan(Vec<Compiled>),
    Set(RegexSet),
}

#[derive(Clone, Debug)]
enum Compiled {
    Prefix(Vec<u8>),
    Substring(Box<Finder<'static>>),
    Regex(Regex),
    Noop,
}

impl Compiled {
    fn new(m: &Matcher) -> Compiled {
        match m {
            Matcher::Prefix(p) => Compiled::Prefix(p.clone()),
            Matcher::Substring(s) => Compiled::Substring(Box::new(Finder::new(s).into_owned())),
            Matcher::Regex(re) => Compiled::Regex(re.clone()),
            Matcher::Noop => Compiled::Noop,
        }
    }

    fn matches(&self, key: &[u8]) -> bool {
        match self {
            Compiled::Prefix(p) => key.starts_with(p),
            Compiled::Substring(f) => f.find(key).is_some(),
            Compiled::Regex(re) => re.is_match(key),
            Compiled::Noop => true,
        }
    }
}

/// The pattern of one matcher inside the rule set.
fn pattern(m: &Matcher) -> String {
    match m {
        Matcher::Prefix(p) => format!("^{}", regex::escape(&String::from_utf8_lossy(p))),
        Matcher::Substring(s) => regex::escape(&String::from_utf8_lossy(s)),
        Matcher::Regex(re) => format!("(?:{})", re.as_str()),
        Matcher::Noop => String::new(),
    }
}

impl PreReg {
    /// Compiles `group` for the section with index `own`; `index_of` maps section names to indexes (the config
    /// validated that every name exists).
    pub fn new(group: &Group, own: usize, index_of: impl Fn(&str) -> Option<usize>) -> PreReg {
        let target = |name: &str| match index_of(name) {
            Some(i) if i != own => Action::Redirect(i),
            _ => Action::Own,
        };
        let actions = group
            .rules
            .iter()
            .map(|r| if r.reject { Action::Reject } else { target(&r.backend) })
            .collect();
        let rules = if group.rules.len() < SET_FROM_RULES {
            Rules::Scan(group.rules.iter().map(|r| Compiled::new(&r.matcher)).collect())
        } else {
            Rules::Set(
                RegexSet::new(group.rules.iter().map(|r| pattern(&r.matcher)))
                    .expect("each pattern compiled on its own at config load, and escaped literals always compile"),
            )
        };
        PreReg {
            rules,
            actions,
            default: target(&group.default_backend),
        }
    }

    /// The sections its rules can redirect to (distinct, in rule order, the default last).
    pub fn redirect_targets(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for a in self.actions.iter().chain([&self.default]) {
            if let Action::Redirect(i) = a {
                if !out.contains(i) {
                    out.push(*i);
                }
            }
        }
        out
    }

    pub fn route(&self, key: &[u8]) -> Action {
        let first = match &self.rules {
            Rules::Scan(rules) => rules.iter().position(|r| r.matches(key)),
            Rules::Set(set) => set.matches(key).iter().next(),
        };
        first.map_or(self.default, |i| self.actions[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rule;

    #[test]
    fn spec_vectors() {
        // sections: 0 = own ("graphite"), 1 graphite-prefix, 2 graphite-substring, 3 graphite-regex, 4 defaultbackend
        let names = [
            "graphite",
            "graphite-prefix",
            "graphite-substring",
            "graphite-regex",
            "defaultbackend",
        ];
        let rule = |matcher, reject, backend: &str| Rule {
            matcher,
            reject,
            backend: backend.to_string(),
        };
        let group = Group {
            name: "g".into(),
            listen_server: "graphite".into(),
            default_backend: "defaultbackend".into(),
            rules: vec![
                rule(Matcher::Prefix(b"tester.i".to_vec()), false, "graphite-prefix"),
                rule(Matcher::Substring(b".am.".to_vec()), true, "graphite-substring"),
                rule(
                    Matcher::Regex(regex::bytes::Regex::new(r".i.*stat").expect("valid")),
                    false,
                    "graphite-regex",
                ),
                rule(Matcher::Noop, false, "defaultbackend"),
            ],
            accumulator: None,
        };
        let p = PreReg::new(&group, 0, |n| names.iter().position(|x| *x == n));
        assert_eq!(p.route(b"tester.i.am.a.stat"), Action::Redirect(1));
        assert_eq!(p.route(b"123123"), Action::Redirect(4));
        assert_eq!(p.route(b"moo.am.goo"), Action::Reject);
        assert_eq!(p.route(b"x.is.stat"), Action::Redirect(3));
    }

    proptest::proptest! {
        /// The rule set picks exactly the rule a first-match scan with each matcher picks.
        #[test]
        fn the_set_agrees_with_a_first_match_scan(key in "[a-c.]{0,12}", lits in proptest::collection::vec("[a-c.]{1,3}", 1..40)) {
            let rules: Vec<Rule> = lits
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let matcher = match i % 3 {
                        0 => Matcher::Prefix(l.clone().into_bytes()),
                        1 => Matcher::Substring(l.clone().into_bytes()),
                        _ => Matcher::Regex(regex::bytes::Regex::new(&format!("{}$", regex::escape(l))).expect("valid")),
                    };
                    Rule { matcher, reject: false, backend: format!("s{}", i + 1) }
                })
                .collect();
            let names: Vec<String> = (0..=rules.len()).map(|i| format!("s{i}")).collect();
            let group = Group { name: "g".into(), listen_server: "s0".into(), default_backend: "s0".into(), rules, accumulator: None };
            let p = PreReg::new(&group, 0, |n| names.iter().position(|x| x == n));
            let scan = group.rules.iter().position(|r| r.matcher.matches(key.as_bytes())).map_or(Action::Own, |i| Action::Redirect(i + 1));
            proptest::prop_assert_eq!(p.route(key.as_bytes()), scan);
        }
    }

    #[test]
    fn no_match_goes_to_the_default_and_own_section_stays() {
        let group = Group {
            name: "g".into(),
            listen_server: "a".into(),
            default_backend: "a".into(),
            rules: vec![Rule {
                matcher: Matcher::Prefix(b"x.".to_vec()),
                reject: false,
                backend: "b".into(),
            }],
            accumulator: None,
        };
        let p = PreReg::new(&group, 0, |n| ["a", "b"].iter().position(|x| *x == n));
        assert_eq!(p.route(b"x.y"), Action::Redirect(1));
        assert_eq!(p.route(b"y.z"), Action::Own);
    }
}
