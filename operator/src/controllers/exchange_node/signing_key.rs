//! Each hub node's signing key: made once, from the operating system's random source, into a
//! Secret the hub mounts and the operator reads to issue tokens ([`crate::hub_client::key`]).
//! It is never rewritten: a new key would void every token handed out.

use std::collections::BTreeMap;

use govdc_crds::ExchangeNode;
use govdc_hub_api::auth::TokenKey;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client, Resource, ResourceExt};

use super::build;
use crate::error::{Error, Result};
use crate::hub_client::key::{KEY_FIELD, from_secret, secret_name_of};

/// Random bytes in a key; the Secret holds them hex-encoded.
const KEY_BYTES: usize = 32;

/// The node's key: the existing one, or a new one written to a new Secret.
pub async fn ensure(
    client: &Client,
    node: &ExchangeNode,
    existing: Option<&Secret>,
) -> Result<TokenKey> {
    let what = format!("ExchangeNode {}", super::super::display_name(node));
    if let Some(key) = existing
        .map(|secret| from_secret(secret, &what))
        .transpose()?
        .flatten()
    {
        return Ok(key);
    }
    let namespace = node.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let secret = new_secret(node)?;
    let stored = match api.create(&PostParams::default(), &secret).await {
        Ok(stored) => stored,
        // Made by a pass that raced this one, or present without a key: use what is there
        // rather than replace a key that may already be in use.
        Err(kube::Error::Api(status)) if status.code == 409 => api
            .get(&secret.name_any())
            .await
            .map_err(|source| Error::Read {
                what: format!("Secret {namespace}/{}", secret.name_any()),
                source,
            })?,
        Err(source) => {
            return Err(Error::Apply {
                what: format!("Secret {namespace}/{}", secret.name_any()),
                source,
            });
        }
    };
    from_secret(&stored, &what)?.ok_or_else(|| Error::HubKey {
        what,
        reason: format!("Secret {} has no {KEY_FIELD:?}", secret.name_any()),
    })
}

fn new_secret(node: &ExchangeNode) -> Result<Secret> {
    let mut random = [0u8; KEY_BYTES];
    getrandom::fill(&mut random).map_err(|e| Error::HubKey {
        what: node.name_any(),
        reason: format!("the random source failed: {e}"),
    })?;
    let hex = hex::encode(random);
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(secret_name_of(&node.name_any())),
            namespace: node.namespace(),
            labels: Some(build::owner(node).labels()),
            owner_references: node.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            KEY_FIELD.to_owned(),
            ByteString(hex.into_bytes()),
        )])),
        ..Secret::default()
    })
}
