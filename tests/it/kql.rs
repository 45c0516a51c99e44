//! Tests for the `kql` area.
