//! The rule engine, independent of Elasticsearch: windows, gaps and catch-up, dedup, the
//! `max_signals` cap, scheduling and per-rule state.
//!
//! - [`ports`]: the interfaces to the outside world (source, sink, state, leases).
//! - [`windows`]: which time ranges a run searches, and the gaps it reports.
//! - [`run`]: one rule run over its windows ([`Engine`]); [`dedup`] holds its dedup and cap;
//!   [`aggregate`] finds what a window of a new_terms or threshold rule alerts on.
//! - [`state`]: the watermark and open gaps carried from run to run.
//! - [`record`]: the execution record each run leaves behind.
//! - [`scheduler`]: when rules run, never overlapping themselves, bounded across rules.
//! - [`shutdown`], [`clock`], [`config`]: stopping cleanly, telling time, settings.
//! - [`memory`]: in-memory source, sink and state store for tests, benches and offline use.

pub mod aggregate;
pub mod clock;
pub mod config;
pub mod dedup;
pub mod memory;
pub mod ports;
pub mod record;
pub mod run;
pub mod scheduler;
pub mod shutdown;
pub mod state;
mod timing;
pub mod windows;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::EngineConfig;
pub use ports::{
    AlertDoc, AlertSink, EqlQuery, EqlReply, EventHit, EventSource, Group, GroupPage, GroupQuery,
    HitStream, Leases, PortError, RuleAmendments, RuleState, RuleWindow, SoleInstance, StateStore,
    ThresholdEntry, WindowQuery, WriteOutcome,
};
pub use record::{ExecutionRecord, RunStatus, WindowKind, WindowReport};
pub use run::Engine;
pub use scheduler::{RunOutcome, Schedule, Scheduler};
pub use shutdown::{Shutdown, ShutdownTrigger};

/// Why the engine could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("rule `{rule_id}`: invalid `{field}`: {message}")]
    RuleTiming {
        rule_id: String,
        field: &'static str,
        message: String,
    },
    #[error("invalid cron expression `{expression}`{}: {message} (expected e.g. `0 */10 * * * *` or `*/10 * * * *`)", rule_id.as_ref().map(|r| format!(" for rule `{r}`")).unwrap_or_default())]
    Cron {
        expression: String,
        rule_id: Option<String>,
        message: String,
    },
    #[error("invalid engine setting `{field}`: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    #[error(
        "rule `{rule_id}` is a `{rule_type}` rule{}; the service runs KQL rules of types `query`, `new_terms` and `threshold` (language `kuery`){}; check it with `rule-runner rules validate`",
        if language.is_empty() { String::new() } else { format!(" in `{language}`") },
        if rule_type == "eql" { "; `rule-runner scan` runs EQL rules, the service does not yet" } else { "" }
    )]
    Unsupported {
        rule_id: String,
        rule_type: String,
        language: String,
    },
    #[error("backfill range is empty: start {start} is not before end {end}")]
    EmptyRange { start: String, end: String },
}
