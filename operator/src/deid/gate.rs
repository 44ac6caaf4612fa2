//! The content gate: every value a version would publish, after the rules ran, is scanned for
//! personal identifiers ([`super::identifiers`]); a field that holds one it does not declare
//! refuses the version. It trusts the content, not the labels: a column the provider left as
//! `keep` that holds identity numbers in free text is caught here.
//!
//! Only counts are kept (per field, per kind, the records holding one), never a value, so
//! nothing found reaches a condition, an event or a log.

use govdc_crds::open_dataset::IdentifierKind;
use serde::Serialize;

use super::identifiers::{self, KINDS, Kinds};

/// Identifiers of one kind found in one published field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The field.
    pub field: String,
    /// The kind of identifier.
    pub kind: IdentifierKind,
    /// Records whose published value of the field holds one.
    pub records: u64,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = serde_json::to_value(self.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        write!(f, "{} {kind} in {} records", self.field, self.records)
    }
}

/// The tally of one run: per published field, the kinds it may publish and the records in
/// which each kind was found.
pub(super) struct Gate {
    /// Per published field (in output order): its declared kinds and a count per kind.
    fields: Vec<(Kinds, [u64; KINDS.len()])>,
    refused: bool,
}

impl Gate {
    /// A gate for the published fields, each with the kinds it declares.
    pub(super) fn new(declared: impl IntoIterator<Item = Kinds>) -> Gate {
        Gate {
            fields: declared
                .into_iter()
                .map(|d| (d, [0; KINDS.len()]))
                .collect(),
            refused: false,
        }
    }

    /// Scans one record's published values (in output order).
    pub(super) fn scan<'a>(&mut self, values: impl IntoIterator<Item = &'a str>) {
        for ((declared, counts), value) in self.fields.iter_mut().zip(values) {
            let found = identifiers::scan(value);
            if found.is_empty() {
                continue;
            }
            // Declared kinds are counted too: the report says how many a declared field
            // published.
            for (i, _) in found.iter() {
                counts[i] += 1;
            }
            self.refused |= !found.without(*declared).is_empty();
        }
    }

    /// Whether an identifier no declaration allows was found so far: the version will be
    /// refused, and its files need not be written any further.
    pub(super) fn refused(&self) -> bool {
        self.refused
    }

    /// What was found that no declaration allows, given the published field names (output
    /// order); empty when the version may be published.
    pub(super) fn undeclared<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<Finding> {
        self.findings(names, false)
    }

    /// What was found in fields that declare it.
    pub(super) fn declared<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<Finding> {
        self.findings(names, true)
    }

    fn findings<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
        declared: bool,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        for ((allowed, counts), name) in self.fields.iter().zip(names) {
            for (i, kind) in KINDS.into_iter().enumerate() {
                if counts[i] > 0 && allowed.contains(kind) == declared {
                    out.push(Finding {
                        field: name.to_owned(),
                        kind,
                        records: counts[i],
                    });
                }
            }
        }
        out
    }
}
