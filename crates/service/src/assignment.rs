//! The assignment pass: for one ABM entry, resolve every present device's profile, define
//! the profile versions Apple does not have yet, send the devices that need it in batches of
//! at most 1000 serials per profile, and record each device's state.
//!
//! The pass runs under the entry's sync lease (after every sync, and after every change to
//! profiles, groups, defaults or explicit assignments), so one instance at a time works on
//! an entry. It keeps nothing in memory between passes: what to send is derived from the
//! stored records each time (see [`crate::assign_rules`]).

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use guardmdm_abm::{Client, DepError};
use guardmdm_store::{
    AbmEntry, AbmEntryStore, AssignmentConfigStore, AssignmentInput, AssignmentPass,
    AssignmentRecord, AssignmentStateStore, DeviceSyncStore, EntryId, ProfileDefinition, ProfileId,
    Store,
};

use crate::ServiceError;
use crate::abm_entries::AbmEntryService;
use crate::assign_rules::{self, Plan};
use crate::group_rule::DeviceFacts;
use crate::lease::HeldLease;
use crate::profile_spec::{self, ProfileSpec};
use crate::resolve::Resolver;

/// Devices read per step of a pass.
pub const PASS_CHUNK: u32 = 1000;
/// A full pass (every device) at least this often, even when nothing was configured: it
/// heals whatever an incremental pass could miss.
pub const FULL_PASS_EVERY: time::Duration = time::Duration::hours(24);
/// How far before the last pass an incremental pass looks for devices Apple changed: room for
/// clock differences between instances (NTP keeps them well under a second).
pub const CLOCK_MARGIN: time::Duration = time::Duration::seconds(30);

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassSummary {
    /// Whether every device was looked at (else only those Apple changed since the last pass,
    /// and those pending or due for a retry).
    pub full: bool,
    /// When the last full pass started (this one's start when `full`).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_full_at: Option<time::OffsetDateTime>,
    /// When this pass started (absent from passes recorded before it was kept).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<time::OffsetDateTime>,
    /// Present devices resolved.
    pub devices: u64,
    /// Devices with no profile.
    pub unassigned: u64,
    /// Serials sent to Apple.
    pub sent: u64,
    /// Answered `SUCCESS`.
    pub succeeded: u64,
    /// Answered `NOT_ACCESSIBLE`.
    pub not_accessible: u64,
    /// Answered `FAILED`.
    pub failed: u64,
    /// Answered `THROTTLED`.
    pub throttled: u64,
    /// Serials whose call failed (they stay pending).
    pub call_failures: u64,
    /// Profile versions defined at Apple in this pass (`name v3`).
    pub defined: Vec<String>,
    /// Records written.
    pub written: u64,
}

/// Why nothing can be sent to Apple for an entry right now (the pass still resolves and
/// records every device).
pub type Unavailable = String;

/// Runs passes. Cheap to clone.
pub struct Assigner<S: ?Sized = dyn Store> {
    store: Arc<S>,
    abm: AbmEntryService<S>,
    enroll_url: String,
    /// The entry lease's time to live; a pass renews it after a quarter of it.
    lease_ttl: std::time::Duration,
}

impl<S: ?Sized> Clone for Assigner<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            abm: self.abm.clone(),
            enroll_url: self.enroll_url.clone(),
            lease_ttl: self.lease_ttl,
        }
    }
}

/// Whether a pass starting at `started` over configuration `generation` can be incremental,
/// given the entry's `last` pass: the filter that finds the devices it looks at (those changed
/// since the last pass, and those due again), or `None` for a full pass (the configuration
/// changed since, or the last full pass is [`FULL_PASS_EVERY`] old); and when the last full
/// pass started.
fn incremental_filter(
    last: Option<&AssignmentPass>,
    generation: i64,
    started: time::OffsetDateTime,
) -> (
    Option<guardmdm_store::InputFilter>,
    Option<time::OffsetDateTime>,
) {
    let last_summary: Option<PassSummary> =
        last.and_then(|p| serde_json::from_value(p.summary.clone()).ok());
    let last_full_at = last_summary.as_ref().and_then(|s| s.last_full_at);
    let only = match (last, last_full_at) {
        (Some(last), Some(full_at))
            if last.generation == generation && started - full_at < FULL_PASS_EVERY =>
        {
            Some(guardmdm_store::InputFilter {
                changed_after: assign_rules::incremental_since(
                    last_summary.as_ref().and_then(|s| s.started_at),
                    last.finished_at,
                    last.error.is_some(),
                    CLOCK_MARGIN,
                ),
                due_by: started,
            })
        }
        _ => None,
    };
    (only, last_full_at)
}

