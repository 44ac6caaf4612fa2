//! Each hub node's signing key, as the operator reads it from the node's Secret
//! `<name>-hub-key` to issue tokens (the ExchangeNode controller makes that Secret once), and
//! the operator's `admin` token signed with it.

use govdc_hub_api::auth::{Claims, Role, TokenKey};
use k8s_openapi::api::core::v1::Secret;

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

/// The name of the key Secret of the ExchangeNode called `name`.
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;

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
}
