//! Why a dataset is not published. Each refusal has a CamelCase [`Refusal::reason`] the
//! controller puts in its condition, and a message (its `Display`) naming the field at fault.

use super::MIN_KEY_BYTES;
use super::gate::Finding;

/// Why de-identification refused to publish a dataset. Nothing a refused run wrote may be
/// published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A field marked `personal` has the action `keep`.
    #[error(
        "spec.fields[{field}]: the field is personal and its action is keep; a personal field may only be published masked, pseudonymized, generalized or date-shifted, or dropped"
    )]
    PersonalFieldInClear {
        /// The field.
        field: String,
    },
    /// A field is pseudonymized or date-shifted and the dataset has no key.
    #[error(
        "spec.pseudonymKeyRef: field {field} is {action}, which needs the dataset's pseudonym key, and there is none"
    )]
    PseudonymKeyMissing {
        /// The first field that needs the key.
        field: String,
        /// Its action.
        action: &'static str,
    },
    /// The key is too short to keep pseudonyms from being reversed by guessing it.
    #[error(
        "spec.pseudonymKeyRef: the pseudonym key is {length} bytes; it must be at least {MIN_KEY_BYTES} so that it cannot be guessed"
    )]
    PseudonymKeyTooShort {
        /// The key's length in bytes.
        length: usize,
    },
    /// A field's settings are missing, out of range, or belong to another action.
    #[error("spec.fields[{field}]: {problem}")]
    FieldRuleInvalid {
        /// The field.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// Two fields have the same name.
    #[error("spec.fields[{field}]: the field is declared more than once")]
    DuplicateField {
        /// The field.
        field: String,
    },
    /// Every field is dropped: there would be nothing to publish.
    #[error("spec.fields: every field is dropped; there is nothing to publish")]
    NoPublishedFields,
    /// A quasi-identifier names no declared field.
    #[error("spec.quasiIdentifiers: {name} names no declared field")]
    UnknownQuasiIdentifier {
        /// The name given.
        name: String,
    },
    /// A sensitive field names no declared field.
    #[error("spec.sensitiveFields: {name} names no declared field")]
    UnknownSensitiveField {
        /// The name given.
        name: String,
    },
    /// The k-anonymity settings are unusable.
    #[error("spec.kAnonymity: {problem}")]
    KAnonymityInvalid {
        /// What is wrong.
        problem: String,
    },
    /// A declared field is not a column of the source.
    #[error("spec.fields[{field}]: the source's header has no column {field}")]
    SourceFieldMissing {
        /// The field.
        field: String,
    },
    /// The source is not a CSV file this module reads: not UTF-8, rows of different lengths, a
    /// column named twice.
    #[error("source: line {line}: {problem}")]
    SourceMalformed {
        /// The line of the source (1 is the header).
        line: u64,
        /// What is wrong.
        problem: String,
    },
    /// The source read differently in the second pass than in the first.
    #[error("source: {problem}: it changed while it was being read")]
    SourceChanged {
        /// What differed.
        problem: String,
    },
    /// A combination of quasi-identifiers is rarer than k and suppression is off.
    #[error(
        "spec.kAnonymity: the smallest group of records sharing their quasi-identifiers ({quasi_identifiers}) has {smallest} records, below k = {k}; {records_below} records in {groups_below} groups are below k and suppressRareGroups is off"
    )]
    KAnonymityNotMet {
        /// The quasi-identifiers, comma-separated.
        quasi_identifiers: String,
        /// The size of the smallest group.
        smallest: u64,
        /// The k required.
        k: u64,
        /// Groups smaller than k.
        groups_below: u64,
        /// Records in those groups.
        records_below: u64,
    },
    /// A group of records sharing their quasi-identifiers holds fewer than l distinct values
    /// of a sensitive field, and suppression is off.
    #[error(
        "spec.kAnonymity: {groups_below} groups of records sharing their quasi-identifiers ({quasi_identifiers}), with {records_below} records, hold fewer than l = {l} distinct values of {field} (the least diverse holds {least}); suppressRareGroups is off"
    )]
    LDiversityNotMet {
        /// The quasi-identifiers, comma-separated.
        quasi_identifiers: String,
        /// The first sensitive field found not diverse enough.
        field: String,
        /// Distinct values in the least diverse group.
        least: u64,
        /// The l required.
        l: u64,
        /// Groups below l (in any sensitive field).
        groups_below: u64,
        /// Records in those groups.
        records_below: u64,
    },
    /// Suppressing the rare groups would leave out too much of the dataset.
    #[error(
        "spec.kAnonymity: reaching {requirement} would suppress {suppressed} of {rows} records, more than the {max_percent}% allowed (maxSuppressedPercent); generalize the quasi-identifiers ({quasi_identifiers}) further"
    )]
    SuppressionLimitExceeded {
        /// The quasi-identifiers, comma-separated.
        quasi_identifiers: String,
        /// What was to be reached: `k = 5`, or `k = 5 and l = 2`.
        requirement: String,
        /// The cap, in percent.
        max_percent: u64,
        /// Records that would be suppressed.
        suppressed: u64,
        /// Records read.
        rows: u64,
    },
    /// The content gate found personal identifiers in what would be published, in fields that
    /// do not declare them. The findings name fields, kinds and counts, never values.
    #[error(
        "content gate: personal identifiers would be published: {}; protect these fields (mask, pseudonymize, drop) or declare the identifiers a field publishes on purpose (declaredIdentifiers, with a justification)",
        listed(findings)
    )]
    PersonalDataDetected {
        /// Per field and kind, the records holding one.
        findings: Vec<Finding>,
        /// Records scanned.
        rows: u64,
    },
}

