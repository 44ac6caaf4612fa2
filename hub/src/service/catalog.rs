//! Catalog: the shared resource catalog (政务信息资源目录), this node's resources and those its
//! children forwarded.

use govdc_hub_api::auth::Role;
use govdc_hub_api::v1::catalog_server::Catalog;
use govdc_hub_api::v1::{
    GetResourceRequest, ListResourcesRequest, ListResourcesResponse, OpenType,
    RegisterResourceRequest, Resource, ShareType,
};
use prost::Message;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;
use tonic::{Request, Response, Status};

use super::{HubService, now_micros, record, timestamp};
use crate::service::DbResult;

const FIELD_TYPES: &[&str] = &["string", "integer", "number", "boolean", "date", "datetime"];
const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

/// A resource from its stored row.
pub fn from_row(body: &[u8], updated_at: i64, record_count: i64) -> Result<Resource, Status> {
    let mut resource = Resource::decode(body)
        .map_err(|e| Status::internal(format!("a stored resource does not decode: {e}")))?;
    resource.updated_at = Some(timestamp(updated_at));
    resource.record_count = record_count;
    Ok(resource)
}

/// The resource registered on this node under `code`, if any.
pub fn local_resource(conn: &Connection, code: &str) -> Result<Option<Resource>, Status> {
    let row: Option<(Vec<u8>, i64, i64)> = conn
        .query_row(
            "SELECT body, updated_at, record_count FROM resources WHERE code = ?1 AND origin = ''",
            [code],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .db()?;
    row.map(|(body, updated, count)| from_row(&body, updated, count))
        .transpose()
}

/// Every resource in the catalog, forwarded ones included (what a node forwards to its parent).
pub fn all_resources(conn: &Connection) -> Result<Vec<Resource>, Status> {
    let mut stmt = conn
        .prepare("SELECT body, updated_at, record_count FROM resources ORDER BY code, origin")
        .db()?;
    let rows = stmt
        .query_map([], |row| {
            Ok((row.get::<_, Vec<u8>>(0)?, row.get(1)?, row.get(2)?))
        })
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    rows.iter()
        .map(|(body, updated, count)| from_row(body, *updated, *count))
        .collect()
}

/// Checks what a provider sends when registering.
fn validate(resource: &Resource) -> Result<(), Status> {
    let code_ok = !resource.code.is_empty()
        && resource.code.len() <= 128
        && resource.code.chars().all(|c| c.is_ascii_graphic());
    if !code_ok {
        return Err(Status::invalid_argument(format!(
            "resource code {:?} must be 1-128 printable ASCII characters without spaces",
            resource.code
        )));
    }
    if resource.name.trim().is_empty() {
        return Err(Status::invalid_argument(format!(
            "resource {} needs a name",
            resource.code
        )));
    }
    match ShareType::try_from(resource.share_type) {
        Ok(ShareType::Unconditional | ShareType::Conditional | ShareType::NotShared) => {}
        _ => {
            return Err(Status::invalid_argument(format!(
                "resource {} needs a share type: unconditional, conditional or not shared",
                resource.code
            )));
        }
    }
    if OpenType::try_from(resource.open_type).is_err() {
        return Err(Status::invalid_argument(format!(
            "resource {} has open type {}; use unconditional, conditional or not open",
            resource.code, resource.open_type
        )));
    }
    // The reason is shown on the sharing-monitor website: a sentence or two citing a rule.
    if resource.not_shared_reason.chars().count() > 500 {
        return Err(Status::invalid_argument(format!(
            "resource {} has a not-shared reason of more than 500 characters",
            resource.code
        )));
    }
    for field in &resource.fields {
        if field.name.trim().is_empty() {
            return Err(Status::invalid_argument(format!(
                "resource {} has a field without a name",
                resource.code
            )));
        }
        if !FIELD_TYPES.contains(&field.r#type.as_str()) {
            return Err(Status::invalid_argument(format!(
                "field {} of resource {} has type {:?}; use one of {}",
                field.name,
                resource.code,
                field.r#type,
                FIELD_TYPES.join(", ")
            )));
        }
    }
    Ok(())
}

fn page_token(code: &str, origin: &str) -> String {
    hex::encode(format!("{code}\0{origin}").as_bytes())
}

fn parse_page_token(token: &str) -> Result<(String, String), Status> {
    let bad = || Status::invalid_argument("the page token is not one this node issued");
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| {
            token
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (code, origin) = text.split_once('\0').ok_or_else(bad)?;
    Ok((code.to_owned(), origin.to_owned()))
}

#[tonic::async_trait]
impl Catalog for HubService {
    async fn register_resource(
        &self,
        request: Request<RegisterResourceRequest>,
    ) -> Result<Response<Resource>, Status> {
        let caller = self
            .auth
            .caller(&request, "Catalog.RegisterResource", &[Role::Member])?;
        let mut resource = request
            .into_inner()
            .resource
            .ok_or_else(|| Status::invalid_argument("RegisterResource needs a resource"))?;
        validate(&resource)?;
        resource.provider = caller.subject.clone();
        resource.node = self.config.name.clone();
        resource.updated_at = None;
        resource.record_count = 0;
        let algorithm = self.algorithm();
        let registered = self
            .store
            .write(move |conn| {
                let owners: Vec<(String, String, String)> = {
                    let mut stmt = conn
                        .prepare("SELECT origin, provider, node FROM resources WHERE code = ?1")
                        .db()?;
                    stmt.query_map([&resource.code], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                        .db()?
                        .collect::<rusqlite::Result<_>>()
                        .db()?
                };
                for (origin, provider, node) in owners {
                    if !origin.is_empty() {
                        return Err(Status::already_exists(format!(
                            "resource code {} is already registered on node {node}; codes are unique in the hub tree",
                            resource.code
                        )));
                    }
                    if provider != resource.provider {
                        return Err(Status::permission_denied(format!(
                            "resource {} is provided by {provider}; only its provider may update it",
                            resource.code
                        )));
                    }
                }
                let now = now_micros();
                conn.execute(
                    "INSERT INTO resources (code, origin, provider, node, share_type, updated_at, body)
                     VALUES (?1, '', ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (code, origin) DO UPDATE SET
                       share_type = excluded.share_type, updated_at = excluded.updated_at,
                       body = excluded.body",
                    params![
                        resource.code,
                        resource.provider,
                        resource.node,
                        resource.share_type,
                        now,
                        resource.encode_to_vec()
                    ],
                )
                .db()?;
                record(
                    conn,
                    algorithm,
                    &caller.subject,
                    "resource.register",
                    &resource.code,
                    json!({
                        "name": resource.name,
                        "shareType": ShareType::try_from(resource.share_type)
                            .map(|s| s.as_str_name())
                            .unwrap_or_default(),
                        "fields": resource.fields.len(),
                        "openType": OpenType::try_from(resource.open_type)
                            .map(|s| s.as_str_name())
                            .unwrap_or_default(),
                    }),
                )?;
                local_resource(conn, &resource.code)?
                    .ok_or_else(|| Status::internal("the registered resource vanished"))
            })
            .await?;
        self.parent.catalog_changed();
        Ok(Response::new(registered))
    }

    async fn list_resources(
        &self,
        request: Request<ListResourcesRequest>,
    ) -> Result<Response<ListResourcesResponse>, Status> {
        self.auth.caller(
            &request,
            "Catalog.ListResources",
            &[Role::Admin, Role::Member],
        )?;
        let ListResourcesRequest {
            provider,
            node,
            page_size,
            page_token: token,
        } = request.into_inner();
        let limit = match i64::from(page_size) {
            n if n <= 0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let (after_code, after_origin) = if token.is_empty() {
            (String::new(), String::new())
        } else {
            parse_page_token(&token)?
        };
        let first_page = token.is_empty();
        let response = self
            .store
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT code, origin, body, updated_at, record_count FROM resources
                         WHERE (?1 OR (code, origin) > (?2, ?3))
                           AND (?4 = '' OR provider = ?4) AND (?5 = '' OR node = ?5)
                         ORDER BY code, origin LIMIT ?6",
                    )
                    .db()?;
                let rows = stmt
                    .query_map(
                        params![
                            first_page,
                            after_code,
                            after_origin,
                            provider,
                            node,
                            limit + 1
                        ],
                        |row| {
                            Ok((
                                row.get::<_, String>(0)?,
                                row.get::<_, String>(1)?,
                                row.get::<_, Vec<u8>>(2)?,
                                row.get::<_, i64>(3)?,
                                row.get::<_, i64>(4)?,
                            ))
                        },
                    )
                    .db()?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .db()?;
                let mut resources = Vec::with_capacity(rows.len());
                let mut next_page_token = String::new();
                for (i, (code, origin, body, updated, count)) in rows.iter().enumerate() {
                    if i as i64 == limit {
                        break;
                    }
                    resources.push(from_row(body, *updated, *count)?);
                    if i as i64 == limit - 1 && rows.len() as i64 > limit {
                        next_page_token = page_token(code, origin);
                    }
                }
                Ok(ListResourcesResponse {
                    resources,
                    next_page_token,
                })
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn get_resource(
        &self,
        request: Request<GetResourceRequest>,
    ) -> Result<Response<Resource>, Status> {
        self.auth.caller(
            &request,
            "Catalog.GetResource",
            &[Role::Admin, Role::Member],
        )?;
        let code = request.into_inner().code;
        let resource = self
            .store
            .read(move |conn| {
                // This node's own entry first; else the first forwarded one.
                let row: Option<(Vec<u8>, i64, i64)> = conn
                    .query_row(
                        "SELECT body, updated_at, record_count FROM resources WHERE code = ?1
                         ORDER BY origin LIMIT 1",
                        [&code],
                        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                    )
                    .optional()
                    .db()?;
                match row {
                    Some((body, updated, count)) => from_row(&body, updated, count),
                    None => Err(Status::not_found(format!(
                        "no resource {code} in the catalog"
                    ))),
                }
            })
            .await?;
        Ok(Response::new(resource))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip() {
        let token = page_token("11000000000000000X-0001", "zhejiang");
        assert_eq!(
            parse_page_token(&token).expect("parses"),
            ("11000000000000000X-0001".to_owned(), "zhejiang".to_owned())
        );
        assert!(parse_page_token("zz").is_err());
    }
}
