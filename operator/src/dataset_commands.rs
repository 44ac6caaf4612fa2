//! `govdc-operator dataset`: what a platform operator does by hand for open datasets: deciding
//! the applications for conditional datasets (有条件开放) that people sent through a portal's
//! website (`applications`, `approve`, `reject`; the applicant then collects the download token
//! from the application's status page), and issuing a token directly (`token`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use govdc_crds::OpenDataset;
use govdc_hub_api::v1::portal_client::PortalClient;
use govdc_hub_api::v1::{
    Application, ApplicationState, DecideApplicationRequest, IssueDownloadTokenRequest,
    ListApplicationsRequest,
};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use crate::backup_commands::{HubArgs, client};
use crate::controllers::open_dataset::build::dataset_id;
use crate::hub_client::{self, Authenticated, key};

/// `govdc-operator dataset`.
#[derive(clap::Args, Debug)]
pub struct DatasetArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DatasetCommand,
}

/// The dataset commands.
#[derive(clap::Subcommand, Debug)]
pub enum DatasetCommand {
    /// Approve an application for a conditional dataset: print a download token for it, which
    /// the applicant presents as `Authorization: Bearer <token>`. The applicant is recorded in
    /// the portal's audit log.
    Token {
        /// Kubeconfig of the cluster (default: inferred).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Namespace of the OpenDataset.
        #[arg(long)]
        namespace: String,
        /// Name of the OpenDataset.
        #[arg(long)]
        name: String,
        /// Who applied: a person or organisation identifier.
        #[arg(long)]
        applicant: String,
        /// Days the token is valid (the portal allows at most a year).
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Where the portal's hub is reached.
        #[command(flatten)]
        hubs: HubArgs,
    },
    /// List the applications sent through a portal's website, newest first.
    Applications {
        /// The portal's ExchangeNode and where to reach it.
        #[command(flatten)]
        portal: PortalArgs,
        /// Only the applications for this dataset (its portal id, `<namespace>.<name>`).
        #[arg(long)]
        dataset: Option<String>,
        /// Only the applications in this state.
        #[arg(long, value_enum, default_value_t = StateFilter::All)]
        state: StateFilter,
        /// `table` for people, `json` (one object per line) for programs.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Approve a pending application: its applicant can then collect the download token, once,
    /// from the application's status page. Recorded in the portal's audit log.
    Approve {
        /// The portal's ExchangeNode and where to reach it.
        #[command(flatten)]
        portal: PortalArgs,
        /// The application's number (`app-...`, as `applications` lists it).
        #[arg(long)]
        application: String,
        /// Days the download token is valid from now (the portal allows at most a year).
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// A note for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Reject a pending application, with the reason its applicant reads on the status page.
    /// Recorded in the portal's audit log.
    Reject {
        /// The portal's ExchangeNode and where to reach it.
        #[command(flatten)]
        portal: PortalArgs,
        /// The application's number (`app-...`).
        #[arg(long)]
        application: String,
        /// Why: shown to the applicant.
        #[arg(long)]
        reason: String,
    },
}

/// Which portal node: its ExchangeNode, whose key Secret gives the admin token.
#[derive(clap::Args, Debug)]
pub struct PortalArgs {
    /// Kubeconfig of the cluster (default: inferred).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The portal's ExchangeNode, as `NAMESPACE/NAME`.
    #[arg(long, value_parser = parse_portal)]
    pub portal: (String, String),
    /// Where the portal's hub is reached.
    #[command(flatten)]
    pub hubs: HubArgs,
}

fn parse_portal(value: &str) -> Result<(String, String), String> {
    match value.split_once('/') {
        Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => {
            Ok((namespace.to_owned(), name.to_owned()))
        }
        _ => Err(format!(
            "{value:?} is not NAMESPACE/NAME of the portal's ExchangeNode"
        )),
    }
}

/// The states `applications --state` selects.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateFilter {
    /// Every application.
    All,
    /// Waiting for a decision.
    Pending,
    /// Approved (collected or not).
    Approved,
    /// Rejected.
    Rejected,
}

/// How `applications` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// One JSON object per line.
    Json,
}

