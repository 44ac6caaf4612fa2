//! Membership: the departments that belong to the node. Admin only, except WhoAmI.

use govdc_hub_api::auth::Role;
use govdc_hub_api::v1::membership_server::Membership;
use govdc_hub_api::v1::{
    JoinRequest, LeaveRequest, LeaveResponse, ListMembersRequest, ListMembersResponse, Member,
    WhoAmIRequest, WhoAmIResponse,
};
use rusqlite::{OptionalExtension, params};
use serde_json::json;
use tonic::{Request, Response, Status};

use super::{HubService, now_micros, record, timestamp};
use crate::service::DbResult;

/// The GB 32100-2015 alphabet of unified social credit codes (no I, O, S, V, Z).
const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Whether `code` is a unified social credit code with a correct check character.
pub fn valid_credit_code(code: &str) -> bool {
    let bytes = code.as_bytes();
    if bytes.len() != 18 {
        return false;
    }
    let mut values = [0u32; 18];
    for (i, b) in bytes.iter().enumerate() {
        match ALPHABET.iter().position(|a| a == b) {
            Some(v) => values[i] = v as u32,
            None => return false,
        }
    }
    let sum: u32 = values[..17].iter().zip(WEIGHTS).map(|(v, w)| v * w).sum();
    (31 - sum % 31) % 31 == values[17]
}

#[tonic::async_trait]
impl Membership for HubService {
    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<Member>, Status> {
        let caller = self
            .auth
            .caller(&request, "Membership.Join", &[Role::Admin])?;
        let JoinRequest { credit_code, name } = request.into_inner();
        if !valid_credit_code(&credit_code) {
            return Err(Status::invalid_argument(format!(
                "{credit_code:?} is not a unified social credit code (18 characters, GB 32100 check character)"
            )));
        }
        if name.trim().is_empty() {
            return Err(Status::invalid_argument("a member needs a name"));
        }
        let algorithm = self.algorithm();
        let code = credit_code.clone();
        let member = self
            .store
            .write(move |conn| {
                let existing: Option<(String, i64)> = conn
                    .query_row(
                        "SELECT name, joined_at FROM members WHERE credit_code = ?1",
                        [&code],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()
                    .db()?;
                let joined_at = match existing {
                    Some((old, joined_at)) if old == name => joined_at,
                    Some((old, joined_at)) => {
                        conn.execute(
                            "UPDATE members SET name = ?2 WHERE credit_code = ?1",
                            params![code, name],
                        )
                        .db()?;
                        record(conn, algorithm, &caller.subject, "member.rename", &code, json!({"from": old, "to": name}))?;
                        joined_at
                    }
                    None => {
                        let now = now_micros();
                        conn.execute(
                            "INSERT INTO members (credit_code, name, joined_at) VALUES (?1, ?2, ?3)",
                            params![code, name, now],
                        )
                        .db()?;
                        record(conn, algorithm, &caller.subject, "member.join", &code, json!({"name": name}))?;
                        now
                    }
                };
                Ok(Member {
                    credit_code: code,
                    name,
                    joined_at: Some(timestamp(joined_at)),
                })
            })
            .await?;
        self.auth.add_member(&credit_code);
        Ok(Response::new(member))
    }

    async fn leave(
        &self,
        request: Request<LeaveRequest>,
    ) -> Result<Response<LeaveResponse>, Status> {
        let caller = self
            .auth
            .caller(&request, "Membership.Leave", &[Role::Admin])?;
        let code = request.into_inner().credit_code;
        let algorithm = self.algorithm();
        let subject = code.clone();
        let removed = self
            .store
            .write(move |conn| {
                let removed = conn
                    .execute("DELETE FROM members WHERE credit_code = ?1", [&subject])
                    .db()?
                    > 0;
                if removed {
                    record(
                        conn,
                        algorithm,
                        &caller.subject,
                        "member.leave",
                        &subject,
                        json!({}),
                    )?;
                }
                Ok(removed)
            })
            .await?;
        self.auth.remove_member(&code);
        Ok(Response::new(LeaveResponse { removed }))
    }

    async fn list_members(
        &self,
        request: Request<ListMembersRequest>,
    ) -> Result<Response<ListMembersResponse>, Status> {
        self.auth
            .caller(&request, "Membership.ListMembers", &[Role::Admin])?;
        let members = self
            .store
            .read(|conn| {
                let mut stmt = conn
                    .prepare(
                        "SELECT credit_code, name, joined_at FROM members ORDER BY credit_code",
                    )
                    .db()?;
                let rows = stmt
                    .query_map([], |row| {
                        Ok(Member {
                            credit_code: row.get(0)?,
                            name: row.get(1)?,
                            joined_at: Some(timestamp(row.get(2)?)),
                        })
                    })
                    .db()?;
                rows.collect::<rusqlite::Result<Vec<_>>>().db()
            })
            .await?;
        Ok(Response::new(ListMembersResponse { members }))
    }

    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        let caller = self.auth.caller(
            &request,
            "Membership.WhoAmI",
            &[Role::Admin, Role::Member, Role::Node],
        )?;
        Ok(Response::new(WhoAmIResponse {
            subject: caller.subject,
            role: caller.role.as_str().to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_codes_are_checked() {
        assert!(valid_credit_code("91350100M000100Y43"));
        assert!(valid_credit_code("11330000MB00256383"));
        assert!(!valid_credit_code("91350100M000100Y44"));
        assert!(!valid_credit_code("91350100M000100Y4"));
        assert!(!valid_credit_code("91350100I000100Y43"));
    }
}
