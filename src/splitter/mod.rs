//! Splitters.