type Portal = PortalClient<Authenticated>;

/// A Portal client of ExchangeNode `namespace/name`, with an admin token signed by the key in
/// its Secret.
async fn portal_client(
    kubeconfig: Option<&PathBuf>,
    namespace: &str,
    name: &str,
    hubs: &HubArgs,
) -> anyhow::Result<Portal> {
    let client = client(kubeconfig).await?;
    let secret = Api::<Secret>::namespaced(client, namespace)
        .get(&key::secret_name_of(name))
        .await
        .with_context(|| format!("reading the key of portal {namespace}/{name}"))?;
    let signing_key = key::from_secret(&secret, name)?
        .with_context(|| format!("portal {namespace}/{name} has no key yet"))?;
    let endpoint = hubs.settings().endpoint(namespace, name);
    let token = key::admin_token(&signing_key, name)?;
    let channel =
        hub_client::channel(&endpoint, std::time::Duration::from_secs(10), &token).await?;
    Ok(PortalClient::new(channel))
}

/// Text from an applicant, safe to print on a terminal: control characters (an escape
/// sequence, a carriage return) shown as spaces, on one line.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The time of an API timestamp (prost's `Timestamp`, read through its fields).
macro_rules! rfc3339 {
    ($t:expr) => {
        at($t.as_ref().map(|t| (t.seconds, t.nanos)))
    };
}

fn at(t: Option<(i64, i32)>) -> String {
    t.and_then(|(seconds, nanos)| jiff::Timestamp::new(seconds, nanos).ok())
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// An application's state as the operator reads it: `collected` and `expired` are approvals.
fn state_name(application: &Application) -> &'static str {
    match ApplicationState::try_from(application.state) {
        Ok(ApplicationState::Pending) => "pending",
        Ok(ApplicationState::Rejected) => "rejected",
        Ok(ApplicationState::Approved) if application.collected_at.is_some() => "collected",
        Ok(ApplicationState::Approved)
            if application
                .expires_at
                .as_ref()
                .is_some_and(|t| t.seconds <= jiff::Timestamp::now().as_second()) =>
        {
            "expired"
        }
        Ok(ApplicationState::Approved) => "approved",
        _ => "unknown",
    }
}

