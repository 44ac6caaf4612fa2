//! The govdc operator: reconciles DepartmentClouds, ExchangeNodes, OpenDatasets and
//! BackupPolicies on a government data center's Kubernetes.
//!
//! - [`config`]: the command line;
//! - [`runtime`]: the process — endpoints, CRD check, leader election, shutdown;
//! - [`controllers`]: one controller per resource, each a pipeline of small modules;
//! - [`pipeline`]: the apply, prune and report steps the controllers share;
//! - [`deid`]: de-identification of OpenDataset records, pure and streaming;
//! - [`digest`]: hex SHA-256 digests;
//! - [`error`]: why a reconcile did not finish;
//! - [`hub_client`]: the operator's gRPC client of the exchange hub and each node's signing key;
//! - [`backup_commands`]: `govdc-operator backup`, the disaster-recovery commands;
//! - [`dataset_commands`]: `govdc-operator dataset`, approving applications for conditional datasets.

pub mod backup_commands;
pub mod config;
pub mod controllers;
pub mod dataset_commands;
pub mod deid;
pub mod digest;
pub mod error;
pub mod hub_client;
pub mod pipeline;
pub mod quantity;
pub mod runtime;
