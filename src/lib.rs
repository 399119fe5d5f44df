//! consthash: a consistent-hashing line proxy for graphite and statsd metrics.
//!
//! A listener task reads bytes, frames them into lines ([`framing`]), and its [`router::Router`]
//! splits each line into a key ([`splitter`]), applies the section's PreReg rules ([`prereg`]) and either drops the
//! line, keeps it for the section's accumulator, or looks the key up in every ring ([`ring`]) and appends the line
//! to the outgoing buffer of each destination it names: the one copy of its bytes. After each read the buffers go,
//! one [`line::Batch`] per destination, into bounded queues ([`backend`]) that pooled connections drain. An
//! accumulator ([`accumulator`]) flushes on ticks aligned to the wall clock: output lines through a backend
//! section's rings, records into time bins for the [`writer`]s. [`api`] serves stats, `/metrics`, hashcheck and
//! live ring changes; [`config`] loads and validates both files; [`app`] starts and stops it all in order.
//!
//! ```text
//! client ─► listener ─► framing ─► splitter ─► prereg ─┬─► reject (counted)
//!                                                      ├─► accumulator ─tick─┬─► backend rings (bypass)
//!                                                      │                     └─► bins ─► writers
//!                                                      └─► rings ─► per-destination queue ─► pooled connections ─► server
//! ```

#![forbid(unsafe_code)]

pub mod accept;
pub mod accumulator;
pub mod api;
pub mod app;
pub mod backend;
pub mod clock;
pub mod config;
pub mod framing;
pub mod line;
pub mod listener;
pub mod prereg;
pub mod reader;
pub mod ring;
pub mod router;
pub mod section;
pub mod selfstats;
pub mod splitter;
pub mod telemetry;
pub mod writer;
