//! Tests for the `ops` area.
