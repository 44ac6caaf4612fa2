//! The plan: an OpenDataset's field rules, quasi-identifiers, k and key, checked once and turned
//! into what a run applies to every record.

use std::collections::HashSet;

use govdc_crds::open_dataset::{
    DatasetField, FieldAction, KAnonymity, OpenDatasetSpec, SourceEncoding,
};

use super::identifiers::Kinds;
use super::refusal::Refusal;
use super::rules::{Keys, Rule};
use super::{DEFAULT_RISK_THRESHOLD_PERCENT, MAX_SUPPRESSED_PERCENT, MIN_KEY_BYTES};

/// A checked de-identification plan for one dataset. Build it with [`Plan::new`] (or
/// [`Plan::from_spec`]), then [`Plan::run`] it over the source. A plan holds the dataset's key.
#[derive(Clone)]
pub struct Plan {
    /// Every declared field, in declared order.
    pub(super) fields: Vec<Planned>,
    /// Indexes into `fields` of the published fields, in order: the output's columns.
    pub(super) published: Vec<usize>,
    /// Indexes into `fields` of the published quasi-identifiers. A dropped quasi-identifier is
    /// not published, so it cannot single anyone out and takes no part in the groups.
    pub(super) quasi: Vec<usize>,
    /// The quasi-identifiers as declared, for messages.
    pub(super) quasi_names: String,
    /// Indexes into `fields` of the published sensitive fields, whose values l-diversity
    /// counts per group.
    pub(super) sensitive: Vec<usize>,
    /// The k-anonymity requirement.
    pub(super) k: Option<KRule>,
    /// The dataset key, when one was given.
    pub(super) keys: Option<Keys>,
    /// Index into `fields` of the date-shift subject: the first pseudonymized field.
    pub(super) subject: Option<usize>,
    /// The source's character encoding.
    pub(super) encoding: SourceEncoding,
    /// Whether the CSV file starts with a UTF-8 byte-order mark.
    pub(super) csv_bom: bool,
    /// The prosecutor risk above which a record counts as at risk, in percent.
    pub(super) risk_threshold_percent: u32,
    /// Whether the content gate scans the published values: always, except in the benchmark
    /// that measures what it costs.
    pub(super) gated: bool,
}

/// One declared field and its checked rule.
#[derive(Clone, Debug)]
pub(super) struct Planned {
    pub(super) name: String,
    pub(super) action: FieldAction,
    pub(super) rule: Rule,
    /// The identifiers the field declares it publishes: the content gate lets these through.
    pub(super) declared: Kinds,
}

/// The checked k-anonymity requirement.
#[derive(Clone, Copy, Debug)]
pub(super) struct KRule {
    pub(super) k: u64,
    pub(super) suppress: bool,
    /// The l of l-diversity, when set (with at least one published sensitive field).
    pub(super) l: Option<u64>,
    /// The most records suppression may leave out, in percent.
    pub(super) max_suppressed_percent: u64,
}

fn action_name(action: FieldAction) -> &'static str {
    match action {
        FieldAction::Keep => "keep",
        FieldAction::Drop => "drop",
        FieldAction::Mask => "mask",
        FieldAction::Pseudonymize => "pseudonymize",
        FieldAction::Generalize => "generalize",
        FieldAction::DateShift => "dateShift",
    }
}

