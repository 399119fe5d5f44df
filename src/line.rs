//! The types that flow.
