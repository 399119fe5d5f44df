//! Configuration: the main config (`--config`, spec §3) and the PreReg config (`--prereg`, spec §4).
//!
//! The main config is a TOML file of sections: `[default]` holds process-wide settings and values the other sections
//! inherit; every other table is a server section with a listener, a message type and one or more rings of
//! destinations. The PreReg config holds one group of routing rules (and optionally an accumulator with writers and a
//! reader API) per listening section.
//!
//! Loading is validating: [`load_main`] and [`load_prereg`] walk the TOML tables by hand, so that every problem in a
//! file (unknown keys, wrong types, bad values, failed cross-checks) is collected and returned together in
//! [`ConfigErrors`], each naming the file and the full key path. Non-fatal findings (legacy keys, fallbacks) are
//! returned as `warnings` in the same format.

mod duration;
mod main_config;
mod prereg;
mod statsd_options;
mod url;
mod value;

use std::fmt;

pub use duration::parse_duration;
pub use main_config::{
    load_main, Config, DownPolicy, Globals, HashingConfig, HealthConfig, InputConfig, MsgType, OutgoingConfig,
    RingConfig, SectionConfig, SendingMethod, PEER_ALGOS,
};
pub use prereg::{
    load_prereg, AccTarget, AccumulatorConfig, ApiConfig, Bin, Driver, DriverConfig, Format, Group, Matcher,
    PreRegConfig, Rule, WriterConfig,
};
pub use statsd_options::{StatsdOptions, STATSD_OPTIONS};
pub use url::{parse_url_list, DestUrl, IpCidr, Listen, Target};

/// Every error found in a config file, each `<file>: <key path>: <message>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(e)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
