//! The replication engine of one BackupPolicy: a task of its own, so that replication never holds
//! up a reconcile of any controller.
//!
//! It keeps the cleaned copy of every protected object (from watches in continuous mode, from a
//! full listing on each cron tick in scheduled mode) and what the target holds (the content hash
//! each copy carries). A change marks its key dirty with the instant it was seen; a sync starts
//! writing the dirty keys to the target by server-side apply, rank by restore rank, at bounded
//! concurrency, each write a task of its own (`writes`) that the loop takes the answer of when
//! it comes, so that a slow write holds up no other change. A copy whose source is gone is marked with the time, and deleted only once the
//! grace period has passed — the mark lives on the copy, so a restart of the operator does not
//! reset the clock. When the target does not answer, the dirty keys wait, the policy reports
//! `TargetUnreachable`, and the target is probed each second; once it answers, its copies are
//! listed again and everything that differs is written.
//!
//! Nothing is written before the `checks` passed: the target is not the source, serves the kinds,
//! and holds nothing the policy did not make where a copy would go; `status` reports.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use govdc_crds::BackupPolicy;
use govdc_crds::common::DEPARTMENT_LABEL;
use jiff::Timestamp;
use kube::api::{DynamicObject, PartialObjectMeta};
use kube::runtime::events::EventType;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::clean::{
    CleanOptions, POLICY_LABEL, SOURCE_DELETED_AT_ANNOTATION, SOURCE_HASH_ANNOTATION,
    SOURCE_NAMESPACE_ANNOTATION, clean, map_namespace, source_hash, unmap_namespace,
};
use super::hub_state::Replication;
use super::kinds::Kind;
use super::metrics::BackupMetrics;
use super::schedule::{DeletionStep, Schedule, deletion_step};
use super::source::{Scope, list_source, read_per_namespace};
use super::store::RestorePointShelf;
use super::target::{self, Failure};
use crate::controllers::Context;
use crate::pipeline::events;

mod bounded;
mod checks;
mod index;
mod namespace_watches;
mod phases;
mod probes;
mod status;
mod target_state;
mod writes;

use index::{Action, Held, Index, Key, Listed};
use target_state::{InSync, TargetState};

/// Condition type: whether the target answers.
pub const TARGET_REACHABLE: &str = "TargetReachable";
/// Condition type: set once the target was promoted by failover.
pub const FAILED_OVER: &str = "FailedOver";
/// Condition type: True when the policy's selector protects no namespace at all. It is a
/// warning beside `Ready`, not a reason for `Ready=False`: the policy does all it was asked to
/// (nothing), which is a valid state while departments are being onboarded, but more often a
/// selector that matches nothing by mistake. The API conventions allow such "abnormal-true"
/// conditions (a Node's `MemoryPressure`), and keeping it out of `Ready` keeps `kubectl wait
/// --for=condition=Ready` meaningful.
pub const NOTHING_SELECTED: &str = "NothingSelected";

/// Ready reasons a Warning event is published for when the policy enters them.
const WARNING_REASONS: &[&str] = &[
    "TargetIsSource",
    "TargetIdentityUnknown",
    "NamespaceMappingConflict",
    "TargetConflict",
    "KindNotServed",
    "ObjectsRejected",
];

/// How often the status and gauges are refreshed.
const STATUS_INTERVAL: Duration = Duration::from_secs(2);
/// How often the gauges are refreshed at most (the loop's tick refreshes them at least every
/// 250 ms).
const GAUGE_INTERVAL: Duration = Duration::from_millis(100);
/// How often copies past their grace period are looked for, and an unreachable target probed.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);
/// How often the failover fence on the target is checked.
const FENCE_INTERVAL: Duration = Duration::from_secs(5);
/// How often a continuous policy compares the whole target with the source, to repair what no
/// watch reported (an edit or deletion of a copy on the target).
const FULL_RESYNC_INTERVAL: Duration = Duration::from_secs(300);
/// How often the target is listed again while it holds conflicting objects, to see them go.
const CONFLICT_RESYNC_INTERVAL: Duration = Duration::from_secs(30);
/// How long a listing of the target tells what is there: a first write of an object later than
/// this after the listing reads the target's object first, so that an object someone made there
/// since is never overwritten.
const FRESH_LISTING: Duration = Duration::from_secs(2);
/// The first and the longest wait before the target's checks are made again after they failed
/// or found kinds missing (seconds growing to minutes: such problems rarely heal by themselves).
const PREFLIGHT_BACKOFF: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(300));
/// At most this many conflicting objects are listed in status.
const MAX_LISTED_CONFLICTS: usize = 100;

/// When replication runs.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Every watched change, at once.
    Continuous,
    /// A full pass on each tick of the schedule.
    Scheduled(Box<Schedule>),
}

/// What one replicator is told to do; derived from the policy's spec by validation.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The policy's name.
    pub policy: String,
    /// The policy's uid: a new policy of the same name is a new replicator.
    pub uid: String,
    /// Kinds replicated besides namespaces, in restore order.
    pub kinds: Vec<Kind>,
    /// How copies are made.
    pub clean: CleanOptions,
    /// Continuous or scheduled.
    pub mode: Mode,
    /// The recovery point objective.
    pub rpo_objective: Duration,
    /// The deletion grace period; None never deletes copies.
    pub grace: Option<Duration>,
    /// What is protected.
    pub scope: Scope,
    /// Writes to the target in flight at once.
    pub apply_concurrency: usize,
    /// The target as a person names it (kubeconfig Secret, cluster and server), for messages.
    pub target: String,
    /// When the target last held everything, as the policy's status says (a previous run's).
    pub last_synced: Option<Timestamp>,
}

