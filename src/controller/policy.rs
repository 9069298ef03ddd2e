//! Store policy, decided without a cluster: which rule applies to a namespace, and whether
//! a key's request stays inside it. Enforcement (before anything upstream) is in
//! `reconcile_key`; the quota, which needs the other keys, is counted there too.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::schedule;
use crate::api::{AccessLevel, ApiClientSpec, PolicyRule, StorePolicy, TokenScope};

/// What a key asks of its store, in the policy's terms.
pub struct Request<'a> {
    /// The upstream name it uses; `None` for Prefactor tokens, which have none.
    pub upstream_name: Option<String>,
    /// Where the spec sets the credential's expiry, and to what.
    pub expiry: (&'static str, Option<Timestamp>),
    /// `spec.rotation.interval`.
    pub rotation_interval: Option<&'a str>,
    pub provider: ProviderRequest<'a>,
}

/// The provider-specific part of a [`Request`].
pub enum ProviderRequest<'a> {
    Zenml {
        service_account: Option<&'a str>,
    },
    TrendMicro {
        role_id: Option<i64>,
    },
    Akamai(&'a ApiClientSpec),
    Prefactor {
        scope: TokenScope,
        environment_id: Option<&'a str>,
        /// `spec.accountId`, else the store's.
        account_id: Option<&'a str>,
    },
}

/// Which rule of a store's policy applies to a namespace.
#[derive(Debug, PartialEq)]
pub enum Applies<'a> {
    /// The store has no policy, or (a CredentialStore) none of its rules matches.
    Unrestricted,
    Rule(&'a PolicyRule),
    /// A ClusterCredentialStore whose policy has no rule for the namespace: refused.
    NoRule,
}

/// Whether matching `namespace` needs its labels: a rule with a selector comes before the
/// first rule naming it (else the names decide, and the Namespace is not read).
pub fn needs_labels(policy: &StorePolicy, namespace: &str) -> bool {
    policy
        .rules
        .iter()
        .take_while(|r| !r.namespaces.iter().any(|n| n == "*" || n == namespace))
        .any(|r| r.namespace_selector.is_some())
}

/// The first rule matching `namespace` (by name, `*`, or its `labels`).
pub fn applies<'a>(
    policy: Option<&'a StorePolicy>,
    cluster_store: bool,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Applies<'a> {
    let Some(policy) = policy else {
        return Applies::Unrestricted;
    };
    let matches = |rule: &PolicyRule| {
        rule.namespaces.iter().any(|n| n == "*" || n == namespace)
            || rule
                .namespace_selector
                .as_ref()
                .is_some_and(|selector| super::store_registry::selector_matches(selector, labels))
    };
    match policy.rules.iter().find(|rule| matches(rule)) {
        Some(rule) => Applies::Rule(rule),
        None if cluster_store => Applies::NoRule,
        None => Applies::Unrestricted,
    }
}

/// Why a request is outside a rule: the spec field and what is wrong with it.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub detail: String,
}

fn refuse(field: impl Into<String>, detail: impl Into<String>) -> Result<(), Violation> {
    Err(Violation {
        field: field.into(),
        detail: detail.into(),
    })
}

fn listed<T: ToString>(items: &[T]) -> String {
    match items {
        [] => "none".into(),
        items => items.iter().map(T::to_string).collect::<Vec<_>>().join(", "),
    }
}

