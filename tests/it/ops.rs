//! Operations: the Docker files, Kibana saved objects, health and metrics endpoints, leases
//! for scale-out, and the `load` command.

mod docker;
mod http;
mod kibana;
mod lease;
mod load;
mod run;
mod scale_out;
