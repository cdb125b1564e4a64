//! ABM device sync: Sync Now, the automatic sync every 5 minutes, and full resyncs
//! (`docs/protocol.md` §3.2–§3.4, §9.1). Rules are in [`crate::sync_rules`]; this module runs them
//! against the DEP API and the store.
//!
//! One sync per entry at a time, across instances: a run needs the entry's lease in the
//! database ([`DEFAULT_LEASE_TTL`] unless configured, renewed between pages), taken in the
//! same transaction that records the run, so every Sync Now either starts the run or is
//! answered it. A run's end is recorded while its lease is still held: a `running` run
//! whose holder no longer has a live lease is dead (its instance stopped), is marked
//! interrupted, and the next Sync Now starts a new run from the saved cursor at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use guardmdm_abm::{Client, DepError};
use guardmdm_store::{
    AbmEntry, AbmEntryStore, AssignmentConfigStore, AssignmentStateStore, DeviceSyncStore, EntryId,
    PageWrite, Store, SyncClaim, SyncPhase, SyncRunId, SyncState,
};
pub use guardmdm_store::{PageCounts, StoredAbmDevice, SyncRun};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::assignment::{AppleSide, Assigner};
use crate::health::TokenState;
use crate::lease::{DEFAULT_LEASE_TTL, HeldLease};
use crate::sync_rules::{
    AfterPage, INSTANCE_STOPPED_MESSAGE, Recovery, TOKEN_EXPIRED_MESSAGE, after_error, after_page,
    full_refetch, reduce_page, run_error_message,
};
use crate::{AbmEntryService, Actor, ServiceError};

/// The automatic sync interval: 5 minutes, fixed (README, "Syncing ABM devices").
pub const SYNC_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// The longest a full fetch keeps pages staged before merging them unless configured (see
/// `page_loop`): with Apple's latency a large fetch takes minutes, and its devices are listed
/// as it goes.
pub const DEFAULT_STAGE_MERGE_EVERY: Duration = Duration::from_secs(60);
/// How long Sync Now waits for an assignment pass of the same entry (here or on another
/// instance) before answering that the entry is busy.
const ASSIGN_WAIT: Duration = Duration::from_secs(60);
/// How often Sync Now looks again while an assignment pass holds the entry.
const BUSY_POLL: Duration = Duration::from_millis(50);

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Sync Now.
    Manual,
    /// The 5-minute schedule.
    Scheduled,
    /// An admin's full resync (the cursor reset on purpose).
    FullResync,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Scheduled => "scheduled",
            Self::FullResync => "full_resync",
        }
    }
}

/// The answer to Sync Now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStart {
    /// The run: the new one, or the one already running.
    pub run: SyncRun,
    /// Whether this call started it.
    pub started: bool,
}

/// Per-entry work of this instance.
#[derive(Debug, Default)]
struct LocalWork {
    /// Sync runs going, by entry.
    running: HashMap<EntryId, SyncRunId>,
    /// Entries a Sync Now is claiming (between its check and its run's start).
    claiming: std::collections::HashSet<EntryId>,
    /// Entries with an assignment pass running outside a sync run.
    assigning: std::collections::HashSet<EntryId>,
}

/// What `claim` found for an entry.
enum Local {
    Running(SyncRunId),
    Busy,
    Reserved,
}

/// ABM device sync.
pub struct SyncService<S: ?Sized = dyn Store> {
    store: Arc<S>,
    abm: AbmEntryService<S>,
    holder: Arc<String>,
    /// What this instance is doing per entry; one lock decides, so a sync and an assignment
    /// pass of one entry never overlap here (they would share this instance's lease).
    local: Arc<Mutex<LocalWork>>,
    tasks: TaskTracker,
    cancel: CancellationToken,
    assigner: Assigner<S>,
    /// The entry lease's time to live.
    lease_ttl: Duration,
    /// The longest a full fetch keeps pages staged.
    stage_merge_every: Duration,
}

