//! The plan: an OpenDataset's field rules, quasi-identifiers, k and key, checked once and turned
//! into what a run applies to every record.

use std::collections::HashSet;

use govdc_crds::open_dataset::{DatasetField, FieldAction, KAnonymity, OpenDatasetSpec};

use super::MIN_KEY_BYTES;
use super::refusal::Refusal;
use super::rules::{Keys, Rule};

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
    /// The k-anonymity requirement.
    pub(super) k: Option<KRule>,
    /// The dataset key, when one was given.
    pub(super) keys: Option<Keys>,
    /// Index into `fields` of the date-shift subject: the first pseudonymized field.
    pub(super) subject: Option<usize>,
}

/// One declared field and its checked rule.
#[derive(Clone, Debug)]
pub(super) struct Planned {
    pub(super) name: String,
    pub(super) action: FieldAction,
    pub(super) rule: Rule,
}

/// The checked k-anonymity requirement.
#[derive(Clone, Copy, Debug)]
pub(super) struct KRule {
    pub(super) k: u64,
    pub(super) suppress: bool,
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
    /// Checks the rules and builds the plan, or refuses publication. `key` is the dataset's
    /// pseudonym key (the bytes of `pseudonymKeyRef`'s Secret key); it is needed by
    /// `pseudonymize` and `dateShift`, must be at least [`MIN_KEY_BYTES`] long, and should be
    /// one per dataset, so that pseudonyms of two datasets cannot be joined.
    ///
    /// Refuses ([`Refusal::reason`]): `PersonalFieldInClear`, `PseudonymKeyMissing`,
    /// `PseudonymKeyTooShort`, `FieldRuleInvalid`, `DuplicateField`, `NoPublishedFields`,
    /// `UnknownQuasiIdentifier`, `KAnonymityInvalid`. Most of these the CRD's admission rules
    /// already reject; they are checked again because publication must not depend on admission
    /// having run.
    pub fn new(
        fields: &[DatasetField],
        quasi_identifiers: &[String],
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
            planned.push(Planned {
                name: field.name.clone(),
                action: field.action,
                rule: rule(field)?,
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
            Some(k) => Some(KRule {
                k: u64::from(k.min_k.unsigned_abs()),
                suppress: k.suppress_rare_groups,
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
            k,
            keys,
        })
    }

    /// [`Plan::new`] with the fields, quasi-identifiers and k-anonymity of a spec.
    pub fn from_spec(spec: &OpenDatasetSpec, key: Option<&[u8]>) -> Result<Plan, Refusal> {
        Plan::new(
            &spec.fields,
            &spec.quasi_identifiers,
            spec.k_anonymity.as_ref(),
            key,
        )
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
