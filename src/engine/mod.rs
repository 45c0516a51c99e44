//! The rule engine, independent of Elasticsearch: windows, gaps and catch-up, dedup, the
//! `max_signals` cap, scheduling and per-rule state.

pub mod ports;

pub use ports::{
    AlertDoc, AlertSink, EventHit, EventSource, HitStream, Leases, PortError, RuleState,
    RuleWindow, SoleInstance, StateStore, WindowQuery, WriteOutcome,
};
