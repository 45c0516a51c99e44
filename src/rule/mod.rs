//! Detection rules: the model, the loaders for detection-rules TOML and Kibana NDJSON, and the
//! time expressions (`interval`, date math) rules are written in.

pub mod model;

pub use model::{Rule, Severity, Technique, Threat, ThreatRef};
