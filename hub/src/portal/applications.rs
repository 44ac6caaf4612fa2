//! Applications for conditional datasets (有条件开放): a person applies on the website, the
//! platform operator decides over gRPC (`Portal.DecideApplication`, behind `govdc-operator
//! dataset approve|reject`), and the applicant collects the download token, once, from the
//! application's status page.
//!
//! - **Storage.** One row of `portal_applications` per application; each step (submission,
//!   decision, collection) is one write transaction with its audit record, so the store and the
//!   hash-chained log never disagree. The submission's record carries the SHA-256 of what the
//!   applicant wrote, so the stored text is tamper-evident without copying the contact details
//!   into an append-only log.
//! - **The status link.** An application has a number (its id, which the operator sees) and a
//!   secret only its status link holds; the store keeps the secret's SHA-256. The link never
//!   holds the download token.
//! - **The token.** An approval issues nothing: the token is made when the applicant collects it
//!   (a `portal_tokens` row, like `Portal.IssueDownloadToken`'s, audited as `portal.token.issue`),
//!   in the same transaction that marks the application collected, so it is shown exactly once
//!   and never rests anywhere but in the applicant's hands.

use std::collections::BTreeMap;

use govdc_hub_api::v1::{self, ApplicationState, Openness};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;
use sha2::Digest;

use super::{PortalError, token_digest, valid_id};
use crate::service::{Hub, now_micros, record, timestamp};
use crate::store::{SqlResult, StorageError};

/// The largest form body the website reads, bytes.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// Pending applications the node holds at most: the form is public, and an unbounded queue
/// would let anyone fill the store.
pub const MAX_PENDING: i64 = 10_000;
/// Applications `Portal.ListApplications` answers at most.
pub const LIST_LIMIT: i64 = 1_000;
/// The longest rejection reason, characters.
pub const MAX_REASON_CHARS: usize = 1_000;

/// A field of the form: its name, its least and most characters, and whether it may hold
/// line breaks.
#[derive(Clone, Copy, Debug)]
pub struct FieldRule {
    /// The form field's name.
    pub name: &'static str,
    /// Fewest characters (after trimming).
    pub min: usize,
    /// Most characters.
    pub max: usize,
    /// Whether line breaks are allowed.
    pub multiline: bool,
}

/// The form's fields, in the order of the form.
pub const FIELDS: &[FieldRule] = &[
    FieldRule {
        name: "applicant",
        min: 2,
        max: 100,
        multiline: false,
    },
    FieldRule {
        name: "organisation",
        min: 2,
        max: 200,
        multiline: false,
    },
    FieldRule {
        name: "purpose",
        min: 10,
        max: 2_000,
        multiline: true,
    },
    FieldRule {
        name: "contact",
        min: 5,
        max: 200,
        multiline: false,
    },
];

/// What an applicant wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Form {
    /// Who applies.
    pub applicant: String,
    /// For which organisation.
    pub organisation: String,
    /// What the data is for.
    pub purpose: String,
    /// An e-mail address or a telephone number.
    pub contact: String,
}

/// What is wrong with a field: the field and the message key that says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The form field.
    pub field: &'static str,
    /// The message key (`apply.problem.*`).
    pub key: &'static str,
}

fn looks_like_contact(contact: &str) -> bool {
    let email = contact.split_once('@').is_some_and(|(user, domain)| {
        !user.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !contact.contains(char::is_whitespace)
    });
    let digits = contact.chars().filter(char::is_ascii_digit).count();
    let phone = digits >= 7
        && contact
            .chars()
            .all(|c| c.is_ascii_digit() || " +-()".contains(c));
    email || phone
}