/// Checks `request` against `rule` at `now`: the first field outside it.
pub fn check(rule: &PolicyRule, request: &Request<'_>, now: Timestamp) -> Result<(), Violation> {
    check_common(rule, request, now)?;
    match &request.provider {
        ProviderRequest::Zenml { service_account } => {
            if let Some(allowed) = rule.zenml.as_ref().and_then(|z| z.service_accounts.as_ref())
                && !service_account.is_some_and(|sa| allowed.iter().any(|a| a == sa))
            {
                let asked = service_account.unwrap_or("none");
                return refuse(
                    "spec.serviceAccount",
                    format!("{asked:?} is not allowed (allowed: {})", listed(allowed)),
                );
            }
        }
        ProviderRequest::TrendMicro { role_id } => {
            if let Some(trend) = &rule.trend_micro {
                if let Some(allowed) = &trend.role_ids
                    && !role_id.is_some_and(|r| allowed.contains(&r))
                {
                    let asked = role_id.map_or("none".into(), |r| r.to_string());
                    return refuse(
                        "spec.roleID",
                        format!("{asked} is not allowed (allowed: {})", listed(allowed)),
                    );
                }
                if trend.require_expiry == Some(true) && request.expiry.1.is_none() {
                    return refuse("spec.expiresAt", "is required: keys must expire");
                }
            }
        }
        ProviderRequest::Akamai(spec) => {
            if let Some(akamai) = &rule.akamai {
                check_akamai(akamai, spec)?;
            }
        }
        ProviderRequest::Prefactor {
            scope,
            environment_id,
            account_id,
        } => {
            if let Some(prefactor) = &rule.prefactor {
                if let Some(scopes) = &prefactor.scopes
                    && !scopes.contains(scope)
                {
                    let names: Vec<&str> = scopes.iter().map(|s| scope_name(*s)).collect();
                    return refuse(
                        "spec.scope",
                        format!(
                            "{} is not allowed (allowed: {})",
                            scope_name(*scope),
                            listed(&names)
                        ),
                    );
                }
                if let (Some(allowed), TokenScope::Environment) = (&prefactor.environment_ids, scope)
                    && !environment_id.is_some_and(|e| allowed.iter().any(|a| a == e))
                {
                    let asked = environment_id.unwrap_or("none");
                    return refuse(
                        "spec.environmentId",
                        format!("{asked:?} is not allowed (allowed: {})", listed(allowed)),
                    );
                }
                if let Some(allowed) = &prefactor.account_ids
                    && !account_id.is_some_and(|a| allowed.iter().any(|x| x == a))
                {
                    let detail = match account_id {
                        Some(asked) => format!("{asked:?} is not allowed (allowed: {})", listed(allowed)),
                        None => format!("must name one of the allowed accounts ({})", listed(allowed)),
                    };
                    return refuse("spec.accountId", detail);
                }
            }
        }
    }
    Ok(())
}

fn check_common(rule: &PolicyRule, request: &Request<'_>, now: Timestamp) -> Result<(), Violation> {
    if let Some(max) = &rule.max_lifetime {
        let max = duration(max);
        let (field, expiry) = request.expiry;
        match (&request.provider, expiry) {
            (ProviderRequest::Zenml { .. }, _) => {
                return refuse(
                    "spec",
                    format!(
                        "ZenML keys never expire, and the rule allows credentials that live at most {}",
                        human(max)
                    ),
                );
            }
            (_, None) => {
                return refuse(
                    field,
                    format!("is required: credentials may live at most {}", human(max)),
                );
            }
            (_, Some(at)) if at > now + max => {
                return refuse(
                    field,
                    format!(
                        "{at} is more than {} from now, the longest the rule allows",
                        human(max)
                    ),
                );
            }
            _ => {}
        }
    }
    if let Some(max) = &rule.max_rotation_interval {
        let max = duration(max);
        let interval = request
            .rotation_interval
            .map(|i| schedule::parse_duration("spec.rotation.interval", i));
        match interval {
            None => {
                return refuse(
                    "spec.rotation.interval",
                    format!(
                        "is required: credentials must be rotated at least every {}",
                        human(max)
                    ),
                );
            }
            Some(Ok(every)) if every > max => {
                return refuse(
                    "spec.rotation.interval",
                    format!(
                        "{} is longer than {}, the longest the rule allows",
                        human(every),
                        human(max)
                    ),
                );
            }
            _ => {}
        }
    }
    if let (Some(prefix), Some(name)) = (&rule.name_prefix, &request.upstream_name)
        && !name.starts_with(prefix.as_str())
    {
        let field = match request.provider {
            ProviderRequest::Akamai(_) => "spec.clientName",
            _ => "spec.keyName",
        };
        return refuse(
            field,
            format!("upstream name {name:?} does not start with {prefix:?}"),
        );
    }
    Ok(())
}

