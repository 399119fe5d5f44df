//! PreReg routing (spec §4.2): ordered rules over a line's key decide, before any accumulation, whether a line
//! is rejected, redirected to another section's rings, or stays in its section (its accumulator if the group has
//! one, else its rings). The first matching rule wins; no match means the group's `default_backend`.

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

/// The compiled rules of one group.
#[derive(Clone, Debug)]
pub struct PreReg {
    rules: Vec<(Matcher, Action)>,
    default: Action,
}

impl PreReg {
    /// Compiles `group` for the section with index `own`; `index_of` maps section names to indexes (the config
    /// validated that every name exists).
    pub fn new(group: &Group, own: usize, index_of: impl Fn(&str) -> Option<usize>) -> PreReg {
        let target = |name: &str| match index_of(name) {
            Some(i) if i != own => Action::Redirect(i),
            _ => Action::Own,
        };
        let rules = group
            .rules
            .iter()
            .map(|r| {
                (
                    r.matcher.clone(),
                    if r.reject { Action::Reject } else { target(&r.backend) },
                )
            })
            .collect();
        PreReg {
            rules,
            default: target(&group.default_backend),
        }
    }

    pub fn route(&self, key: &[u8]) -> Action {
        self.rules
            .iter()
            .find(|(m, _)| m.matches(key))
            .map_or(self.default, |(_, a)| *a)
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
