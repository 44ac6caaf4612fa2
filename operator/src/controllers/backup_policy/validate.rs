//! Pure validation of a BackupPolicy: the target's kubeconfig must be there to use.

use govdc_crds::BackupPolicy;

use super::read::Inputs;
use crate::controllers::Problem;

/// The problems found; empty when replication can start.
pub fn validate(policy: &BackupPolicy, inputs: &Inputs) -> Vec<Problem> {
    let reference = &policy.spec.target.kubeconfig_secret_ref;
    let has_key = inputs.kubeconfig_secret.as_ref().is_some_and(|s| {
        s.data
            .as_ref()
            .is_some_and(|d| d.contains_key(&reference.key))
    });
    if has_key {
        Vec::new()
    } else {
        vec![Problem::new(
            "TargetKubeconfigNotFound",
            format!(
                "spec.target.kubeconfigSecretRef: Secret {}/{} with key {} does not exist",
                reference.namespace.as_deref().unwrap_or_default(),
                reference.name,
                reference.key
            ),
        )]
    }
}
