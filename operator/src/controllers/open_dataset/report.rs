//! The report step of OpenDatasets: the served version (from the portal's own answer), what
//! de-identification did, conditions and events.

use govdc_crds::open_dataset::{PersonalDataFinding, ReidentificationRisk};
use govdc_crds::{ExchangeNode, OpenDataset, OpenDatasetStatus};
use govdc_hub_api::v1::PublishedDataset;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::runtime::events::EventType;

use crate::controllers::Context;
use crate::controllers::exchange_node::build::portal_url;
use crate::deid::{Refusal, Report};
use crate::error::Result;
use crate::pipeline::conditions::{DEGRADED, Observed, PROGRESSING, READY};
use crate::pipeline::events;
use crate::pipeline::report::{Problem, problem_conditions, report, resource_status};

resource_status!(OpenDatasetStatus);

/// `Published`: a version of the dataset is served on the portal.
pub const PUBLISHED: &str = "Published";

/// What a pass came to.
// One value per pass, passed by reference and dropped: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Outcome<'a> {
    /// The spec or its inputs refuse publication; nothing new was published.
    Refused(&'a [Problem]),
    /// De-identification refused the records (k-anonymity, a source field missing, the
    /// content gate), with what the content gate found.
    BuildRefused(Problem, Vec<PersonalDataFinding>),
    /// Something publication needs is not there yet.
    Waiting(String),
    /// The portal did not answer or refused the upload.
    PortalUnreachable(String),
    /// The source could not be read.
    SourceUnreadable(String),
    /// A version is served.
    Served {
        /// The portal node.
        portal: Option<&'a ExchangeNode>,
        /// The portal's account of the served version.
        published: PublishedDataset,
        /// The fingerprint of the inputs it was made from.
        digest: String,
        /// What de-identification did, when this pass built a version.
        report: Option<Report>,
        /// Whether this pass published a new version.
        new_version: bool,
    },
}

impl Outcome<'_> {
    /// The outcome of a refusal of de-identification.
    pub fn build_refused(refusal: &Refusal) -> Self {
        let findings = match refusal {
            Refusal::PersonalDataDetected { findings, .. } => findings
                .iter()
                .map(|f| PersonalDataFinding {
                    field: f.field.clone(),
                    kind: f.kind,
                    records: i64::try_from(f.records).unwrap_or(i64::MAX),
                })
                .collect(),
            _ => Vec::new(),
        };
        Outcome::BuildRefused(
            Problem::new(refusal.reason(), refusal.to_string()),
            findings,
        )
    }
}

fn published_condition(status: &OpenDatasetStatus) -> Observed {
    match status.published_version {
        Some(version) => Observed::yes(
            PUBLISHED,
            "VersionServed",
            format!("version {version} is served"),
        ),
        None => Observed::no(PUBLISHED, "NotPublished", "no version has been published"),
    }
}

/// The conditions for an outcome, given the status it leads to.
pub fn conditions_for(outcome: &Outcome<'_>, status: &OpenDatasetStatus) -> Vec<Observed> {
    let kept = || match status.published_version {
        Some(version) => format!("; version {version} stays served"),
        None => String::new(),
    };
    let mut observed = match outcome {
        Outcome::Refused(problems) => {
            let mut conditions = problem_conditions(problems).unwrap_or_default();
            for condition in &mut conditions {
                if condition.type_ == READY {
                    condition.message.push_str(&kept());
                }
            }
            conditions.push(Observed::no(DEGRADED, "AsExpected", "nothing is failing"));
            conditions
        }
        Outcome::BuildRefused(problem, _) => vec![
            Observed::no(
                READY,
                problem.reason,
                format!("{}{}", problem.message, kept()),
            ),
            Observed::no(
                PROGRESSING,
                problem.reason,
                "waiting for the spec or the source to change",
            ),
            Observed::no(DEGRADED, "AsExpected", "nothing is failing"),
        ],
        Outcome::Waiting(message) => vec![
            Observed::no(READY, "PortalNotReady", message.clone()),
            Observed::yes(PROGRESSING, "PortalNotReady", message.clone()),
            Observed::no(DEGRADED, "AsExpected", "nothing is failing"),
        ],
        Outcome::PortalUnreachable(message) => vec![
            Observed::no(READY, "PortalUnreachable", format!("{message}{}", kept())),
            Observed::yes(PROGRESSING, "PortalUnreachable", "retrying"),
            Observed::yes(DEGRADED, "PortalUnreachable", message.clone()),
        ],
        Outcome::SourceUnreadable(message) => vec![
            Observed::no(READY, "SourceUnreadable", format!("{message}{}", kept())),
            Observed::yes(PROGRESSING, "SourceUnreadable", "retrying"),
            Observed::yes(DEGRADED, "SourceUnreadable", message.clone()),
        ],
        Outcome::Served { published, .. } => {
            let metadata = published.metadata.clone().unwrap_or_default();
            vec![
                Observed::yes(
                    READY,
                    "Published",
                    format!(
                        "version {} with {} records is served",
                        metadata.version, metadata.record_count
                    ),
                ),
                Observed::no(PROGRESSING, "Published", "the served version is up to date"),
                Observed::no(DEGRADED, "AsExpected", "nothing is failing"),
            ]
        }
    };
    observed.push(published_condition(status));
    observed
}