/// What the watches report.
enum Change {
    Department(watcher::Event<DynamicObject>),
    Namespace(watcher::Event<DynamicObject>),
    Object(usize, watcher::Event<DynamicObject>),
    /// An event of a kind watched per namespace, from the watch of the named namespace.
    InNamespace(usize, String, watcher::Event<DynamicObject>),
    /// The watch of a kind in a namespace stayed refused past its grace, with the API's message.
    Refused(usize, String, String),
    /// Whether the target was promoted by failover (see [`probes`]).
    Fence(probes::TargetAnswer<bool>),
    /// Whether an unreachable target answers again (see [`probes`]).
    TargetProbe(probes::TargetAnswer<()>),
    /// A read of the policy, for the status report (see [`probes`]).
    Policy(Box<probes::PolicyRead>),
}

/// The replicator's whole state; owned by its task alone.
struct Engine {
    settings: Settings,
    primary: Client,
    target: Client,
    ctx: Arc<Context>,
    metrics: BackupMetrics,
    /// What is protected and what the target holds (pure state).
    index: Index,
    /// Whether the target answers, and whether its copies were listed since.
    target_state: TargetState,
    failed_over: bool,
    /// When the target last held everything (nothing dirty, target answering).
    in_sync_at: Option<InSync>,
    /// When the target last held everything as a previous replicator of the policy recorded it
    /// (the status's last successful sync): until this one is in sync, what would be lost is
    /// counted from there, so that an operator restart does not make the RPO look small.
    previous_sync: Option<Timestamp>,
    last_sync_time: Option<Timestamp>,
    errors: BTreeMap<&'static str, (i64, String)>,
    shelf: Option<RestorePointShelf>,
    /// The export of the protected ExchangeNodes' hub state, when the policy lists any.
    hub_state: Option<Replication>,
    /// The watches of kinds read namespace by namespace (Secrets).
    namespace_watches: namespace_watches::NamespaceWatches,
    /// The primary's identity (uid of `kube-system`), read once.
    source_identity: Option<String>,
    /// Whether the target passed the checks made before any write (identity, kinds served)
    /// since it last became reachable.
    preflighted: bool,
    /// When those checks are made (again).
    next_preflight: Instant,
    preflight_backoff: Duration,
    /// Why nothing at all may be written to the target (reason, message).
    refusal: Option<(&'static str, String)>,
    /// What to tell the user about the kinds the target does not serve.
    unserved_message: String,
    /// Copied namespaces due for deletion that hold objects the policy did not make, and when
    /// they are looked at again.
    kept_namespaces: BTreeMap<Key, Instant>,
    /// How long each step took, for the debug log.
    phases: phases::Phases,
    /// The fence and policy reads in flight.
    probes: probes::Probes,
    /// A read of the policy the status report has not used yet.
    policy_read: Option<probes::PolicyRead>,
    /// An answer of the probe of an unreachable target not taken yet.
    probe_answer: Option<probes::TargetAnswer<()>>,
    /// The writes to the target in flight.
    writes: writes::Writes,
    /// The status write in flight (see [`status`]).
    status_write: Option<tokio::task::JoinHandle<()>>,
}

/// Runs the replicator until shutdown, the policy's deletion, or a failover fence.
pub async fn run(
    settings: Settings,
    ctx: Arc<Context>,
    target: Client,
    metrics: BackupMetrics,
    shelf: Option<RestorePointShelf>,
    hub_state: Option<Replication>,
    shutdown: CancellationToken,
) {
    let mut kinds = vec![super::kinds::namespace()];
    kinds.extend(settings.kinds.iter().cloned());
    let per_namespace: Vec<usize> = (1..kinds.len())
        .filter(|&index| read_per_namespace(&kinds[index]))
        .collect();
    let primary = ctx.client.clone();
    let settings_policy = settings.policy.clone();
    let previous_sync = settings.last_synced;
    let apply_concurrency = settings.apply_concurrency;
    let mut engine = Engine {
        index: Index::new(
            kinds,
            settings.clean.clone(),
            settings.scope.clone(),
            matches!(settings.mode, Mode::Continuous),
        ),
        settings,
        primary,
        target,
        ctx,
        metrics,
        target_state: TargetState::new(),
        failed_over: false,
        in_sync_at: None,
        previous_sync,
        last_sync_time: None,
        errors: BTreeMap::new(),
        shelf,
        hub_state,
        namespace_watches: namespace_watches::NamespaceWatches::new(per_namespace),
        source_identity: None,
        preflighted: false,
        next_preflight: Instant::now(),
        preflight_backoff: PREFLIGHT_BACKOFF.0,
        refusal: None,
        unserved_message: String::new(),
        kept_namespaces: BTreeMap::new(),
        phases: phases::Phases::start(&settings_policy),
        probes: probes::Probes::default(),
        policy_read: None,
        probe_answer: None,
        writes: writes::Writes::new(apply_concurrency),
        status_write: None,
    };
    let (tx, mut rx) = mpsc::channel::<Change>(4096);
    let mut watches = JoinSet::new();
    let continuous = matches!(engine.settings.mode, Mode::Continuous);
    if continuous {
        engine.start_scope_watches(&tx, &mut watches);
    }
    let mut objects_watched = false;
    let policy = engine.settings.policy.clone();
    tracing::info!(%policy, "replicator started");
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_status = Instant::now();
    let mut next_gauges = Instant::now();
    let mut next_housekeeping = Instant::now();
    let mut next_fence = Instant::now();
    let mut last_full_resync = Instant::now();
    let mut next_scheduled: Option<Instant> = Some(Instant::now());
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(change) = rx.recv() => {
                let began = Instant::now();
                engine.handle(change);
                // Take whatever else arrived, so one sync covers a burst.
                while let Ok(change) = rx.try_recv() {
                    engine.handle(change);
                }
                engine.phases.slow("handle", began);
            }
            written = engine.writes.next() => {
                let mut done = vec![written];
                done.extend(engine.writes.ready());
                engine.absorb_written(done);
            }
            _ = tick.tick() => {}
        }
        if let Some((read_at, read)) = engine.policy_read.take() {
            let began = Instant::now();
            let keep_running = if read_at.elapsed() <= probes::FRESH_POLICY {
                engine.report_with(read).await
            } else {
                // The engine was busy writing since the read: a status written from it could
                // undo what was written to the policy meanwhile (a failover's record).
                engine.report().await
            };
            engine.phases.slow("report", began);
            if !keep_running {
                break;
            }
        }
        if engine.refused_for_good() {
            // The target is the source: nothing will ever be written by this replicator, and
            // nothing is watched for it any more. A new spec or Secret starts another one.
            if !watches.is_empty() {
                watches.abort_all();
            }
            let now = Instant::now();
            if now >= next_status {
                next_status = now + STATUS_INTERVAL;
                if !engine.report().await {
                    break;
                }
            }
            continue;
        }
        if continuous
            && !objects_watched
            && engine.index.initialised.contains(&Listed::Departments)
            && engine.index.initialised.contains(&Listed::Namespaces)
        {
            objects_watched = true;
            engine.start_object_watches(&tx, &mut watches);
        }
        for namespace in std::mem::take(&mut engine.index.new_namespaces) {
            if objects_watched {
                engine.relist(namespace, &tx, &mut watches);
            }
        }
        if objects_watched {
            engine.watch_namespaces(&tx, &mut watches);
        }
        let now = Instant::now();
        if !engine.failed_over && (now >= next_fence || !engine.probes.fence_read) {
            next_fence = now + FENCE_INTERVAL;
            engine.probes.read_fence(&engine.target, &policy, &tx);
        }
        if engine.failed_over {
            // Nothing more is written to a promoted target.
            engine.writes.abandon();
            if now >= next_status {
                next_status = now + STATUS_INTERVAL;
                if !engine.report().await {
                    break;
                }
            }
            continue;
        }
        if let Mode::Scheduled(schedule) = &engine.settings.mode
            && next_scheduled.is_some_and(|at| now >= at)
        {
            let schedule = schedule.clone();
            engine.scheduled_pass().await;
            next_scheduled = schedule.next_after(Timestamp::now()).map(|at| {
                let wait = at.duration_since(Timestamp::now()).unsigned_abs();
                Instant::now() + wait
            });
        }
        if let Some(answer) = engine.probe_answer.take() {
            engine.absorb_probe(answer).await;
        }
        if !engine.target_state.answers() && now >= next_housekeeping {
            engine.probes.probe_target(&engine.target, &tx);
        }
        if engine.preflighted && !engine.index.unserved.is_empty() && now >= engine.next_preflight {
            // Kinds were missing: look again, with back-off, whether someone installed them.
            engine.preflighted = false;
        }
        if engine.target_state.answers() && !engine.preflighted && now >= engine.next_preflight {
            let began = Instant::now();
            engine.preflight().await;
            engine
                .phases
                .step("preflight", engine.index.kinds.len(), began);
        }
        let writable = engine.target_state.answers()
            && engine.preflighted
            && engine.refusal.is_none()
            && engine.probes.fence_read;
        if engine.index.initial_listing_done() {
            engine.phases.sources_listed(engine.index.desired.len());
        }
        if writable && engine.index.initial_listing_done() {
            if !engine.target_state.listed() {
                engine.list_target().await;
                last_full_resync = Instant::now();
            }
            let resync_every = if !engine.index.has_conflicts() {
                FULL_RESYNC_INTERVAL
            } else {
                CONFLICT_RESYNC_INTERVAL
            };
            if engine.target_state.answers() && now >= last_full_resync + resync_every {
                last_full_resync = now;
                engine.target_state.unlist();
                engine.index.rejected.clear();
                engine.list_target().await;
            }
            // A mapping onto namespaces the policy did not make stops every write: a pass
            // that would write half of what it should must not start.
            if engine.target_state.listed() && engine.index.namespace_conflicts().is_empty() {
                let began = Instant::now();
                engine.sync().await;
                engine.phases.slow("sync", began);
                if now >= next_housekeeping {
                    let began = Instant::now();
                    engine.sweep().await;
                    engine.phases.slow("sweep", began);
                }
            }
        }
        if now >= next_housekeeping {
            next_housekeeping = now + HOUSEKEEPING_INTERVAL;
        }
        if now >= next_gauges {
            // Not on every turn: counting the copies walks all of them, and a turn comes with
            // every change and every finished write.
            next_gauges = now + GAUGE_INTERVAL;
            let began = Instant::now();
            engine.update_gauges();
            engine.phases.slow("gauges", began);
        }
        if now >= next_status {
            next_status = now + STATUS_INTERVAL;
            engine.probes.read_policy(&engine.primary, &policy, &tx);
        }
    }
    watches.abort_all();
    if let Some(write) = engine.status_write.take() {
        // The last status is written before another replicator of the policy can start.
        let _ = write.await;
    }
    engine.metrics.forget(&policy);
    tracing::info!(%policy, "replicator stopped");
}

