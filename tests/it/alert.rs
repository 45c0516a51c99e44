//! Tests for the `alert` area.