/// Reads the form's fields (already split, each at most once): the form, or what is wrong with
/// each field, in the form's order.
pub fn validate(fields: &BTreeMap<String, String>) -> Result<Form, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut values = Vec::new();
    for rule in FIELDS {
        let value = fields
            .get(rule.name)
            .map(|v| v.trim().replace("\r\n", "\n"))
            .unwrap_or_default();
        let chars = value.chars().count();
        let problem = if chars == 0 {
            Some("apply.problem.missing")
        } else if chars > rule.max {
            Some("apply.problem.too_long")
        } else if chars < rule.min {
            Some("apply.problem.too_short")
        } else if value
            .chars()
            .any(|c| c.is_control() && !(rule.multiline && (c == '\n' || c == '\t')))
        {
            Some("apply.problem.control")
        } else if rule.name == "contact" && !looks_like_contact(&value) {
            Some("apply.problem.contact")
        } else {
            None
        };
        if let Some(key) = problem {
            problems.push(Problem {
                field: rule.name,
                key,
            });
        }
        values.push(value);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut values = values.into_iter();
    let mut next = || values.next().unwrap_or_default();
    Ok(Form {
        applicant: next(),
        organisation: next(),
        purpose: next(),
        contact: next(),
    })
}

/// An application's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Waiting for the operator.
    Pending,
    /// Approved: its token can be collected (or was).
    Approved,
    /// Rejected, with a reason.
    Rejected,
}

impl State {
    /// Its name in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Rejected => "rejected",
        }
    }

    fn parse(name: &str) -> State {
        match name {
            "approved" => State::Approved,
            "rejected" => State::Rejected,
            _ => State::Pending,
        }
    }

    fn to_api(self) -> ApplicationState {
        match self {
            State::Pending => ApplicationState::Pending,
            State::Approved => ApplicationState::Approved,
            State::Rejected => ApplicationState::Rejected,
        }
    }

    fn from_api(state: ApplicationState) -> Option<State> {
        match state {
            ApplicationState::Unspecified => None,
            ApplicationState::Pending => Some(State::Pending),
            ApplicationState::Approved => Some(State::Approved),
            ApplicationState::Rejected => Some(State::Rejected),
        }
    }
}

/// A stored application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Application {
    /// Its number.
    pub id: String,
    /// The dataset applied for.
    pub dataset_id: String,
    /// What the applicant wrote.
    pub form: Form,
    /// Its state.
    pub state: State,
    /// When it was submitted, microseconds since the epoch.
    pub submitted_at: i64,
    /// When it was decided.
    pub decided_at: Option<i64>,
    /// Who decided.
    pub decided_by: String,
    /// Why it was rejected.
    pub reason: String,
    /// When an approval's token expires.
    pub expires_at: Option<i64>,
    /// When the token was collected.
    pub collected_at: Option<i64>,
}

impl Application {
    /// The API's view of it.
    pub fn to_api(&self) -> v1::Application {
        v1::Application {
            id: self.id.clone(),
            dataset_id: self.dataset_id.clone(),
            applicant: self.form.applicant.clone(),
            organisation: self.form.organisation.clone(),
            purpose: self.form.purpose.clone(),
            contact: self.form.contact.clone(),
            state: self.state.to_api() as i32,
            reason: self.reason.clone(),
            submitted_at: Some(timestamp(self.submitted_at)),
            decided_at: self.decided_at.map(timestamp),
            decided_by: self.decided_by.clone(),
            expires_at: self.expires_at.map(timestamp),
            collected_at: self.collected_at.map(timestamp),
        }
    }
}

const COLUMNS: &str = "id, dataset_id, applicant, organisation, purpose, contact, state, \
     submitted_at, decided_at, decided_by, reason, expires_at, collected_at, secret_sha256";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Application, String)> {
    Ok((
        Application {
            id: row.get(0)?,
            dataset_id: row.get(1)?,
            form: Form {
                applicant: row.get(2)?,
                organisation: row.get(3)?,
                purpose: row.get(4)?,
                contact: row.get(5)?,
            },
            state: State::parse(&row.get::<_, String>(6)?),
            submitted_at: row.get(7)?,
            decided_at: row.get(8)?,
            decided_by: row.get(9)?,
            reason: row.get(10)?,
            expires_at: row.get(11)?,
            collected_at: row.get(12)?,
        },
        row.get(13)?,
    ))
}

fn load(conn: &Connection, id: &str) -> Result<Option<(Application, String)>, StorageError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM portal_applications WHERE id = ?1"
    ))
    .sql()?
    .query_row([id], from_row)
    .optional()
    .sql()
}

