//! The exchange hub's API, shared by the hub (`govdc-hub`) and the operator.
//!
//! - [`v1`]: messages, clients and servers generated from `proto/govdc/hub/v1/hub.proto`.
//! - [`auth`]: the bearer tokens every call carries.

pub mod auth;

/// Version 1 of the hub API, generated from `proto/govdc/hub/v1/hub.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
pub mod v1 {
    tonic::include_proto!("govdc.hub.v1");
}

/// The encoded descriptor set of the API, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/hub_descriptor.bin"));