/// The status an outcome leads to.
fn next_status(dataset: &OpenDataset, outcome: &Outcome<'_>) -> OpenDatasetStatus {
    let mut next = dataset.status.clone().unwrap_or_default();
    if let Outcome::BuildRefused(_, findings) = outcome {
        next.personal_data_findings = findings.clone();
    }
    let Outcome::Served {
        portal,
        published,
        digest,
        report,
        ..
    } = outcome
    else {
        return next;
    };
    let metadata = published.metadata.clone().unwrap_or_default();
    let base = portal.map(portal_url).unwrap_or_default();
    next.published_version = Some(metadata.version);
    next.record_count = Some(metadata.record_count);
    next.checksum = published
        .files
        .iter()
        .find(|f| f.format == "csv")
        .or_else(|| published.files.first())
        .map(|f| f.sha256.clone());
    next.download_urls = published
        .files
        .iter()
        .map(|f| format!("{}{}", base.trim_end_matches('/'), f.path))
        .collect();
    next.last_published = published
        .published_at
        .as_ref()
        .and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok().map(Time));
    next.input_digest = Some(digest.clone());
    if let Some(report) = report {
        next.suppressed_records = i64::try_from(report.rows_suppressed).ok();
        next.smallest_group = report.smallest_group.and_then(|n| i64::try_from(n).ok());
        next.reidentification_risk = report.risk.as_ref().map(|r| ReidentificationRisk {
            smallest_group: i64::try_from(r.smallest_group).unwrap_or(i64::MAX),
            groups: i64::try_from(r.groups).unwrap_or(i64::MAX),
            highest_prosecutor_risk_percent: r.highest_percent,
            average_prosecutor_risk_percent: r.average_percent,
            threshold_percent: r.threshold_percent,
            records_at_risk: i64::try_from(r.records_at_risk).unwrap_or(i64::MAX),
            records_at_risk_percent: 100.0 * r.records_at_risk as f64
                / report.rows_written.max(1) as f64,
        });
        next.personal_data_findings = Vec::new();
    }
    next
}

/// Writes the status if it changed, with a Warning event for a refusal and a Normal one for a
/// new version.
pub async fn write(ctx: &Context, dataset: &OpenDataset, outcome: Outcome<'_>) -> Result<()> {
    let next = next_status(dataset, &outcome);
    let conditions = conditions_for(&outcome, &next);
    let build_problem;
    let problems: &[Problem] = match &outcome {
        Outcome::Refused(problems) => problems,
        Outcome::BuildRefused(problem, _) => {
            build_problem = [problem.clone()];
            &build_problem
        }
        _ => &[],
    };
    report(
        ctx,
        dataset,
        dataset.status.as_ref(),
        next.clone(),
        &conditions,
        problems,
    )
    .await?;
    if let Outcome::Served {
        new_version: true,
        report: Some(report),
        ..
    } = &outcome
    {
        events::publish(
            &ctx.recorder,
            &dataset.object_ref(&()),
            EventType::Normal,
            "Published",
            "Publish",
            format!(
                "version {} published: {} of {} records ({} suppressed below k){}",
                next.published_version.unwrap_or_default(),
                report.rows_written,
                report.rows_read,
                report.rows_suppressed,
                declared(report)
            ),
        )
        .await;
    }
    Ok(())
}