impl Plan {
    /// Checks the rules and builds the plan, or refuses publication. `sensitive_fields` are the
    /// fields l-diversity counts (with `k_anonymity.minL`). `key` is the dataset's
    /// pseudonym key (the bytes of `pseudonymKeyRef`'s Secret key); it is needed by
    /// `pseudonymize` and `dateShift`, must be at least [`MIN_KEY_BYTES`] long, and should be
    /// one per dataset, so that pseudonyms of two datasets cannot be joined.
    ///
    /// Refuses ([`Refusal::reason`]): `PersonalFieldInClear`, `PseudonymKeyMissing`,
    /// `PseudonymKeyTooShort`, `FieldRuleInvalid`, `DuplicateField`, `NoPublishedFields`,
    /// `UnknownQuasiIdentifier`, `UnknownSensitiveField`, `KAnonymityInvalid`. Most of these
    /// the CRD's admission rules
    /// already reject; they are checked again because publication must not depend on admission
    /// having run.
    pub fn new(
        fields: &[DatasetField],
        quasi_identifiers: &[String],
        sensitive_fields: &[String],
        k_anonymity: Option<&KAnonymity>,
        key: Option<&[u8]>,
    ) -> Result<Plan, Refusal> {
        let mut names = HashSet::new();
        let mut planned = Vec::with_capacity(fields.len());
        for field in fields {
            if field.name.is_empty() {
                return Err(Refusal::rule("", "a field needs a name"));
            }
            if !names.insert(field.name.as_str()) {
                return Err(Refusal::DuplicateField {
                    field: field.name.clone(),
                });
            }
            if field.personal && field.action == FieldAction::Keep {
                return Err(Refusal::PersonalFieldInClear {
                    field: field.name.clone(),
                });
            }
            let declared = match &field.declared_identifiers {
                Some(d) if d.justification.trim().is_empty() => {
                    return Err(Refusal::rule(
                        &field.name,
                        "declaredIdentifiers needs a written justification",
                    ));
                }
                Some(d) => d.kinds.iter().copied().collect(),
                None => Kinds::NONE,
            };
            planned.push(Planned {
                name: field.name.clone(),
                action: field.action,
                rule: rule(field)?,
                declared,
            });
        }

        let needs_key = planned
            .iter()
            .find(|f| matches!(f.rule, Rule::Pseudonymize(_) | Rule::DateShift { .. }));
        let keys = match (key, needs_key) {
            (None, Some(field)) => {
                return Err(Refusal::PseudonymKeyMissing {
                    field: field.name.clone(),
                    action: action_name(field.action),
                });
            }
            (Some(key), Some(_)) if key.len() < MIN_KEY_BYTES => {
                return Err(Refusal::PseudonymKeyTooShort { length: key.len() });
            }
            (Some(key), _) => Some(Keys::new(key)),
            (None, None) => None,
        };

        let published: Vec<usize> = planned
            .iter()
            .enumerate()
            .filter(|(_, f)| f.rule != Rule::Drop)
            .map(|(i, _)| i)
            .collect();
        if published.is_empty() {
            return Err(Refusal::NoPublishedFields);
        }

        let mut quasi = Vec::new();
        for name in quasi_identifiers {
            let index = planned
                .iter()
                .position(|f| &f.name == name)
                .ok_or_else(|| Refusal::UnknownQuasiIdentifier { name: name.clone() })?;
            if planned[index].rule != Rule::Drop && !quasi.contains(&index) {
                quasi.push(index);
            }
        }

        let mut sensitive = Vec::new();
        for name in sensitive_fields {
            let index = planned
                .iter()
                .position(|f| &f.name == name)
                .ok_or_else(|| Refusal::UnknownSensitiveField { name: name.clone() })?;
            if quasi_identifiers.contains(name) {
                return Err(Refusal::KAnonymityInvalid {
                    problem: format!("{name} is both a quasi-identifier and a sensitive field"),
                });
            }
            // A dropped sensitive field is not published: it reveals nothing.
            if planned[index].rule != Rule::Drop && !sensitive.contains(&index) {
                sensitive.push(index);
            }
        }

        let k = match k_anonymity {
            None => None,
            Some(k) if quasi_identifiers.is_empty() => {
                return Err(Refusal::KAnonymityInvalid {
                    problem: format!(
                        "minK {} is set but no quasi-identifiers are declared",
                        k.min_k
                    ),
                });
            }
            Some(k) if !(2..=1000).contains(&k.min_k) => {
                return Err(Refusal::KAnonymityInvalid {
                    problem: format!("minK {} is outside 2-1000", k.min_k),
                });
            }
            Some(k) if k.min_l.is_some() && sensitive_fields.is_empty() => {
                return Err(Refusal::KAnonymityInvalid {
                    problem: "minL is set but no sensitive fields are declared".to_owned(),
                });
            }
            Some(k) if k.min_l.is_some_and(|l| !(2..=100).contains(&l)) => {
                return Err(Refusal::KAnonymityInvalid {
                    problem: format!("minL {} is outside 2-100", k.min_l.unwrap_or_default()),
                });
            }
            Some(k)
                if k.max_suppressed_percent
                    .is_some_and(|p| !(0..=50).contains(&p)) =>
            {
                return Err(Refusal::KAnonymityInvalid {
                    problem: format!(
                        "maxSuppressedPercent {} is outside 0-50",
                        k.max_suppressed_percent.unwrap_or_default()
                    ),
                });
            }
            Some(k) => Some(KRule {
                k: u64::from(k.min_k.unsigned_abs()),
                suppress: k.suppress_rare_groups,
                l: k.min_l
                    .filter(|_| !sensitive.is_empty())
                    .map(|l| u64::from(l.unsigned_abs())),
                max_suppressed_percent: k
                    .max_suppressed_percent
                    .map_or(MAX_SUPPRESSED_PERCENT, |p| u64::from(p.unsigned_abs())),
            }),
        };

        Ok(Plan {
            subject: planned
                .iter()
                .position(|f| matches!(f.rule, Rule::Pseudonymize(_))),
            fields: planned,
            published,
            quasi,
            quasi_names: quasi_identifiers.join(", "),
            sensitive,
            k,
            keys,
            encoding: SourceEncoding::Utf8,
            csv_bom: false,
            risk_threshold_percent: DEFAULT_RISK_THRESHOLD_PERCENT,
            gated: true,
        })
    }

