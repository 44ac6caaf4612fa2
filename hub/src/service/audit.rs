//! Audit: reading and verifying the hash-chained log, against the anchors of its head kept
//! outside the node (see [`crate::anchor`]). Admin only.

use govdc_hub_api::auth::Role;
use govdc_hub_api::v1::audit_server::Audit;
use govdc_hub_api::v1::{
    AnchorCheck, AuditRecord, ListAuditRecordsRequest, ListAuditRecordsResponse,
    VerifyAuditRequest, VerifyAuditResponse,
};
use tonic::{Request, Response, Status};

use super::{HubService, timestamp};
use crate::anchor::{self, Anchor, Source};
use crate::audit;
use crate::service::DbResult;

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
        let mut anchors: Vec<(Source, Result<Anchor, String>)> = Vec::new();
        for given in &request.get_ref().anchors {
            let anchor = Anchor::from_api(given)
                .ok_or_else(|| Status::invalid_argument("an anchor needs a head (seq and hash)"))?;
            anchors.push((Source::Caller, Ok(anchor)));
        }
        match crate::federation::parent_anchors(self).await {
            Some(Ok(parent)) => anchors.extend(parent.into_iter().map(|a| (Source::Parent, Ok(a)))),
            Some(Err(why)) => anchors.push((Source::Parent, Err(why))),
            None => {}
        }
        let dir = self.store.dir().to_owned();
        match tokio::task::spawn_blocking(move || anchor::read_local(&dir)).await {
            Ok(Ok(Some(local))) => anchors.push((Source::Local, Ok(local))),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => anchors.push((Source::Local, Err(e.to_string()))),
            Err(e) => anchors.push((Source::Local, Err(e.to_string()))),
        }
        let node = self.config.name.clone();
        let report = self
            .store
            .read(move |conn| anchor::verify(conn, &node, anchors).db())
            .await?;
        let (first_broken_seq, reason) = report.first_broken.clone().unwrap_or_default();
        Ok(Response::new(VerifyAuditResponse {
            intact: report.intact(),
            records_checked: report.records_checked,
            first_broken_seq,
            reason,
            finding: report.finding.to_api() as i32,
            anchors: report
                .checks
                .into_iter()
                .map(|check| AnchorCheck {
                    anchor: check.anchor.map(|a| a.to_api()),
                    outcome: check.outcome,
                    source: check.source.as_str().to_owned(),
                })
                .collect(),
        }))
    }
}
