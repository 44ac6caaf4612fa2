//! The build step: the source de-identified into the files of a new version (gzip CSV and JSON,
//! each with its SHA-256), in a directory of their own that goes when the version is uploaded.
//! De-identification itself is the pure [`crate::deid`] module; this step feeds it the source
//! and keeps the files on disk, so memory does not grow with the dataset.

use std::io::{BufWriter, Cursor, Write};

use govdc_crds::OpenDataset;
use govdc_crds::open_dataset::DownloadFormat;
use govdc_hub_api::v1::{DatasetField, DatasetMetadata, Openness, ReidentificationRisk};
use kube::ResourceExt;

use super::publish::UploadFile;
use crate::deid::{Outputs, Plan, Report, RunError};

/// The files of a version, and what de-identification did.
pub struct Built {
    /// Holds the files until the version is uploaded.
    pub dir: tempfile::TempDir,
    /// The files to upload.
    pub files: Vec<UploadFile>,
    /// What was done to each field, the record counts and the k reached.
    pub report: Report,
    /// Digest of the de-identified content: the first file's SHA-256 (gzip output is
    /// deterministic), which tells whether a version changes anything.
    pub content_sha256: String,
}

/// Why no version was built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The dataset may not be published as it is (a condition with the refusal's reason).
    #[error(transparent)]
    Refused(#[from] crate::deid::Refusal),
    /// Writing the files failed.
    #[error("writing the dataset's files: {0}")]
    Io(#[from] std::io::Error),
}

impl From<RunError> for BuildError {
    fn from(error: RunError) -> Self {
        match error {
            RunError::Refused(refusal) => BuildError::Refused(refusal),
            RunError::Io(error) => BuildError::Io(error),
        }
    }
}

/// De-identifies the CSV `source` (in memory, or a spooled file) with `plan` into the spec's
/// formats.
pub fn build(dataset: &OpenDataset, plan: &Plan, source: &SourceData) -> Result<Built, BuildError> {
    let dir = tempfile::Builder::new()
        .prefix("govdc-dataset-")
        .tempdir()?;
    let formats = &dataset.spec.formats;
    let csv_path = dir.path().join("data.csv.gz");
    let json_path = dir.path().join("data.json.gz");
    let mut csv_file = formats
        .contains(&DownloadFormat::Csv)
        .then(|| std::fs::File::create(&csv_path).map(BufWriter::new))
        .transpose()?;
    let mut json_file = formats
        .contains(&DownloadFormat::Json)
        .then(|| std::fs::File::create(&json_path).map(BufWriter::new))
        .transpose()?;
    let outputs = Outputs {
        csv: csv_file.as_mut().map(|f| f as &mut dyn Write),
        json: json_file.as_mut().map(|f| f as &mut dyn Write),
    };
    let report = match source {
        SourceData::Memory(bytes) => plan.run(|| Ok(Cursor::new(bytes.as_slice())), outputs)?,
        SourceData::File(path) => plan.run(|| std::fs::File::open(path), outputs)?,
    };
    for file in [csv_file, json_file].into_iter().flatten() {
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    let mut files = Vec::new();
    for (format, path, digest) in [
        ("csv", &csv_path, &report.csv),
        ("json", &json_path, &report.json),
    ] {
        if let Some(digest) = digest {
            files.push(UploadFile {
                format: format.to_owned(),
                path: path.clone(),
                sha256: digest.sha256.clone(),
                size: digest.bytes,
            });
        }
    }
    let content_sha256 = files.first().map(|f| f.sha256.clone()).unwrap_or_default();
    Ok(Built {
        dir,
        files,
        report,
        content_sha256,
    })
}

/// The source's CSV text: in memory (a ConfigMap or Secret, at most 1 MiB) or spooled to a
/// file (an exchange resource).
pub enum SourceData {
    /// CSV bytes.
    Memory(Vec<u8>),
    /// A CSV file.
    File(std::path::PathBuf),
}

/// The dataset's identifier on the portal: `<namespace>.<name>`, unique and stable.
pub fn dataset_id(dataset: &OpenDataset) -> String {
    format!(
        "{}.{}",
        dataset.namespace().unwrap_or_default(),
        dataset.name_any()
    )
}

/// The portal metadata of version `version` of `dataset`.
pub fn metadata(
    dataset: &OpenDataset,
    owner: &govdc_crds::DepartmentCloud,
    built: &Built,
    version: i64,
) -> DatasetMetadata {
    let spec = &dataset.spec;
    let category = serde_json::to_value(spec.category)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    DatasetMetadata {
        id: dataset_id(dataset),
        title: spec.title.clone(),
        description: spec.description.clone(),
        category: category.clone(),
        openness: match spec.openness {
            govdc_crds::open_dataset::Openness::Unconditional => Openness::Unconditional,
            govdc_crds::open_dataset::Openness::Conditional => Openness::Conditional,
        } as i32,
        license: spec.license.clone(),
        tags: vec![category],
        organization_credit_code: owner.spec.department.credit_code.clone(),
        organization_name: owner.spec.department.name.clone(),
        version,
        record_count: i64::try_from(built.report.rows_written).unwrap_or(i64::MAX),
        fields: built
            .report
            .fields
            .iter()
            .filter(|f| f.action != govdc_crds::open_dataset::FieldAction::Drop)
            .map(|f| {
                let declared = spec
                    .fields
                    .iter()
                    .find(|d| d.name == f.name)
                    .and_then(|d| d.declared_identifiers.as_ref());
                DatasetField {
                    name: f.name.clone(),
                    treatment: camel_case(f.action),
                    description: String::new(),
                    declared_identifiers: declared
                        .map(|d| d.kinds.iter().map(camel_case).collect())
                        .unwrap_or_default(),
                    identifier_justification: declared
                        .map(|d| d.justification.trim().to_owned())
                        .unwrap_or_default(),
                }
            })
            .collect(),
        content_sha256: built.content_sha256.clone(),
        risk: built.report.risk.as_ref().map(|r| ReidentificationRisk {
            smallest_group: i64::try_from(r.smallest_group).unwrap_or(i64::MAX),
            groups: i64::try_from(r.groups).unwrap_or(i64::MAX),
            highest_prosecutor_risk_percent: r.highest_percent,
            average_prosecutor_risk_percent: r.average_percent,
            threshold_percent: r.threshold_percent,
            records_at_risk: i64::try_from(r.records_at_risk).unwrap_or(i64::MAX),
        }),
        update_interval_seconds: refresh_interval_seconds(spec.refresh_schedule.as_deref()),
    }
}

/// The longest gap, in seconds, between two firings of a refresh schedule (five-field cron,
/// UTC) over a year of firings from a fixed start, so the same schedule always gives the same
/// figure; 0 without a schedule (the portal then shows the dataset as updated irregularly).
pub fn refresh_interval_seconds(schedule: Option<&str>) -> i64 {
    let Some(cron) = schedule.and_then(|s| s.parse::<croner::Cron>().ok()) else {
        return 0;
    };
    let Ok(start) = jiff::Timestamp::from_second(1_767_225_600) else {
        return 0;
    };
    let mut at = start.to_zoned(jiff::tz::TimeZone::UTC);
    let mut longest = 0;
    // A year of firings, at most 400 steps (a daily schedule takes 366 of them).
    for _ in 0..400 {
        let Ok(next) = cron.find_next_occurrence(&at, false) else {
            break;
        };
        let gap = next.timestamp().as_second() - at.timestamp().as_second();
        if at.timestamp() != start {
            longest = longest.max(gap);
        }
        if next.timestamp().as_second() - start.as_second() > 366 * 86_400 {
            break;
        }
        at = next;
    }
    longest
}

/// A serde enum's name as the CRD spells it (`dateShift`, `mobilePhone`).
fn camel_case(value: impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::refresh_interval_seconds;

    #[test]
    fn a_refresh_schedule_gives_its_longest_gap() {
        const DAY: i64 = 86_400;
        assert_eq!(refresh_interval_seconds(None), 0);
        assert_eq!(refresh_interval_seconds(Some("not cron")), 0);
        assert_eq!(refresh_interval_seconds(Some("0 3 * * *")), DAY);
        assert_eq!(refresh_interval_seconds(Some("0 3 * * 1")), 7 * DAY);
        assert_eq!(refresh_interval_seconds(Some("0 3 1 * *")), 31 * DAY);
        assert_eq!(refresh_interval_seconds(Some("*/15 * * * *")), 900);
        assert_eq!(refresh_interval_seconds(Some("0 0 1 1 *")), 365 * DAY);
    }
}
