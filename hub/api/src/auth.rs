//! Bearer tokens of the hub.
//!
//! Every call to a hub node carries `authorization: Bearer <token>`, an HS256 JSON Web Token
//! signed with the node's key. The operator holds each node's key (a Secret it creates) and
//! issues the tokens: `admin` for itself, `member` for the departments that joined, and `node`
//! for child nodes that federate with this one. The audience is the node's name, so a token for
//! one node never opens another. A `member` token also needs the member to be in the node's
//! membership: leaving revokes it at once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The metadata key that carries the token.
pub const AUTHORIZATION: &str = "authorization";

/// Shortest key a node accepts, in bytes: HS256 is only as strong as its key.
pub const MIN_KEY_BYTES: usize = 32;

/// What a token lets its bearer do.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The operator: membership, parent, audit, state export and import.
    Admin,
    /// A department, by its unified social credit code: catalog and exchange.
    Member,
    /// A child hub node: federation calls only.
    Node,
}

impl Role {
    /// The role's name in tokens and in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Node => "node",
        }
    }
}

/// The claims of a hub token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// Who the bearer is: a credit code (member), a node name (node) or `operator` (admin).
    pub sub: String,
    /// What the bearer may do.
    pub role: Role,
    /// The node the token is for.
    pub aud: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
}

impl Claims {
    /// Claims for `subject` acting as `role` on node `audience`, valid for `ttl` from now.
    pub fn new(
        subject: impl Into<String>,
        role: Role,
        audience: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Claims {
            sub: subject.into(),
            role,
            aud: audience.into(),
            iat: now,
            exp: now.saturating_add(ttl.as_secs()),
        }
    }
}

/// Why a token was not issued or not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The key is shorter than [`MIN_KEY_BYTES`].
    #[error("the signing key has {0} bytes; at least {MIN_KEY_BYTES} are required")]
    WeakKey(usize),
    /// Signing or verification failed (bad signature, wrong audience, expired, malformed).
    #[error("{0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

/// A node's signing key.
#[derive(Clone)]
pub struct TokenKey {
    secret: Vec<u8>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A key from secret bytes, refused when too short.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, TokenError> {
        let secret = secret.into();
        if secret.len() < MIN_KEY_BYTES {
            return Err(TokenError::WeakKey(secret.len()));
        }
        Ok(TokenKey { secret })
    }

    /// Signs `claims`.
    pub fn issue(&self, claims: &Claims) -> Result<String, TokenError> {
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(&self.secret),
        )?)
    }

    /// Checks the signature, the expiry and that the token was issued for node `audience`.
    pub fn verify(&self, token: &str, audience: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(&self.secret),
            &validation,
        )?;
        Ok(data.claims)
    }
}

/// The bearer token in `metadata`, if any: what follows the scheme `Bearer`, which is
/// case-insensitive (RFC 9110 §11.1), trimmed. The portal's HTTP side reads `Authorization` the
/// same way (before, `bearer <token>` and extra spaces were refused here only: the difference
/// the `bearer` fuzz target's comparison of the two checks for).
pub fn bearer_token(metadata: &MetadataMap) -> Option<&str> {
    let value = metadata.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A client interceptor that adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct BearerToken {
    value: AsciiMetadataValue,
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential.
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// An interceptor for `token`; refused when the token is not valid metadata.
    pub fn new(token: &str) -> Result<Self, Status> {
        let mut value: AsciiMetadataValue = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::invalid_argument("the token is not valid ASCII metadata"))?;
        // HTTP/2 keeps it out of its header compression tables, and debug output hides it.
        value.set_sensitive(true);
        Ok(BearerToken { value })
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert(AUTHORIZATION, self.value.clone());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::new(vec![7u8; 32]).expect("32 bytes is enough")
    }

    #[test]
    fn a_token_verifies_for_its_node_only() {
        let claims = Claims::new(
            "11100000000013127J",
            Role::Member,
            "national",
            Duration::from_secs(60),
        );
        let token = key().issue(&claims).expect("signs");
        assert_eq!(key().verify(&token, "national").expect("verifies"), claims);
        assert!(
            key().verify(&token, "beijing").is_err(),
            "wrong audience accepted"
        );
        let other = TokenKey::new(vec![8u8; 32]).expect("key");
        assert!(
            other.verify(&token, "national").is_err(),
            "wrong key accepted"
        );
    }

    #[test]
    fn expired_and_tampered_tokens_are_refused() {
        let mut claims = Claims::new("operator", Role::Admin, "national", Duration::ZERO);
        claims.exp = claims.iat.saturating_sub(3600);
        let expired = key().issue(&claims).expect("signs");
        assert!(key().verify(&expired, "national").is_err());

        let fresh = Claims::new(
            "operator",
            Role::Member,
            "national",
            Duration::from_secs(60),
        );
        let token = key().issue(&fresh).expect("signs");
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        // Swap the payload for one that claims admin, keeping the member's signature.
        let admin = key()
            .issue(&Claims::new(
                "operator",
                Role::Admin,
                "national",
                Duration::from_secs(60),
            ))
            .expect("signs");
        parts[1] = admin.split('.').nth(1).expect("payload").to_owned();
        assert!(key().verify(&parts.join("."), "national").is_err());
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(matches!(
            TokenKey::new(vec![1u8; 16]),
            Err(TokenError::WeakKey(16))
        ));
    }

    #[test]
    fn debug_output_of_keys_and_tokens_is_redacted() {
        let key =
            TokenKey::new(b"recognisable-signing-key-bytes-0123456789".to_vec()).expect("key");
        let printed = format!("{key:?} {key:#?}");
        assert!(!printed.contains("recognisable"), "{printed}");
        let token = BearerToken::new("recognisable.token.value").expect("ascii");
        let printed = format!("{token:?} {token:#?}");
        assert!(!printed.contains("recognisable"), "{printed}");
        assert!(printed.contains("redacted"), "{printed}");
    }

    #[test]
    fn the_interceptor_sets_the_bearer_header() {
        let mut interceptor = BearerToken::new("abc").expect("ascii");
        let request = interceptor.call(Request::new(())).expect("intercepts");
        assert_eq!(bearer_token(request.metadata()), Some("abc"));
    }

    /// The scheme is case-insensitive (RFC 9110 §11.1) and the token is read as the portal's
    /// HTTP side reads it; the `bearer` fuzz target checks the two agree.
    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_trimmed() {
        let token = |value: &'static str| {
            let mut request = Request::new(());
            request
                .metadata_mut()
                .insert(AUTHORIZATION, AsciiMetadataValue::from_static(value));
            bearer_token(request.metadata()).map(str::to_owned)
        };
        assert_eq!(token("bearer abc"), Some("abc".to_owned()));
        assert_eq!(token("BEARER abc"), Some("abc".to_owned()));
        assert_eq!(token("Bearer  abc "), Some("abc".to_owned()));
        assert_eq!(token("Bearer "), None);
        assert_eq!(token("Basic abc"), None);
        assert_eq!(token("Bearerabc"), None);
    }
}
