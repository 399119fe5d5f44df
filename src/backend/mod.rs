//! Outgoing: rings, per-destination queues and pooled connections.
