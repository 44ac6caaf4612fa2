//! The OpenDataset controller: a department's dataset, de-identified, on the open-data portal.
//!
//! Each pass: **read** the owning department, the portal node, the pseudonym key and the source
//! -> **validate** (pure: an intranet owner, a missing portal or source, a personal field in the
//! clear — [`crate::deid::Plan`] checks the rules) -> when the fingerprint of spec, source, key
//! and refresh schedule moved: **source** the records as CSV -> **build** the de-identified
//! files (k-anonymity checked) -> **publish** a new version to the portal if its content differs
//! -> **report**. A refusal publishes nothing and keeps the version already served. Deleting the
//! OpenDataset unpublishes it, behind a finalizer.

pub mod build;
pub mod publish;
pub mod read;
pub mod report;
pub mod source;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use govdc_crds::{DepartmentCloud, ExchangeNode, OpenDataset};
use govdc_hub_api::v1::PublishedDataset;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::{Controller, watcher};
use sha2::Digest;
use tokio_util::sync::CancellationToken;

use super::exchange_node::HubSettings;
use super::{Context, Running, instrumented, references};
use crate::deid::Plan;
use crate::error::{Error, Result};
use crate::hub_client::key;
use crate::pipeline::finalizer;
use crate::pipeline::report::Problem;
use build::BuildError;
use publish::Portal;
use read::Inputs;
use report::Outcome;

/// The controller's label in metrics and logs.
pub const NAME: &str = "open_dataset";

/// The finalizer that unpublishes a dataset before its OpenDataset goes.
pub const FINALIZER: &str = "govdc.io/open-dataset";

/// Starts the controller.
pub fn start(
    ctx: Arc<Context>,
    selector: Option<&str>,
    concurrency: u16,
    shutdown: CancellationToken,
) -> Running {
    let client = ctx.client.clone();
    let scope = selector.map_or_else(watcher::Config::default, |s| {
        watcher::Config::default().labels(s)
    });
    // What a dataset names (its department, portal, source and keys) reconciles it at once when
    // it appears, changes or goes away.
    let configure = move |controller: Controller<DeserializeGuard<OpenDataset>>| {
        let datasets = controller.store();
        controller
            .watches_stream(
                references::spec_changes::<DepartmentCloud>(client.clone(), scope.clone()),
                references::open_dataset_referrers::<DepartmentCloud>(datasets.clone()),
            )
            .watches_stream(
                references::spec_changes::<ExchangeNode>(client.clone(), scope),
                references::open_dataset_referrers::<ExchangeNode>(datasets.clone()),
            )
            .watches_stream(
                references::any_changes::<Secret>(
                    client.clone(),
                    references::dataset_reference_namespaces(datasets.clone(), "Secret"),
                ),
                references::open_dataset_referrers::<Secret>(datasets.clone()),
            )
            .watches_stream(
                references::any_changes::<ConfigMap>(
                    client,
                    references::dataset_reference_namespaces(datasets.clone(), "ConfigMap"),
                ),
                references::open_dataset_referrers::<ConfigMap>(datasets),
            )
    };
    super::start(
        NAME,
        ctx,
        selector,
        concurrency,
        shutdown,
        configure,
        reconcile,
    )
}

async fn reconcile(guard: Arc<DeserializeGuard<OpenDataset>>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(NAME, &ctx, &guard, |dataset| {
        reconcile_valid(dataset, ctx.clone())
    })
    .await
}

#[tracing::instrument(skip_all, fields(open_dataset = %super::display_name(dataset.as_ref())))]
async fn reconcile_valid(dataset: Arc<OpenDataset>, ctx: Arc<Context>) -> Result<Action> {
    let finalized = dataset.finalizers().iter().any(|f| f == FINALIZER);
    if dataset.metadata.deletion_timestamp.is_some() {
        if finalized {
            unpublish(&ctx, &dataset).await?;
            finalizer::set(&ctx.client, dataset.as_ref(), FINALIZER, false).await?;
        }
        return Ok(Action::await_change());
    }
    if !finalized {
        finalizer::set(&ctx.client, dataset.as_ref(), FINALIZER, true).await?;
    }
    let inputs = read::read(&ctx.client, &dataset).await?;
    let mut problems = validate::validate(&dataset, &inputs);
    let plan = match Plan::from_spec(&dataset.spec, inputs.pseudonym_key.as_deref()) {
        Ok(plan) => Some(plan),
        Err(refusal) => {
            problems.push(Problem::new(refusal.reason(), refusal.to_string()));
            None
        }
    };
    let (Some(plan), true) = (plan, problems.is_empty()) else {
        report::write(&ctx, &dataset, Outcome::Refused(&problems)).await?;
        return Ok(Action::requeue(ctx.datasets.poll_interval));
    };
    let outcome = publish_if_changed(&ctx, &dataset, &inputs, &plan).await?;
    report::write(&ctx, &dataset, outcome).await?;
    Ok(Action::requeue(next_look(
        &dataset,
        ctx.datasets.poll_interval,
    )))
}

