//! Reads what a DepartmentCloud refers to: the peer departments it names.

use govdc_crds::DepartmentCloud;
use kube::{Api, Client};

use crate::error::{Error, Result};

/// Everything outside the DepartmentCloud itself that validation and build need.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The peer departments that exist, by name.
    pub peers: Vec<DepartmentCloud>,
}

/// Reads the inputs of `cloud`.
pub async fn read(client: &Client, cloud: &DepartmentCloud) -> Result<Inputs> {
    let api: Api<DepartmentCloud> = Api::all(client.clone());
    let mut peers = Vec::new();
    for name in &cloud.spec.peer_departments {
        let peer = api.get_opt(name).await.map_err(|source| Error::Read {
            what: format!("peer DepartmentCloud {name}"),
            source,
        })?;
        peers.extend(peer);
    }
    Ok(Inputs { peers })
}
