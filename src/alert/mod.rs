//! Kibana-compatible alert documents and their deterministic ids, shared by `run` and `scan`.
