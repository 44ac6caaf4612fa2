//! Reads what a BackupPolicy refers to: the Secret holding the target cluster's kubeconfig.

use govdc_crds::BackupPolicy;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::error::{Error, Result};

/// Everything outside the BackupPolicy itself that validation and build need.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The target's kubeconfig Secret, if it exists.
    pub kubeconfig_secret: Option<Secret>,
}

/// Reads the inputs of `policy`.
pub async fn read(client: &Client, policy: &BackupPolicy) -> Result<Inputs> {
    let reference = &policy.spec.target.kubeconfig_secret_ref;
    let namespace = reference.namespace.clone().unwrap_or_default();
    let kubeconfig_secret = Api::<Secret>::namespaced(client.clone(), &namespace)
        .get_opt(&reference.name)
        .await
        .map_err(|source| Error::Read {
            what: format!("Secret {namespace}/{}", reference.name),
            source,
        })?;
    Ok(Inputs { kubeconfig_secret })
}