fn check_akamai(rule: &crate::api::AkamaiRule, spec: &ApiClientSpec) -> Result<(), Violation> {
    if let Some(allowed) = &rule.authorized_users
        && let Some(user) = spec.authorized_users.iter().find(|u| !allowed.contains(u))
    {
        return refuse(
            "spec.authorizedUsers",
            format!("{user:?} is not allowed (allowed: {})", listed(allowed)),
        );
    }
    if spec.api_access.all_accessible_apis == Some(true) && rule.allow_all_accessible_apis == Some(false) {
        return refuse(
            "spec.apiAccess.allAccessibleApis",
            "is not allowed: grant the APIs one by one",
        );
    }
    if let Some(limits) = &rule.apis {
        for grant in spec.api_access.apis.iter().flatten() {
            match limits.iter().find(|l| l.api_id == grant.api_id) {
                None => {
                    let ids: Vec<i64> = limits.iter().map(|l| l.api_id).collect();
                    return refuse(
                        "spec.apiAccess.apis",
                        format!("API {} is not allowed (allowed: {})", grant.api_id, listed(&ids)),
                    );
                }
                Some(limit) if !within(grant.access_level, limit.max_access_level) => {
                    return refuse(
                        "spec.apiAccess.apis",
                        format!(
                            "API {} is allowed {} at most, not {}",
                            grant.api_id,
                            level_name(limit.max_access_level),
                            level_name(grant.access_level)
                        ),
                    );
                }
                Some(_) => {}
            }
        }
    }
    if spec.group_access.clone_authorized_user_groups == Some(true) && rule.allow_clone_groups == Some(false)
    {
        return refuse(
            "spec.groupAccess.cloneAuthorizedUserGroups",
            "is not allowed: list the groups and roles",
        );
    }
    if let Some(limits) = &rule.groups {
        for grant in spec.group_access.groups.iter().flatten() {
            let allowed = limits
                .iter()
                .find(|l| l.group_id == grant.group_id)
                .is_some_and(|l| l.role_ids.contains(&grant.role_id));
            if !allowed {
                return refuse(
                    "spec.groupAccess.groups",
                    format!(
                        "role {} in group {} is not allowed",
                        grant.role_id, grant.group_id
                    ),
                );
            }
        }
    }
    if spec.allow_account_switch == Some(true) && rule.allow_account_switch == Some(false) {
        return refuse("spec.allowAccountSwitch", "is not allowed");
    }
    let acl = spec.ip_acl.as_ref().filter(|acl| acl.enable);
    if rule.require_ip_acl == Some(true) && acl.is_none_or(|acl| acl.cidr.is_empty()) {
        return refuse(
            "spec.ipAcl",
            "is required: enable an IP allow-list with at least one network",
        );
    }
    if let (Some(within), Some(acl)) = (&rule.ip_acl_within, acl)
        && let Some(outside) = acl
            .cidr
            .iter()
            .find(|c| !within.iter().any(|w| cidr_within(c, w)))
    {
        return refuse(
            "spec.ipAcl.cidr",
            format!(
                "{outside} is not within the allowed networks ({})",
                listed(within)
            ),
        );
    }
    Ok(())
}

/// Whether `limit` allows `level`. Not a ranking: the credential levels reach only an API's
/// credential calls, so `CREDENTIAL-READ-WRITE` allows neither `READ-ONLY` nor `READ-WRITE`
/// (full use of the API), while `READ-WRITE` allows all four and `READ-ONLY` both reads.
fn within(level: AccessLevel, limit: AccessLevel) -> bool {
    use AccessLevel::*;
    match limit {
        ReadWrite => true,
        ReadOnly => matches!(level, ReadOnly | CredentialReadOnly),
        CredentialReadWrite => matches!(level, CredentialReadOnly | CredentialReadWrite),
        CredentialReadOnly => level == CredentialReadOnly,
    }
}

fn level_name(level: AccessLevel) -> &'static str {
    match level {
        AccessLevel::ReadOnly => "READ-ONLY",
        AccessLevel::ReadWrite => "READ-WRITE",
        AccessLevel::CredentialReadOnly => "CREDENTIAL-READ-ONLY",
        AccessLevel::CredentialReadWrite => "CREDENTIAL-READ-WRITE",
    }
}

fn scope_name(scope: TokenScope) -> &'static str {
    match scope {
        TokenScope::Account => "account",
        TokenScope::Environment => "environment",
    }
}

