//! Devices stuck in Setup Assistant, as admins see them, and their release: `DeviceConfigured`
//! queued ahead of everything, the profile's initial commands not answered yet cancelled, a
//! push, and an audit event (the rules are in [`crate::setup_assistant`]).

use guardmdm_mdm_protocol::{Command, CommandRequest};
use guardmdm_store::{
    AssignmentConfigStore, AssignmentStateStore, CommandStatus, DeviceSyncStore, Enrollment,
    MdmStore, NewAuditEvent, NewCommand, Release, StoreError,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::MdmService;
use crate::profile_spec::ProfileSpec;
use crate::setup_assistant::{self as rules, StuckReason};
use crate::{Actor, ServiceError};

/// Most devices listed or released in one request.
pub const MAX_STUCK_LIST: u32 = 1000;

/// A device stuck in Setup Assistant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StuckDevice {
    /// UDID.
    pub udid: String,
    /// Serial number.
    pub serial_number: Option<String>,
    /// Since when it waits for `DeviceConfigured`.
    #[serde(with = "time::serde::rfc3339")]
    pub waiting_since: OffsetDateTime,
    /// Its last request.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// Why it still waits.
    pub reason: StuckReason,
    /// The reason in words.
    pub reason_text: String,
}

/// A command a release cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedCommand {
    /// `CommandUUID`.
    pub uuid: String,
    /// `RequestType`.
    pub request_type: String,
    /// Where it stood: `queued`, `sent` or `not_now`.
    pub status: CommandStatus,
    /// `NotNow` answers it got.
    pub not_now_count: u32,
}

/// A device released from Setup Assistant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    /// UDID.
    pub udid: String,
    /// The `DeviceConfigured` queued.
    pub command_uuid: String,
    /// The commands cancelled.
    pub skipped: Vec<SkippedCommand>,
    /// Whether GuardMDM released it by itself (the profile's `release_after`).
    pub automatic: bool,
}

