//! What the API server accepts in a ResourceQuota and a LimitRange, checked on the spec before
//! anything is written (pure). The CRD's CEL rules refuse negative quantities and defaults out
//! of order at admission; this re-checks them for objects admitted before those rules existed,
//! and checks what CEL does not: the resource names each kind takes, whole numbers for counted
//! resources, and the LimitRange's defaulting of a missing `defaultLimit` from `max`. The rules
//! and their wording follow `k8s.io/kubernetes/pkg/apis/core/validation`.

use std::collections::BTreeMap;

use govdc_crds::department_cloud::ContainerDefaults;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::pipeline::report::Problem;
use crate::quantity;

/// Resources a ResourceQuota takes without a domain prefix.
const STANDARD_QUOTA_RESOURCES: [&str; 19] = [
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

/// Resources counted in whole objects.
const INTEGER_RESOURCES: [&str; 9] = [
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];

/// Resources a container (so a LimitRange of type Container) takes without a domain prefix.
const STANDARD_CONTAINER_RESOURCES: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// Whether a resource is measured in whole units: the counted kinds, `count/<kind>` and
/// extended resources (`example.com/gpu`).
pub fn is_integer_resource(name: &str) -> bool {
    INTEGER_RESOURCES.contains(&name) || is_extended_resource(name)
}

/// A resource outside the `kubernetes.io` domain, not in quota's `requests.` notation.
fn is_extended_resource(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

/// A qualified name (`[prefix/]name`): an optional DNS-subdomain prefix, then up to 63
/// alphanumerics, `-`, `_` or `.`, starting and ending alphanumeric.
fn is_qualified_name(text: &str) -> bool {
    let (prefix, name) = match text.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, text),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    });
    name_ok && prefix_ok
}

fn is_quota_resource(name: &str) -> bool {
    is_qualified_name(name)
        && (name.contains('/')
            || STANDARD_QUOTA_RESOURCES.contains(&name)
            || name.starts_with("hugepages-")
            || name.starts_with("requests.hugepages-"))
}

fn is_container_resource(name: &str) -> bool {
    if !is_qualified_name(name) {
        return false;
    }
    if name.contains('/') {
        return name.contains("kubernetes.io/") || is_extended_resource(name);
    }
    STANDARD_CONTAINER_RESOURCES.contains(&name) || name.starts_with("hugepages-")
}

