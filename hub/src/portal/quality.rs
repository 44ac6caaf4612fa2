//! Metadata quality of a dataset version, in the manner of data.europa.eu's Metadata Quality
//! Assessment (MQA): the same five dimensions (findability, accessibility, interoperability,
//! reusability, contextuality), the same weights (405 points) and ratings (excellent from 351,
//! good from 221, sufficient from 121), with each check answered from what this portal's
//! metadata holds. Where the MQA asks for something the portal's metadata has no place for, the
//! nearest thing it has takes the check's place (named in [`CHECKS`]):
//!
//! | MQA check | here |
//! | --- | --- |
//! | spatial coverage | a description of at least 20 characters |
//! | temporal coverage | an update frequency (the refresh schedule's interval) |
//! | access URL / download URL accessible | the dataset page / downloads open without an application |
//! | contact point | every field documented |
//! | rights | a record count |
//!
//! Worked out once when a version is published ([`super::publish`]), stored with it in the
//! version history and its audit record, and shown on the dataset and department pages with
//! what is missing.

use serde::{Deserialize, Serialize};

use super::Entry;

/// One check: its dimension, the i18n key of what it asks (`quality.check.<key>`), its points.
#[derive(Clone, Copy, Debug)]
pub struct Check {
    /// The dimension it counts towards.
    pub dimension: &'static str,
    /// Its name (`quality.check.<key>` in the website's tables).
    pub key: &'static str,
    /// Its points when met.
    pub points: u32,
}

const fn check(dimension: &'static str, key: &'static str, points: u32) -> Check {
    Check {
        dimension,
        key,
        points,
    }
}

/// The dimensions, in the MQA's order.
pub const DIMENSIONS: &[&str] = &[
    "findability",
    "accessibility",
    "interoperability",
    "reusability",
    "contextuality",
];

/// Every check, by dimension (405 points in all, as the MQA's).
pub const CHECKS: &[Check] = &[
    check("findability", "keywords", 30),
    check("findability", "category", 30),
    check("findability", "description", 20),
    check("findability", "frequency", 20),
    check("accessibility", "access_url", 50),
    check("accessibility", "download_url", 20),
    check("accessibility", "open_download", 30),
    check("interoperability", "format", 20),
    check("interoperability", "media_type", 10),
    check("interoperability", "format_vocabulary", 10),
    check("interoperability", "non_proprietary", 20),
    check("interoperability", "machine_readable", 20),
    check("interoperability", "dcat_ap", 30),
    check("reusability", "license", 20),
    check("reusability", "license_vocabulary", 10),
    check("reusability", "access_rights", 10),
    check("reusability", "access_rights_vocabulary", 5),
    check("reusability", "field_documentation", 20),
    check("reusability", "publisher", 10),
    check("contextuality", "record_count", 5),
    check("contextuality", "byte_size", 5),
    check("contextuality", "issued", 5),
    check("contextuality", "version", 5),
];

/// All the points there are: the sum of [`CHECKS`], as the MQA's.
pub const MAX: u32 = 405;

/// Licences the portal knows by their SPDX identifiers (a vocabulary, in the MQA's sense).
pub const KNOWN_LICENSES: &[&str] = &[
    "CC-BY-4.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "ODC-By-1.0",
    "ODbL-1.0",
    "PDDL-1.0",
];

/// A version's metadata quality.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quality {
    /// Points met, of [`Quality::max`].
    pub score: u32,
    /// All the points there are (405).
    pub max: u32,
    /// The keys of the checks not met, in [`CHECKS`] order.
    pub missing: Vec<String>,
}

/// The MQA's rating of a score: `excellent`, `good`, `sufficient` or `bad`.
pub fn rating(score: u32) -> &'static str {
    match score {
        351.. => "excellent",
        221.. => "good",
        121.. => "sufficient",
        _ => "bad",
    }
}

impl Quality {
    /// The rating of its score.
    pub fn rating(&self) -> &'static str {
        rating(self.score)
    }

    /// Points met and possible in `dimension`.
    pub fn dimension(&self, dimension: &str) -> (u32, u32) {
        CHECKS
            .iter()
            .filter(|c| c.dimension == dimension)
            .fold((0, 0), |(met, max), c| {
                let got = if self.missing.iter().any(|m| m == c.key) {
                    0
                } else {
                    c.points
                };
                (met + got, max + c.points)
            })
    }
}

