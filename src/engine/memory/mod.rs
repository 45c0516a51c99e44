//! In-memory implementations of the engine's ports: a searchable event store, an alerts
//! store, a state store and leases. They behave like the Elasticsearch adapter where the
//! engine can tell (inclusive windows, timestamp override with `@timestamp` fallback, oldest
//! first paging, 409 on an existing id) and can be told to fail, so tests, benchmarks and
//! offline runs exercise the real run logic without a cluster.

mod eql;
mod groups;
mod sink;
mod source;
mod state;

pub use sink::{MemorySink, OutcomeRule};
pub use source::{CompiledMatch, MatcherFactory, MemorySource, index_matches};
pub use state::MemoryStateStore;
