//! Audit: reading and verifying the hash-chained log. Admin only.

use govdc_hub_api::auth::Role;
use govdc_hub_api::v1::audit_server::Audit;
use govdc_hub_api::v1::{
    AuditRecord, ListAuditRecordsRequest, ListAuditRecordsResponse, VerifyAuditRequest,
    VerifyAuditResponse,
};
use tonic::{Request, Response, Status};

use super::{HubService, timestamp};
use crate::audit;
use crate::store::DbResult;

#[tonic::async_trait]
impl Audit for HubService {
    async fn list_audit_records(
        &self,
        request: Request<ListAuditRecordsRequest>,
    ) -> Result<Response<ListAuditRecordsResponse>, Status> {
        self.auth
            .caller(&request, "Audit.ListAuditRecords", &[Role::Admin])?;
        let ListAuditRecordsRequest { after_seq, limit } = request.into_inner();
        let limit = match i64::from(limit) {
            n if n <= 0 => 100,
            n => n.min(1000),
        };
        let records = self
            .store
            .read(move |conn| audit::list(conn, after_seq, limit).db())
            .await?
            .into_iter()
            .map(|r| AuditRecord {
                seq: r.seq,
                time: Some(timestamp(r.time_micros)),
                actor: r.actor,
                action: r.action,
                subject: r.subject,
                detail: r.detail,
                prev_hash: r.prev_hash,
                hash: r.hash,
                algorithm: r.algorithm,
            })
            .collect();
        Ok(Response::new(ListAuditRecordsResponse { records }))
    }

    async fn verify_audit(
        &self,
        request: Request<VerifyAuditRequest>,
    ) -> Result<Response<VerifyAuditResponse>, Status> {
        self.auth
            .caller(&request, "Audit.VerifyAudit", &[Role::Admin])?;
        let verification = self.store.read(|conn| audit::verify(conn).db()).await?;
        let (first_broken_seq, reason) = verification.first_broken.clone().unwrap_or_default();
        Ok(Response::new(VerifyAuditResponse {
            intact: verification.intact(),
            records_checked: verification.records_checked,
            first_broken_seq,
            reason,
        }))
    }
}
