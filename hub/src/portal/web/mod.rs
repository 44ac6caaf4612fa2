//! The public open-data website (国家公共数据开放网站) on the portal listener: server-rendered
//! HTML that works without JavaScript, in Chinese and English, for people; the JSON, CKAN and
//! DCAT answers beside it stay for programs.
//!
//! - `GET /` with `Accept: text/html`: search box, the plan's categories and the departments
//!   with their counts, recently updated ([`routes::home`]);
//! - `GET /datasets?q=&category=&department=&format=&license=&openness=&sort=&page=`: the
//!   portal's one search ([`crate::portal::search`], which CKAN's `package_search` runs too),
//!   facets with counts, sort, paging;
//! - `GET /datasets/{id}`: a dataset, its files and checksums, a preview of its first rows read
//!   from the published file, snippets, `<link rel=alternate>` and schema.org JSON-LD;
//! - `GET /datasets/{id}/dcat.jsonld`: its DCAT-AP description ([`alternates`]);
//! - `/datasets/{id}/apply`, `/applications/{number}/{secret}`: applying for a conditional
//!   dataset, the application's status and its download token, collected once ([`apply`]);
//! - `GET /departments`, `/departments/{code}`: the departments ranked by the metadata quality
//!   of their datasets, each with its datasets and on-time update rate ([`departments`]);
//! - `GET /changes`: the changelog ([`changes`]); `/feed.atom`, `/catalogue.csv`,
//!   `/catalogue.json`, `/downloads.txt`: the feed, dumps and manifest ([`crate::portal::bulk`]);
//! - `GET /assets/portal.css`: the style sheet.
//!
//! Every page takes `?lang=zh-CN|en` (else `Accept-Language`, else Chinese). The modules:
//! [`i18n`] the two message tables, [`query`] strict query strings, [`pages`] what each page
//! shows (rendered by the askama templates in `hub/templates/portal/`), [`preview`] the first
//! rows of a gzip CSV, [`routes`] the handlers.

pub mod alternates;
pub mod apply;
pub mod changes;
pub mod departments;
pub mod i18n;
pub mod pages;
pub mod preview;
pub mod query;
pub mod routes;

use axum::Router;
use axum::routing::get;

use super::http::PortalHttp;

/// The website's routes (`/` stays with [`super::http`], which asks [`routes::wants_html`]).
pub fn routes() -> Router<PortalHttp> {
    Router::new()
        .route("/datasets", get(routes::datasets))
        .route("/datasets/{id}", get(routes::dataset))
        .route("/datasets/{id}/dcat.jsonld", get(alternates::dcat))
        .route("/datasets/{id}/apply", get(apply::form).post(apply::submit))
        .route("/applications/{number}/{secret}", get(apply::status))
        .route(
            "/applications/{number}/{secret}/collect",
            axum::routing::post(apply::collect),
        )
        .route("/departments", get(departments::departments))
        .route("/changes", get(changes::changes))
        .route("/feed.atom", get(crate::portal::bulk::feed))
        .route("/catalogue.csv", get(crate::portal::bulk::catalogue_csv))
        .route("/catalogue.json", get(crate::portal::bulk::catalogue_json))
        .route("/downloads.txt", get(crate::portal::bulk::manifest))
        .route("/departments/{code}", get(departments::department))
        .route("/assets/portal.css", get(routes::css))
}
