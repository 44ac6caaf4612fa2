//! Each hub node's signing key: made once, from the operating system's random source, into a
//! Secret the hub mounts and the operator reads to issue tokens. It is never rewritten: a new
//! key would void every token handed out.

use std::collections::BTreeMap;

use govdc_crds::ExchangeNode;
use govdc_hub_api::auth::{Claims, Role, TokenKey};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client, Resource, ResourceExt};

use super::build;
use crate::error::{Error, Result};

/// The key inside the Secret.
pub const KEY_FIELD: &str = "key";

/// How long the operator's admin token for a hub lives: it is issued afresh for every pass or
/// command, so a leaked one is soon worthless.
pub const ADMIN_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The operator's `admin` token for hub node `node`, signed with the node's key.
pub fn admin_token(key: &TokenKey, node: &str) -> Result<String> {
    key.issue(&Claims::new("operator", Role::Admin, node, ADMIN_TOKEN_TTL))
        .map_err(|e| Error::HubKey {
            what: node.to_owned(),
            reason: e.to_string(),
        })
}

/// The admin token is a credential: debug output shows everything else.
impl std::fmt::Debug for build::HubPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubPlan")
            .field("node", &self.node)
            .field("endpoint", &self.endpoint)
            .field("admin_token", &REDACTED)
            .field("parent", &self.parent)
            .field("parent_waiting", &self.parent_waiting)
            .field("members", &self.members)
            .field("not_joined", &self.not_joined)
            .finish()
    }
}

/// The token the parent accepts is a credential.
impl std::fmt::Debug for build::ParentPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParentPlan")
            .field("endpoint", &self.endpoint)
            .field("token", &REDACTED)
            .field("ca_pem", &self.ca_pem)
            .finish()
    }
}

/// What debug output shows in place of a credential.
const REDACTED: &str = "<redacted>";

/// Random bytes in a key; the Secret holds them hex-encoded.
const KEY_BYTES: usize = 32;

/// The name of a node's key Secret.
pub fn secret_name(node: &ExchangeNode) -> String {
    format!("{}-key", build::base_name(node))
}

/// The name of the key Secret of the node called `name`, for callers that hold no ExchangeNode
/// (disaster recovery, where the node may exist only as a copy): the same as [`secret_name`].
pub fn secret_name_of(name: &str) -> String {
    format!("{name}-hub-key")
}

/// The signing key held by `secret`, `None` when it has none.
pub fn from_secret(secret: &Secret, node: &str) -> Result<Option<TokenKey>> {
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(KEY_FIELD)) else {
        return Ok(None);
    };
    // Exactly the bytes the hub reads from its mounted file.
    TokenKey::new(bytes.0.clone())
        .map(Some)
        .map_err(|e| Error::HubKey {
            what: node.to_owned(),
            reason: e.to_string(),
        })
}

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
    let hex = crate::digest::hex(&random);
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(node)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_secret_is_named_alike_with_or_without_the_node() {
        let node = ExchangeNode::new(
            "zhejiang",
            serde_json::from_value(serde_json::json!({
                "level": "provincial", "regionCode": "330000", "networkZone": "extranet"
            }))
            .expect("spec"),
        );
        assert_eq!(secret_name(&node), secret_name_of("zhejiang"));
    }

    #[test]
    fn a_short_key_in_the_secret_is_refused() {
        let secret = Secret {
            data: Some(BTreeMap::from([(
                KEY_FIELD.to_owned(),
                ByteString(b"short".to_vec()),
            )])),
            ..Secret::default()
        };
        assert!(matches!(
            from_secret(&secret, "n"),
            Err(Error::HubKey { .. })
        ));
        assert!(
            from_secret(&Secret::default(), "n")
                .expect("no key is fine")
                .is_none()
        );
    }

    #[test]
    fn debug_output_of_keys_and_hub_plans_shows_no_credential() {
        let secret = Secret {
            data: Some(BTreeMap::from([(
                KEY_FIELD.to_owned(),
                ByteString(b"recognisable-key-bytes-0123456789abcdef".to_vec()),
            )])),
            ..Secret::default()
        };
        let key = from_secret(&secret, "n").expect("key").expect("present");
        let plan = build::HubPlan {
            node: "zhejiang".into(),
            endpoint: "http://hub".into(),
            admin_token: admin_token(&key, "zhejiang").expect("token"),
            parent: Some(build::ParentPlan {
                endpoint: "https://parent".into(),
                token: "recognisable-parent-token".into(),
                ca_pem: String::new(),
            }),
            parent_waiting: None,
            members: Default::default(),
            not_joined: Vec::new(),
        };
        let printed = format!("{key:?} {plan:?} {plan:#?}");
        assert!(!printed.contains("recognisable"), "{printed}");
        assert!(!printed.contains(&plan.admin_token), "{printed}");
        assert!(printed.contains("<redacted>") && printed.contains("https://parent"));
    }
}