impl Engine {
    /// Watches the DepartmentClouds and tenant namespaces (every namespace when the policy lists
    /// ExchangeNodes, whose namespaces need no label): what is protected.
    fn start_scope_watches(&self, tx: &mpsc::Sender<Change>, watches: &mut JoinSet<()>) {
        let config = watcher::Config::default().any_semantic();
        let departments: Api<DynamicObject> = Api::all_with(
            self.primary.clone(),
            &kube::api::ApiResource::erase::<govdc_crds::DepartmentCloud>(&()),
        );
        watches.spawn(forward(
            watcher(departments, config.clone()),
            tx.clone(),
            Change::Department,
        ));
        let namespaces: Api<DynamicObject> = Api::all_with(
            self.primary.clone(),
            &super::kinds::namespace().api_resource(),
        );
        let namespace_config = if self.index.watches_unlabelled_namespaces() {
            config
        } else {
            config.labels(DEPARTMENT_LABEL)
        };
        watches.spawn(forward(
            watcher(namespaces, namespace_config),
            tx.clone(),
            Change::Namespace,
        ));
    }

    /// Watches every replicated kind cluster-wide. Started once the tenant namespaces are known,
    /// since objects of unknown namespaces are dropped.
    fn start_object_watches(&self, tx: &mpsc::Sender<Change>, watches: &mut JoinSet<()>) {
        let config = watcher::Config::default().any_semantic();
        for (index, kind) in self.index.kinds.iter().enumerate().skip(1) {
            if self.namespace_watches.covers(index) {
                continue;
            }
            let api: Api<DynamicObject> = Api::all_with(self.primary.clone(), &kind.api_resource());
            watches.spawn(forward(
                watcher(api, config.clone()).map(with_types(kind.api_resource())),
                tx.clone(),
                move |event| Change::Object(index, event),
            ));
        }
    }

