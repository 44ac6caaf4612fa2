//! Who is calling: every RPC except health and reflection names the roles it admits, and
//! [`Authenticator::caller`] turns the request's bearer token into a [`Caller`] or a refusal.
//!
//! - no token, or one that does not verify (signature, audience = this node, expiry):
//!   `UNAUTHENTICATED`;
//! - a valid token whose role the method does not admit, or a member token whose subject is not
//!   (or no longer) in the node's membership: `PERMISSION_DENIED`.
//!
//! The membership is mirrored in memory so that the check costs no database read; the mirror is
//! updated before Join and Leave return, so a member that left is refused from then on.

use std::collections::HashSet;
use std::sync::RwLock;

use govdc_hub_api::auth::{Role, TokenKey, bearer_token};
use tonic::{Request, Status};

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// A credit code (member), a node name (node) or the operator's name (admin).
    pub subject: String,
    /// What the token lets it do.
    pub role: Role,
}

/// Checks bearer tokens against the node's key and membership.
#[derive(Debug)]
pub struct Authenticator {
    key: TokenKey,
    node: String,
    members: RwLock<HashSet<String>>,
}

impl Authenticator {
    /// An authenticator for node `node` with signing key `key`.
    pub fn new(key: TokenKey, node: impl Into<String>) -> Self {
        Authenticator {
            key,
            node: node.into(),
            members: RwLock::default(),
        }
    }

    /// Replaces the mirrored membership.
    pub fn set_members(&self, members: impl IntoIterator<Item = String>) {
        *self.members.write().unwrap_or_else(|p| p.into_inner()) = members.into_iter().collect();
    }

    /// Records that `credit_code` joined.
    pub fn add_member(&self, credit_code: &str) {
        self.members
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(credit_code.to_owned());
    }

    /// Records that `credit_code` left: its tokens are refused from now on.
    pub fn remove_member(&self, credit_code: &str) {
        self.members
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(credit_code);
    }

    /// Whether `credit_code` is a member now.
    pub fn is_member(&self, credit_code: &str) -> bool {
        self.members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(credit_code)
    }

    /// The member a token given by hand names (the monitor website's sign-in form), with its
    /// expiry in seconds since the Unix epoch, if it is a valid member token of this node.
    pub fn member_of_token(&self, token: &str) -> Result<(String, u64), String> {
        let claims = self
            .key
            .verify(token.trim(), &self.node)
            .map_err(|e| format!("the token is not valid for node {}: {e}", self.node))?;
        if claims.role != Role::Member {
            return Err(format!(
                "the token has role {}; signing in takes a member token",
                claims.role.as_str()
            ));
        }
        if !self.is_member(&claims.sub) {
            return Err(format!(
                "{} is not a member of node {}",
                claims.sub, self.node
            ));
        }
        Ok((claims.sub, claims.exp))
    }

    /// The caller of `request` to `method`, if its token is valid and its role in `allowed`.
    pub fn caller<T>(
        &self,
        request: &Request<T>,
        method: &str,
        allowed: &[Role],
    ) -> Result<Caller, Status> {
        let token = bearer_token(request.metadata()).ok_or_else(|| {
            Status::unauthenticated(format!(
                "{method} needs a bearer token (metadata `authorization: Bearer <token>`)"
            ))
        })?;
        let claims = self.key.verify(token, &self.node).map_err(|e| {
            Status::unauthenticated(format!(
                "the bearer token is not valid for node {}: {e}",
                self.node
            ))
        })?;
        if !allowed.contains(&claims.role) {
            let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
            return Err(Status::permission_denied(format!(
                "{method} is for role {}; the caller {} has role {}",
                names.join(" or "),
                claims.sub,
                claims.role.as_str()
            )));
        }
        if claims.role == Role::Member && !self.is_member(&claims.sub) {
            return Err(Status::permission_denied(format!(
                "{} is not a member of node {}",
                claims.sub, self.node
            )));
        }
        Ok(Caller {
            subject: claims.sub,
            role: claims.role,
        })
    }
}