    /// The plan without its content gate. Only for the benchmark that measures the gate's
    /// cost: nothing in the operator calls it, and nothing it produces may be published.
    #[doc(hidden)]
    pub fn without_content_gate_for_benchmarks(mut self) -> Plan {
        self.gated = false;
        self
    }

    /// The plan reading its source in `encoding` (UTF-8 by default).
    pub fn with_encoding(mut self, encoding: SourceEncoding) -> Plan {
        self.encoding = encoding;
        self
    }

    /// The plan starting its CSV file with a UTF-8 byte-order mark, or not (the default).
    pub fn with_csv_byte_order_mark(mut self, bom: bool) -> Plan {
        self.csv_bom = bom;
        self
    }

    /// The plan counting records with a prosecutor risk above `percent` as at risk (1-100;
    /// [`DEFAULT_RISK_THRESHOLD_PERCENT`] by default).
    pub fn with_risk_threshold_percent(mut self, percent: u32) -> Plan {
        self.risk_threshold_percent = percent.clamp(1, 100);
        self
    }

    /// [`Plan::new`] with the fields, quasi-identifiers, sensitive fields and k-anonymity of a
    /// spec, its source's encoding, byte-order mark and risk threshold.
    pub fn from_spec(spec: &OpenDatasetSpec, key: Option<&[u8]>) -> Result<Plan, Refusal> {
        let plan = Plan::new(
            &spec.fields,
            &spec.quasi_identifiers,
            &spec.sensitive_fields,
            spec.k_anonymity.as_ref(),
            key,
        )?
        .with_encoding(spec.source.encoding.unwrap_or_default())
        .with_csv_byte_order_mark(spec.csv_byte_order_mark);
        Ok(match spec.risk_threshold_percent {
            Some(percent) => plan.with_risk_threshold_percent(percent.unsigned_abs()),
            None => plan,
        })
    }

    /// The columns of the published files, in order.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.published.iter().map(|&i| self.fields[i].name.as_str())
    }
}

