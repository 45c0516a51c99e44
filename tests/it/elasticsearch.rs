//! Tests for the `elasticsearch` area.