    /// Lists a namespace that became a tenant's after the watches started: its objects may have
    /// been watched before the namespace was, and dropped then.
    fn relist(&self, namespace: String, tx: &mpsc::Sender<Change>, watches: &mut JoinSet<()>) {
        for (index, kind) in self.index.kinds.iter().enumerate().skip(1) {
            if self.namespace_watches.covers(index) {
                // Its own watch of the namespace lists it.
                continue;
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.primary.clone(), &namespace, &kind.api_resource());
            let tx = tx.clone();
            let resource = kind.api_resource();
            watches.spawn(async move {
                if let Ok(list) = api.list(&Default::default()).await {
                    for object in list.items {
                        let event = with_types(resource.clone())(Ok(watcher::Event::Apply(object)));
                        if let Ok(event) = event
                            && tx.send(Change::Object(index, event)).await.is_err()
                        {
                            return;
                        }
                    }
                }
            });
        }
    }

    /// Keeps one watch per kind read namespace by namespace in each protected namespace; the
    /// kind counts as listed once every watch it had has listed (or was refused past its grace).
    fn watch_namespaces(&mut self, tx: &mpsc::Sender<Change>, watches: &mut JoinSet<()>) {
        let wanted: BTreeSet<String> = self.index.protected_namespaces().cloned().collect();
        let stopped = self.namespace_watches.reconcile(
            &self.primary,
            &self.index.kinds,
            &wanted,
            tx,
            watches,
        );
        if !stopped.is_empty() {
            // A later watch of the namespace lists its objects anew.
            let covered = &self.namespace_watches;
            self.index
                .desired
                .retain(|key, _| !(covered.covers(key.kind) && stopped.contains(&key.namespace)));
        }
        for kind in 1..self.index.kinds.len() {
            if self.namespace_watches.covers(kind) && self.namespace_watches.listed_all(kind) {
                self.index.initialised.insert(Listed::Kind(kind));
            }
        }
    }

    fn handle(&mut self, change: Change) {
        match change {
            Change::Department(event) => self.index.handle_department(event),
            Change::Namespace(event) => self.index.handle_namespace(event),
            Change::Object(kind, event) => self.index.handle_object(kind, event),
            Change::InNamespace(kind, namespace, event) => match event {
                watcher::Event::Init => {}
                watcher::Event::InitDone => self.namespace_watches.listed(kind, &namespace),
                event => self.index.handle_object(kind, event),
            },
            Change::Fence((asked, answer)) => {
                self.probes.fence_answered(&answer);
                self.absorb_fence(asked, answer);
            }
            Change::TargetProbe(answer) => {
                self.probes.target_answered();
                self.probe_answer = Some(answer);
            }
            Change::Policy(read) => {
                self.probes.policy_answered();
                self.policy_read = Some(*read);
            }
            Change::Refused(kind, namespace, message) => {
                tracing::warn!(policy = %self.settings.policy, %namespace, kind = %self.index.kinds[kind].kind,
                    error = %message, "the operator may not read this namespace's objects; they are not replicated");
                self.record_error("SourceForbidden", message);
                self.namespace_watches.listed(kind, &namespace);
            }
        }
    }

