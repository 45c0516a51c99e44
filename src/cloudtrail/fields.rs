//! Which fields of the ECS document to build: a scan that knows which rules can match a record
//! builds only the fields those rules read, and builds the whole document only for a record
//! that matched (the alert's source). A field left out is one no candidate rule reads, so every
//! rule's result is the same as over the whole document.

use std::sync::OnceLock;

use rustc_hash::FxHashMap;

/// Every field the normalizer writes, each one bit of a [`FieldMask`]. A field written under a
/// name not listed here is always written.
const FIELDS: [&str; 67] = [
    "@timestamp",
    "event.original",
    "tags",
    "event.created",
    "ecs.version",
    "aws.cloudtrail.event_version",
    "aws.cloudtrail.user_identity.type",
    "related.user",
    "user.name",
    "user.id",
    "aws.cloudtrail.user_identity.arn",
    "cloud.account.id",
    "aws.cloudtrail.user_identity.access_key_id",
    "aws.cloudtrail.user_identity.session_context.mfa_authenticated",
    "aws.cloudtrail.user_identity.session_context.creation_date",
    "aws.cloudtrail.user_identity.session_context.session_issuer.type",
    "aws.cloudtrail.user_identity.session_context.session_issuer.principal_id",
    "aws.cloudtrail.user_identity.session_context.session_issuer.arn",
    "aws.cloudtrail.user_identity.session_context.session_issuer.account_id",
    "aws.cloudtrail.user_identity.invoked_by",
    "event.provider",
    "event.action",
    "aws.cloudtrail.event_category",
    "cloud.region",
    "source.address",
    "source.ip",
    "user_agent.original",
    "aws.cloudtrail.error_code",
    "aws.cloudtrail.error_message",
    "aws.cloudtrail.request_parameters",
    "aws.cloudtrail.response_elements",
    "aws.cloudtrail.additional_eventdata",
    "aws.cloudtrail.service_event_details",
    "aws.cloudtrail.flattened.request_parameters",
    "aws.cloudtrail.flattened.response_elements",
    "aws.cloudtrail.flattened.additional_eventdata",
    "aws.cloudtrail.flattened.service_event_details",
    "aws.cloudtrail.request_id",
    "event.id",
    "aws.cloudtrail.event_type",
    "aws.cloudtrail.api_version",
    "aws.cloudtrail.management_event",
    "aws.cloudtrail.read_only",
    "aws.cloudtrail.resources",
    "aws.cloudtrail.recipient_account_id",
    "aws.cloudtrail.shared_event_id",
    "aws.cloudtrail.vpc_endpoint_id",
    "aws.cloudtrail.console_login.additional_eventdata",
    "event.kind",
    "event.type",
    "event.outcome",
    "event.category",
    "aws.cloudtrail.flattened.insight_details",
    "group.id",
    "user.target.id",
    "user.changes.name",
    "group.name",
    "user.target.name",
    "tls.version_protocol",
    "tls.version",
    "tls.cipher",
    "tls.client.server_name",
    "event.dataset",
    "event.module",
    "data_stream.type",
    "data_stream.dataset",
    "data_stream.namespace",
];

// Looked up for every field of every record built, hence the fast (not DoS-resistant) hash:
// the keys are this fixed list.
fn bits() -> &'static FxHashMap<&'static str, u128> {
    static BITS: OnceLock<FxHashMap<&'static str, u128>> = OnceLock::new();
    BITS.get_or_init(|| {
        let mut bits = FxHashMap::default();
        for (i, field) in FIELDS.iter().enumerate() {
            bits.insert(*field, 1u128 << i);
        }
        bits
    })
}

/// A set of the normalizer's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldMask(u128);

impl FieldMask {
    /// The whole document.
    pub const ALL: FieldMask = FieldMask(u128::MAX);
    pub const NONE: FieldMask = FieldMask(0);

    pub fn is_all(self) -> bool {
        self == FieldMask::ALL
    }

    pub fn union(self, other: FieldMask) -> FieldMask {
        FieldMask(self.0 | other.0)
    }

    /// The fields a reader of `name` may see: the field itself, the fields under it (an
    /// object), and the object it lies in (`aws.cloudtrail.flattened.request_parameters` for
    /// `...request_parameters.functionName`). A name with a wildcard may see anything.
    pub fn reading(name: &str) -> FieldMask {
        if name.contains('*') || name.contains('?') {
            return FieldMask::ALL;
        }
        let mut mask = 0;
        for (field, bit) in bits() {
            let under = |outer: &str, inner: &str| {
                inner.len() > outer.len()
                    && inner.starts_with(outer)
                    && inner.as_bytes()[outer.len()] == b'.'
            };
            if *field == name || under(field, name) || under(name, field) {
                mask |= bit;
            }
        }
        FieldMask(mask)
    }

    /// The fields read by whoever reads `names` (and the event's time and id, which a scan
    /// always reads).
    pub fn reading_all<'a>(names: impl IntoIterator<Item = &'a str>) -> FieldMask {
        names
            .into_iter()
            .fold(FieldMask::reading("@timestamp"), |mask, name| {
                mask.union(FieldMask::reading(name))
            })
            .union(FieldMask::reading("event.id"))
    }

    /// How many listed fields the set holds: about how many a partial document gets.
    pub fn count(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the normalizer writes `field`.
    pub fn wants(self, field: &str) -> bool {
        self.is_all() || bits().get(field).is_none_or(|bit| self.0 & bit != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_sees_the_field_what_is_under_it_and_the_object_it_is_in() {
        let mask = FieldMask::reading("aws.cloudtrail.flattened.request_parameters.functionName");
        assert!(mask.wants("aws.cloudtrail.flattened.request_parameters"));
        assert!(!mask.wants("aws.cloudtrail.request_parameters"));
        let object = FieldMask::reading("aws.cloudtrail.user_identity");
        assert!(object.wants("aws.cloudtrail.user_identity.arn"));
        assert!(object.wants("aws.cloudtrail.user_identity.session_context.session_issuer.arn"));
        assert!(!object.wants("user.name"));
        // `user.name` does not cover `user.name_x`, nor `user.target.name`.
        let user = FieldMask::reading("user.name");
        assert!(user.wants("user.name") && !user.wants("user.target.name"));
        assert!(FieldMask::reading("aws.cloudtrail.*").is_all());
        // A field the normalizer never writes needs nothing; one it writes unlisted is kept.
        assert_eq!(FieldMask::reading("cloud.provider"), FieldMask::NONE);
        assert!(FieldMask::NONE.wants("some.unlisted.field"));
        let always = FieldMask::reading_all(["event.action"]);
        assert!(
            always.wants("@timestamp") && always.wants("event.id") && always.wants("event.action")
        );
        assert!(!always.wants("event.provider"));
    }
}
