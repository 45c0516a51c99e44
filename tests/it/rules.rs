//! Tests for the `rules` area.