/// The identifiers a version published as its fields declare, for the Published event: the
/// department answers for them, so they are said out loud.
fn declared(report: &Report) -> String {
    if report.declared_identifiers.is_empty() {
        return String::new();
    }
    let listed: Vec<String> = report
        .declared_identifiers
        .iter()
        .map(ToString::to_string)
        .collect();
    format!("; identifiers published as declared: {}", listed.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use govdc_hub_api::v1::{DatasetFile, DatasetMetadata};

    fn find<'a>(observed: &'a [Observed], type_: &str) -> &'a Observed {
        observed
            .iter()
            .find(|c| c.type_ == type_)
            .expect("condition")
    }

    #[test]
    fn a_refusal_says_the_previous_version_stays_served() {
        let status = OpenDatasetStatus {
            published_version: Some(3),
            ..OpenDatasetStatus::default()
        };
        let problems = [Problem::new(
            "PersonalFieldInClear",
            "spec.fields[1]: phone",
        )];
        let observed = conditions_for(&Outcome::Refused(&problems), &status);
        let ready = find(&observed, READY);
        assert_eq!(
            (ready.status, ready.reason.as_str()),
            ("False", "PersonalFieldInClear")
        );
        assert!(
            ready.message.ends_with("version 3 stays served"),
            "{}",
            ready.message
        );
        assert_eq!(find(&observed, PUBLISHED).status, "True");
    }

    #[test]
    fn a_served_version_fills_the_status_from_the_portal_answer() {
        let dataset: OpenDataset = serde_json::from_value(serde_json::json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "OpenDataset",
            "metadata": {"name": "d", "namespace": "ns"},
            "spec": {
                "title": "t", "category": "health", "openness": "unconditional",
                "source": {"configMapRef": {"name": "c", "key": "k"}},
                "portal": {"name": "national", "namespace": "hub"},
                "fields": [{"name": "a", "action": "keep"}],
            }
        }))
        .expect("fixture");
        let portal: ExchangeNode = serde_json::from_value(serde_json::json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "ExchangeNode",
            "metadata": {"name": "national", "namespace": "hub"},
            "spec": {"level": "national", "regionCode": "100000", "networkZone": "extranet",
                     "openDataPortal": true, "portalUrl": "https://data.gov.cn/"},
        }))
        .expect("portal fixture");
        let published = PublishedDataset {
            metadata: Some(DatasetMetadata {
                version: 2,
                record_count: 10,
                ..DatasetMetadata::default()
            }),
            files: vec![
                DatasetFile {
                    format: "json".into(),
                    sha256: "j".into(),
                    size: 1,
                    path: "/download/ns.d/2/data.json.gz".into(),
                },
                DatasetFile {
                    format: "csv".into(),
                    sha256: "c".into(),
                    size: 1,
                    path: "/download/ns.d/2/data.csv.gz".into(),
                },
            ],
            published_at: None,
            awaiting_files: false,
        };
        let outcome = Outcome::Served {
            portal: Some(&portal),
            published,
            digest: "x".into(),
            report: None,
            new_version: true,
        };
        let status = next_status(&dataset, &outcome);
        assert_eq!(status.published_version, Some(2));
        assert_eq!(
            status.checksum.as_deref(),
            Some("c"),
            "the CSV file's checksum"
        );
        assert_eq!(
            status.download_urls,
            vec![
                "https://data.gov.cn/download/ns.d/2/data.json.gz".to_owned(),
                "https://data.gov.cn/download/ns.d/2/data.csv.gz".to_owned()
            ]
        );
        let observed = conditions_for(&outcome, &status);
        assert_eq!(find(&observed, READY).status, "True");
    }
}
