//! The statsd accumulator's `options` (spec §9.2.4), parsed once here: the accumulator is built from a valid
//! [`StatsdOptions`] and cannot fail.

/// The statsd naming and timer options of one accumulator, as statsd 0.9.0 names them.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsdOptions {
    /// `legacyNamespace` (default true): `stats.<k>` / `stats_counts.<k>` naming.
    pub legacy_namespace: bool,
    /// `globalPrefix` (default `stats`).
    pub global_prefix: String,
    /// `globalSuffix` (default empty): appended to every name.
    pub global_suffix: String,
    /// `prefixCounter`, `prefixTimer`, `prefixGauge`, `prefixSet` (defaults `counters`, `timers`, `gauges`, `sets`).
    pub prefix_counter: String,
    pub prefix_timer: String,
    pub prefix_gauge: String,
    pub prefix_set: String,
    /// `percentThreshold` (default 90): percentages in -100..=100, fractions already scaled (`0.95` → 95).
    pub percent_threshold: Vec<f64>,
}

impl Default for StatsdOptions {
    fn default() -> StatsdOptions {
        StatsdOptions {
            legacy_namespace: true,
            global_prefix: "stats".into(),
            global_suffix: String::new(),
            prefix_counter: "counters".into(),
            prefix_timer: "timers".into(),
            prefix_gauge: "gauges".into(),
            prefix_set: "sets".into(),
            percent_threshold: vec![90.0],
        }
    }
}

/// The option names, in the order the spec lists them.
pub const STATSD_OPTIONS: &[&str] = &[
    "legacyNamespace",
    "globalPrefix",
    "globalSuffix",
    "prefixCounter",
    "prefixTimer",
    "prefixGauge",
    "prefixSet",
    "percentThreshold",
];

impl StatsdOptions {
    /// Options from `[name, value]` pairs applied in order over the defaults; the first bad pair is the error.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<StatsdOptions, String> {
        let mut o = StatsdOptions::default();
        for (name, value) in pairs {
            o.set(name, value)?;
        }
        o.check_thresholds()?;
        Ok(o)
    }

    /// Applies one `[name, value]` pair. Thresholds are range-checked by [`StatsdOptions::check_thresholds`].
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        match name {
            "legacyNamespace" => {
                self.legacy_namespace =
                    go_bool(value).ok_or_else(|| format!("legacyNamespace: \"{value}\" is not a boolean"))?
            }
            "globalPrefix" => self.global_prefix = value.to_string(),
            "globalSuffix" => self.global_suffix = value.to_string(),
            "prefixCounter" => self.prefix_counter = value.to_string(),
            "prefixTimer" => self.prefix_timer = value.to_string(),
            "prefixGauge" => self.prefix_gauge = value.to_string(),
            "prefixSet" => self.prefix_set = value.to_string(),
            "percentThreshold" => {
                self.percent_threshold = value
                    .split(',')
                    .map(parse_threshold)
                    .collect::<Option<Vec<f64>>>()
                    .ok_or_else(|| format!("percentThreshold: \"{value}\" is not a comma-separated list of numbers"))?
            }
            other => {
                return Err(format!(
                    "unknown option \"{other}\", expected one of {}",
                    STATSD_OPTIONS.join(", ")
                ))
            }
        }
        Ok(())
    }

    /// Every threshold within -100..=100 (statsd would index past the sorted values and print `undefined`).
    pub fn check_thresholds(&self) -> Result<(), String> {
        match self.percent_threshold.iter().find(|p| p.abs() > 100.0) {
            Some(p) => Err(format!("percentThreshold: {p} is outside -100..100")),
            None => Ok(()),
        }
    }
}

/// Go's `strconv.ParseBool`.
pub(crate) fn go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A `percentThreshold` item: |p| < 1 is a fraction, scaled ×100 on its decimal digits (`0.95` → 95, `0.999` → 99.9).
fn parse_threshold(s: &str) -> Option<f64> {
    let p: f64 = s.trim().parse().ok().filter(|p: &f64| p.is_finite())?;
    if p.abs() >= 1.0 || p == 0.0 {
        return Some(p);
    }
    // Shift the shortest decimal digits by two places: d.ddde-x → d.ddde-(x-2).
    let e = format!("{p:e}");
    let (mant, exp) = e.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    format!("{mant}e{}", exp + 2).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_scale_fractions_and_are_range_checked() {
        let o = StatsdOptions::from_pairs(&[("percentThreshold", "0.95, 99.9,-10,0.999,75")]).expect("valid");
        assert_eq!(o.percent_threshold, [95.0, 99.9, -10.0, 99.9, 75.0]);
        for bad in ["101", "90,", "x", "-100.5"] {
            assert!(
                StatsdOptions::from_pairs(&[("percentThreshold", bad)]).is_err(),
                "{bad}"
            );
        }
        assert!(StatsdOptions::from_pairs(&[("legacyNamespace", "yes")]).is_err());
        assert!(StatsdOptions::from_pairs(&[("nope", "1")]).is_err());
        let o = StatsdOptions::from_pairs(&[("legacyNamespace", "F"), ("globalPrefix", "")]).expect("valid");
        assert!(!o.legacy_namespace);
        assert_eq!(o.global_prefix, "");
    }
}