/// Parsed quantities of one map, with a problem for each that is no quantity or is negative.
fn parse_checked(
    field: &str,
    quantities: &BTreeMap<String, Quantity>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, i128> {
    let mut parsed = BTreeMap::new();
    for (name, value) in quantities {
        match quantity::parse(&value.0) {
            Err(error) => problems.push(Problem::new(
                "InvalidQuantity",
                format!("{field}[{name}]: {error}"),
            )),
            Ok(amount) if amount < 0 => problems.push(Problem::new(
                "NegativeQuantity",
                format!(
                    "{field}[{name}]: {} must be greater than or equal to 0",
                    value.0
                ),
            )),
            Ok(amount) => {
                parsed.insert(name.clone(), amount);
            }
        }
    }
    parsed
}

/// The problems the API server would find in a ResourceQuota whose `hard` is `quota`; `field`
/// names the spec field it comes from (`spec.quota`, `spec.environments[prod].quota`).
pub fn check_quota(field: &str, quota: &BTreeMap<String, Quantity>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for name in quota.keys().filter(|name| !is_quota_resource(name)) {
        problems.push(Problem::new(
            "InvalidQuotaResource",
            format!("{field}[{name}]: must be a standard resource for quota or a domain-qualified name such as count/deployments.apps"),
        ));
    }
    let parsed = parse_checked(field, quota, &mut problems);
    for (name, amount) in &parsed {
        if is_integer_resource(name) && amount % 1000 != 0 {
            problems.push(Problem::new(
                "InvalidQuantity",
                format!("{field}[{name}]: {} must be an integer", quota[name].0),
            ));
        }
    }
    problems
}

/// The problems the API server would find in the LimitRange made of `defaults`, after it fills
/// a missing `default` from `max` and a missing `defaultRequest` from `default`.
pub fn check_container_defaults(defaults: &ContainerDefaults) -> Vec<Problem> {
    const FIELD: &str = "spec.containerDefaults";
    let mut problems = Vec::new();
    let empty = BTreeMap::new();
    let maps = [
        (
            "defaultRequest",
            defaults.default_request.as_ref().unwrap_or(&empty),
        ),
        (
            "defaultLimit",
            defaults.default_limit.as_ref().unwrap_or(&empty),
        ),
        ("max", defaults.max.as_ref().unwrap_or(&empty)),
    ];
    for (field, map) in maps {
        for name in map.keys().filter(|name| !is_container_resource(name)) {
            problems.push(Problem::new(
                "InvalidContainerResource",
                format!("{FIELD}.{field}[{name}]: must be a standard resource for containers (cpu, memory, ephemeral-storage, hugepages-<size>) or an extended resource such as example.com/gpu"),
            ));
        }
    }
    let [request, limit, max] =
        maps.map(|(field, map)| parse_checked(&format!("{FIELD}.{field}"), map, &mut problems));
    // The LimitRange the API server stores: a missing default limit is the max.
    let mut effective_limit = limit.clone();
    for (name, amount) in &max {
        effective_limit.entry(name.clone()).or_insert(*amount);
    }
    let text = |map: &BTreeMap<String, Quantity>, name: &str| {
        map.get(name).map(|q| q.0.clone()).unwrap_or_default()
    };
    let [request_text, limit_text, max_text] = maps.map(|(_, map)| map);
    for (name, amount) in &request {
        if max.get(name).is_some_and(|ceiling| amount > ceiling) {
            problems.push(Problem::new(
                "ContainerDefaultsOutOfOrder",
                format!(
                    "{FIELD}.defaultRequest[{name}]: default request value {} is greater than max value {}",
                    text(request_text, name),
                    text(max_text, name)
                ),
            ));
        } else if effective_limit
            .get(name)
            .is_some_and(|ceiling| amount > ceiling)
        {
            let (what, value) = if limit.contains_key(name) {
                ("defaultLimit", text(limit_text, name))
            } else {
                (
                    "max (the default limit when none is given)",
                    text(max_text, name),
                )
            };
            problems.push(Problem::new(
                "ContainerDefaultsOutOfOrder",
                format!(
                    "{FIELD}.defaultRequest[{name}]: default request value {} is greater than the {what} {value}",
                    text(request_text, name),
                ),
            ));
        }
    }
    for (name, amount) in &limit {
        if max.get(name).is_some_and(|ceiling| amount > ceiling) {
            problems.push(Problem::new(
                "ContainerDefaultsOutOfOrder",
                format!(
                    "{FIELD}.defaultLimit[{name}]: default value {} is greater than max value {}",
                    text(limit_text, name),
                    text(max_text, name)
                ),
            ));
        }
    }
    // Hugepages and extended resources cannot be overcommitted: a container's request is its
    // limit.
    for (name, amount) in &request {
        let overcommit_allowed = !name.starts_with("hugepages-") && !is_extended_resource(name);
        if let Some(ceiling) = effective_limit.get(name)
            && !overcommit_allowed
            && ceiling != amount
        {
            problems.push(Problem::new(
                "ContainerDefaultsOutOfOrder",
                format!(
                    "{FIELD}.defaultRequest[{name}]: {name} cannot be overcommitted; the default request must equal the default limit"
                ),
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
            .collect()
    }

    fn reasons(problems: &[Problem]) -> Vec<&'static str> {
        problems.iter().map(|p| p.reason).collect()
    }

    fn defaults(
        request: &[(&str, &str)],
        limit: &[(&str, &str)],
        max: &[(&str, &str)],
    ) -> ContainerDefaults {
        let some = |pairs: &[(&str, &str)]| (!pairs.is_empty()).then(|| map(pairs));
        ContainerDefaults {
            default_request: some(request),
            default_limit: some(limit),
            max: some(max),
        }
    }

    #[test]
    fn a_usual_quota_is_accepted() {
        let quota = map(&[
            ("requests.cpu", "4"),
            ("limits.memory", "8Gi"),
            ("pods", "20"),
            ("count/deployments.apps", "10"),
            ("gold.storageclass.storage.k8s.io/requests.storage", "1Ti"),
            ("requests.hugepages-2Mi", "1Gi"),
        ]);
        assert_eq!(check_quota("spec.quota", &quota), []);
    }

    #[test]
    fn a_negative_quota_is_refused_naming_the_field_and_resource() {
        let problems = check_quota("spec.quota", &map(&[("requests.cpu", "-1")]));
        assert_eq!(reasons(&problems), ["NegativeQuantity"]);
        assert_eq!(
            problems[0].message,
            "spec.quota[requests.cpu]: -1 must be greater than or equal to 0"
        );
    }

    #[test]
    fn a_quota_resource_the_api_server_does_not_know_is_refused() {
        for name in ["cpus", "requests.gpu", "Pods", "bad name"] {
            let problems = check_quota("spec.quota", &map(&[(name, "1")]));
            assert_eq!(reasons(&problems), ["InvalidQuotaResource"], "{name}");
            assert!(
                problems[0]
                    .message
                    .starts_with(&format!("spec.quota[{name}]"))
            );
        }
    }

    #[test]
    fn counted_resources_take_whole_numbers_only() {
        let problems = check_quota(
            "spec.environments[prod].quota",
            &map(&[
                ("pods", "1.5"),
                ("count/configmaps", "500m"),
                ("cpu", "1.5"),
            ]),
        );
        assert_eq!(reasons(&problems), ["InvalidQuantity", "InvalidQuantity"]);
        assert!(
            problems
                .iter()
                .all(|p| p.message.contains("must be an integer"))
        );
    }

    #[test]
    fn text_that_is_no_quantity_is_refused() {
        let problems = check_quota("spec.quota", &map(&[("cpu", "lots")]));
        assert_eq!(reasons(&problems), ["InvalidQuantity"]);
    }

    #[test]
    fn defaults_in_order_are_accepted() {
        let d = defaults(
            &[("cpu", "100m"), ("memory", "128Mi")],
            &[("cpu", "500m"), ("memory", "256Mi")],
            &[("cpu", "2"), ("memory", "1Gi")],
        );
        assert_eq!(check_container_defaults(&d), []);
        // Equal is in order.
        let d = defaults(&[("cpu", "1")], &[("cpu", "1")], &[("cpu", "1")]);
        assert_eq!(check_container_defaults(&d), []);
    }

    #[test]
    fn a_default_request_above_the_default_limit_is_refused() {
        let problems = check_container_defaults(&defaults(&[("cpu", "2")], &[("cpu", "1")], &[]));
        assert_eq!(reasons(&problems), ["ContainerDefaultsOutOfOrder"]);
        assert!(
            problems[0]
                .message
                .starts_with("spec.containerDefaults.defaultRequest[cpu]"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn a_default_limit_above_max_is_refused() {
        let problems =
            check_container_defaults(&defaults(&[], &[("memory", "2Gi")], &[("memory", "1Gi")]));
        assert_eq!(reasons(&problems), ["ContainerDefaultsOutOfOrder"]);
        assert!(
            problems[0]
                .message
                .starts_with("spec.containerDefaults.defaultLimit[memory]")
        );
    }

    #[test]
    fn without_a_default_limit_the_max_bounds_the_default_request() {
        let problems = check_container_defaults(&defaults(&[("cpu", "3")], &[], &[("cpu", "2")]));
        assert_eq!(reasons(&problems), ["ContainerDefaultsOutOfOrder"]);
        assert!(problems[0].message.contains("greater than max value 2"));
    }

    #[test]
    fn resources_a_container_cannot_ask_for_are_refused() {
        let problems =
            check_container_defaults(&defaults(&[("requests.cpu", "1")], &[("pods", "1")], &[]));
        assert_eq!(
            reasons(&problems),
            ["InvalidContainerResource", "InvalidContainerResource"]
        );
    }

    #[test]
    fn negative_defaults_are_refused() {
        let problems = check_container_defaults(&defaults(&[("cpu", "-100m")], &[], &[]));
        assert_eq!(reasons(&problems), ["NegativeQuantity"]);
    }

    #[test]
    fn extended_resources_are_not_overcommitted() {
        let problems = check_container_defaults(&defaults(
            &[("example.com/gpu", "1")],
            &[("example.com/gpu", "2")],
            &[],
        ));
        assert_eq!(reasons(&problems), ["ContainerDefaultsOutOfOrder"]);
        assert!(problems[0].message.contains("cannot be overcommitted"));
    }
}
