//! Reads what a BackupPolicy refers to: the Secret holding the target cluster's kubeconfig, and
//! the object storage credentials of its restore points.

use govdc_crds::BackupPolicy;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::error::{Error, Result};

/// Everything outside the BackupPolicy itself that validation and build need.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The target's kubeconfig Secret, if it exists.
    pub kubeconfig_secret: Option<Secret>,
    /// The restore point storage's credentials Secret, if the policy names one and it exists.
    pub storage_secret: Option<Secret>,
}

async fn secret(client: &Client, namespace: &str, name: &str) -> Result<Option<Secret>> {
    Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|source| Error::Read {
            what: format!("Secret {namespace}/{name}"),
            source,
        })
}

/// Reads the inputs of `policy`.
pub async fn read(client: &Client, policy: &BackupPolicy) -> Result<Inputs> {
    let reference = &policy.spec.target.kubeconfig_secret_ref;
    let namespace = reference.namespace.clone().unwrap_or_default();
    let kubeconfig_secret = secret(client, &namespace, &reference.name).await?;
    let storage_secret = match policy
        .spec
        .restore_points
        .as_ref()
        .and_then(|r| r.storage.as_ref())
    {
        Some(storage) => {
            let reference = &storage.credentials_secret_ref;
            let namespace = reference.namespace.clone().unwrap_or(namespace);
            secret(client, &namespace, &reference.name).await?
        }
        None => None,
    };
    Ok(Inputs {
        kubeconfig_secret,
        storage_secret,
    })
}

/// A key of a Secret's data as text.
pub fn secret_text(secret: Option<&Secret>, key: &str) -> Option<String> {
    secret?
        .data
        .as_ref()?
        .get(key)
        .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok())
}
