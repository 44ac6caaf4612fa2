//! The steps every controller shares. A controller reads what its resource refers to, validates
//! it and builds the desired objects (its own pure modules), then uses these to **apply** them by
//! server-side apply, **prune** what an earlier pass made and this one did not, and **report**
//! status and events from what the API server accepted.

pub mod apply;
pub mod conditions;
pub mod events;
pub mod finalizer;
pub mod ownership;
pub mod prune;
pub mod report;
pub mod status;

use kube::api::{ApiResource, DynamicObject};
use kube::{Api, Client};

/// The API of objects of `resource` in `namespace`, or cluster-wide when there is none (a
/// cluster-scoped object).
pub fn dynamic_api(
    client: &Client,
    namespace: Option<&str>,
    resource: &ApiResource,
) -> Api<DynamicObject> {
    match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, resource),
        None => Api::all_with(client.clone(), resource),
    }
}