impl std::fmt::Debug for Plan {
    // By hand, so that the key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("fields", &self.fields)
            .field("quasi_identifiers", &self.quasi_names)
            .field("k", &self.k)
            .field("keyed", &self.keys.is_some())
            .finish_non_exhaustive()
    }
}

/// A field's rule, its settings checked: present for its action, absent for the others (settings
/// of another action are most likely a mistake that would publish the field other than meant),
/// and in range.
fn rule(field: &DatasetField) -> Result<Rule, Refusal> {
    let name = field.name.as_str();
    let foreign = [
        ("mask", field.mask.is_some(), FieldAction::Mask),
        (
            "pseudonymize",
            field.pseudonymize.is_some(),
            FieldAction::Pseudonymize,
        ),
        (
            "generalize",
            field.generalize.is_some(),
            FieldAction::Generalize,
        ),
        (
            "dateShift",
            field.date_shift.is_some(),
            FieldAction::DateShift,
        ),
    ];
    if let Some((settings, _, _)) = foreign
        .iter()
        .find(|(_, present, action)| *present && *action != field.action)
    {
        return Err(Refusal::rule(
            name,
            format!(
                "{settings} settings are given but the action is {}",
                action_name(field.action)
            ),
        ));
    }
    let missing = |settings: &str| {
        Refusal::rule(name, format!("action {settings} needs {settings} settings"))
    };
    Ok(match field.action {
        FieldAction::Keep => Rule::Keep,
        FieldAction::Drop => Rule::Drop,
        FieldAction::Mask => {
            let mask = field.mask.as_ref().ok_or_else(|| missing("mask"))?;
            let kept = |n: i32, what: &str| {
                usize::try_from(n)
                    .ok()
                    .filter(|n| *n <= 32)
                    .ok_or_else(|| Refusal::rule(name, format!("mask.{what} {n} is outside 0-32")))
            };
            let mut characters = mask.character.chars();
            let character = match (characters.next(), characters.next()) {
                (Some(c), None) => c,
                _ => {
                    return Err(Refusal::rule(
                        name,
                        format!("mask.character {:?} is not one character", mask.character),
                    ));
                }
            };
            Rule::Mask {
                first: kept(mask.keep_first, "keepFirst")?,
                last: kept(mask.keep_last, "keepLast")?,
                character,
            }
        }
        FieldAction::Pseudonymize => {
            Rule::Pseudonymize(field.pseudonymize.clone().unwrap_or_default().algorithm)
        }
        FieldAction::Generalize => {
            let g = field
                .generalize
                .as_ref()
                .ok_or_else(|| missing("generalize"))?;
            match (g.date, g.region_prefix, g.number_band) {
                (Some(precision), None, None) => Rule::GeneralizeDate(precision),
                (None, Some(prefix), None) => match usize::try_from(prefix) {
                    Ok(prefix @ 1..=5) => Rule::GeneralizeRegion { prefix },
                    _ => {
                        return Err(Refusal::rule(
                            name,
                            format!("generalize.regionPrefix {prefix} is outside 1-5"),
                        ));
                    }
                },
                (None, None, Some(width)) if width >= 1 => Rule::GeneralizeNumber { width },
                (None, None, Some(width)) => {
                    return Err(Refusal::rule(
                        name,
                        format!("generalize.numberBand {width} is below 1"),
                    ));
                }
                _ => {
                    return Err(Refusal::rule(
                        name,
                        "generalize needs exactly one of date, regionPrefix and numberBand",
                    ));
                }
            }
        }
        FieldAction::DateShift => {
            let shift = field
                .date_shift
                .as_ref()
                .ok_or_else(|| missing("dateShift"))?;
            if !(1..=3650).contains(&shift.max_days) {
                return Err(Refusal::rule(
                    name,
                    format!("dateShift.maxDays {} is outside 1-3650", shift.max_days),
                ));
            }
            Rule::DateShift {
                max_days: i64::from(shift.max_days),
            }
        }
    })
}
