//! What the emulated account knows about APIs, groups and roles, so that responses carry
//! the details real Akamai adds to the ids a client was granted (`apiName`, `endPoint`,
//! `groupName`, `roleName`, ...). Names follow Akamai's own SDK and Terraform fixtures.
//!
//! Real Akamai refuses ids the authorized user cannot grant; the emulation has no users
//! with permissions, so it describes any id and names unknown ones after the id.

use serde_json::{Value, json};

struct Api {
    id: i64,
    name: &'static str,
    description: &'static str,
    endpoint: &'static str,
    documentation_url: &'static str,
    /// The level `allAccessibleApis` grants.
    level: &'static str,
}

const APIS: &[Api] = &[
    Api {
        id: 1,
        name: "API Client Administration",
        description: "API clients and their credentials",
        endpoint: "/identity-management",
        documentation_url: "https://techdocs.akamai.com/iam-api",
        level: "READ-WRITE",
    },
    Api {
        id: 2,
        name: "CCU APIs",
        description: "Content control utility APIs",
        endpoint: "/ccu",
        documentation_url: "https://techdocs.akamai.com/purge-cache",
        level: "READ-WRITE",
    },
    Api {
        id: 5580,
        name: "Search Data Feed",
        description: "Search Data Feed",
        endpoint: "/search-portal-data-feed-api/",
        documentation_url: "https://techdocs.akamai.com",
        level: "READ-ONLY",
    },
    Api {
        id: 5801,
        name: "EdgeWorkers",
        description: "EdgeWorkers",
        endpoint: "/edgeworkers/",
        documentation_url: "https://techdocs.akamai.com/edgeworkers",
        level: "READ-WRITE",
    },
];

/// The account's top group, where every authorized user is an admin.
const TOP_GROUP: (i64, &str) = (10, "Top Group");
const ADMIN_ROLE: i64 = 1;

const ROLES: &[(i64, &str, &str)] = &[
    (
        ADMIN_ROLE,
        "Admin",
        "Manages users, groups and every configuration",
    ),
    (5, "Editor", "Creates and edits configurations"),
    (6, "Viewer", "Reads configurations"),
];

/// An API grant as responses show it.
pub fn api(id: i64, access_level: &str) -> Value {
    let known = APIS.iter().find(|a| a.id == id);
    let named = format!("API {id}");
    json!({
        "apiId": id,
        "apiName": known.map_or(named.as_str(), |a| a.name),
        "description": known.map_or(named.as_str(), |a| a.description),
        "endPoint": known.map_or(format!("/api-{id}"), |a| a.endpoint.to_owned()),
        "documentationUrl": known.map_or("https://techdocs.akamai.com", |a| a.documentation_url),
        "accessLevel": access_level,
    })
}

/// Every API, as `allAccessibleApis: true` lists them.
pub fn all_apis() -> Vec<Value> {
    APIS.iter().map(|a| api(a.id, a.level)).collect()
}

/// A group grant as responses show it, with its subgroups.
pub fn group(id: i64, role_id: i64, subgroups: Vec<Value>) -> Value {
    let name = if id == TOP_GROUP.0 {
        TOP_GROUP.1.to_owned()
    } else {
        format!("Group {id}")
    };
    let role = ROLES.iter().find(|(rid, ..)| *rid == role_id);
    let role_name = role.map_or(format!("Role {role_id}"), |(_, n, _)| (*n).to_owned());
    let role_description = role.map_or_else(|| role_name.clone(), |(.., d)| (*d).to_owned());
    json!({
        "groupId": id,
        "groupName": name,
        "parentGroupId": 0,
        "isBlocked": false,
        "roleId": role_id,
        "roleName": role_name,
        "roleDescription": role_description,
        "subGroups": subgroups,
    })
}

/// The authorized user's groups, which `cloneAuthorizedUserGroups: true` copies.
pub fn user_groups() -> Vec<Value> {
    vec![group(TOP_GROUP.0, ADMIN_ROLE, Vec::new())]
}
