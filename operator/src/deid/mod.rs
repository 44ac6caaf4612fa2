//! De-identification (去标识化, GB/T 37964-2019) of an OpenDataset's records before they are
//! opened on the portal: a pure, streaming library; no Kubernetes here.
//!
//! The controller builds a [`Plan`] from the spec and the dataset key, which refuses what must not
//! be published ([`Refusal`], with a CamelCase [`Refusal::reason`] for the condition), then
//! [`Plan::run`]s it over the CSV source, writing gzip-compressed CSV and JSON to its sinks and
//! getting back a [`Report`] with each file's SHA-256, the record counts and what was done to each
//! field.
//!
//! ```no_run
//! # fn example(spec: &govdc_crds::open_dataset::OpenDatasetSpec, key: &[u8]) -> Result<(), govdc_operator::deid::RunError> {
//! use govdc_operator::deid::{Outputs, Plan};
//! let plan = Plan::from_spec(spec, Some(key))?;
//! let (mut csv, mut json) = (Vec::new(), Vec::new());
//! let report = plan.run(
//!     || std::fs::File::open("/tmp/source.csv"),
//!     Outputs { csv: Some(&mut csv), json: Some(&mut json) },
//! )?;
//! println!("{report}; csv sha256 {:?}", report.csv.as_ref().map(|d| &d.sha256));
//! # Ok(()) }
//! ```
//!
//! The rules, in GB/T 37964's terms:
//!
//! - `keep`: published unchanged; refused on a `personal` field.
//! - `drop` (suppression of the column): left out, as is every source column not declared.
//! - `mask` (masking): all but the first and last few characters (Unicode characters, not bytes)
//!   replaced by the mask character, keeping the length; a value no longer than what is kept is
//!   masked whole.
//! - `pseudonymize` (keyed pseudonymization): lower-case hex of HMAC-SHA256 or HMAC-SM3 with the
//!   dataset key over the trimmed, ASCII-upper-cased value (a legacy 15-digit identity number in
//!   its 18-digit form, as `mask` masks it, so one person has one pseudonym); the same value gets the same
//!   pseudonym everywhere in the dataset (so records still join), and never without the key
//!   (an unkeyed hash of an identity number is reversed by trying the ~10^11 possible ones).
//! - `generalize` (generalization): a `YYYY-MM-DD` date to `YYYY` or `YYYY-MM`; a 6-, 9- or
//!   12-digit region code to its first n digits, zero-filled (`330106` → `330100`); a number to
//!   its band `lo-hi` of the rule's width (`35` → `30-39`).
//! - `dateShift` (randomization): a `YYYY-MM-DD` date moved by 1 to `maxDays` days either way
//!   (never 0). The offset comes from HMAC-SHA256 with the dataset key over the record's subject:
//!   the value of the first pseudonymized field, so that all of one person's dates move together
//!   and the intervals between them survive; without such a field, or when it is empty, over
//!   the record's declared source values, so that an unchanged record moves the same way on every
//!   publication.
//!
//! A value a `generalize` or `dateShift` rule cannot parse is published empty, never as it was,
//! and counted in [`FieldReport::blanked`]. Empty values stay empty under every rule.
//!
//! k-anonymity: records are grouped by their published quasi-identifiers (after
//! generalization; a dropped quasi-identifier is not published and takes no part). With
//! `kAnonymity` set, a first pass counts the groups; a group smaller than `minK` refuses
//! publication (`KAnonymityNotMet`), or with `suppressRareGroups` its records are left out,
//! as long as that is at most `maxSuppressedPercent` ([`MAX_SUPPRESSED_PERCENT`] by default) of
//! the records (`SuppressionLimitExceeded` otherwise: past that, the published data says more
//! about the suppression than about the population, and the generalization needs to be coarser).
//! With `minL`, each group must also hold l distinct values of every sensitive field
//! (`LDiversityNotMet`, or suppressed the same way). The [`Report`] gives the prosecutor risk
//! of the published groups as ARX does ([`Risk`]).
//!
//! The content gate ([`identifiers`]) scans every value a run publishes, after the rules, for
//! personal identifiers; one that its field does not declare (`declaredIdentifiers`) refuses the
//! run (`PersonalDataDetected`) with the fields, kinds and counts, never a value.
//!
//! A source is UTF-8, or GB 18030 decoded as it is read ([`Gb18030Reader`]); the files are UTF-8,
//! the CSV optionally after a byte-order mark.
//!
//! Memory does not grow with the number of records: they are read and written one at a time
//! through fixed buffers. It grows with the number of distinct groups of quasi-identifiers (a
//! fixed-size entry per group), and a single record is held whole.

mod decode;
mod gate;
pub mod identifiers;
mod plan;
mod refusal;
mod rules;
mod run;
mod sink;

pub use decode::{Gb18030Reader, NotGb18030};
pub use gate::Finding;
pub use plan::Plan;
pub use refusal::Refusal;
pub use run::{FieldReport, Outputs, Report, Risk, RunError};
pub use sink::FileDigest;

/// The most records k-anonymity may suppress by default (`maxSuppressedPercent` unset), in
/// percent of the records read. ARX and sdcMicro practice keeps suppression to a few percent;
/// more distorts what is published.
pub const MAX_SUPPRESSED_PERCENT: u64 = 5;

/// The prosecutor risk above which a record counts as at risk by default, in percent: a group
/// of fewer than 5 records.
pub const DEFAULT_RISK_THRESHOLD_PERCENT: u32 = 20;

/// The shortest dataset key accepted, in bytes: 128 bits, so that the key itself cannot be
/// found by trying keys against a known value and its pseudonym.
pub const MIN_KEY_BYTES: usize = 16;

impl RunError {
    /// The CamelCase reason for the controller's condition: the refusal's, or `IoError` when
    /// reading the source or writing a sink failed.
    pub fn reason(&self) -> &'static str {
        match self {
            RunError::Refused(refusal) => refusal.reason(),
            RunError::Io(_) => "IoError",
        }
    }
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