/// The Apple side of one pass: a client, or why there is none.
pub(crate) enum AppleSide<'a> {
    /// Send with this client.
    Client(&'a Client),
    /// Nothing can be sent: why.
    Unavailable(Unavailable),
}

struct PassState<'a> {
    entry: &'a AbmEntry,
    apple: AppleSide<'a>,
    resolver: Resolver,
    specs: HashMap<ProfileId, (String, serde_json::Value)>,
    definitions: HashMap<(ProfileId, i64), String>,
    define_errors: HashMap<(ProfileId, i64), String>,
    summary: PassSummary,
    stop: Option<String>,
}

/// A chunk of a pass to read.
enum ChunkRead<'a> {
    /// The present devices after this serial (from the first for `None`).
    After(Option<String>),
    /// These serials (an incremental pass's candidates).
    Only(&'a [String]),
}

/// Where a pass is in its walk: through every present device, or through its candidates.
struct Walk<'a> {
    /// An incremental pass's candidates still to read; `None` for a full pass.
    candidates: Option<std::slice::Chunks<'a, String>>,
}

impl<'a> Walk<'a> {
    /// What to read after `previous` (the chunk just read; `None` before the first), or
    /// nothing when the walk has ended.
    fn next(&mut self, previous: Option<&[AssignmentInput]>) -> Option<ChunkRead<'a>> {
        match (&mut self.candidates, previous) {
            (Some(chunks), _) => chunks.next().map(ChunkRead::Only),
            (None, None) => Some(ChunkRead::After(None)),
            // A short chunk was the walk's last.
            (None, Some(chunk)) if chunk.len() < PASS_CHUNK as usize => None,
            (None, Some(chunk)) => Some(ChunkRead::After(
                chunk.last().map(|i| i.device.device.serial_number.clone()),
            )),
        }
    }
}