/// Settings of the OpenDataset controller.
#[derive(Clone, Debug)]
pub struct DatasetSettings {
    /// How often a published dataset's source is looked at for changes.
    pub poll_interval: Duration,
}

impl Default for DatasetSettings {
    fn default() -> Self {
        DatasetSettings {
            poll_interval: Duration::from_secs(30),
        }
    }
}

/// The portal of `inputs`, with the operator's token; `None` while the portal has no key.
fn portal(inputs: &Inputs, settings: &HubSettings) -> Result<Option<Portal>> {
    let (Some(node), Some(secret)) = (&inputs.portal, &inputs.portal_key_secret) else {
        return Ok(None);
    };
    let name = node.name_any();
    let Some(signing_key) = key::from_secret(secret, &name)? else {
        return Ok(None);
    };
    let admin_token = key::admin_token(&signing_key, &name)?;
    Ok(Some(Portal {
        endpoint: settings.endpoint(&node.namespace().unwrap_or_default(), &name),
        admin_token,
    }))
}

async fn publish_if_changed<'a>(
    ctx: &Context,
    dataset: &OpenDataset,
    inputs: &'a Inputs,
    plan: &Plan,
) -> Result<Outcome<'a>> {
    let Some(owner) = &inputs.owner else {
        return Ok(Outcome::Waiting("the owning department is gone".into()));
    };
    let Some(portal) = portal(inputs, &ctx.hub)? else {
        return Ok(Outcome::Waiting(format!(
            "the portal node {} has no signing key yet",
            dataset.spec.portal.name
        )));
    };
    let portal_node = inputs.portal.as_ref();
    let id = build::dataset_id(dataset);
    let current = match portal.current(&id).await {
        Ok(current) => current,
        Err(error) => return Ok(Outcome::PortalUnreachable(error.to_string())),
    };
    let source_fingerprint = match source::fingerprint(&inputs.source, owner, &ctx.hub).await {
        Ok(fingerprint) => fingerprint,
        Err(error) => return Ok(Outcome::SourceUnreadable(error.to_string())),
    };
    let digest = input_digest(
        dataset,
        &source_fingerprint,
        inputs.pseudonym_key.as_deref(),
    );
    let unchanged = dataset
        .status
        .as_ref()
        .and_then(|s| s.input_digest.as_deref())
        == Some(digest.as_str());
    // A version whose files the portal awaits (after a failover, the DR hub's imported state
    // lists it without them) is built and published again, however unchanged its inputs.
    if let (true, Some(current)) = (unchanged, &current)
        && !current.awaiting_files
    {
        return Ok(Outcome::Served {
            portal: portal_node,
            published: current.clone(),
            digest,
            report: None,
            new_version: false,
        });
    }

    let spool = tempfile::Builder::new()
        .prefix("govdc-source-")
        .tempdir()
        .map_err(|e| io_error(dataset, e))?;
    // Every declared field, dropped ones too: the plan reads them all from the source.
    let columns: Vec<String> = dataset.spec.fields.iter().map(|f| f.name.clone()).collect();
    let data = match source::materialize(
        &inputs.source,
        owner,
        &ctx.hub,
        &columns,
        spool.path(),
        dataset.spec.openness,
    )
    .await
    {
        Ok(data) => data,
        Err(error) => return Ok(Outcome::SourceUnreadable(error.to_string())),
    };
    let built = {
        let (owned, plan) = (dataset.clone(), plan.clone());
        tokio::task::spawn_blocking(move || build::build(&owned, &plan, &data))
            .await
            .map_err(|e| io_error(dataset, std::io::Error::other(e.to_string())))?
    };
    let built = match built {
        Ok(built) => built,
        Err(BuildError::Refused(refusal)) => return Ok(Outcome::build_refused(&refusal)),
        Err(BuildError::Io(error)) => return Err(io_error(dataset, error)),
    };
    drop(spool);
    let (published, new_version) = match (step(current.as_ref(), &built.content_sha256), current) {
        (Step::Keep, Some(current)) => (current, false),
        (next, _) => {
            let version = match next {
                Step::Publish(version) => version,
                Step::Keep => 1,
            };
            let metadata = build::metadata(dataset, owner, &built, version);
            match portal.publish(metadata, built.files.clone()).await {
                Ok(published) => (published, true),
                Err(error) => return Ok(Outcome::PortalUnreachable(error.to_string())),
            }
        }
    };
    Ok(Outcome::Served {
        portal: portal_node,
        published,
        digest,
        report: Some(built.report),
        new_version,
    })
}

