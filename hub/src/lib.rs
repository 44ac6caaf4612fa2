//! govdc-hub: one node of the national data sharing and exchange hub (国家数据共享交换枢纽).
//!
//! A node keeps a membership of departments, a shared resource catalog (its own resources and
//! those its child nodes forward), access grants between consumers and providers, the records
//! providers publish, and an append-only, hash-chained audit log, all in one embedded SQLite
//! store. It serves the gRPC API of [`govdc_hub_api`] and forwards its catalog to its parent.
//!
//! - [`config`]: the YAML file and `GOVDC_HUB_*` environment.
//! - [`store`]: the database, its single writer, group commit and migrations.
//! - [`audit`]: the hash chain and its verification.
//! - [`anchor`]: the chain's head recorded outside the node, and verification against it.
//! - [`auth`]: bearer tokens to callers.
//! - [`service`]: the gRPC services.
//! - [`federation`]: pushing the catalog to the parent.
//! - [`metrics`]: `/metrics` and `/healthz`.
//! - [`portal`]: the open-data portal (HTTP downloads, CKAN API subset, DCAT-AP catalog).
//! - [`monitor`]: the internal sharing-monitor website (全国政务信息共享网站).
//! - [`server`]: putting it together, graceful shutdown.

pub mod anchor;
pub mod audit;
pub mod auth;
pub mod config;
pub mod federation;
pub mod metrics;
pub mod monitor;
pub mod portal;
pub mod server;
pub mod service;
pub mod store;
