//! Tests for the `cloudtrail` area.
