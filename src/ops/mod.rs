//! Operating the service: health and metrics endpoints, leases for scale-out, and the Kibana
//! saved objects that show the alerts.

pub mod http;
pub mod kibana;
pub mod lease;
pub mod load;
pub mod metered;
pub mod metrics;
pub mod readiness;
pub mod service;