/// Whether `id` has the shape of an application number (`app-` and 16 hex digits); anything
/// else is not looked up.
pub fn valid_number(id: &str) -> bool {
    id.strip_prefix("app-")
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The application `id` whose status link holds `secret`, if both are right. The secret's
/// digest is compared in constant time.
pub fn by_link(
    conn: &Connection,
    id: &str,
    secret: &str,
) -> Result<Option<Application>, StorageError> {
    if !valid_number(id) || secret.len() != 64 {
        return Ok(None);
    }
    let digest = token_digest(secret);
    Ok(load(conn, id)?
        .filter(|(_, stored)| crate::monitor::session::same(stored, &digest))
        .map(|(application, _)| application))
}

/// Applications, newest first, of one dataset and in one state when given.
pub fn list(
    conn: &Connection,
    dataset: Option<&str>,
    state: Option<State>,
) -> Result<Vec<Application>, StorageError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM portal_applications
             WHERE (?1 IS NULL OR dataset_id = ?1) AND (?2 IS NULL OR state = ?2)
             ORDER BY submitted_at DESC, id LIMIT ?3"
        ))
        .sql()?;
    let rows = stmt
        .query_map(
            params![dataset, state.map(State::as_str), LIST_LIMIT],
            from_row,
        )
        .sql()?
        .map(|r| r.map(|(application, _)| application))
        .collect::<rusqlite::Result<Vec<_>>>()
        .sql()?;
    Ok(rows)
}

fn random_hex(bytes: usize) -> Result<String, PortalError> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| PortalError::internal("reading /dev/urandom", e))?;
    Ok(hex::encode(buf))
}

/// What a submission did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Stored and audited: the number and the status link's secret.
    Stored {
        /// The application's number.
        id: String,
        /// The secret of its status link.
        secret: String,
    },
    /// No conditional dataset `id` is served.
    NoSuchDataset,
    /// The dataset is open to all: nothing to apply for.
    Unconditional,
    /// The node holds [`MAX_PENDING`] pending applications already.
    Full,
}

/// Stores and audits an application for dataset `dataset`.
pub async fn submit(hub: &Hub, dataset: &str, form: Form) -> Result<Submitted, PortalError> {
    if !valid_id(dataset) {
        return Ok(Submitted::NoSuchDataset);
    }
    let id = format!("app-{}", random_hex(8)?);
    let secret = random_hex(32)?;
    let digest = token_digest(&secret);
    let algorithm = hub.algorithm();
    let dataset = dataset.to_owned();
    let (number, link) = (id.clone(), secret.clone());
    Ok(hub
        .store
        .write(move |conn| {
            let openness: Option<i32> = conn
                .prepare_cached("SELECT openness FROM portal_datasets WHERE id = ?1")
                .sql()?
                .query_row([&dataset], |r| r.get(0))
                .optional()
                .sql()?;
            match openness {
                None => return Ok(Submitted::NoSuchDataset),
                Some(o) if o != Openness::Conditional as i32 => {
                    return Ok(Submitted::Unconditional);
                }
                Some(_) => {}
            }
            let pending: i64 = conn
                .prepare_cached("SELECT count(*) FROM portal_applications WHERE state = 'pending'")
                .sql()?
                .query_row([], |r| r.get(0))
                .sql()?;
            if pending >= MAX_PENDING {
                return Ok(Submitted::Full);
            }
            let now = now_micros();
            conn.prepare_cached(
                "INSERT INTO portal_applications (id, secret_sha256, dataset_id, applicant,
                     organisation, purpose, contact, state, submitted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8)",
            )
            .sql()?
            .execute(params![
                number,
                digest,
                dataset,
                form.applicant,
                form.organisation,
                form.purpose,
                form.contact,
                now
            ])
            .sql()?;
            record(
                conn,
                algorithm,
                "public",
                "portal.application.submit",
                &dataset,
                json!({
                    "application": number,
                    "applicant": form.applicant,
                    "organisation": form.organisation,
                    "contentSha256": content_digest(&form),
                }),
            )?;
            Ok(Submitted::Stored {
                id: number,
                secret: link,
            })
        })
        .await?)
}

