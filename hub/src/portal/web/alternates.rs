//! The machine-readable alternates a dataset page links with `<link rel=alternate>` beside its
//! JSON (`/api/datasets/{id}`): its DCAT-AP description on its own, at
//! `/datasets/{id}/dcat.jsonld`, the same node the catalog (`/catalog.jsonld`) holds.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::json;

use crate::portal::http::{PortalHttp, json_response};
use crate::portal::{load_one, valid_id};

/// The path of a dataset's DCAT-AP document.
pub fn dcat_path(id: &str) -> String {
    format!("/datasets/{id}/dcat.jsonld")
}

/// `GET /datasets/{id}/dcat.jsonld`.
pub async fn dcat(State(state): State<PortalHttp>, Path(id): Path<String>) -> Response {
    let not_found = || {
        json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": format!("no dataset {id}") }),
        )
    };
    if !valid_id(&id) {
        return not_found();
    }
    let lookup = id.clone();
    let entry = match state
        .hub
        .store
        .read(move |conn| Ok(load_one(conn, &lookup)?))
        .await
    {
        Ok(Some(entry)) => entry,
        Ok(None) => return not_found(),
        Err(status) => {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({ "error": format!("the portal cannot answer now: {}", status.message()) }),
            );
        }
    };
    let body = crate::portal::dcat::dataset_document(&state.portal.public_url, &entry);
    let mut response = json_response(StatusCode::OK, &body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/ld+json; charset=utf-8"),
    );
    response
}
