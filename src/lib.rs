//! consthash: a consistent-hashing line proxy for graphite and statsd metrics.

pub mod accumulator;
pub mod api;
pub mod app;
pub mod backend;
pub mod config;
pub mod line;
pub mod listener;
pub mod prereg;
pub mod ring;
pub mod section;
pub mod selfstats;
pub mod splitter;
pub mod telemetry;
pub mod writer;