/// One device of a bulk release: released, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseOutcome {
    /// UDID.
    pub udid: String,
    /// What was done, when released.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released: Option<Released>,
    /// Why not, otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl<S: ?Sized + MdmStore + 'static> MdmService<S> {
    /// Devices stuck in Setup Assistant (waiting longer than `--stuck-after`), the longest
    /// waiting first, at most `limit`, each with why.
    ///
    /// # Errors
    /// Storage failures; [`ServiceError::Invalid`] for a limit outside 1–1000.
    pub async fn stuck_devices(&self, limit: u32) -> Result<Vec<StuckDevice>, ServiceError> {
        if !(1..=MAX_STUCK_LIST).contains(&limit) {
            return Err(ServiceError::Invalid(
                "limit must be between 1 and 1000".to_string(),
            ));
        }
        let now = guardmdm_store::now();
        let threshold = self.settings.stuck_after;
        let waiting = self
            .store
            .list_awaiting(rules::stuck_cutoff(now, threshold), limit)
            .await?;
        let mut stuck = Vec::with_capacity(waiting.len());
        for e in waiting {
            let open = self.store.open_commands(&e.udid).await?;
            let reason = rules::stuck_reason(e.last_seen_at, &open, now, threshold);
            stuck.push(StuckDevice {
                reason_text: reason.describe(),
                reason,
                waiting_since: e.awaiting_since.unwrap_or(e.last_seen_at),
                last_seen_at: e.last_seen_at,
                serial_number: e.serial_number,
                udid: e.udid,
            });
        }
        Ok(stuck)
    }

    /// How many devices are stuck in Setup Assistant now.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn count_stuck(&self) -> Result<u64, ServiceError> {
        let cutoff = rules::stuck_cutoff(guardmdm_store::now(), self.settings.stuck_after);
        Ok(self.store.count_awaiting(cutoff).await?)
    }

    /// The threshold after which a waiting device is stuck (`--stuck-after`).
    #[must_use]
    pub fn stuck_after(&self) -> time::Duration {
        self.settings.stuck_after
    }

    /// Releases a device from Setup Assistant now: `DeviceConfigured` queued ahead of its
    /// other commands, the profile's initial commands not answered yet (and any earlier
    /// `DeviceConfigured`) cancelled, the device pushed, and the release audited
    /// (`enrollment.release`: who, the device, what was skipped).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown device; [`ServiceError::Conflict`] for one
    /// that is not enrolled and waiting in Setup Assistant.
    pub async fn release(&self, actor: &Actor, udid: &str) -> Result<Released, ServiceError> {
        self.release_device(actor, udid, false).await
    }

    /// [`Self::release`] for each of `udids` (at most 1000, duplicates once), each answered
    /// on its own.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for an empty or too long list; storage failures.
    pub async fn release_many(
        &self,
        actor: &Actor,
        udids: &[String],
    ) -> Result<Vec<ReleaseOutcome>, ServiceError> {
        if udids.is_empty() || udids.len() > MAX_STUCK_LIST as usize {
            return Err(ServiceError::Invalid(
                "udids: give between 1 and 1000 UDIDs".to_string(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let mut outcomes = Vec::new();
        for udid in udids.iter().filter(|u| seen.insert(u.as_str())) {
            let outcome = match self.release_device(actor, udid, false).await {
                Ok(released) => ReleaseOutcome {
                    udid: udid.clone(),
                    released: Some(released),
                    error: None,
                },
                Err(ServiceError::NotFound(m) | ServiceError::Conflict(m)) => ReleaseOutcome {
                    udid: udid.clone(),
                    released: None,
                    error: Some(m),
                },
                Err(e) => return Err(e),
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    pub(super) async fn release_device(
        &self,
        actor: &Actor,
        udid: &str,
        automatic: bool,
    ) -> Result<Released, ServiceError> {
        let enrollment = self.store.enrollment(udid).await?.ok_or_else(|| {
            ServiceError::NotFound(format!("no enrolled device with UDID {udid}"))
        })?;
        not_waiting(&enrollment)?;
        let open = self.store.open_commands(udid).await?;
        let skipped: Vec<SkippedCommand> = rules::release_plan(&open)
            .into_iter()
            .map(|c| SkippedCommand {
                uuid: c.uuid.clone(),
                request_type: c.request_type.clone(),
                status: c.status,
                not_now_count: c.not_now_count,
            })
            .collect();
        let command = Command::new(CommandRequest::DeviceConfigured);
        let at = guardmdm_store::now();
        let release = Release {
            udid: udid.to_string(),
            cancel: skipped.iter().map(|c| c.uuid.clone()).collect(),
            command: NewCommand {
                uuid: command.command_uuid.clone(),
                udid: udid.to_string(),
                request_type: command.request_type().to_string(),
                payload: command
                    .to_xml()
                    .map_err(|e| ServiceError::Internal(e.to_string()))?,
                created_by: actor.audit_name(),
                at,
            },
            audit: NewAuditEvent {
                at,
                actor: actor.audit_name(),
                action: "enrollment.release".to_string(),
                target: format!("device:{udid}"),
                details: serde_json::json!({
                    "serial_number": enrollment.serial_number,
                    "automatic": automatic,
                    "command_uuid": command.command_uuid,
                    "waiting_since": enrollment.awaiting_since
                        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
                    "skipped": skipped,
                }),
            },
        };
        let queued = match self.store.release_enrollment(&release).await {
            Ok(q) => q,
            Err(StoreError::NotFound) => {
                return Err(ServiceError::NotFound(format!(
                    "no enrolled device with UDID {udid}"
                )));
            }
            Err(StoreError::Conflict(m)) => return Err(ServiceError::Conflict(m)),
            Err(e) => return Err(e.into()),
        };
        tracing::info!(udid = %udid, actor = %actor.audit_name(), automatic, skipped = skipped.len(), "released from Setup Assistant: DeviceConfigured queued");
        self.request_push(udid);
        Ok(Released {
            udid: udid.to_string(),
            command_uuid: queued.uuid,
            skipped,
            automatic,
        })
    }
}

/// A profile's `release_after`, when it has a valid one.
fn release_after_of(spec: serde_json::Value) -> Option<time::Duration> {
    let spec: ProfileSpec = serde_json::from_value(spec).ok()?;
    rules::parse_release_after(spec.release_after.as_deref()?).ok()
}

impl<S> MdmService<S>
where
    S: ?Sized + MdmStore + DeviceSyncStore + AssignmentStateStore + AssignmentConfigStore + 'static,
{
    /// Releases, as `system` and audited as automatic, every device waiting in Setup
    /// Assistant whose ADE profile's `release_after` has passed at `now`
    /// ([`rules::auto_release_due`]); answers how many. A device another release or its own
    /// `DeviceConfigured` took out meanwhile is passed over.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn auto_release(&self, now: OffsetDateTime) -> Result<usize, ServiceError> {
        let shortest = self
            .store
            .list_profiles()
            .await?
            .into_iter()
            .filter_map(|p| release_after_of(p.spec))
            .min();
        let Some(shortest) = shortest else {
            return Ok(0);
        };
        let waiting = self
            .store
            .list_awaiting(now - shortest, MAX_STUCK_LIST)
            .await?;
        let mut released = 0;
        for e in waiting {
            let (Some(serial), Some(since)) = (&e.serial_number, e.awaiting_since) else {
                continue;
            };
            let after = match self.given_profile(serial).await {
                Ok(Some(Some(profile))) => release_after_of(profile.spec),
                Ok(_) => None,
                Err(err) => return Err(ServiceError::Internal(err.message)),
            };
            let open = self.store.open_commands(&e.udid).await?;
            if !rules::auto_release_due(since, after, &open, now) {
                continue;
            }
            match self.release_device(&Actor::System, &e.udid, true).await {
                Ok(_) => released += 1,
                Err(ServiceError::NotFound(_) | ServiceError::Conflict(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(released)
    }
}

/// [`ServiceError::Conflict`] unless the device is enrolled and waits in Setup Assistant.
fn not_waiting(e: &Enrollment) -> Result<(), ServiceError> {
    if e.status == guardmdm_store::EnrollmentStatus::Enrolled && e.awaiting_configuration {
        Ok(())
    } else {
        Err(ServiceError::Conflict(format!(
            "device {} is not waiting in Setup Assistant (status {}, awaiting configuration: {}): \
             there is nothing to release",
            e.udid,
            e.status,
            if e.awaiting_configuration {
                "yes"
            } else {
                "no"
            }
        )))
    }
}
