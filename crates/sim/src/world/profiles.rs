//! Profile operations of the DEP API (`docs/protocol.md` §3.6–§3.10): define, get, assign,
//! remove, and disown, with per-serial results.

use serde_json::{Value, json};

use super::api::{ApiError, AssignRequest, Caller, MAX_DEVICES, serials};
use super::{DeviceState, NONE, OpType, Profile, ProfileStatus, World};
use crate::faults::{AssignFault, FaultState};
use crate::profile;

impl World {
    /// `POST /profile` (§3.6): validate, store under a new 32-hex `profile_uuid`, and assign
    /// to `devices` when given.
    pub(crate) fn define_profile(
        &mut self,
        caller: Caller,
        body: &Value,
        now: i64,
        faults: &mut FaultState,
    ) -> Result<Value, ApiError> {
        let valid = profile::validate(body).map_err(|code| (400, code))?;
        if valid.devices.len() > MAX_DEVICES {
            return Err((400, "DEVICE_LIMIT_EXCEEDED"));
        }
        let uuid = uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .to_ascii_uppercase();
        let idx = u32::try_from(self.profiles.len()).map_err(|_| (500, "INTERNAL_ERROR"))?;
        self.profiles.push(Profile {
            uuid: uuid.clone(),
            server: caller.server,
            json: valid.json,
        });
        self.by_profile_uuid.insert(uuid.clone(), idx);
        let (devices, _) = self.assign_many(caller, idx, &valid.devices, now, faults);
        let mut out = json!({ "profile_uuid": uuid });
        if !valid.devices.is_empty() {
            out["devices"] = devices;
        }
        Ok(out)
    }

    /// The calling server's profile with this UUID.
    fn own_profile(&self, caller: Caller, uuid: &str) -> Option<u32> {
        let idx = *self
            .by_profile_uuid
            .get(&uuid.trim().to_ascii_uppercase())?;
        (self.profile(idx)?.server == caller.server).then_some(idx)
    }

    /// `GET /profile?profile_uuid=` (§3.7).
    pub(crate) fn get_profile(
        &self,
        caller: Caller,
        uuid: Option<&str>,
    ) -> Result<Value, ApiError> {
        let uuid = uuid
            .filter(|u| !u.trim().is_empty())
            .ok_or((400, "PROFILE_UUID_REQUIRED"))?;
        let p = self
            .own_profile(caller, uuid)
            .and_then(|i| self.profile(i))
            .ok_or((400, "NOT_FOUND"))?;
        let mut json = p.json.clone();
        json.insert("profile_uuid".into(), p.uuid.clone().into());
        Ok(Value::Object(json))
    }

    /// Assign profile, `POST` or `PUT /profile/devices` (§3.8).
    pub(crate) fn assign_profile(
        &mut self,
        caller: Caller,
        req: AssignRequest,
        now: i64,
        faults: &mut FaultState,
    ) -> Result<Value, ApiError> {
        let uuid = req
            .profile_uuid
            .filter(|u| !u.trim().is_empty())
            .ok_or((400, "PROFILE_UUID_REQUIRED"))?;
        let list = serials(req.devices)?;
        let profile = self.own_profile(caller, &uuid).ok_or((404, "NOT_FOUND"))?;
        let (devices, retry) = self.assign_many(caller, profile, &list, now, faults);
        let mut out = json!({ "profile_uuid": uuid, "devices": devices });
        if let Some(seconds) = retry.filter(|_| caller.version >= 10) {
            out["retry_after_seconds"] = json!(seconds);
        }
        Ok(out)
    }

    /// Per-serial assignment; returns the `devices` map and the largest retry delay of
    /// throttled serials.
    fn assign_many(
        &mut self,
        caller: Caller,
        profile: u32,
        list: &[String],
        now: i64,
        faults: &mut FaultState,
    ) -> (Value, Option<u64>) {
        let mut results = serde_json::Map::new();
        let mut retry: Option<u64> = None;
        for serial in list {
            let status = match self
                .find(serial)
                .filter(|&d| self.device(d).is_some_and(|x| x.server == caller.server))
            {
                None => "NOT_ACCESSIBLE",
                Some(dev) => match faults.take_assign() {
                    Some(AssignFault::Throttled(s)) if caller.version >= 9 => {
                        retry = Some(retry.map_or(s, |r| r.max(s)));
                        "THROTTLED"
                    }
                    Some(_) => "FAILED",
                    None if self.too_many_attempts(dev, now) => "FAILED",
                    None => {
                        self.set_profile(caller.server, dev, profile, now);
                        "SUCCESS"
                    }
                },
            };
            results.insert(serial.clone(), status.into());
        }
        (Value::Object(results), retry)
    }

    /// Counts an assign attempt; true once the serial has been assigned too often within an
    /// hour (§9.5).
    fn too_many_attempts(&mut self, dev: u32, now: i64) -> bool {
        let Some(limit) = self.config.assign_failure_threshold else {
            return false;
        };
        let entry = self.assign_attempts.entry(dev).or_insert((now, 0));
        if now - entry.0 >= 3600 {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 > limit
    }

    fn set_profile(&mut self, server: u32, dev: u32, profile: u32, now: i64) {
        if let Some(d) = self.devices.get_mut(dev as usize) {
            d.state = DeviceState {
                profile,
                status: ProfileStatus::Assigned,
                profile_assign_time: now,
                profile_push_time: 0,
                ..d.state
            };
            self.record(server, dev, OpType::Modified, now);
        }
    }

    /// `DELETE /profile/devices` (§3.9): `modified` with `profile_status: removed`; the old
    /// `profile_uuid` stays on the record.
    pub(crate) fn remove_profile(&mut self, caller: Caller, list: &[String], now: i64) -> Value {
        let mut results = serde_json::Map::new();
        for serial in list {
            let dev = self
                .find(serial)
                .filter(|&d| self.device(d).is_some_and(|x| x.server == caller.server));
            let status = match dev {
                Some(d) => {
                    if let Some(x) = self.devices.get_mut(d as usize) {
                        x.state.status = ProfileStatus::Removed;
                    }
                    self.record(caller.server, d, OpType::Modified, now);
                    "SUCCESS"
                }
                None => "NOT_ACCESSIBLE",
            };
            results.insert(serial.clone(), status.into());
        }
        json!({ "devices": results })
    }

    /// `POST /devices/disown` (§3.10): 403 `ACCESS_DENIED` unless the server may release
    /// devices; each released device leaves the organisation (`deleted`).
    pub(crate) fn disown(
        &mut self,
        caller: Caller,
        list: &[String],
        now: i64,
    ) -> Result<Value, ApiError> {
        if !self.server(caller.server).is_some_and(|s| s.allow_release) {
            return Err((403, "ACCESS_DENIED"));
        }
        let mut results = serde_json::Map::new();
        for serial in list {
            let dev = self
                .find(serial)
                .filter(|&d| self.device(d).is_some_and(|x| x.server == caller.server));
            let status = match dev {
                Some(d) => {
                    self.record(caller.server, d, OpType::Deleted, now);
                    if let Some(x) = self.devices.get_mut(d as usize) {
                        x.server = NONE;
                        x.disowned = true;
                    }
                    "SUCCESS"
                }
                None => "NOT_ACCESSIBLE",
            };
            results.insert(serial.clone(), status.into());
        }
        Ok(json!({ "devices": results }))
    }
}
