//! The minimum OS at enrollment (`docs/protocol.md` §6.5): before an enrollment profile is
//! made, a device below the minimum that applies to it is asked to update (HTTP 403 with
//! Apple's "software update required" document), or let through and reported when it
//! cannot be asked. The rule is [`crate::os_minimum::decide`].

use guardmdm_mdm_protocol::{MachineInfo, OsVersion, SoftwareUpdateRequired};
use guardmdm_store::{
    AdeProfile, DeviceQuery, DeviceSyncStore, OsMinimum, OsUpdateEvent, OsUpdateOutcome,
    OsUpdateStore,
};

use super::{MdmError, MdmService};
use crate::os::OsKey;
use crate::os_minimum::{self, OsDecision, ProfileMinimums, RequiredOs};

/// What the enrollment URL answers a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollAnswer {
    /// The signed enrollment profile (`application/x-apple-aspen-config`).
    Profile(Vec<u8>),
    /// HTTP 403 with this document: update the OS first, then ask again.
    SoftwareUpdateRequired(SoftwareUpdateRequired),
}

impl<S> MdmService<S>
where
    S: ?Sized + DeviceSyncStore + OsUpdateStore + 'static,
{
    /// The OS of the enrolling device: ABM's record first (its family decides), else its
    /// MachineInfo `PRODUCT`.
    pub(super) async fn enrolling_os(
        &self,
        serial: &str,
        info: &MachineInfo,
    ) -> Result<Option<OsKey>, MdmError> {
        let record = self
            .store
            .list_abm_devices(&DeviceQuery {
                serial: Some(serial.to_string()),
                removed: Some(false),
                limit: 1,
                ..DeviceQuery::default()
            })
            .await?
            .into_iter()
            .next();
        Ok(record
            .and_then(|d| {
                OsKey::of_device(d.device.os.as_deref(), d.device.device_family.as_deref())
            })
            .or_else(|| os_minimum::os_of_product(&info.product)))
    }

    /// Decides the device's enrollment against the minimum that applies to it (its ADE
    /// profile's, else the global one) and records a device below it. `Some` is the answer
    /// to send instead of an enrollment profile.
    pub(super) async fn check_minimum_os(
        &self,
        serial: &str,
        info: &MachineInfo,
        profile: Option<&AdeProfile>,
    ) -> Result<Option<SoftwareUpdateRequired>, MdmError> {
        let Some(os) = self.enrolling_os(serial, info).await? else {
            return Ok(None);
        };
        let global: Vec<(OsKey, OsMinimum)> = self
            .store
            .minimum_os()
            .await?
            .into_iter()
            .map(|m| (m.os, m.minimum))
            .collect();
        let own = profile.and_then(|p| {
            p.spec
                .get("minimum_os")
                .and_then(|v| serde_json::from_value::<ProfileMinimums>(v.clone()).ok())
        });
        let Some(minimum) = os_minimum::effective_minimum(os, own.as_ref(), &global) else {
            return Ok(None);
        };
        let Some(required) = self.resolve_minimum(&minimum, info) else {
            tracing::warn!(serial = %serial, os = %os, minimum = %minimum, "minimum OS not enforced: no version to require is known for this device");
            return Ok(None);
        };
        let decision = os_minimum::decide(info, Some(os), Some(&required));
        let now = guardmdm_store::now();
        let event = |outcome, reason| OsUpdateEvent {
            serial_number: serial.to_string(),
            udid: info.udid.clone(),
            device_version: info.os_version.clone().unwrap_or_default(),
            device_build: Some(info.version.clone()),
            required_version: required.version.to_string(),
            required_build: required.build.clone(),
            outcome,
            reason,
            first_at: now,
            last_at: now,
            count: 1,
        };
        match decision {
            OsDecision::Enroll => Ok(None),
            OsDecision::RequireUpdate(doc) => {
                tracing::info!(serial = %serial, udid = %info.udid, current = info.os_version.as_deref().unwrap_or("?"), required = %doc.os_version, "enrollment held for a software update");
                self.store
                    .record_os_update_event(&event(OsUpdateOutcome::Held, None))
                    .await?;
                Ok(Some(doc))
            }
            OsDecision::CannotAsk { minimum, reason } => {
                tracing::warn!(serial = %serial, udid = %info.udid, minimum = %minimum, reason = %reason, "device below the minimum OS enrolls: it cannot be asked to update");
                self.store
                    .record_os_update_event(&event(OsUpdateOutcome::NotAsked, Some(reason)))
                    .await?;
                Ok(None)
            }
        }
    }

    /// A minimum as a version to require of this device: a version as it is. `latest` is
    /// refused when set (it would need Apple's software catalogue), so none is stored.
    fn resolve_minimum(&self, minimum: &OsMinimum, _info: &MachineInfo) -> Option<RequiredOs> {
        match minimum {
            OsMinimum::Version(v) => OsVersion::parse(v).ok().map(RequiredOs::version),
            OsMinimum::Latest => None,
        }
    }
}
