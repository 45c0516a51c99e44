//! Operating the service: health and metrics endpoints, leases for scale-out, and the Kibana
//! saved objects that show the alerts.

pub mod kibana;