/// The schema admits only well-formed durations; a bad one constrains to nothing.
fn duration(value: &str) -> SignedDuration {
    schedule::parse_duration("policy", value).unwrap_or(SignedDuration::ZERO)
}

fn human(duration: SignedDuration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        s if s % 86_400 == 0 && s > 0 => format!("{} days", s / 86_400),
        s if s % 3_600 == 0 && s > 0 => format!("{} hours", s / 3_600),
        s => format!("{s} s"),
    }
}

/// Whether network `inner` (CIDR) lies within network `outer` (CIDR). Malformed input is
/// refused by the CRD schema; here it never counts as within.
fn cidr_within(inner: &str, outer: &str) -> bool {
    let (Some((inner_ip, inner_len)), Some((outer_ip, outer_len))) = (parse_cidr(inner), parse_cidr(outer))
    else {
        return false;
    };
    if inner_len < outer_len {
        return false;
    }
    match (inner_ip, outer_ip) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(outer_len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(outer_len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

fn parse_cidr(cidr: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = cidr.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_level_limit_never_allows_full_use_of_the_api() {
        use AccessLevel::*;
        let all = [ReadOnly, ReadWrite, CredentialReadOnly, CredentialReadWrite];
        let allowed = |limit| {
            all.into_iter()
                .filter(|level| within(*level, limit))
                .collect::<Vec<_>>()
        };
        assert_eq!(allowed(ReadWrite), all);
        assert_eq!(allowed(ReadOnly), [ReadOnly, CredentialReadOnly]);
        assert_eq!(
            allowed(CredentialReadWrite),
            [CredentialReadOnly, CredentialReadWrite]
        );
        assert_eq!(allowed(CredentialReadOnly), [CredentialReadOnly]);
    }

    fn rule(json: serde_json::Value) -> PolicyRule {
        let mut value = serde_json::json!({"name": "team", "namespaces": ["*"]});
        value
            .as_object_mut()
            .unwrap()
            .extend(json.as_object().unwrap().clone());
        serde_json::from_value(value).unwrap()
    }

    fn now() -> Timestamp {
        "2026-12-01T00:00:00Z".parse().unwrap()
    }

    fn trend(role: i64, expiry: Option<&str>) -> Request<'static> {
        Request {
            upstream_name: Some("team-a-scanner".into()),
            expiry: ("spec.expiresAt", expiry.map(|e| e.parse().unwrap())),
            rotation_interval: None,
            provider: ProviderRequest::TrendMicro { role_id: Some(role) },
        }
    }

    fn field(result: Result<(), Violation>) -> String {
        result.expect_err("refused").field
    }

    #[test]
    fn the_first_matching_rule_applies_and_a_cluster_store_refuses_the_rest() {
        let policy: StorePolicy = serde_json::from_value(serde_json::json!({"rules": [
            {"name": "by-label", "namespaceSelector": {"matchLabels": {"tier": "prod"}}},
            {"name": "by-name", "namespaces": ["team-a"]},
            {"name": "everyone", "namespaces": ["team-a", "team-b"]},
        ]}))
        .unwrap();
        let prod = BTreeMap::from([("tier".to_string(), "prod".to_string())]);
        let name = |a: Applies<'_>| match a {
            Applies::Rule(r) => r.name.clone(),
            other => format!("{other:?}"),
        };
        assert_eq!(name(applies(Some(&policy), true, "team-a", &prod)), "by-label");
        assert_eq!(
            name(applies(Some(&policy), true, "team-a", &BTreeMap::new())),
            "by-name"
        );
        assert_eq!(
            name(applies(Some(&policy), true, "team-b", &BTreeMap::new())),
            "everyone"
        );
        assert_eq!(
            applies(Some(&policy), true, "other", &BTreeMap::new()),
            Applies::NoRule
        );
        assert_eq!(
            applies(Some(&policy), false, "other", &BTreeMap::new()),
            Applies::Unrestricted
        );
        assert_eq!(
            applies(None, true, "other", &BTreeMap::new()),
            Applies::Unrestricted
        );
        assert!(needs_labels(&policy, "team-a"), "the label rule comes first");
        let by_name_first = StorePolicy {
            rules: policy.rules[1..]
                .iter()
                .rev()
                .cloned()
                .chain(policy.rules[..1].iter().cloned())
                .collect(),
        };
        assert!(
            !needs_labels(&by_name_first, "team-a"),
            "a name rule decides first"
        );
        assert!(needs_labels(&by_name_first, "other"));
    }

    #[test]
    fn trend_roles_and_expiry() {
        let r = rule(serde_json::json!({"trendMicro": {"roleIDs": [3, 4], "requireExpiry": true}}));
        assert!(check(&r, &trend(3, Some("2027-01-01T00:00:00Z")), now()).is_ok());
        let refused = check(&r, &trend(1, Some("2027-01-01T00:00:00Z")), now()).unwrap_err();
        assert_eq!(refused.field, "spec.roleID");
        assert_eq!(refused.detail, "1 is not allowed (allowed: 3, 4)");
        assert_eq!(field(check(&r, &trend(3, None), now())), "spec.expiresAt");
    }

    #[test]
    fn lifetime_rotation_and_name_prefix() {
        let r = rule(
            serde_json::json!({"maxLifetime": "720h", "maxRotationInterval": "168h", "namePrefix": "team-a-"}),
        );
        let mut request = trend(3, Some("2026-12-20T00:00:00Z"));
        assert_eq!(field(check(&r, &request, now())), "spec.rotation.interval");
        request.rotation_interval = Some("720h");
        let refused = check(&r, &request, now()).unwrap_err();
        assert_eq!(
            refused.detail,
            "30 days is longer than 7 days, the longest the rule allows"
        );
        request.rotation_interval = Some("24h");
        assert!(check(&r, &request, now()).is_ok());
        request.expiry.1 = Some("2027-06-01T00:00:00Z".parse().unwrap());
        assert_eq!(field(check(&r, &request, now())), "spec.expiresAt");
        request.expiry.1 = None;
        assert_eq!(field(check(&r, &request, now())), "spec.expiresAt");
        request.expiry.1 = Some("2026-12-20T00:00:00Z".parse().unwrap());
        request.upstream_name = Some("other-scanner".into());
        assert_eq!(field(check(&r, &request, now())), "spec.keyName");

        let zenml = Request {
            upstream_name: Some("team-a-x".into()),
            expiry: ("spec.expiresAt", None),
            rotation_interval: Some("24h"),
            provider: ProviderRequest::Zenml {
                service_account: Some("sa"),
            },
        };
        assert_eq!(field(check(&r, &zenml, now())), "spec", "ZenML keys never expire");
    }

    #[test]
    fn zenml_accounts_and_prefactor_scopes() {
        let r = rule(serde_json::json!({
            "zenml": {"serviceAccounts": ["apps"]},
            "prefactor": {"scopes": ["environment"], "environmentIds": ["env1"], "accountIds": ["acc1"]},
        }));
        let zenml = |sa| Request {
            upstream_name: None,
            expiry: ("spec.expiresAt", None),
            rotation_interval: None,
            provider: ProviderRequest::Zenml {
                service_account: Some(sa),
            },
        };
        assert!(check(&r, &zenml("apps"), now()).is_ok());
        assert_eq!(
            field(check(&r, &zenml("credstore-admin"), now())),
            "spec.serviceAccount"
        );
        let token = |scope, env, account| Request {
            upstream_name: None,
            expiry: ("spec.expiresAt", None),
            rotation_interval: None,
            provider: ProviderRequest::Prefactor {
                scope,
                environment_id: env,
                account_id: account,
            },
        };
        assert!(
            check(
                &r,
                &token(TokenScope::Environment, Some("env1"), Some("acc1")),
                now()
            )
            .is_ok()
        );
        assert_eq!(
            field(check(&r, &token(TokenScope::Account, None, Some("acc1")), now())),
            "spec.scope"
        );
        assert_eq!(
            field(check(
                &r,
                &token(TokenScope::Environment, Some("env2"), Some("acc1")),
                now()
            )),
            "spec.environmentId"
        );
        assert_eq!(
            field(check(
                &r,
                &token(TokenScope::Environment, Some("env1"), None),
                now()
            )),
            "spec.accountId"
        );
    }

    #[test]
    fn akamai_access_groups_switching_and_ip_acl() {
        let r = rule(serde_json::json!({"akamai": {
            "authorizedUsers": ["bot"], "allowAllAccessibleApis": false,
            "apis": [{"apiId": 1, "maxAccessLevel": "READ-ONLY"}, {"apiId": 2, "maxAccessLevel": "READ-WRITE"}],
            "allowCloneGroups": false, "groups": [{"groupId": 10, "roleIds": [5]}],
            "allowAccountSwitch": false, "requireIpAcl": true, "ipAclWithin": ["10.0.0.0/8", "2001:db8::/32"],
        }}));
        let spec = |extra: serde_json::Value| -> ApiClientSpec {
            let mut value = serde_json::json!({
                "storeRef": {"name": "a"}, "authorizedUsers": ["bot"],
                "apiAccess": {"apis": [{"apiId": 2, "accessLevel": "READ-WRITE"}]},
                "groupAccess": {"groups": [{"groupId": 10, "roleId": 5}]},
                "ipAcl": {"enable": true, "cidr": ["10.1.0.0/16", "2001:db8:1::/48"]},
            });
            value
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            serde_json::from_value(value).unwrap()
        };
        let verdict = |spec: &ApiClientSpec| {
            let request = Request {
                upstream_name: None,
                expiry: ("spec.credential.expiresAt", None),
                rotation_interval: None,
                provider: ProviderRequest::Akamai(spec),
            };
            check(&r, &request, now()).err().map(|v| (v.field, v.detail))
        };
        assert_eq!(verdict(&spec(serde_json::json!({}))), None);
        let refusals = [
            (
                serde_json::json!({"authorizedUsers": ["root"]}),
                "spec.authorizedUsers",
            ),
            (
                serde_json::json!({"apiAccess": {"allAccessibleApis": true}}),
                "spec.apiAccess.allAccessibleApis",
            ),
            (
                serde_json::json!({"apiAccess": {"apis": [{"apiId": 1, "accessLevel": "READ-WRITE"}]}}),
                "spec.apiAccess.apis",
            ),
            (
                serde_json::json!({"apiAccess": {"apis": [{"apiId": 3, "accessLevel": "READ-ONLY"}]}}),
                "spec.apiAccess.apis",
            ),
            (
                serde_json::json!({"groupAccess": {"cloneAuthorizedUserGroups": true}}),
                "spec.groupAccess.cloneAuthorizedUserGroups",
            ),
            (
                serde_json::json!({"groupAccess": {"groups": [{"groupId": 10, "roleId": 6}]}}),
                "spec.groupAccess.groups",
            ),
            (
                serde_json::json!({"allowAccountSwitch": true}),
                "spec.allowAccountSwitch",
            ),
            (
                serde_json::json!({"ipAcl": {"enable": false, "cidr": ["10.0.0.0/8"]}}),
                "spec.ipAcl",
            ),
            (
                serde_json::json!({"ipAcl": {"enable": true, "cidr": ["192.168.0.0/16"]}}),
                "spec.ipAcl.cidr",
            ),
            (
                serde_json::json!({"ipAcl": {"enable": true, "cidr": ["10.0.0.0/7"]}}),
                "spec.ipAcl.cidr",
            ),
        ];
        for (extra, wanted) in refusals {
            let got = verdict(&spec(extra.clone()));
            assert_eq!(
                got.as_ref().map(|(f, _)| f.as_str()),
                Some(wanted),
                "{extra}: {got:?}"
            );
        }
    }

    #[test]
    fn networks_are_compared_by_prefix() {
        assert!(cidr_within("10.1.2.0/24", "10.0.0.0/8"));
        assert!(cidr_within("10.0.0.0/8", "10.0.0.0/8"));
        assert!(!cidr_within("11.0.0.0/24", "10.0.0.0/8"));
        assert!(!cidr_within("0.0.0.0/0", "10.0.0.0/8"));
        assert!(cidr_within("203.0.113.7/32", "0.0.0.0/0"));
        assert!(!cidr_within("2001:db8::/32", "10.0.0.0/8"));
        assert!(!cidr_within("bogus", "10.0.0.0/8"));
    }
}
