//! Portal: the operator publishes and unpublishes open datasets and issues download tokens.
//! Admin only; FAILED_PRECONDITION on a node that serves no portal. The work is in
//! [`crate::portal::publish`].

use govdc_hub_api::auth::Role;
use govdc_hub_api::v1::portal_server::Portal as PortalApi;
use govdc_hub_api::v1::{
    Application, DecideApplicationRequest, DownloadToken, IssueDownloadTokenRequest,
    ListApplicationsRequest, ListApplicationsResponse, ListDatasetsRequest, ListDatasetsResponse,
    PublishDatasetRequest, PublishedDataset, UnpublishDatasetRequest, UnpublishDatasetResponse,
};
use tonic::{Request, Response, Status, Streaming};

use super::{HubService, timestamp};
use crate::portal::{Portal, PortalError, applications, load_all, publish, restore};

/// The gRPC answer to a portal error, the one place it becomes a status: each refusal its code
/// with the portal's message, a storage error as every storage error, a received status as it
/// came.
impl From<PortalError> for Status {
    fn from(e: PortalError) -> Status {
        match e {
            PortalError::NotFound(message) => Status::not_found(message),
            PortalError::Invalid(message) => Status::invalid_argument(message),
            PortalError::Precondition(message) => Status::failed_precondition(message),
            PortalError::Conflict(message) => Status::aborted(message),
            PortalError::Storage(e) => e.into(),
            PortalError::Internal { .. } => Status::internal(e.report()),
            PortalError::Received(status) => status,
        }
    }
}

impl HubService {
    fn portal(&self) -> Result<&Portal, Status> {
        self.0.portal.as_deref().ok_or_else(|| {
            Status::failed_precondition(format!(
                "node {} does not serve the open-data portal (portalListen is not set)",
                self.config.name
            ))
        })
    }
}

#[tonic::async_trait]
impl PortalApi for HubService {
    async fn publish_dataset(
        &self,
        request: Request<Streaming<PublishDatasetRequest>>,
    ) -> Result<Response<PublishedDataset>, Status> {
        let caller = self
            .auth
            .caller(&request, "Portal.PublishDataset", &[Role::Admin])?;
        let portal = self.portal()?;
        let result = publish::publish(self, portal, &caller.subject, request.into_inner()).await;
        let (dataset, outcome) = match result {
            Ok((dataset, outcome)) => (dataset, outcome.as_str()),
            Err(e) => {
                portal
                    .metrics
                    .publishes
                    .with_label_values(&["", "failed"])
                    .inc();
                return Err(e.into());
            }
        };
        let id = dataset
            .metadata
            .as_ref()
            .map(|m| m.id.as_str())
            .unwrap_or_default();
        portal
            .metrics
            .publishes
            .with_label_values(&[id, outcome])
            .inc();
        Ok(Response::new(dataset))
    }

    async fn unpublish_dataset(
        &self,
        request: Request<UnpublishDatasetRequest>,
    ) -> Result<Response<UnpublishDatasetResponse>, Status> {
        let caller = self
            .auth
            .caller(&request, "Portal.UnpublishDataset", &[Role::Admin])?;
        let portal = self.portal()?;
        let id = request.into_inner().id;
        let removed = publish::unpublish(self, portal, &caller.subject, &id).await?;
        Ok(Response::new(UnpublishDatasetResponse { removed }))
    }

    async fn list_datasets(
        &self,
        request: Request<ListDatasetsRequest>,
    ) -> Result<Response<ListDatasetsResponse>, Status> {
        self.auth
            .caller(&request, "Portal.ListDatasets", &[Role::Admin])?;
        self.portal()?;
        let (entries, awaiting) = self
            .store
            .read(|conn| Ok((load_all(conn)?, restore::all_awaiting(conn)?)))
            .await?;
        let datasets = entries
            .iter()
            .map(|e| {
                let mut dataset = e.to_api();
                // What the operator's OpenDataset controller republishes after a failover.
                dataset.awaiting_files =
                    awaiting.contains(&(e.metadata.id.clone(), e.metadata.version));
                dataset
            })
            .collect();
        Ok(Response::new(ListDatasetsResponse { datasets }))
    }

    async fn issue_download_token(
        &self,
        request: Request<IssueDownloadTokenRequest>,
    ) -> Result<Response<DownloadToken>, Status> {
        let caller = self
            .auth
            .caller(&request, "Portal.IssueDownloadToken", &[Role::Admin])?;
        self.portal()?;
        let IssueDownloadTokenRequest {
            dataset_id,
            applicant,
            ttl_seconds,
        } = request.into_inner();
        let (token, expires_at) =
            publish::issue_token(self, &caller.subject, &dataset_id, &applicant, ttl_seconds)
                .await?;
        Ok(Response::new(DownloadToken {
            token,
            expires_at: Some(timestamp(expires_at)),
        }))
    }

    async fn list_applications(
        &self,
        request: Request<ListApplicationsRequest>,
    ) -> Result<Response<ListApplicationsResponse>, Status> {
        self.auth
            .caller(&request, "Portal.ListApplications", &[Role::Admin])?;
        self.portal()?;
        let (dataset, state) = applications::list_filters(request.get_ref())?;
        let applications = self
            .store
            .read(move |conn| Ok(applications::list(conn, dataset.as_deref(), state)?))
            .await?
            .iter()
            .map(applications::Application::to_api)
            .collect();
        Ok(Response::new(ListApplicationsResponse { applications }))
    }

    async fn decide_application(
        &self,
        request: Request<DecideApplicationRequest>,
    ) -> Result<Response<Application>, Status> {
        let caller = self
            .auth
            .caller(&request, "Portal.DecideApplication", &[Role::Admin])?;
        self.portal()?;
        let DecideApplicationRequest {
            application_id,
            approve,
            reason,
            ttl_seconds,
        } = request.into_inner();
        let decided = applications::decide(
            self,
            &caller.subject,
            &application_id,
            approve,
            &reason,
            ttl_seconds,
        )
        .await?;
        Ok(Response::new(decided.to_api()))
    }
}