impl Refusal {
    /// The CamelCase reason for the controller's condition and event.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::PersonalFieldInClear { .. } => "PersonalFieldInClear",
            Refusal::PseudonymKeyMissing { .. } => "PseudonymKeyMissing",
            Refusal::PseudonymKeyTooShort { .. } => "PseudonymKeyTooShort",
            Refusal::FieldRuleInvalid { .. } => "FieldRuleInvalid",
            Refusal::DuplicateField { .. } => "DuplicateField",
            Refusal::NoPublishedFields => "NoPublishedFields",
            Refusal::UnknownQuasiIdentifier { .. } => "UnknownQuasiIdentifier",
            Refusal::UnknownSensitiveField { .. } => "UnknownSensitiveField",
            Refusal::KAnonymityInvalid { .. } => "KAnonymityInvalid",
            Refusal::SourceFieldMissing { .. } => "SourceFieldMissing",
            Refusal::SourceMalformed { .. } => "SourceMalformed",
            Refusal::SourceChanged { .. } => "SourceChanged",
            Refusal::KAnonymityNotMet { .. } => "KAnonymityNotMet",
            Refusal::LDiversityNotMet { .. } => "LDiversityNotMet",
            Refusal::SuppressionLimitExceeded { .. } => "SuppressionLimitExceeded",
            Refusal::PersonalDataDetected { .. } => "PersonalDataDetected",
        }
    }

    pub(super) fn rule(field: &str, problem: impl Into<String>) -> Refusal {
        Refusal::FieldRuleInvalid {
            field: field.to_owned(),
            problem: problem.into(),
        }
    }
}

/// The findings of a message: the first [`LISTED_FINDINGS`], then how many more, so that a
/// dataset of many fields still fits a condition's message.
fn listed(findings: &[Finding]) -> String {
    let mut text = findings
        .iter()
        .take(LISTED_FINDINGS)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if findings.len() > LISTED_FINDINGS {
        text.push_str(&format!(
            " and {} more (status.personalDataFindings)",
            findings.len() - LISTED_FINDINGS
        ));
    }
    text
}

/// Findings named in a refusal's message.
const LISTED_FINDINGS: usize = 30;
