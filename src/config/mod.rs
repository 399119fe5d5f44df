//! Configuration (temporary stub of the types; replaced by the real module).
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct DestUrl {
    pub raw: String,
    pub target: Target,
}
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Tcp(String),
    Udp(String),
    Unix(PathBuf),
    Http(String),
    Https(String),
}
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SendingMethod {
    BufferedPool,
    Pool,
    Single,
}
pub fn _unused(_: Duration) {}
#[derive(Debug, Clone, PartialEq)]
pub enum Listen {
    Tcp(String),
    Udp(String),
    Unix(PathBuf),
    Http { addr: String, path: String },
    BackendOnly,
}
