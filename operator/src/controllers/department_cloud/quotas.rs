//! How a tenant-wide quota is shared among environments (pure): explicit environment quotas are
//! kept, and for each resource of the tenant quota the environments that do not set it share what
//! remains equally, so that the environments together never exceed the tenant.

use std::collections::BTreeMap;

use govdc_crds::DepartmentCloudSpec;

use crate::quantity::{self, Amounts, QuantityError};

/// Each environment's hard quota (None: no ResourceQuota), and per resource how far the explicit
/// environment quotas overshoot the tenant quota (empty when they fit).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuotaPlan {
    /// By environment name.
    pub environments: BTreeMap<String, Option<Amounts>>,
    /// Resources where explicit environment quotas add up to more than the tenant quota.
    pub overshoot: Amounts,
}

/// Plans the environments' quotas.
pub fn plan(spec: &DepartmentCloudSpec) -> Result<QuotaPlan, QuantityError> {
    let mut environments = BTreeMap::new();
    for environment in &spec.environments {
        let explicit = environment
            .quota
            .as_ref()
            .map(quantity::parse_all)
            .transpose()?;
        environments.insert(environment.name.clone(), explicit);
    }
    let Some(tenant) = spec.quota.as_ref().map(quantity::parse_all).transpose()? else {
        return Ok(QuotaPlan {
            environments,
            overshoot: Amounts::new(),
        });
    };
    let mut overshoot = Amounts::new();
    for (resource, limit) in &tenant {
        let setting: i128 = environments
            .values()
            .flatten()
            .filter_map(|q| q.get(resource))
            .sum();
        let sharing: Vec<String> = environments
            .iter()
            .filter(|(_, q)| q.as_ref().is_none_or(|q| !q.contains_key(resource)))
            .map(|(name, _)| name.clone())
            .collect();
        let remainder = limit - setting;
        if remainder < 0 {
            overshoot.insert(resource.clone(), -remainder);
            continue;
        }
        if sharing.is_empty() {
            continue;
        }
        let count = i128::try_from(sharing.len()).unwrap_or(i128::MAX);
        // Whole milli-units only, and whole units of what is counted (pods, objects): the API
        // server refuses `pods: 3333m`. What does not divide evenly stays unassigned.
        let mut share = remainder / count;
        if super::resources::is_integer_resource(resource) {
            share -= share % 1000;
        }
        for name in sharing {
            environments
                .entry(name)
                .or_default()
                .get_or_insert_with(Amounts::new)
                .insert(resource.clone(), share);
        }
    }
    Ok(QuotaPlan {
        environments,
        overshoot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: serde_json::Value) -> DepartmentCloudSpec {
        serde_json::from_value(value).expect("fixture deserializes")
    }

    fn base(quota: serde_json::Value, environments: serde_json::Value) -> DepartmentCloudSpec {
        spec(serde_json::json!({
            "department": {"name": "d", "creditCode": "11330000MB00256383", "level": "provincial", "regionCode": "330000"},
            "networkZone": "extranet", "protectionLevel": 3,
            "environments": environments, "quota": quota,
        }))
    }

    #[test]
    fn environments_without_a_quota_share_the_rest_of_the_tenant_quota() {
        let plan = plan(&base(
            serde_json::json!({"requests.cpu": "10"}),
            serde_json::json!([{"name": "prod", "quota": {"requests.cpu": "6"}}, {"name": "test"}, {"name": "dev"}]),
        ))
        .expect("plan");
        assert_eq!(
            plan.environments["prod"],
            Some(Amounts::from([("requests.cpu".into(), 6000)]))
        );
        assert_eq!(
            plan.environments["test"],
            Some(Amounts::from([("requests.cpu".into(), 2000)]))
        );
        assert_eq!(
            plan.environments["dev"],
            Some(Amounts::from([("requests.cpu".into(), 2000)]))
        );
        assert!(plan.overshoot.is_empty());
    }

    #[test]
    fn a_resource_an_environment_leaves_out_is_still_bounded() {
        let plan = plan(&base(
            serde_json::json!({"requests.cpu": "4", "pods": "10"}),
            serde_json::json!([{"name": "prod", "quota": {"requests.cpu": "4"}}]),
        ))
        .expect("plan");
        assert_eq!(
            plan.environments["prod"],
            Some(Amounts::from([
                ("pods".into(), 10_000),
                ("requests.cpu".into(), 4000)
            ]))
        );
    }

    #[test]
    fn counted_resources_are_shared_in_whole_units() {
        let plan = plan(&base(
            serde_json::json!({"pods": "10", "requests.cpu": "1"}),
            serde_json::json!([{"name": "prod"}, {"name": "test"}, {"name": "dev"}]),
        ))
        .expect("plan");
        for environment in ["prod", "test", "dev"] {
            let quota = plan.environments[environment].as_ref().expect("quota");
            assert_eq!(quota["pods"], 3000, "{environment}");
            assert_eq!(quota["requests.cpu"], 333, "{environment}");
        }
    }

    #[test]
    fn environment_quotas_above_the_tenant_are_an_overshoot() {
        let plan = plan(&base(
            serde_json::json!({"requests.cpu": "4"}),
            serde_json::json!([{"name": "prod", "quota": {"requests.cpu": "3"}}, {"name": "test", "quota": {"requests.cpu": "2"}}]),
        ))
        .expect("plan");
        assert_eq!(
            plan.overshoot,
            Amounts::from([("requests.cpu".into(), 1000)])
        );
    }

    #[test]
    fn without_a_tenant_quota_environments_keep_what_they_declare() {
        let plan = plan(&base(
            serde_json::Value::Null,
            serde_json::json!([{"name": "prod"}]),
        ))
        .expect("plan");
        assert_eq!(plan.environments["prod"], None);
    }
}
