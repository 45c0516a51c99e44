//! Raw CloudTrail records to ECS documents, as Elastic's AWS integration makes them.
