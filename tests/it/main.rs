//! rule-runner's integration tests: one binary, one module per area, shared helpers in `util`.

#[macro_use]
mod util;

mod aggregating;
mod alert;
mod architecture;
mod cli;
mod cloudtrail;
mod docs;
mod elasticsearch;
mod engine;
mod eql;
mod eql_suite;
mod kql;
mod ops;
mod real;
mod rules;
mod s3;
mod scan;