/// The listing as aligned columns (the purpose last, whole, on one line).
fn table(applications: &[Application]) -> String {
    let mut rows = vec![[
        "ID".to_owned(),
        "STATE".to_owned(),
        "DATASET".to_owned(),
        "SUBMITTED".to_owned(),
        "APPLICANT".to_owned(),
        "ORGANISATION".to_owned(),
        "CONTACT".to_owned(),
        "PURPOSE".to_owned(),
    ]];
    for a in applications {
        rows.push([
            a.id.clone(),
            state_name(a).to_owned(),
            printable(&a.dataset_id),
            rfc3339!(a.submitted_at),
            printable(&a.applicant),
            printable(&a.organisation),
            printable(&a.contact),
            printable(&a.purpose),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn json_line(a: &Application) -> String {
    serde_json::json!({
        "id": a.id,
        "state": state_name(a),
        "dataset": a.dataset_id,
        "applicant": a.applicant,
        "organisation": a.organisation,
        "purpose": a.purpose,
        "contact": a.contact,
        "reason": a.reason,
        "submittedAt": rfc3339!(a.submitted_at),
        "decidedAt": rfc3339!(a.decided_at),
        "decidedBy": a.decided_by,
        "expiresAt": rfc3339!(a.expires_at),
        "collectedAt": rfc3339!(a.collected_at),
    })
    .to_string()
}

/// Runs a dataset command.
pub async fn run(args: DatasetArgs) -> anyhow::Result<()> {
    match args.command {
        DatasetCommand::Token {
            kubeconfig,
            namespace,
            name,
            applicant,
            days,
            hubs,
        } => {
            let client = client(kubeconfig.as_ref()).await?;
            let dataset = Api::<OpenDataset>::namespaced(client.clone(), &namespace)
                .get(&name)
                .await
                .with_context(|| format!("reading OpenDataset {namespace}/{name}"))?;
            if dataset.spec.openness != govdc_crds::open_dataset::Openness::Conditional {
                bail!("OpenDataset {namespace}/{name} is open to everyone; it needs no token");
            }
            let portal = &dataset.spec.portal;
            let portal_namespace = portal.namespace.clone().unwrap_or(namespace.clone());
            let mut client =
                portal_client(kubeconfig.as_ref(), &portal_namespace, &portal.name, &hubs).await?;
            let token = client
                .issue_download_token(IssueDownloadTokenRequest {
                    dataset_id: dataset_id(&dataset),
                    applicant,
                    ttl_seconds: i64::from(days) * 24 * 3600,
                })
                .await
                .with_context(|| format!("issuing a token for {}", dataset.name_any()))?
                .into_inner();
            println!("{}", token.token);
            Ok(())
        }
        DatasetCommand::Applications {
            portal,
            dataset,
            state,
            output,
        } => {
            let (namespace, name) = &portal.portal;
            let mut client =
                portal_client(portal.kubeconfig.as_ref(), namespace, name, &portal.hubs).await?;
            let state = match state {
                StateFilter::All => ApplicationState::Unspecified,
                StateFilter::Pending => ApplicationState::Pending,
                StateFilter::Approved => ApplicationState::Approved,
                StateFilter::Rejected => ApplicationState::Rejected,
            };
            let applications = client
                .list_applications(ListApplicationsRequest {
                    dataset_id: dataset.unwrap_or_default(),
                    state: state as i32,
                })
                .await
                .with_context(|| format!("listing the applications of portal {namespace}/{name}"))?
                .into_inner()
                .applications;
            match output {
                Output::Table => print!("{}", table(&applications)),
                Output::Json => {
                    for a in &applications {
                        println!("{}", json_line(a));
                    }
                }
            }
            Ok(())
        }
        DatasetCommand::Approve {
            portal,
            application,
            days,
            reason,
        } => {
            let (namespace, name) = &portal.portal;
            let mut client =
                portal_client(portal.kubeconfig.as_ref(), namespace, name, &portal.hubs).await?;
            let decided = client
                .decide_application(DecideApplicationRequest {
                    application_id: application.clone(),
                    approve: true,
                    reason,
                    ttl_seconds: i64::from(days) * 24 * 3600,
                })
                .await
                .with_context(|| format!("approving application {application}"))?
                .into_inner();
            println!(
                "application {} approved: its applicant can collect the download token from the \
                 status page until {}",
                decided.id,
                rfc3339!(decided.expires_at)
            );
            Ok(())
        }
        DatasetCommand::Reject {
            portal,
            application,
            reason,
        } => {
            if reason.trim().is_empty() {
                bail!("--reason must say why: the applicant reads it on the status page");
            }
            let (namespace, name) = &portal.portal;
            let mut client =
                portal_client(portal.kubeconfig.as_ref(), namespace, name, &portal.hubs).await?;
            let decided = client
                .decide_application(DecideApplicationRequest {
                    application_id: application.clone(),
                    approve: false,
                    reason,
                    ttl_seconds: 0,
                })
                .await
                .with_context(|| format!("rejecting application {application}"))?
                .into_inner();
            println!("application {} rejected", decided.id);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applicant_text_cannot_drive_the_terminal() {
        assert_eq!(printable("a\u{1b}[2Jb\nc\rd"), "a [2Jb c d");
    }

    #[test]
    fn portals_are_namespace_slash_name() {
        assert_eq!(
            parse_portal("hub/national"),
            Ok(("hub".to_owned(), "national".to_owned()))
        );
        assert!(parse_portal("national").is_err());
        assert!(parse_portal("/national").is_err());
    }
}
