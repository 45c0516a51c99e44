//! The integration's per-eventName ECS categorisation (the `params` of its categorisation
//! script). The lookup is by exact name, so version-suffixed names (every Lambda call)
//! get none.

/// `(eventName, event.category, event.type)`, sorted by name for binary search.
const TABLE: &[(&str, &str, &[&str])] = &[
    ("AddUserToGroup", "iam", &["group", "change"]),
    ("AssumeRole", "authentication", &["info"]),
    ("AttachGroupPolicy", "iam", &["group", "change"]),
    ("AttachUserPolicy", "iam", &["user", "change"]),
    ("ChangePassword", "iam", &["user", "change"]),
    ("ConsoleLogin", "authentication", &["info"]),
    ("CreateAccessKey", "iam", &["user", "change"]),
    ("CreateBucket", "file", &["creation"]),
    ("CreateGroup", "iam", &["group", "creation"]),
    ("CreateKeyPair", "iam", &["admin", "creation"]),
    ("CreateUser", "iam", &["user", "creation"]),
    ("CreateVirtualMFADevice", "iam", &["user", "change"]),
    ("DeactivateMFADevice", "iam", &["user", "change"]),
    ("DeleteAccessKey", "iam", &["user", "change"]),
    ("DeleteBucket", "file", &["deletion"]),
    ("DeleteGroup", "iam", &["group", "deletion"]),
    ("DeleteGroupPolicy", "iam", &["group", "change"]),
    ("DeleteSSHPublicKey", "iam", &["user", "change"]),
    ("DeleteUser", "iam", &["user", "deletion"]),
    ("DeleteUserPermissionsBoundary", "iam", &["user", "change"]),
    ("DeleteUserPolicy", "iam", &["user", "change"]),
    ("DeleteVirtualMFADevice", "iam", &["user", "change"]),
    ("DetachGroupPolicy", "iam", &["group", "change"]),
    ("DetachUserPolicy", "iam", &["user", "change"]),
    ("EnableMFADevice", "iam", &["user", "change"]),
    ("GetGroup", "iam", &["group", "info"]),
    ("GetGroupPolicy", "iam", &["group", "info"]),
    ("GetUser", "iam", &["user", "info"]),
    ("GetUserPolicy", "iam", &["user", "info"]),
    ("ListAttachedGroupPolicies", "iam", &["group", "info"]),
    ("ListAttachedUserPolicies", "iam", &["user", "info"]),
    ("ListGroupPolicies", "iam", &["group", "info"]),
    ("ListGroups", "iam", &["group", "info"]),
    ("ListGroupsForUser", "iam", &["user", "info"]),
    ("ListUserPolicies", "iam", &["user", "info"]),
    ("ListUserTags", "iam", &["user", "info"]),
    ("ListUsers", "iam", &["user", "info"]),
    ("PutGroupPolicy", "iam", &["group", "change"]),
    ("PutUserPermissionsBoundary", "iam", &["user", "change"]),
    ("PutUserPolicy", "iam", &["user", "change"]),
    ("RemoveUserFromGroup", "iam", &["group", "change"]),
    ("SetDefaultPolicyVersion", "iam", &["admin", "change"]),
    (
        "SetSecurityTokenServicePreferences",
        "iam",
        &["admin", "change"],
    ),
    ("TagUser", "iam", &["user", "change"]),
    ("UntagUser", "iam", &["user", "change"]),
    ("UpdateAccessKey", "iam", &["user", "change"]),
    ("UpdateAccountPasswordPolicy", "iam", &["admin", "change"]),
    ("UpdateGroup", "iam", &["group", "change"]),
    ("UpdateLoginProfile", "iam", &["user", "change"]),
    ("UpdateRole", "iam", &["admin", "change"]),
    ("UpdateSSHPublicKey", "iam", &["user", "change"]),
    ("UpdateUser", "iam", &["user", "change"]),
];

/// `event.category` and `event.type` for an exact eventName, if the table has it.
pub fn lookup(event_name: &str) -> Option<(&'static str, &'static [&'static str])> {
    TABLE
        .binary_search_by(|(name, _, _)| name.cmp(&event_name))
        .ok()
        .map(|i| (TABLE[i].1, TABLE[i].2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_exact() {
        assert!(TABLE.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(
            lookup("CreateUser"),
            Some(("iam", &["user", "creation"][..]))
        );
        assert_eq!(lookup("AddPermission20150331v2"), None);
    }
}