impl<S> Assigner<S>
where
    S: ?Sized
        + AbmEntryStore
        + AssignmentConfigStore
        + AssignmentStateStore
        + DeviceSyncStore
        + 'static,
{
    /// An assigner; `enroll_url` is the default enrollment URL of profiles that give none.
    pub fn new(store: Arc<S>, abm: AbmEntryService<S>, enroll_url: String) -> Self {
        Self {
            store,
            abm,
            enroll_url,
            lease_ttl: crate::lease::DEFAULT_LEASE_TTL,
        }
    }

    /// Uses `ttl` as the entry lease's time to live.
    pub(crate) fn set_lease_ttl(&mut self, ttl: std::time::Duration) {
        self.lease_ttl = ttl;
    }

    /// The default enrollment URL.
    pub fn enroll_url(&self) -> &str {
        &self.enroll_url
    }

    /// Runs one pass over an entry. The caller holds the entry's sync lease.
    ///
    /// # Errors
    /// Storage failures; Apple's refusals are recorded per device and in the pass, not
    /// returned.
    pub(crate) async fn run(
        &self,
        entry: &AbmEntry,
        apple: AppleSide<'_>,
        holder: &str,
    ) -> Result<AssignmentPass, ServiceError> {
        let config = self.store.assignment_config().await?;
        let specs = config
            .profiles
            .iter()
            .map(|p| (p.id, (p.name.clone(), p.spec.clone())))
            .collect();
        let definitions = self
            .store
            .entry_profile_definitions(entry.id)
            .await?
            .into_iter()
            .map(|d| ((d.profile_id, d.version), d.apple_uuid))
            .collect();
        let started = guardmdm_store::now();
        let last = self.store.last_assignment_pass(entry.id).await?;
        let (only, last_full_at) = incremental_filter(last.as_ref(), config.generation, started);
        let mut state = PassState {
            entry,
            apple,
            resolver: Resolver::new(&config),
            specs,
            definitions,
            define_errors: HashMap::new(),
            summary: PassSummary {
                full: only.is_none(),
                started_at: Some(started),
                last_full_at: if only.is_none() {
                    Some(started)
                } else {
                    last_full_at
                },
                ..PassSummary::default()
            },
            stop: None,
        };
        self.walk(&mut state, only.as_ref(), holder).await?;
        self.finish(&state, config.generation).await
    }

    /// Works through the pass's devices chunk by chunk, renewing the lease between chunks
    /// (a lost lease stops the pass, recorded in `state.stop`). An incremental pass (`only`)
    /// looks only at the devices its filter finds (through indexes); a full one walks every
    /// present device.
    async fn walk(
        &self,
        state: &mut PassState<'_>,
        only: Option<&guardmdm_store::InputFilter>,
        holder: &str,
    ) -> Result<(), ServiceError> {
        let entry = state.entry;
        let candidates = match only {
            Some(filter) => Some(self.store.assignment_candidates(entry.id, filter).await?),
            None => None,
        };
        // The next chunk is read while the current one is resolved, sent and written: the
        // chunks are disjoint ranges of serials, so the read cannot see the write, and on
        // SQLite the two run on two pooled connections (two threads) at once.
        let mut walk = Walk {
            candidates: candidates.as_deref().map(|c| c.chunks(PASS_CHUNK as usize)),
        };
        let mut inputs = match walk.next(None) {
            Some(read) => self.read_chunk(entry.id, read).await?,
            None => Vec::new(),
        };
        let mut lease = HeldLease::new(self.store.as_ref(), entry.id, holder, self.lease_ttl);
        loop {
            if !lease.keep().await? {
                state.stop = Some("the lease was lost to another instance".to_string());
                break;
            }
            let next = walk.next(Some(&inputs));
            if inputs.is_empty() && next.is_none() {
                break;
            }
            let read = async {
                match next {
                    Some(read) => self.read_chunk(entry.id, read).await,
                    None => Ok(Vec::new()),
                }
            };
            let (done, read) = tokio::join!(self.chunk(state, inputs), read);
            done?;
            inputs = read?;
        }
        Ok(())
    }

    /// Ends a pass that applied `generation`: marks the records of devices that left ABM
    /// removed and records the pass with its summary.
    async fn finish(
        &self,
        state: &PassState<'_>,
        generation: i64,
    ) -> Result<AssignmentPass, ServiceError> {
        let entry = state.entry;
        let now = guardmdm_store::now();
        self.store.mark_removed_assignments(entry.id, now).await?;
        let pass = AssignmentPass {
            entry_id: entry.id,
            generation,
            finished_at: now,
            summary: serde_json::to_value(&state.summary).unwrap_or_default(),
            error: state.stop.clone(),
        };
        self.store.finish_assignment_pass(&pass).await?;
        tracing::info!(
            abm_entry = %entry.name,
            full = state.summary.full,
            devices = state.summary.devices,
            sent = state.summary.sent,
            succeeded = state.summary.succeeded,
            failed = state.summary.failed,
            throttled = state.summary.throttled,
            error = state.stop.as_deref().unwrap_or(""),
            "assignment pass done"
        );
        Ok(pass)
    }

    /// Reads a chunk of inputs.
    async fn read_chunk(
        &self,
        entry_id: EntryId,
        read: ChunkRead<'_>,
    ) -> Result<Vec<AssignmentInput>, ServiceError> {
        let (after, only) = match &read {
            ChunkRead::After(after) => (after.as_deref(), None),
            ChunkRead::Only(serials) => (None, Some(*serials)),
        };
        Ok(self
            .store
            .assignment_inputs(entry_id, after, PASS_CHUNK, only)
            .await?)
    }

    async fn chunk(
        &self,
        state: &mut PassState<'_>,
        inputs: Vec<AssignmentInput>,
    ) -> Result<(), ServiceError> {
        let now = guardmdm_store::now();
        let mut plans: Vec<(Plan, Option<AssignmentRecord>)> = Vec::with_capacity(inputs.len());
        for input in inputs {
            let facts = DeviceFacts::new(&input.device.device, &state.entry.name);
            let resolution =
                state
                    .resolver
                    .resolve(&facts, input.explicit_profile, &input.static_groups);
            let target = match resolution.profile_id.zip(resolution.profile_version) {
                Some(key) => Some(self.definition(state, key).await?),
                None => None,
            };
            let (uuid, define_error) = match &target {
                Some(Ok(uuid)) => (Some(uuid.as_str()), None),
                Some(Err(e)) => (None, Some(e.as_str())),
                None => (None, None),
            };
            let plan = assign_rules::plan(
                &input.device,
                &resolution,
                uuid,
                define_error,
                input.record.as_ref(),
                now,
            );
            state.summary.devices += 1;
            if resolution.profile_id.is_none() {
                state.summary.unassigned += 1;
            }
            plans.push((plan, input.record));
        }
        self.send(state, &mut plans, now).await?;
        let changed: Vec<AssignmentRecord> = plans
            .into_iter()
            .filter(|(plan, prior)| assign_rules::changed(prior.as_ref(), &plan.record))
            .map(|(mut plan, _)| {
                plan.record.updated_at = now;
                plan.record
            })
            .collect();
        if !changed.is_empty() {
            self.store
                .write_assignments(state.entry.id, &changed)
                .await?;
            state.summary.written += changed.len() as u64;
        }
        Ok(())
    }

    /// Apple's `profile_uuid` for a profile version in this entry, defining it first when
    /// Apple does not have it yet. `Err` carries why it cannot be (for the devices' records).
    async fn definition(
        &self,
        state: &mut PassState<'_>,
        key: (ProfileId, i64),
    ) -> Result<Result<String, String>, ServiceError> {
        if let Some(uuid) = state.definitions.get(&key) {
            return Ok(Ok(uuid.clone()));
        }
        if let Some(e) = state.define_errors.get(&key) {
            return Ok(Err(e.clone()));
        }
        let result = self.define(state, key).await?;
        match &result {
            Ok(uuid) => {
                state.definitions.insert(key, uuid.clone());
            }
            Err(e) => {
                state.define_errors.insert(key, e.clone());
            }
        }
        Ok(result)
    }

    async fn define(
        &self,
        state: &mut PassState<'_>,
        (profile_id, version): (ProfileId, i64),
    ) -> Result<Result<String, String>, ServiceError> {
        let client = match &state.apple {
            AppleSide::Client(c) if state.stop.is_none() => *c,
            AppleSide::Client(_) => {
                return Ok(Err(state.stop.clone().unwrap_or_default()));
            }
            AppleSide::Unavailable(why) => return Ok(Err(why.clone())),
        };
        let Some((name, spec)) = state.specs.get(&profile_id).cloned() else {
            return Ok(Err("the profile was deleted".to_string()));
        };
        let apple = match serde_json::from_value::<ProfileSpec>(spec)
            .map_err(|e| e.to_string())
            .and_then(|spec| {
                profile_spec::validate(&spec, &self.enroll_url).map_err(|errors| {
                    errors
                        .iter()
                        .map(|e| format!("{}: {}", e.field, e.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                })
            }) {
            Ok(valid) => valid.apple,
            Err(e) => {
                return Ok(Err(format!(
                    "profile {name:?} is not valid for Apple ({e}); edit it"
                )));
            }
        };
        match client.define_profile(&apple).await {
            Ok(answer) => {
                let definition = ProfileDefinition {
                    entry_id: state.entry.id,
                    profile_id,
                    version,
                    apple_uuid: answer.profile_uuid.clone(),
                    defined_at: guardmdm_store::now(),
                };
                self.store.record_profile_definition(&definition).await?;
                state.summary.defined.push(format!("{name} v{version}"));
                tracing::info!(abm_entry = %state.entry.name, profile = %name, version, profile_uuid = %answer.profile_uuid, "profile defined at Apple");
                Ok(Ok(answer.profile_uuid))
            }
            Err(e) => {
                let message = format!("Apple refused profile {name:?} v{version}: {e}");
                self.stop_on(state, &e).await;
                Ok(Err(message))
            }
        }
    }

    /// Sends every planned device, grouped by profile, in batches of at most 1000.
    async fn send(
        &self,
        state: &mut PassState<'_>,
        plans: &mut [(Plan, Option<AssignmentRecord>)],
        now: time::OffsetDateTime,
    ) -> Result<(), ServiceError> {
        for (uuid, indexes) in to_send(plans) {
            for batch in indexes.chunks(guardmdm_abm::MAX_SERIALS_PER_CALL) {
                let client = match (&state.apple, &state.stop) {
                    (AppleSide::Client(c), None) => *c,
                    (AppleSide::Unavailable(why), _) | (_, Some(why)) => {
                        let why = why.clone();
                        call_failed(&mut state.summary, plans, batch, &why, now);
                        continue;
                    }
                };
                let serials: Vec<String> = batch
                    .iter()
                    .map(|&i| plans[i].0.record.serial_number.clone())
                    .collect();
                state.summary.sent += serials.len() as u64;
                let mut answer = client.assign_profile(&uuid, &serials).await;
                if let Err(DepError::Api { status: 404, .. }) = &answer
                    && let Some(new_uuid) = self.redefine(state, &uuid).await?
                {
                    for &i in batch {
                        plans[i].0.record.apple_uuid = Some(new_uuid.clone());
                    }
                    answer = client.assign_profile(&new_uuid, &serials).await;
                }
                match answer {
                    Ok(answer) => apply_answers(&mut state.summary, plans, batch, &answer, now),
                    Err(e) => {
                        call_failed(&mut state.summary, plans, batch, &e.to_string(), now);
                        self.stop_on(state, &e).await;
                        tracing::warn!(abm_entry = %state.entry.name, error = %e, "profile assignment call failed");
                    }
                }
            }
        }
        Ok(())
    }

    /// Apple answered 404 for a profile UUID it gave us: define that version again.
    async fn redefine(
        &self,
        state: &mut PassState<'_>,
        old_uuid: &str,
    ) -> Result<Option<String>, ServiceError> {
        let Some(key) = state
            .definitions
            .iter()
            .find(|(_, u)| u.as_str() == old_uuid)
            .map(|(k, _)| *k)
        else {
            return Ok(None);
        };
        state.definitions.remove(&key);
        tracing::warn!(abm_entry = %state.entry.name, profile_uuid = old_uuid, "Apple no longer knows a profile: defining it again");
        Ok(self.definition(state, key).await?.ok())
    }

    /// After a failed call: a token problem is recorded on the entry, and no further call is
    /// made in this pass (the devices stay pending for the next one).
    async fn stop_on(&self, state: &mut PassState<'_>, error: &DepError) {
        if let Some(problem) = error.token_problem() {
            if let Err(e) = self
                .abm
                .report_problem(&state.entry.name, Some(problem))
                .await
            {
                tracing::error!(abm_entry = %state.entry.name, error = %e, "could not record the token problem");
            }
            state.stop = Some(format!("ABM token problem: {error}"));
        } else if !matches!(error, DepError::Api { .. }) {
            state.stop = Some(format!("Apple is not answering: {error}"));
        }
    }
}

/// The planned devices to send, as indexes into `plans` grouped by the `profile_uuid` they
/// get, in the order of the UUIDs.
fn to_send(plans: &[(Plan, Option<AssignmentRecord>)]) -> Vec<(String, Vec<usize>)> {
    let mut by_uuid: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, (plan, _)) in plans.iter().enumerate() {
        if plan.send
            && let Some(uuid) = &plan.record.apple_uuid
        {
            by_uuid.entry(uuid.clone()).or_default().push(i);
        }
    }
    let mut uuids: Vec<_> = by_uuid.into_iter().collect();
    uuids.sort();
    uuids
}

/// Records Apple's answer for each device of `batch` (indexes into `plans`), and counts it.
fn apply_answers(
    summary: &mut PassSummary,
    plans: &mut [(Plan, Option<AssignmentRecord>)],
    batch: &[usize],
    answer: &guardmdm_abm::AssignProfileResponse,
    now: time::OffsetDateTime,
) {
    for &i in batch {
        let record = &mut plans[i].0.record;
        let status = answer.devices.get(&record.serial_number);
        assign_rules::apply_answer(record, status, answer.retry_after_seconds, now);
        match status {
            Some(guardmdm_abm::DeviceStatus::Success) => summary.succeeded += 1,
            Some(guardmdm_abm::DeviceStatus::NotAccessible) => summary.not_accessible += 1,
            Some(guardmdm_abm::DeviceStatus::Failed) => summary.failed += 1,
            Some(guardmdm_abm::DeviceStatus::Throttled) => summary.throttled += 1,
            _ => summary.call_failures += 1,
        }
    }
}

/// Records on each device of `batch` (indexes into `plans`) that its call was not made or
/// failed, and `why`.
fn call_failed(
    summary: &mut PassSummary,
    plans: &mut [(Plan, Option<AssignmentRecord>)],
    batch: &[usize],
    why: &str,
    now: time::OffsetDateTime,
) {
    for &i in batch {
        assign_rules::apply_call_failure(&mut plans[i].0.record, why, now);
    }
    summary.call_failures += batch.len() as u64;
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardmdm_store::{AbmDevice, StoredAbmDevice};

    fn chunk(serials: impl Iterator<Item = String>) -> Vec<AssignmentInput> {
        let now = guardmdm_store::now();
        serials
            .map(|serial_number| AssignmentInput {
                device: StoredAbmDevice {
                    entry_id: EntryId::new_v4(),
                    device: AbmDevice {
                        serial_number,
                        ..AbmDevice::default()
                    },
                    removed_at: None,
                    first_seen_at: now,
                    updated_at: now,
                },
                explicit_profile: None,
                static_groups: Vec::new(),
                record: None,
            })
            .collect()
    }

    fn after(read: Option<ChunkRead<'_>>) -> Option<Option<String>> {
        match read {
            Some(ChunkRead::After(after)) => Some(after),
            Some(ChunkRead::Only(_)) => panic!("a full walk read candidates"),
            None => None,
        }
    }

    #[test]
    fn a_full_walk_goes_on_after_each_full_chunk_and_ends_after_a_short_one() {
        let mut walk = Walk { candidates: None };
        assert_eq!(after(walk.next(None)), Some(None), "from the first device");
        let full = chunk((0..PASS_CHUNK).map(|i| format!("S{i:08}")));
        let last = format!("S{:08}", PASS_CHUNK - 1);
        assert_eq!(after(walk.next(Some(&full))), Some(Some(last)));
        let short = chunk((0..3).map(|i| format!("T{i:08}")));
        assert_eq!(after(walk.next(Some(&short))), None);
        assert_eq!(after(walk.next(Some(&[]))), None);
    }

    #[test]
    fn an_incremental_walk_reads_its_candidates_a_chunk_at_a_time_whatever_each_held() {
        let candidates: Vec<String> = (0..PASS_CHUNK * 2 + 5)
            .map(|i| format!("S{i:08}"))
            .collect();
        let mut walk = Walk {
            candidates: Some(candidates.chunks(PASS_CHUNK as usize)),
        };
        let mut sizes = Vec::new();
        let mut previous: Option<Vec<AssignmentInput>> = None;
        while let Some(read) = walk.next(previous.as_deref()) {
            let ChunkRead::Only(serials) = read else {
                panic!("an incremental walk read by serial order");
            };
            sizes.push(serials.len());
            // Every candidate may have left ABM since: an empty chunk does not end the walk.
            previous = Some(Vec::new());
        }
        assert_eq!(sizes, [PASS_CHUNK as usize, PASS_CHUNK as usize, 5]);
    }
}