/// The SHA-256 of what an applicant wrote (the four fields as a JSON array), as the
/// submission's audit record carries it.
pub fn content_digest(form: &Form) -> String {
    let text = json!([
        form.applicant,
        form.organisation,
        form.purpose,
        form.contact
    ])
    .to_string();
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Decides pending application `id` as `actor`: approves it (its token valid `ttl_seconds`
/// from now, 30 days when 0, at most a year) or rejects it with `reason`.
pub async fn decide(
    hub: &Hub,
    actor: &str,
    id: &str,
    approve: bool,
    reason: &str,
    ttl_seconds: i64,
) -> Result<Application, PortalError> {
    const DAY: i64 = 86_400;
    if !valid_number(id) {
        return Err(PortalError::NotFound(format!(
            "no application {id:?} on this portal"
        )));
    }
    let reason = reason.trim().to_owned();
    if !approve && reason.is_empty() {
        return Err(PortalError::Invalid(
            "a rejection needs a reason: the applicant reads it on the status page".to_owned(),
        ));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(PortalError::Invalid(format!(
            "the reason is longer than {MAX_REASON_CHARS} characters"
        )));
    }
    let ttl = match ttl_seconds {
        0 => 30 * DAY,
        t if t < 0 => {
            return Err(PortalError::Invalid(
                "ttl_seconds must not be negative".to_owned(),
            ));
        }
        t => t.min(366 * DAY),
    };
    let algorithm = hub.algorithm();
    let (actor, id) = (actor.to_owned(), id.to_owned());
    Ok(hub
        .store
        .write(move |conn| {
            // A refusal decided here travels as the store's error type, its changes rolled back.
            let Some((mut application, _)) = load(conn, &id)? else {
                return Err(
                    PortalError::NotFound(format!("no application {id} on this portal")).into(),
                );
            };
            if application.state != State::Pending {
                return Err(PortalError::Precondition(format!(
                    "application {id} was already {} by {}",
                    application.state.as_str(),
                    application.decided_by
                ))
                .into());
            }
            let now = now_micros();
            let (state, expires_at) = if approve {
                (
                    State::Approved,
                    Some(now.saturating_add(ttl.saturating_mul(1_000_000))),
                )
            } else {
                (State::Rejected, None)
            };
            conn.prepare_cached(
                "UPDATE portal_applications SET state = ?2, decided_at = ?3, decided_by = ?4,
                     reason = ?5, expires_at = ?6 WHERE id = ?1 AND state = 'pending'",
            )
            .sql()?
            .execute(params![id, state.as_str(), now, actor, reason, expires_at])
            .sql()?;
            let (action, detail) = if approve {
                (
                    "portal.application.approve",
                    json!({ "application": id, "expiresAt": expires_at, "reason": reason }),
                )
            } else {
                (
                    "portal.application.reject",
                    json!({ "application": id, "reason": reason }),
                )
            };
            record(
                conn,
                algorithm,
                &actor,
                action,
                &application.dataset_id,
                detail,
            )?;
            application.state = state;
            application.decided_at = Some(now);
            application.decided_by = actor;
            application.reason = reason;
            application.expires_at = expires_at;
            Ok(application)
        })
        .await?)
}

/// What collecting a token did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Collected {
    /// The token, shown now and never again, and the application as it now is.
    Token {
        /// The download token.
        token: String,
        /// The application, collected.
        application: Application,
    },
    /// Nothing to collect (pending, rejected, collected before, expired, or the dataset is no
    /// longer served): the application as it is.
    Nothing(Application),
    /// No application has this link.
    Unknown,
}

/// Collects the token of the application `id` whose status link holds `secret`: made, stored
/// (as its digest), audited and marked collected in one transaction, so only one caller ever
/// gets it.
pub async fn collect(hub: &Hub, id: &str, secret: &str) -> Result<Collected, PortalError> {
    let algorithm = hub.algorithm();
    let (id, secret) = (id.to_owned(), secret.to_owned());
    Ok(hub
        .store
        .write(move |conn| {
            let Some(mut application) = by_link(conn, &id, &secret)? else {
                return Ok(Collected::Unknown);
            };
            let now = now_micros();
            let live = application.state == State::Approved
                && application.collected_at.is_none()
                && application.expires_at.is_some_and(|at| at > now);
            let served: bool = conn
                .prepare_cached("SELECT 1 FROM portal_datasets WHERE id = ?1 AND openness = ?2")
                .sql()?
                .exists(params![
                    application.dataset_id,
                    Openness::Conditional as i32
                ])
                .sql()?;
            if !live || !served {
                return Ok(Collected::Nothing(application));
            }
            let expires_at = application.expires_at.unwrap_or(now);
            let token = super::publish::grant_token(
                conn,
                algorithm,
                &format!("application:{id}"),
                &application.dataset_id,
                &format!(
                    "{} ({})",
                    application.form.applicant, application.form.organisation
                ),
                expires_at,
                Some(&id),
            )?;
            let changed = conn
                .prepare_cached(
                    "UPDATE portal_applications SET collected_at = ?2, token_sha256 = ?3
                     WHERE id = ?1 AND collected_at IS NULL",
                )
                .sql()?
                .execute(params![id, now, token_digest(&token)])
                .sql()?;
            if changed != 1 {
                // The single writer makes this unreachable; rolling back keeps "once" anyway.
                return Err(
                    PortalError::Conflict("the token was collected meanwhile".to_owned()).into(),
                );
            }
            application.collected_at = Some(now);
            Ok(Collected::Token { token, application })
        })
        .await?)
}

/// `Portal.ListApplications`'s filters read.
pub fn list_filters(
    request: &v1::ListApplicationsRequest,
) -> Result<(Option<String>, Option<State>), PortalError> {
    let dataset = (!request.dataset_id.is_empty()).then(|| request.dataset_id.clone());
    let state = ApplicationState::try_from(request.state)
        .map_err(|_| PortalError::Invalid(format!("unknown state {}", request.state)))?;
    Ok((dataset, State::from_api(state)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_complete_form_is_read_trimmed() {
        let form = validate(&fields(&[
            ("applicant", " 张三 "),
            ("organisation", "浙江大学公共卫生学院"),
            ("purpose", "研究杭州市诊所分布与就诊可及性。\r\n第二段。"),
            ("contact", "zhangsan@zju.edu.cn"),
        ]));
        assert_eq!(
            form,
            Ok(Form {
                applicant: "张三".into(),
                organisation: "浙江大学公共卫生学院".into(),
                purpose: "研究杭州市诊所分布与就诊可及性。\n第二段。".into(),
                contact: "zhangsan@zju.edu.cn".into(),
            })
        );
    }

    #[test]
    fn each_wrong_field_is_named_in_the_forms_order() {
        let problems = validate(&fields(&[
            ("applicant", "a\u{7}b"),
            ("purpose", "short"),
            ("contact", "not a contact"),
        ]))
        .expect_err("refused");
        assert_eq!(
            problems,
            [
                Problem {
                    field: "applicant",
                    key: "apply.problem.control"
                },
                Problem {
                    field: "organisation",
                    key: "apply.problem.missing"
                },
                Problem {
                    field: "purpose",
                    key: "apply.problem.too_short"
                },
                Problem {
                    field: "contact",
                    key: "apply.problem.contact"
                },
            ]
        );
        let long = "x".repeat(101);
        let problems = validate(&fields(&[("applicant", &long)])).expect_err("refused");
        assert_eq!(problems[0].key, "apply.problem.too_long");
    }

    #[test]
    fn contacts_are_an_address_or_a_number() {
        assert!(looks_like_contact("a@b.cn"));
        assert!(looks_like_contact("+86 571-8888 1234"));
        assert!(!looks_like_contact("a@b"));
        assert!(!looks_like_contact("12345"));
        assert!(!looks_like_contact("a b@c.cn"));
    }

    #[test]
    fn numbers_have_one_shape() {
        assert!(valid_number("app-0123456789abcdef"));
        assert!(!valid_number("app-0123"));
        assert!(!valid_number("0123456789abcdef"));
        assert!(!valid_number("app-0123456789abcdeg"));
    }
}
