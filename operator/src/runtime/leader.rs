//! Leader election on a coordination.k8s.io Lease, so that of several replicas exactly one
//! reconciles. Built on kube-lease-manager, which updates the Lease by server-side apply.

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long before the lease expires its holder renews it: a third of the lease, as client-go's
/// defaults do, at least a second.
pub fn grace(duration: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs((duration.as_secs().max(2) / 3).max(1))
}

/// A campaign for the lease: tells whether this replica leads, and releases the lease when
/// dropped through [`Campaign::resign`].
pub struct Campaign {
    leading: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

impl Campaign {
    /// Starts campaigning for `lease_name` in `namespace`. The Lease is created if missing; the
    /// namespace must exist.
    pub async fn start(
        client: Client,
        namespace: &str,
        lease_name: &str,
        identity: &str,
        duration: std::time::Duration,
    ) -> Result<Campaign, LeaseManagerError> {
        let seconds = duration.as_secs().max(2);
        let manager = LeaseManagerBuilder::new(client, lease_name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(seconds)
            .with_grace(grace(duration).as_secs())
            .with_field_manager("govdc-operator/leader-election")
            .build()
            .await?;
        let (leading, task) = manager.watch().await;
        Ok(Campaign { leading, task })
    }

    /// Waits until this replica leads. Returns false if the campaign ended first.
    pub async fn acquired(&mut self) -> bool {
        self.leading.wait_for(|leading| *leading).await.is_ok()
    }

    /// Resolves when leadership is lost (or the campaign ended).
    pub async fn lost(&mut self) {
        let _ = self.leading.wait_for(|leading| !*leading).await;
    }

    /// Stops campaigning and releases the lease if held, so a standby takes over at once.
    pub async fn resign(self) {
        drop(self.leading);
        match self.task.await {
            Ok(Ok(_)) => tracing::info!("leader lease released"),
            Ok(Err(error)) => {
                tracing::warn!(%error, "releasing the leader lease failed; it will expire")
            }
            Err(error) => tracing::warn!(%error, "leader election task failed"),
        }
    }
}