fn met(entry: &Entry, key: &str) -> bool {
    let m = &entry.metadata;
    let formats = || entry.files.iter().map(|f| f.format.as_str());
    match key {
        "keywords" => m.tags.iter().any(|t| !t.trim().is_empty()),
        "category" => super::web::i18n::CATEGORIES
            .iter()
            .any(|(id, _, _)| *id == m.category),
        "description" => m.description.trim().chars().count() >= 20,
        "frequency" => m.update_interval_seconds > 0,
        // The portal serves every dataset's page itself.
        "access_url" => true,
        "download_url" => !entry.files.is_empty(),
        "open_download" => !entry.conditional() && !entry.files.is_empty(),
        // CSV and JSON: named, with IANA media types, from the EU's file-type vocabulary,
        // open and machine-readable; the portal's DCAT-AP document describes every dataset.
        "format" | "media_type" | "format_vocabulary" | "non_proprietary" | "machine_readable" => {
            formats().next().is_some() && formats().all(|f| super::FORMATS.contains(&f))
        }
        "dcat_ap" => true,
        "license" => !m.license.trim().is_empty(),
        "license_vocabulary" => KNOWN_LICENSES.contains(&m.license.as_str()),
        // 无条件开放 / 有条件开放: always stated, from the plan's vocabulary.
        "access_rights" | "access_rights_vocabulary" => true,
        "field_documentation" => {
            !m.fields.is_empty() && m.fields.iter().all(|f| !f.description.trim().is_empty())
        }
        "publisher" => {
            !m.organization_name.trim().is_empty() && !m.organization_credit_code.is_empty()
        }
        "record_count" => m.record_count > 0,
        "byte_size" => entry.files.iter().all(|f| f.size > 0) && !entry.files.is_empty(),
        "issued" => entry.published_at > 0,
        "version" => m.version > 0,
        _ => false,
    }
}

/// The quality of `entry`'s version.
pub fn assess(entry: &Entry) -> Quality {
    let mut quality = Quality {
        max: CHECKS.iter().map(|c| c.points).sum(),
        ..Quality::default()
    };
    for c in CHECKS {
        if met(entry, c.key) {
            quality.score += c.points;
        } else {
            quality.missing.push(c.key.to_owned());
        }
    }
    quality
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portal::StoredFile;
    use govdc_hub_api::v1::{DatasetField, DatasetMetadata, Openness};

    fn complete() -> Entry {
        Entry {
            metadata: DatasetMetadata {
                id: "hz.bus".to_owned(),
                title: "公交站点".to_owned(),
                description: "杭州市公交站点的名称、位置和途经线路，每日更新。".repeat(2),
                category: "transport".to_owned(),
                openness: Openness::Unconditional as i32,
                license: "CC-BY-4.0".to_owned(),
                tags: vec!["公交".to_owned()],
                organization_credit_code: "11330100002489123X".to_owned(),
                organization_name: "杭州市交通运输局".to_owned(),
                version: 3,
                record_count: 10,
                fields: vec![DatasetField {
                    name: "名称".to_owned(),
                    description: "站点名称".to_owned(),
                    ..Default::default()
                }],
                update_interval_seconds: 86_400,
                ..Default::default()
            },
            files: vec![StoredFile {
                format: "csv".to_owned(),
                sha256: "00".to_owned(),
                size: 100,
            }],
            published_at: 1,
        }
    }

    #[test]
    fn the_weights_are_the_mqas() {
        let sum = |d: &str| -> u32 {
            CHECKS
                .iter()
                .filter(|c| c.dimension == d)
                .map(|c| c.points)
                .sum()
        };
        assert_eq!(
            DIMENSIONS.iter().map(|d| sum(d)).collect::<Vec<_>>(),
            [100, 100, 110, 75, 20]
        );
        assert_eq!(CHECKS.iter().map(|c| c.points).sum::<u32>(), MAX);
        assert_eq!(rating(405), "excellent");
        assert_eq!(rating(350), "good");
        assert_eq!(rating(121), "sufficient");
        assert_eq!(rating(120), "bad");
    }

    #[test]
    fn what_is_missing_is_named_and_costs_its_points() {
        let full = assess(&complete());
        assert_eq!((full.score, full.max), (405, 405));
        assert!(full.missing.is_empty());

        let mut poor = complete();
        poor.metadata.tags.clear();
        poor.metadata.license = "my-own-terms".to_owned();
        poor.metadata.update_interval_seconds = 0;
        poor.metadata.openness = Openness::Conditional as i32;
        poor.metadata.fields[0].description.clear();
        let q = assess(&poor);
        assert_eq!(
            q.missing,
            [
                "keywords",
                "frequency",
                "open_download",
                "license_vocabulary",
                "field_documentation"
            ]
        );
        assert_eq!(q.score, 405 - 30 - 20 - 30 - 10 - 20);
        assert_eq!(q.dimension("findability"), (50, 100));
        assert_eq!(q.rating(), "good");
    }
}
