//! `govdc-operator dataset`: what a platform operator does by hand for open datasets. Today one
//! thing: approving an application for a conditional dataset (有条件开放) by issuing its download
//! token on the dataset's portal node.

use std::path::PathBuf;

use anyhow::{Context, bail};
use govdc_crds::OpenDataset;
use govdc_hub_api::v1::IssueDownloadTokenRequest;
use govdc_hub_api::v1::portal_client::PortalClient;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use crate::backup_commands::{HubArgs, client};
use crate::controllers::exchange_node::{hub, key};
use crate::controllers::open_dataset::build::dataset_id;

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
            let secret = Api::<Secret>::namespaced(client, &portal_namespace)
                .get(&key::secret_name_of(&portal.name))
                .await
                .with_context(|| {
                    format!(
                        "reading the key of portal {portal_namespace}/{}",
                        portal.name
                    )
                })?;
            let signing_key = key::from_secret(&secret, &portal.name)?
                .with_context(|| format!("portal {} has no key yet", portal.name))?;
            let endpoint = hubs.settings().endpoint(&portal_namespace, &portal.name);
            let channel = hub::connect(&endpoint, std::time::Duration::from_secs(10)).await?;
            let bearer = hub::bearer(&key::admin_token(&signing_key, &portal.name)?)?;
            let token = PortalClient::with_interceptor(channel, bearer)
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
    }
}