impl<S: ?Sized> Clone for SyncService<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            abm: self.abm.clone(),
            holder: self.holder.clone(),
            local: self.local.clone(),
            tasks: self.tasks.clone(),
            cancel: self.cancel.clone(),
            assigner: self.assigner.clone(),
            lease_ttl: self.lease_ttl,
            stage_merge_every: self.stage_merge_every,
        }
    }
}

impl<S> SyncService<S>
where
    S: ?Sized
        + AbmEntryStore
        + AssignmentConfigStore
        + AssignmentStateStore
        + DeviceSyncStore
        + 'static,
{
    /// A sync service for this instance; `cancel` stops its runs (graceful shutdown).
    /// `enroll_url` is the default enrollment URL of ADE profiles that give none.
    pub fn new(
        store: Arc<S>,
        abm: AbmEntryService<S>,
        enroll_url: String,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            assigner: Assigner::new(store.clone(), abm.clone(), enroll_url),
            store,
            abm,
            holder: Arc::new(format!("instance-{}", Uuid::new_v4().simple())),
            local: Arc::default(),
            tasks: TaskTracker::new(),
            cancel,
            lease_ttl: DEFAULT_LEASE_TTL,
            stage_merge_every: DEFAULT_STAGE_MERGE_EVERY,
        }
    }

    /// Merges a running full fetch's staged pages at least every `every` instead of
    /// [`DEFAULT_STAGE_MERGE_EVERY`].
    #[must_use]
    pub fn with_stage_merge_every(mut self, every: Duration) -> Self {
        self.stage_merge_every = every;
        self
    }

    /// Uses `ttl` as the entry lease's time to live instead of [`DEFAULT_LEASE_TTL`]: how
    /// long after an instance stopped its runs are taken over. Call before cloning.
    #[must_use]
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self.assigner.set_lease_ttl(ttl);
        self
    }

    /// At the start-up of a server whose store only it serves (SQLite): every sync lease and
    /// every run still `running` are a previous, stopped process's. Ends those runs and drops
    /// those leases, so Sync Now starts a new run at once. Returns how many runs it ended.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn recover_sole_instance(&self) -> Result<u64, ServiceError> {
        self.store.clear_sync_leases().await?;
        let ended = self
            .store
            .end_dead_runs(None, guardmdm_store::now(), INSTANCE_STOPPED_MESSAGE)
            .await?;
        if ended > 0 {
            tracing::warn!(
                runs = ended,
                "sync runs left running by a stopped GuardMDM were marked interrupted; the next sync continues from the saved cursor"
            );
        }
        Ok(ended)
    }

    /// The default enrollment URL of ADE profiles that give none.
    pub fn enroll_url(&self) -> &str {
        self.assigner.enroll_url()
    }

    /// This instance's lease-holder name.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Sync Now: starts a run of `name` in the background, or returns the one already running
    /// (here or on another instance). `full_resync` resets the cursor first.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; [`ServiceError::Invalid`] when the entry has no token yet.
    pub async fn sync_now(
        &self,
        actor: &Actor,
        name: &str,
        full_resync: bool,
    ) -> Result<SyncStart, ServiceError> {
        let entry = self.abm.entry(name).await?;
        if entry.server_token.is_none() {
            return Err(ServiceError::Invalid(format!(
                "{name:?} has no server token yet: upload one before syncing"
            )));
        }
        let trigger = if full_resync {
            Trigger::FullResync
        } else {
            Trigger::Manual
        };
        let start = self.start(&entry, trigger).await?;
        if start.started {
            tracing::info!(abm_entry = %name, actor = %actor.audit_name(), run = start.run.id.get(), trigger = trigger.as_str(), "sync started");
        }
        Ok(start)
    }

    /// One tick of the schedule: starts a run for every entry whose token is usable and that
    /// is not syncing already. Entries with an expired token, unsigned terms or a rejected
    /// token are skipped until an admin acts (a new token, or Sync Now).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn run_scheduled(&self) -> Result<Vec<SyncStart>, ServiceError> {
        let mut started = Vec::new();
        for view in self.abm.list().await? {
            if !matches!(view.health.state, TokenState::Active | TokenState::Expiring) {
                continue;
            }
            let entry = self.abm.entry(&view.name).await?;
            match self.start(&entry, Trigger::Scheduled).await {
                Ok(s) if s.started => started.push(s),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(abm_entry = %view.name, error = %e, "scheduled sync not started")
                }
            }
        }
        Ok(started)
    }

    /// Runs [`Self::run_scheduled`] now and every [`SYNC_INTERVAL`] (or `every`, in tests)
    /// until cancelled.
    pub async fn run_schedule(self, every: Duration) {
        let cancel = self.cancel.clone();
        self.run_schedule_until(every, cancel).await;
    }

    /// [`Self::run_schedule`] until `cancel` (which may differ from the service's own).
    pub async fn run_schedule_until(self, every: Duration, cancel: CancellationToken) {
        crate::jobs::run_every(every, cancel, || async {
            if let Err(e) = self.run_scheduled().await {
                tracing::error!(error = %e, "scheduled ABM sync failed to start");
            }
        })
        .await;
    }

    /// Waits for the runs this instance started to end (after cancellation, at shutdown).
    pub async fn wait(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Recent runs of an entry, newest first; a running one shows its progress so far.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`].
    pub async fn runs(&self, name: &str, limit: u32) -> Result<Vec<SyncRun>, ServiceError> {
        let entry = self.abm.entry(name).await?;
        let limit = limit.clamp(1, 500);
        let runs = self.store.list_sync_runs(entry.id, limit).await?;
        if self.ended_dead_runs(&runs).await? {
            return Ok(self.store.list_sync_runs(entry.id, limit).await?);
        }
        Ok(runs)
    }

    /// When `runs` show a run running on another instance (or a previous process of this
    /// one), ends the entry's runs whose holder stopped renewing its lease, so nobody follows
    /// a dead run. Whether it ended any.
    async fn ended_dead_runs(&self, runs: &[SyncRun]) -> Result<bool, ServiceError> {
        let Some(foreign) = runs
            .iter()
            .find(|r| r.outcome == "running" && r.holder != *self.holder)
        else {
            return Ok(false);
        };
        let ended = self
            .store
            .end_dead_runs(
                Some(foreign.entry_id),
                guardmdm_store::now(),
                INSTANCE_STOPPED_MESSAGE,
            )
            .await?;
        Ok(ended > 0)
    }

    /// One run of an entry.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown entry or a run of another entry.
    pub async fn run(&self, name: &str, run_id: SyncRunId) -> Result<SyncRun, ServiceError> {
        let entry = self.abm.entry(name).await?;
        match self.store.get_sync_run(run_id).await {
            Ok(run) if run.entry_id == entry.id => {
                if self.ended_dead_runs(std::slice::from_ref(&run)).await? {
                    return Ok(self.store.get_sync_run(run_id).await?);
                }
                Ok(run)
            }
            Ok(_) | Err(guardmdm_store::StoreError::NotFound) => Err(ServiceError::NotFound(
                format!("no sync run {run_id} of {name:?}"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Claims the entry and launches its run in a task of their own: a caller that goes away
    /// (a client that disconnects) cannot leave a half-made claim behind, such as an entry
    /// reserved here forever, a claim transaction dropped midway, or a run nobody executes.
    async fn start(&self, entry: &AbmEntry, trigger: Trigger) -> Result<SyncStart, ServiceError> {
        let this = self.clone();
        let entry = entry.clone();
        self.tasks
            .spawn(async move {
                let start = this.claim(&entry, trigger).await?;
                if start.started {
                    let runner = this.clone();
                    let run_id = start.run.id;
                    this.tasks.spawn(async move {
                        runner.run_claimed(&entry, run_id, trigger).await;
                    });
                }
                Ok(start)
            })
            .await
            .map_err(|e| ServiceError::Internal(format!("claiming the sync: {e}")))?
    }

    /// Runs a sync of `name` in the caller's task, to its end: what a crash test aborts at an
    /// arbitrary moment. `None` when a sync of the entry is running already.
    ///
    /// # Errors
    /// As [`Self::sync_now`].
    pub async fn sync_inline(
        &self,
        name: &str,
        trigger: Trigger,
    ) -> Result<Option<SyncRun>, ServiceError> {
        let entry = self.abm.entry(name).await?;
        // The claim in a task of its own, as in [`Self::start`]; the run in the caller's.
        let claimer = self.clone();
        let claimed = entry.clone();
        let start = self
            .tasks
            .spawn(async move { claimer.claim(&claimed, trigger).await })
            .await
            .map_err(|e| ServiceError::Internal(format!("claiming the sync: {e}")))??;
        if !start.started {
            return Ok(None);
        }
        self.run_claimed(&entry, start.run.id, trigger).await;
        Ok(Some(self.store.get_sync_run(start.run.id).await?))
    }

    /// Takes the entry's lease and records a new run; or finds the run already going.
    async fn claim(&self, entry: &AbmEntry, trigger: Trigger) -> Result<SyncStart, ServiceError> {
        // A run of this entry here: answer it. An assignment pass here (after a configuration
        // change): wait for it, passes are short. Otherwise reserve the entry.
        let mut waited = Duration::ZERO;
        loop {
            let found = match self.local.lock() {
                Ok(mut l) => {
                    if let Some(run_id) = l.running.get(&entry.id) {
                        Local::Running(*run_id)
                    } else if l.assigning.contains(&entry.id) || l.claiming.contains(&entry.id) {
                        Local::Busy
                    } else {
                        l.claiming.insert(entry.id);
                        Local::Reserved
                    }
                }
                Err(_) => Local::Busy,
            };
            match found {
                Local::Running(run_id) => {
                    let run = self.store.get_sync_run(run_id).await?;
                    if run.outcome == "running" {
                        return Ok(SyncStart {
                            run,
                            started: false,
                        });
                    }
                    // Ended a moment ago and still giving its lease back: start the next.
                    tokio::time::sleep(BUSY_POLL).await;
                    waited += BUSY_POLL;
                }
                Local::Reserved => break,
                Local::Busy if waited >= ASSIGN_WAIT => {
                    return Err(ServiceError::Conflict(format!(
                        "profiles are being assigned to the devices of {:?}; try again shortly",
                        entry.name
                    )));
                }
                Local::Busy => {
                    tokio::time::sleep(BUSY_POLL).await;
                    waited += BUSY_POLL;
                }
            }
        }
        let claimed = self.claim_reserved(entry, trigger).await;
        if let Ok(mut l) = self.local.lock() {
            l.claiming.remove(&entry.id);
            if let Ok(start) = &claimed
                && start.started
            {
                l.running.insert(entry.id, start.run.id);
            }
        }
        claimed
    }

    /// [`Self::claim`] once the entry is reserved in this instance: the lease and the run in
    /// one transaction (after ending the entry's dead runs), or the run another instance is
    /// executing. While another instance holds the lease without a run (an assignment pass,
    /// or a run that has just ended), looks again for a while.
    async fn claim_reserved(
        &self,
        entry: &AbmEntry,
        trigger: Trigger,
    ) -> Result<SyncStart, ServiceError> {
        let mut waited = Duration::ZERO;
        loop {
            let claim = self
                .store
                .claim_sync_run(
                    entry.id,
                    trigger.as_str(),
                    &self.holder,
                    guardmdm_store::now(),
                    crate::lease::ttl_secs(self.lease_ttl),
                    INSTANCE_STOPPED_MESSAGE,
                )
                .await?;
            match claim {
                SyncClaim::Started(run) => return Ok(SyncStart { run, started: true }),
                SyncClaim::Running(run) => {
                    return Ok(SyncStart {
                        run,
                        started: false,
                    });
                }
                SyncClaim::Held { holder } if waited >= ASSIGN_WAIT => {
                    return Err(ServiceError::Conflict(format!(
                        "another GuardMDM instance ({holder}) is assigning profiles to the devices of {:?}; try again shortly",
                        entry.name
                    )));
                }
                SyncClaim::Held { .. } => {
                    tokio::time::sleep(BUSY_POLL).await;
                    waited += BUSY_POLL;
                }
            }
        }
    }

    /// Executes a claimed run, records its end, and only then gives the lease back: a run
    /// shown `running` always has its holder's live lease, so one without is dead. Whoever
    /// asks in between waits for the lease (see [`Self::claim_reserved`]).
    async fn run_claimed(&self, entry: &AbmEntry, run_id: SyncRunId, trigger: Trigger) {
        let (outcome, error) = self.execute(entry, run_id, trigger).await;
        if outcome != "interrupted" {
            self.assign_passes(entry).await;
        }
        let at = guardmdm_store::now();
        if let Err(e) = self
            .store
            .finish_sync_run(run_id, outcome, error.as_deref(), at)
            .await
        {
            tracing::error!(abm_entry = %entry.name, error = %e, "could not record the end of a sync run");
        }
        if let Err(e) = self.store.release_sync_lease(entry.id, &self.holder).await {
            tracing::warn!(abm_entry = %entry.name, error = %e, "could not release the sync lease");
        }
        if let Ok(mut l) = self.local.lock() {
            l.running.remove(&entry.id);
        }
        tracing::info!(abm_entry = %entry.name, run = run_id.get(), outcome, error = error.as_deref().unwrap_or(""), "sync ended");
        // A configuration change that arrived while this run was finishing was left to it:
        // pass again if its last pass did not see it.
        if let (Ok(current), Ok(Some(pass))) = (
            self.store.assignment_generation().await,
            self.store.last_assignment_pass(entry.id).await,
        ) && current > pass.generation
            && !self.cancel.is_cancelled()
        {
            let this = self.clone();
            let entry = entry.clone();
            self.tasks.spawn(async move {
                if let Err(e) = this.assign_entry(&entry).await {
                    tracing::warn!(abm_entry = %entry.name, error = %e, "assignment pass not run");
                }
            });
        }
    }

    /// Runs one sync to its end: the outcome and the admin-facing error.
    async fn execute(
        &self,
        entry: &AbmEntry,
        run_id: SyncRunId,
        trigger: Trigger,
    ) -> (&'static str, Option<String>) {
        match self.execute_inner(entry, run_id, trigger).await {
            Ok(outcome) => (outcome, None),
            Err(SyncFailure::Apple(err)) => {
                if let Some(problem) = err.token_problem()
                    && let Err(e) = self.abm.report_problem(&entry.name, Some(problem)).await
                {
                    tracing::error!(abm_entry = %entry.name, error = %e, "could not record the token problem");
                }
                tracing::warn!(abm_entry = %entry.name, error = %err, "sync stopped");
                ("failed", Some(run_error_message(&err)))
            }
            Err(SyncFailure::Stopped(message)) => ("failed", Some(message)),
            Err(SyncFailure::Anomaly(message)) => ("anomaly", Some(message)),
            Err(SyncFailure::Interrupted) => (
                "interrupted",
                Some("GuardMDM shut down during the sync".to_string()),
            ),
            Err(SyncFailure::Internal(e)) => {
                tracing::error!(abm_entry = %entry.name, error = %e, "sync failed");
                ("failed", Some(format!("internal error: {e}")))
            }
        }
    }

    async fn execute_inner(
        &self,
        entry: &AbmEntry,
        run_id: SyncRunId,
        trigger: Trigger,
    ) -> Result<&'static str, SyncFailure> {
        let expired = entry
            .server_token
            .as_ref()
            .is_some_and(|t| t.expires_at <= time::OffsetDateTime::now_utc());
        if expired {
            return Err(SyncFailure::Stopped(TOKEN_EXPIRED_MESSAGE.to_string()));
        }
        let tokens = self
            .abm
            .credentials(&entry.name)
            .await
            .map_err(|e| SyncFailure::Internal(e.to_string()))?
            .ok_or_else(|| SyncFailure::Stopped("no server token: upload one first".to_string()))?;
        let client = self
            .abm
            .client_for(entry.abm_url.as_deref(), &tokens)
            .map_err(|e| SyncFailure::Stopped(e.to_string()))?;
        let mut state = self.store.sync_state(entry.id).await?;
        if trigger == Trigger::FullResync {
            state = full_refetch(&state);
            self.save(entry.id, &state).await?;
        }
        // Records a killed run staged are merged before anything else is written.
        self.merge_staged(entry).await?;
        let looped = self.page_loop(entry, run_id, &client, state).await;
        // A run that ends well has merged all it staged (see `page_loop`). What a failed
        // fetch staged is listed now rather than after the next run; the run's own error is
        // the one reported.
        if matches!(&looped, Err(failure) if !matches!(failure, SyncFailure::Interrupted))
            && let Err(SyncFailure::Internal(e)) = self.merge_staged(entry).await
        {
            tracing::warn!(abm_entry = %entry.name, error = %e, "staged devices not merged");
        }
        let outcome = looped?;
        if entry.problem.is_some() {
            self.abm
                .report_problem(&entry.name, None)
                .await
                .map_err(|e| SyncFailure::Internal(e.to_string()))?;
        }
        Ok(outcome)
    }

    async fn page_loop(
        &self,
        entry: &AbmEntry,
        run_id: SyncRunId,
        client: &Client,
        mut state: SyncState,
    ) -> Result<&'static str, SyncFailure> {
        let limit = Some(entry.batch_size);
        let mut refetched = false;
        let mut lease = HeldLease::new(self.store.as_ref(), entry.id, &self.holder, self.lease_ttl);
        let mut ahead: Prefetched = None;
        // Pages of a full fetch are staged and merged in bulk: when the fetch ends, before
        // any page of changes is stored (a staged record merged after one would undo it), and
        // at least every `stage_merge_every` so a slow fetch is listed as it goes.
        let mut staged_since: Option<Instant> = None;
        loop {
            if self.cancel.is_cancelled() {
                return Err(SyncFailure::Interrupted);
            }
            if !lease.keep().await? {
                return Err(SyncFailure::Stopped(
                    "the sync lease was lost to another instance".to_string(),
                ));
            }
            let answer = match ahead.take() {
                Some(prefetched) => prefetched,
                None => fetch_page(client, &state, limit).await,
            };
            let page = match answer {
                Ok(page) => page,
                Err(err) => match after_error(&state, &err, refetched) {
                    Recovery::SwitchToSync(next) | Recovery::Refetch(next) => {
                        refetched |=
                            err.is_cursor_reset() || matches!(err, DepError::CursorRequired);
                        tracing::info!(abm_entry = %entry.name, error = %err, "cursor recovery");
                        state = next;
                        self.save(entry.id, &state).await?;
                        continue;
                    }
                    Recovery::Stop => return Err(SyncFailure::Apple(err)),
                },
            };
            let devices = reduce_page(&page.devices);
            let (saved, next) = after_page(&state, page.cursor.clone(), page.more_to_follow);
            let write = PageWrite {
                entry_id: entry.id,
                devices: &devices,
                state: &saved,
                run_id,
                at: guardmdm_store::now(),
            };
            let (counts, prefetched) = self
                .store_page(entry, &write, &next, client, limit, &mut staged_since)
                .await?;
            ahead = prefetched;
            tracing::info!(
                abm_entry = %entry.name, phase = saved.phase.as_str(), devices = devices.len(),
                added = counts.added, modified = counts.modified, removed = counts.removed,
                more = page.more_to_follow, "ABM page stored"
            );
            state = saved;
            match next {
                AfterPage::Continue(next) => state = next,
                AfterPage::FetchComplete(synced) => {
                    self.complete_fetch(entry, run_id, &state, &synced).await?;
                    state = synced;
                }
                AfterPage::Done => return Ok("succeeded"),
                AfterPage::RepeatedCursor => {
                    tracing::warn!(abm_entry = %entry.name, "Apple repeated the cursor with more_to_follow; stopping this run");
                    return Err(SyncFailure::Anomaly(
                        "Apple answered the same cursor again with more_to_follow (a known Apple quirk): the run stopped instead of looping; the next sync continues from the saved cursor".to_string(),
                    ));
                }
            }
        }
    }

    /// Stores one page (`write`): staged during a full fetch, applied to the devices
    /// otherwise. While it is stored, the page after it (`next`) is already being fetched
    /// with the cursor Apple just gave: the store and Apple's latency overlap; the cursor
    /// saved is still only ever the stored page's. Staged pages are merged before a page of
    /// changes is applied (a staged record merged after one would undo it), when the fetch
    /// ends, and at least every `stage_merge_every` so a slow fetch is listed as it goes
    /// (`staged_since`: when the oldest page not merged yet was staged). The page's counts,
    /// and the next page if it was fetched.
    async fn store_page(
        &self,
        entry: &AbmEntry,
        write: &PageWrite<'_>,
        next: &AfterPage,
        client: &Client,
        limit: Option<u32>,
        staged_since: &mut Option<Instant>,
    ) -> Result<(PageCounts, Prefetched), SyncFailure> {
        let prefetch = async {
            match next {
                AfterPage::Continue(next_state) => {
                    Some(fetch_page(client, next_state, limit).await)
                }
                _ => None,
            }
        };
        let staging = write.state.phase == SyncPhase::Fetch;
        if !staging && staged_since.take().is_some() {
            self.merge_staged(entry).await?;
        }
        let store = async {
            if staging {
                self.store.stage_device_page(write).await
            } else {
                self.store.apply_device_page(write).await
            }
        };
        let (stored, prefetched) = tokio::join!(store, prefetch);
        let counts = stored?;
        if staging {
            let since = *staged_since.get_or_insert_with(Instant::now);
            let fetch_ended = matches!(next, AfterPage::FetchComplete(_));
            if fetch_ended || since.elapsed() >= self.stage_merge_every {
                self.merge_staged(entry).await?;
                *staged_since = None;
            }
        }
        Ok((counts, prefetched))
    }

    /// At the end of a full fetch (`state`, its last page stored): removes the devices the
    /// fetch did not see when it was asked to reconcile, and saves `synced`, the state to sync
    /// from (the reconciliation saves it in its own transaction).
    async fn complete_fetch(
        &self,
        entry: &AbmEntry,
        run_id: SyncRunId,
        state: &SyncState,
        synced: &SyncState,
    ) -> Result<(), SyncFailure> {
        if state.reconcile {
            let removed = self
                .store
                .reconcile_unseen(
                    entry.id,
                    state.generation,
                    synced,
                    run_id,
                    guardmdm_store::now(),
                )
                .await?;
            tracing::info!(abm_entry = %entry.name, removed, "full fetch reconciled");
        } else {
            self.save(entry.id, synced).await?;
        }
        Ok(())
    }

    /// Runs assignment passes over an entry while holding its lease: one, and another while
    /// the configuration changed during the last (at most three in a row; the next sync picks
    /// up anything later).
    async fn assign_passes(&self, entry: &AbmEntry) {
        for _ in 0..3 {
            if self.cancel.is_cancelled() {
                return;
            }
            // Re-read: the sync may have recorded a token problem.
            let entry = match self.abm.entry(&entry.name).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(abm_entry = %entry.name, error = %e, "assignment pass skipped");
                    return;
                }
            };
            let client = self.usable_client(&entry).await;
            let apple = match &client {
                Ok(c) => AppleSide::Client(c),
                Err(why) => AppleSide::Unavailable(why.clone()),
            };
            let pass = match self.assigner.run(&entry, apple, &self.holder).await {
                Ok(pass) => pass,
                Err(e) => {
                    tracing::error!(abm_entry = %entry.name, error = %e, "assignment pass failed");
                    return;
                }
            };
            match self.store.assignment_generation().await {
                Ok(current) if current > pass.generation => continue,
                Ok(_) => return,
                Err(e) => {
                    tracing::error!(abm_entry = %entry.name, error = %e, "assignment pass check failed");
                    return;
                }
            }
        }
    }

    /// A DEP client for the entry, or why there can be none (no token, expired, or a problem
    /// Apple reported that needs an admin).
    async fn usable_client(&self, entry: &AbmEntry) -> Result<Client, String> {
        let expired = entry
            .server_token
            .as_ref()
            .is_some_and(|t| t.expires_at <= time::OffsetDateTime::now_utc());
        if expired {
            return Err(TOKEN_EXPIRED_MESSAGE.to_string());
        }
        if let Some(problem) = &entry.problem {
            return Err(format!("the ABM token has a problem: {}", problem.message));
        }
        let tokens = self
            .abm
            .credentials(&entry.name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "no server token: upload one first".to_string())?;
        self.abm
            .client_for(entry.abm_url.as_deref(), &tokens)
            .map_err(|e| e.to_string())
    }

    /// After a change to profiles, groups, defaults or explicit assignments: runs an
    /// assignment pass over every entry in the background. An entry whose lease another run
    /// holds is left to that run, which passes again when it sees the configuration changed.
    pub fn assign_now(&self) {
        let this = self.clone();
        self.tasks.spawn(async move {
            let entries = match this.store.list_abm_entries().await {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "assignment passes not started");
                    return;
                }
            };
            for entry in entries {
                if let Err(e) = this.assign_entry(&entry).await {
                    tracing::warn!(abm_entry = %entry.name, error = %e, "assignment pass not run");
                }
            }
        });
    }

    /// Runs assignment passes over one entry now, in the caller's task, if its lease is free.
    /// Returns whether it ran.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn assign_entry(&self, entry: &AbmEntry) -> Result<bool, ServiceError> {
        // A sync run of this instance passes when it ends; a second local pass would share
        // this instance's lease with it and race its writes.
        let reserved = self.local.lock().is_ok_and(|mut l| {
            !l.running.contains_key(&entry.id)
                && !l.claiming.contains(&entry.id)
                && l.assigning.insert(entry.id)
        });
        if !reserved {
            return Ok(false);
        }
        let result = self.assign_leased(entry).await;
        if let Ok(mut l) = self.local.lock() {
            l.assigning.remove(&entry.id);
        }
        result
    }

    async fn assign_leased(&self, entry: &AbmEntry) -> Result<bool, ServiceError> {
        let now = guardmdm_store::now();
        if !self
            .store
            .try_acquire_sync_lease(
                entry.id,
                &self.holder,
                now,
                crate::lease::ttl_secs(self.lease_ttl),
            )
            .await?
        {
            return Ok(false);
        }
        self.assign_passes(entry).await;
        self.store
            .release_sync_lease(entry.id, &self.holder)
            .await?;
        Ok(true)
    }

    /// Merges what the entry's full fetches staged into its devices.
    async fn merge_staged(&self, entry: &AbmEntry) -> Result<(), SyncFailure> {
        let started = Instant::now();
        if self
            .store
            .merge_staged_devices(entry.id, guardmdm_store::now())
            .await?
        {
            tracing::info!(abm_entry = %entry.name, took = ?started.elapsed(), "staged devices merged");
        }
        Ok(())
    }

    async fn save(&self, entry_id: EntryId, state: &SyncState) -> Result<(), SyncFailure> {
        self.store
            .save_sync_state(entry_id, state, guardmdm_store::now())
            .await
            .map_err(SyncFailure::from)
    }
}

/// The page after the one being stored, when it was fetched meanwhile.
type Prefetched = Option<Result<guardmdm_abm::DevicePage, DepError>>;

/// One fetch or sync request for `state`.
async fn fetch_page(
    client: &Client,
    state: &SyncState,
    limit: Option<u32>,
) -> Result<guardmdm_abm::DevicePage, DepError> {
    match state.phase {
        SyncPhase::Fetch => client.fetch_devices(state.cursor.as_deref(), limit).await,
        SyncPhase::Sync => match state.cursor.as_deref() {
            Some(cursor) => client.sync_devices(cursor, limit).await,
            None => Err(DepError::CursorRequired),
        },
    }
}

enum SyncFailure {
    Apple(DepError),
    Anomaly(String),
    Stopped(String),
    Interrupted,
    Internal(String),
}

impl From<guardmdm_store::StoreError> for SyncFailure {
    fn from(e: guardmdm_store::StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}