    /// A scheduled policy's pass: list the source anew and compare everything.
    async fn scheduled_pass(&mut self) {
        let kinds: Vec<Kind> = self.index.kinds[1..].to_vec();
        match list_source(
            &self.primary,
            &self.settings.scope,
            &kinds,
            self.settings.apply_concurrency,
        )
        .await
        {
            Ok(set) => {
                let mut desired = HashMap::new();
                self.index.namespaces.clear();
                self.index.departments.clear();
                for ns in &set.namespaces {
                    let name = ns["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    // list_source lists protected namespaces only: a tenant's is of a selected
                    // department; a listed node's namespace is protected whatever its label.
                    let department = ns["metadata"]["labels"][DEPARTMENT_LABEL]
                        .as_str()
                        .map(str::to_owned);
                    if !self.settings.scope.node_namespaces.contains(&name) {
                        self.index.departments.extend(department.clone());
                    }
                    self.index.namespaces.insert(name.clone(), department);
                    let copy = clean(&self.index.kinds[0], ns, &self.settings.clean);
                    let hash = source_hash(&copy).unwrap_or_default().to_owned();
                    desired.insert(
                        Key {
                            kind: 0,
                            namespace: name.clone(),
                            name,
                        },
                        index::Desired {
                            copy: Arc::new(copy),
                            hash,
                        },
                    );
                }
                for (kind, object) in &set.objects {
                    let index = self
                        .index
                        .kinds
                        .iter()
                        .position(|k| k == kind)
                        .unwrap_or_default();
                    let copy = clean(kind, object, &self.settings.clean);
                    let hash = source_hash(&copy).unwrap_or_default().to_owned();
                    desired.insert(
                        Key {
                            kind: index,
                            namespace: object["metadata"]["namespace"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                            name: object["metadata"]["name"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                        },
                        index::Desired {
                            copy: Arc::new(copy),
                            hash,
                        },
                    );
                }
                self.index.desired = desired;
                self.index.initialised.insert(Listed::Departments);
                self.target_state.unlist();
                self.index.rejected.clear();
                if let Some(hub_state) = &self.hub_state {
                    // A scheduled policy copies its hubs with each pass.
                    hub_state.trigger();
                }
            }
            Err(error) => {
                self.record_error(
                    "SourceListFailed",
                    format!(
                        "listing {} on the primary: {}",
                        error.what,
                        crate::error::api_message(&error.source)
                    ),
                );
            }
        }
    }

    /// Takes the answer of a probe of the unreachable target.
    async fn absorb_probe(&mut self, (asked, answer): probes::TargetAnswer<()>) {
        if self.target_state.answers() {
            return;
        }
        match answer {
            Ok(()) => {
                tracing::info!(policy = %self.settings.policy, "the target answers again; catching up");
                self.target_state.answered(asked);
                // The address may now reach another cluster: tell it again before writing.
                self.preflighted = false;
                self.next_preflight = Instant::now();
                self.publish(
                    EventType::Normal,
                    "TargetReachable",
                    "the target answers again; catching up".into(),
                )
                .await;
            }
            Err(failure) => self.target_state.still_silent(failure.message().to_owned()),
        }
    }

    /// Takes the answer of a read of the failover fence made at `asked`.
    fn absorb_fence(&mut self, asked: Instant, answer: Result<bool, Failure>) {
        if self.failed_over {
            return;
        }
        match answer {
            Ok(true) => {
                tracing::warn!(policy = %self.settings.policy, "the target was promoted by failover; replication stops");
                self.failed_over = true;
                if let Some(hub_state) = &self.hub_state {
                    // The promoted hubs now hold the newest state; the failover command chose its
                    // copy by the fence's time, and later copies would only confuse a second run.
                    hub_state.stop();
                }
            }
            Ok(false) => {
                if self.index.dirty.is_empty() && self.writes.idle() && self.target_state.listed() {
                    self.in_sync_at = Some(InSync::now());
                }
            }
            // A read made before the target last came back tells nothing of it now.
            Err(Failure::Unreachable(message)) if self.target_state.current(asked) => {
                self.mark_unreachable(message)
            }
            Err(_) => {}
        }
    }

    fn mark_unreachable(&mut self, message: String) {
        if self.target_state.silence(message.clone()) {
            tracing::warn!(policy = %self.settings.policy, error = %message, "the target does not answer");
        }
        self.record_error("TargetUnreachable", message);
    }

    fn record_error(&mut self, reason: &'static str, message: String) {
        let entry = self.errors.entry(reason).or_insert((0, String::new()));
        entry.0 += 1;
        entry.1 = message;
        self.metrics.error(&self.settings.policy, reason);
    }

    /// Lists the target — this policy's copies, and what else stands where a copy would go —
    /// and compares it with the source.
    async fn list_target(&mut self) {
        let policy = self.settings.policy.clone();
        let target = self.target.clone();
        let listed_at = Instant::now();
        let jobs: Vec<(usize, kube::api::ApiResource)> = self
            .index
            .kinds
            .iter()
            .enumerate()
            .filter(|(index, _)| !self.index.unserved.contains(index))
            .map(|(index, kind)| (index, kind.api_resource()))
            .collect();
        let listings: Vec<(usize, Listing)> = stream::iter(jobs)
            .map(|(index, resource)| {
                let target = target.clone();
                async move { (index, target::list_metadata(&target, &resource).await) }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut held = HashMap::new();
        let mut foreign = BTreeSet::new();
        for (index, listing) in listings {
            let objects = match listing {
                Ok(objects) => objects,
                Err(Failure::Unreachable(message)) => {
                    self.mark_unreachable(message);
                    return;
                }
                Err(failure) => {
                    if failure.reason() == "KindNotServed" {
                        // Discovery said otherwise a moment ago: check again soon.
                        self.index.unserved.insert(index);
                        self.next_preflight = Instant::now();
                    }
                    self.record_error(failure.reason(), failure.message().to_owned());
                    continue;
                }
            };
            for object in objects {
                let meta = &object.metadata;
                let name = meta.name.clone().unwrap_or_default();
                let ours = meta
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(POLICY_LABEL))
                    .is_some_and(|mark| *mark == policy);
                if !ours {
                    if target::made_by_the_target(self.index.kinds[index].kind, &name) {
                        // The target's own `default` ServiceAccount: nobody's to protect.
                        continue;
                    }
                    let place = if index == 0 {
                        name.clone()
                    } else {
                        meta.namespace.clone().unwrap_or_default()
                    };
                    // Only where a tenant's copies go: the target's own namespaces (all of them
                    // under an identity mapping) are none of the policy's business, and a tenant
                    // namespace made later is looked at before its first write.
                    if let Some(source) = unmap_namespace(&self.settings.clean.mapping, &place)
                        && self.index.namespaces.contains_key(&source)
                    {
                        foreign.insert(Key {
                            kind: index,
                            name: if index == 0 { source.clone() } else { name },
                            namespace: source,
                        });
                    }
                    continue;
                }
                let annotations = meta.annotations.clone().unwrap_or_default();
                let Some(namespace) = annotations.get(SOURCE_NAMESPACE_ANNOTATION).cloned() else {
                    continue;
                };
                let marked = annotations
                    .get(SOURCE_DELETED_AT_ANNOTATION)
                    .and_then(|t| t.parse::<Timestamp>().ok());
                held.insert(
                    Key {
                        kind: index,
                        name: if index == 0 { namespace.clone() } else { name },
                        namespace,
                    },
                    Held {
                        hash: annotations.get(SOURCE_HASH_ANNOTATION).cloned(),
                        marked,
                    },
                );
            }
        }
        self.index.held = held;
        self.index.foreign = foreign;
        self.phases.step(
            "target listed",
            self.index.held.len() + self.index.foreign.len(),
            listed_at,
        );
        self.target_state.listed_now(listed_at);
        let keys: Vec<Key> = self
            .index
            .desired
            .keys()
            .chain(self.index.held.keys())
            .cloned()
            .collect();
        for key in keys {
            if self.index.needs_work(&key) {
                self.index.touch(key);
            }
        }
    }

    /// Starts writing the dirty keys of the lowest restore rank that has work (a namespace is
    /// written before what goes in it), each write a task of its own (see [`writes`]); a key
    /// being written stays dirty until its write is done.
    async fn sync(&mut self) {
        if self.index.dirty.is_empty() {
            return;
        }
        let began = Instant::now();
        let mut waves: BTreeMap<u8, Vec<(Key, Instant, Action)>> = BTreeMap::new();
        let dirty = std::mem::take(&mut self.index.dirty);
        let looked_at = dirty.len();
        for (index, (key, seen)) in dirty.into_iter().enumerate() {
            if index % 512 == 511 {
                tokio::task::yield_now().await;
            }
            if self.writes.writing(&key) {
                self.index.dirty.insert(key, seen);
            } else if let Some(action) = self.index.plan(&key) {
                waves
                    .entry(self.index.kinds[key.kind].rank)
                    .or_default()
                    .push((key, seen, action));
            }
        }
        self.phases.step("planned", looked_at, began);
        if waves.is_empty() || !self.check_first_writes(&mut waves).await {
            self.absorb_in_sync();
            return;
        }
        let lowest_in_flight = self.writes.lowest_rank();
        let now: Arc<str> = Timestamp::now().to_string().into();
        let mut started = false;
        for (rank, wave) in waves {
            if started || lowest_in_flight.is_some_and(|lowest| lowest < rank) {
                // Written once everything of a lower rank is.
                for (key, seen, _) in wave {
                    self.index.dirty.entry(key).or_insert(seen);
                }
                continue;
            }
            started = !wave.is_empty();
            for job in wave {
                let resource = self.index.kinds[job.0.kind].api_resource();
                self.writes.start(&self.target, resource, job, rank, &now);
            }
        }
    }

    /// Takes the answers of finished writes.
    fn absorb_written(&mut self, done: Vec<writes::Written>) {
        let mut unreachable = None;
        for written in done {
            let writes::Written {
                key,
                seen,
                action,
                marked_at,
                result,
            } = written;
            match result {
                Ok(()) => {
                    self.metrics
                        .observe_lag(&self.settings.policy, seen.elapsed().as_secs_f64());
                    self.index.rejected.remove(&key);
                    let held = self.index.held.entry(key).or_default();
                    match action {
                        Action::Apply(_, hash, _) => {
                            held.hash = Some(hash);
                            held.marked = None;
                        }
                        Action::Unmark(_) => held.marked = None,
                        Action::Mark(_) => held.marked = marked_at.parse().ok(),
                    }
                }
                // Written once the target answers again.
                Err(Failure::Unreachable(message)) => {
                    self.index.dirty.entry(key).or_insert(seen);
                    unreachable = Some(message);
                }
                Err(failure) => {
                    tracing::warn!(policy = %self.settings.policy, kind = %self.index.kinds[key.kind].kind,
                        namespace = %key.namespace, name = %key.name, error = %failure.message(), "the target refused a copy");
                    self.record_error(failure.reason(), failure.message().to_owned());
                    self.index.rejected.insert(key);
                }
            }
        }
        if let Some(message) = unreachable {
            // The first write the target leaves unanswered ends the others (see `bounded`).
            for (key, seen) in self.writes.abandon() {
                self.index.dirty.entry(key).or_insert(seen);
            }
            self.mark_unreachable(message);
            return;
        }
        if let Some((began, count)) = self.writes.drained() {
            self.phases.step("write wave", count, began);
        }
        self.absorb_in_sync();
    }

    /// Records that the target holds everything, when it does.
    fn absorb_in_sync(&mut self) {
        if self.index.dirty.is_empty() && self.writes.idle() && self.target_state.answers() {
            let in_sync = InSync::now();
            self.in_sync_at = Some(in_sync);
            self.last_sync_time = Some(in_sync.time);
            self.phases.in_sync(self.index.held.len());
            // The RPO drops to zero now, not at the next refresh: a status that says Ready may
            // have been written a moment before the last write finished, and whoever reads the
            // gauge after it must see the target caught up.
            self.update_gauges();
        }
    }

    /// Deletes copies whose grace period has passed; a namespace only once nothing in it is
    /// still kept.
    async fn sweep(&mut self) {
        if self.settings.grace.is_none() {
            // Copies are never deleted.
            return;
        }
        let now = Timestamp::now();
        let due: Vec<Key> = self
            .index
            .held
            .iter()
            .filter(|(key, held)| {
                // Only a marked copy can be due: this walk runs each second over every copy, so
                // the cheap test comes first and the lookups only for the few marked ones.
                if held.marked.is_none() {
                    return false;
                }
                // A copy being written is looked at again once it is.
                if self.writes.writing(key) {
                    return false;
                }
                let exists =
                    self.index.desired.contains_key(key) && self.index.protected(&key.namespace);
                deletion_step(exists, held.marked, now, self.settings.grace) == DeletionStep::Delete
            })
            .map(|(key, _)| key.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        let (namespaces, objects): (Vec<Key>, Vec<Key>) =
            due.into_iter().partition(|k| k.kind == 0);
        let target = self.target.clone();
        let jobs: Vec<(Key, kube::api::ApiResource, Value)> = objects
            .into_iter()
            .map(|key| {
                let resource = self.index.kinds[key.kind].api_resource();
                let reference = self.index.reference(&key);
                (key, resource, reference)
            })
            .collect();
        let pass =
            bounded::until_unreachable(jobs.len(), self.settings.apply_concurrency, |index| {
                let (_, resource, reference) = &jobs[index];
                let target = target.clone();
                async move { target::delete(&target, resource, reference).await }
            })
            .await;
        let results = pass
            .answered
            .into_iter()
            .map(|(index, result)| (jobs[index].0.clone(), result))
            .collect();
        self.absorb_deletions(results);
        if let Some(message) = pass.unreachable {
            // What was not deleted is still due, and is deleted once the target answers.
            self.mark_unreachable(message);
            return;
        }
        for key in namespaces {
            let still_kept = self
                .index
                .held
                .keys()
                .any(|k| k.kind != 0 && k.namespace == key.namespace);
            if still_kept
                || self
                    .kept_namespaces
                    .get(&key)
                    .is_some_and(|until| Instant::now() < *until)
            {
                continue;
            }
            // Deleting a namespace deletes all it holds: never what someone else put there.
            let name = map_namespace(&self.settings.clean.mapping, &key.namespace);
            match target::others_in_namespace(
                &self.target,
                &name,
                &self.index.kinds,
                &self.settings.policy,
            )
            .await
            {
                Ok(others) if others.is_empty() => {}
                Ok(others) => {
                    tracing::warn!(policy = %self.settings.policy, namespace = %name, objects = ?others,
                        "the namespace's copy holds objects this policy did not make; it is not deleted");
                    self.record_error(
                        "NamespaceHoldsOthers",
                        format!(
                            "namespace {name} on the target is not deleted: it holds objects this policy did not make ({})",
                            others.join(", ")
                        ),
                    );
                    self.kept_namespaces
                        .insert(key, Instant::now() + FULL_RESYNC_INTERVAL);
                    continue;
                }
                Err(Failure::Unreachable(message)) => {
                    self.mark_unreachable(message);
                    return;
                }
                Err(failure) => {
                    self.record_error(failure.reason(), failure.message().to_owned());
                    self.kept_namespaces
                        .insert(key, Instant::now() + FULL_RESYNC_INTERVAL);
                    continue;
                }
            }
            let result = target::delete(
                &self.target,
                &self.index.kinds[0].api_resource(),
                &self.index.reference(&key),
            )
            .await;
            self.absorb_deletions(vec![(key, result)]);
        }
    }

    fn absorb_deletions(&mut self, results: Vec<(Key, Result<(), Failure>)>) {
        for (key, result) in results {
            match result {
                Ok(()) => {
                    tracing::info!(policy = %self.settings.policy, kind = %self.index.kinds[key.kind].kind,
                        namespace = %key.namespace, name = %key.name, "deleted a copy whose grace period passed");
                    self.index.held.remove(&key);
                }
                Err(Failure::Unreachable(message)) => self.mark_unreachable(message),
                Err(failure) => self.record_error(failure.reason(), failure.message().to_owned()),
            }
        }
    }

    /// What would be lost if the primary failed now, as a time: since the target was last known
    /// to hold everything when it does not answer, since the oldest change not yet written
    /// otherwise, zero when the target holds everything. (The lag of each write is in the
    /// `govdc_backup_sync_lag_seconds` histogram.)
    fn current_rpo(&self) -> Option<Duration> {
        // Before this replicator was first in sync, the target holds at best what a previous
        // one (before an operator restart) left there.
        let since_previous = match self.in_sync_at {
            None => self
                .previous_sync
                .map(|at| Timestamp::now().duration_since(at).unsigned_abs()),
            Some(_) => None,
        };
        let oldest_change = self
            .index
            .dirty
            .values()
            .copied()
            .chain(self.writes.oldest())
            .min()
            .map(|seen| seen.elapsed());
        if !self.target_state.answers() {
            return Some(match self.in_sync_at {
                Some(in_sync) => in_sync.at.elapsed(),
                None => oldest_change
                    .unwrap_or_default()
                    .max(since_previous.unwrap_or_default()),
            });
        }
        if let Mode::Scheduled(_) = self.settings.mode {
            return self
                .in_sync_at
                .map(|in_sync| in_sync.at.elapsed())
                .or(since_previous);
        }
        match (oldest_change, since_previous) {
            (Some(oldest), previous) => Some(oldest.max(previous.unwrap_or_default())),
            (None, _) if self.in_sync_at.is_some() => Some(Duration::ZERO),
            (None, previous) => previous,
        }
    }

    fn update_gauges(&self) {
        let policy = &self.settings.policy;
        if let Some(rpo) = self.current_rpo() {
            self.metrics.rpo(policy, rpo.as_secs_f64());
        }
        if let Some(at) = self
            .in_sync_at
            .map(|in_sync| in_sync.time)
            .or(self.previous_sync)
        {
            self.metrics
                .last_sync(policy, at.as_millisecond() as f64 / 1000.0);
        }
        self.metrics.objects(policy, self.index.copies() as i64);
        self.metrics
            .pending_deletions(policy, self.index.pending_deletions() as i64);
    }

    async fn publish(&self, type_: EventType, reason: &str, note: String) {
        publish(
            &self.ctx,
            &self.settings.policy,
            &self.settings.uid,
            type_,
            reason,
            note,
        )
        .await;
    }
}

/// Publishes an event about the policy `name` (of uid `uid`).
async fn publish(
    ctx: &Context,
    name: &str,
    uid: &str,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(BackupPolicy::api_version(&()).into_owned()),
        kind: Some(BackupPolicy::kind(&()).into_owned()),
        name: Some(name.to_owned()),
        uid: Some(uid.to_owned()),
        ..Default::default()
    };
    events::publish(&ctx.recorder, &reference, type_, reason, "Replicate", note).await;
}

/// A listing of one kind on the target: every object's metadata.
type Listing = Result<Vec<PartialObjectMeta<DynamicObject>>, Failure>;

/// Sets apiVersion and kind on watched objects, which the cleaners need.
fn with_types(
    resource: kube::api::ApiResource,
) -> impl Fn(
    Result<watcher::Event<DynamicObject>, watcher::Error>,
) -> Result<watcher::Event<DynamicObject>, watcher::Error> {
    move |result| {
        result.map(|event| {
            event.modify(|object| {
                object.types = Some(kube::api::TypeMeta {
                    api_version: resource.api_version.clone(),
                    kind: resource.kind.clone(),
                })
            })
        })
    }
}

/// Forwards a watch's events to the engine until the engine goes away. Watch errors are retried
/// by the watcher's back-off; they are logged, not fatal.
async fn forward<S, F>(events: S, tx: mpsc::Sender<Change>, wrap: F)
where
    S: futures::Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>> + Send,
    F: Fn(watcher::Event<DynamicObject>) -> Change,
{
    let mut events = std::pin::pin!(events.default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                if tx.send(wrap(event)).await.is_err() {
                    return;
                }
            }
            Err(error) => tracing::debug!(%error, "a replication watch failed; retrying"),
        }
    }
}