/// What to do about the version the portal serves, given the content just built.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// It is this content and its files are there.
    Keep,
    /// Publish the content as this version: the next one for new content, the same one for the
    /// same content whose files the portal awaits (the hub stores them, [`Step::Keep`] after).
    Publish(i64),
}

fn step(current: Option<&PublishedDataset>, content_sha256: &str) -> Step {
    let Some((current, metadata)) = current.and_then(|c| Some((c, c.metadata.as_ref()?))) else {
        return Step::Publish(1);
    };
    match (
        metadata.content_sha256 == content_sha256,
        current.awaiting_files,
    ) {
        (true, false) => Step::Keep,
        (true, true) => Step::Publish(metadata.version),
        (false, _) => Step::Publish(metadata.version + 1),
    }
}

fn io_error(dataset: &OpenDataset, error: std::io::Error) -> Error {
    Error::Publish {
        what: build::dataset_id(dataset),
        reason: error.to_string(),
    }
}

/// The fingerprint of everything a version is made from: the spec, the source, the key and the
/// last time the refresh schedule fired (so a refresh re-reads the source even when its
/// fingerprint cannot tell it changed).
fn input_digest(dataset: &OpenDataset, source: &str, key: Option<&[u8]>) -> String {
    let mut hasher = sha2::Sha256::new();
    hasher.update(serde_json::to_vec(&dataset.spec).unwrap_or_default());
    hasher.update([0]);
    hasher.update(source.as_bytes());
    hasher.update([0]);
    if let Some(key) = key {
        hasher.update(sha2::Sha256::digest(key));
    }
    if let Some(fired) = last_refresh(dataset, jiff::Timestamp::now()) {
        hasher.update(fired.as_second().to_be_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The last time at or before `now` the refresh schedule fired.
fn last_refresh(dataset: &OpenDataset, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
    let cron: croner::Cron = dataset.spec.refresh_schedule.as_deref()?.parse().ok()?;
    cron.find_previous_occurrence(&now.to_zoned(jiff::tz::TimeZone::UTC), true)
        .ok()
        .map(|z| z.timestamp())
}

/// When to look again: the poll interval, or sooner when the refresh schedule fires first.
fn next_look(dataset: &OpenDataset, poll: Duration) -> Duration {
    let now = jiff::Timestamp::now();
    let next = dataset
        .spec
        .refresh_schedule
        .as_deref()
        .and_then(|text| text.parse::<croner::Cron>().ok())
        .and_then(|cron| {
            cron.find_next_occurrence(&now.to_zoned(jiff::tz::TimeZone::UTC), false)
                .ok()
        })
        .and_then(|next| Duration::try_from(next.timestamp().duration_since(now)).ok());
    match next {
        Some(until) if until < poll => until + Duration::from_secs(1),
        _ => poll,
    }
}

/// Unpublishes the dataset from its portal. A portal node that is gone has nothing to
/// unpublish; one that does not answer is retried (the finalizer stays).
async fn unpublish(ctx: &Context, dataset: &OpenDataset) -> Result<()> {
    let inputs = read::read(&ctx.client, dataset).await?;
    if inputs.portal.is_none() {
        return Ok(());
    }
    let Some(portal) = portal(&inputs, &ctx.hub)? else {
        return Ok(());
    };
    portal
        .unpublish(&build::dataset_id(dataset))
        .await
        .map_err(|error| Error::Publish {
            what: build::dataset_id(dataset),
            reason: format!("unpublishing: {error}"),
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use govdc_hub_api::v1::DatasetMetadata;

    use super::*;

    fn served(version: i64, content: &str, awaiting_files: bool) -> PublishedDataset {
        PublishedDataset {
            metadata: Some(DatasetMetadata {
                version,
                content_sha256: content.into(),
                ..DatasetMetadata::default()
            }),
            awaiting_files,
            ..PublishedDataset::default()
        }
    }

    /// After a failover the DR hub lists the version its imported state holds, without the
    /// files: the same content is published again as the same version, not taken as served.
    #[test]
    fn a_version_whose_files_are_awaited_is_published_again_as_itself() {
        assert_eq!(step(None, "a"), Step::Publish(1));
        assert_eq!(step(Some(&served(3, "a", false)), "a"), Step::Keep);
        assert_eq!(step(Some(&served(3, "a", true)), "a"), Step::Publish(3));
        assert_eq!(step(Some(&served(3, "a", false)), "b"), Step::Publish(4));
        assert_eq!(step(Some(&served(3, "a", true)), "b"), Step::Publish(4));
    }
}
