//! Operating the service: health and metrics endpoints, leases for scale-out.
