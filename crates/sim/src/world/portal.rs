//! The portal side of the organisation: MDM servers and their tokens, default servers, new
//! devices, manual and CSV assignment, and what a device receives at activation. Each
//! assignment change appends the events Apple's sync shows (`docs/protocol.md` §3.3, §9.2–§9.4).

use serde::Serialize;

use super::{
    ADMIN, AUTOMATIC, DeviceState, NONE, OpType, ProfileStatus, Server, Token, World, secret,
};
use crate::catalog::{self, DeviceFamily};
use crate::clock::{file_stamp, iso8601};
use crate::error::SimError;
use crate::report::{Activation, AssignmentReport, DeviceInfo, ServerInfo, ServerToken};

/// A server token lives one year (§1.5).
const TOKEN_LIFETIME: i64 = 365 * 86_400;

/// What assigning one device did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Assigned,
    Moved,
    Reassigned,
}

/// The token JSON in Apple's key order (§1.3).
#[derive(Serialize)]
struct TokenJson<'a> {
    consumer_key: &'a str,
    consumer_secret: &'a str,
    access_token: &'a str,
    access_secret: &'a str,
    access_token_expiry: String,
}

impl World {
    /// Registers an MDM server with its public-key certificate.
    pub(crate) fn register_server(
        &mut self,
        name: &str,
        pem: &str,
        now: i64,
    ) -> Result<u32, SimError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(SimError::Invalid(
                "the server name must be 1 to 200 characters".into(),
            ));
        }
        if self
            .servers
            .iter()
            .any(|s| s.name.eq_ignore_ascii_case(name))
        {
            return Err(SimError::DuplicateServerName(name.to_string()));
        }
        check_certificate(pem)?;
        let idx = u32::try_from(self.servers.len())
            .map_err(|_| SimError::Invalid("too many servers".into()))?;
        self.servers.push(Server {
            uuid: uuid::Uuid::new_v4()
                .hyphenated()
                .to_string()
                .to_ascii_uppercase(),
            name: name.to_string(),
            certificate_pem: pem.to_string(),
            consumer_key: secret("CK_"),
            token: None,
            generation: 0,
            allow_release: false,
            created: now,
            events: Vec::new(),
            live: std::collections::BTreeMap::new(),
        });
        if idx == 0 && self.config.adopt_seed_devices {
            self.defaults[5] = 0;
            for dev in 0..u32::try_from(self.devices.len()).unwrap_or(0) {
                let purchased = self.device(dev).map_or(now, |d| d.purchased);
                self.assign_device(dev, 0, AUTOMATIC, purchased.min(now));
            }
        }
        Ok(idx)
    }

    /// Replaces a server's public key (renewal with a new key, §1.1 step 5).
    pub(crate) fn set_public_key(&mut self, server: u32, pem: &str) -> Result<(), SimError> {
        check_certificate(pem)?;
        let srv = self.server_mut(server)?;
        srv.certificate_pem = pem.to_string();
        Ok(())
    }

    /// Sets "Allow this MDM server to release devices" (§3.10).
    pub(crate) fn set_allow_release(&mut self, server: u32, allow: bool) -> Result<(), SimError> {
        self.server_mut(server)?.allow_release = allow;
        Ok(())
    }

    fn server_mut(&mut self, server: u32) -> Result<&mut Server, SimError> {
        self.servers
            .get_mut(server as usize)
            .ok_or_else(|| SimError::UnknownServer(server.to_string()))
    }

    /// Downloads a new token for `server`; the previous one stops working (§1.1, §9.8).
    pub(crate) fn issue_token(
        &mut self,
        server: u32,
        now: i64,
        admin_id: Option<&str>,
    ) -> Result<ServerToken, SimError> {
        let admin = admin_id
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .unwrap_or(&self.config.org.admin_id)
            .to_string();
        let srv = self.server_mut(server)?;
        let token = Token {
            consumer_secret: secret("CS_"),
            access_token: secret("AT_"),
            access_secret: secret("AS_"),
            issued: now,
            expiry: now + TOKEN_LIFETIME,
            admin_id: admin,
        };
        let json = serde_json::to_string(&TokenJson {
            consumer_key: &srv.consumer_key,
            consumer_secret: &token.consumer_secret,
            access_token: &token.access_token,
            access_secret: &token.access_secret,
            access_token_expiry: iso8601(token.expiry),
        })
        .map_err(|e| SimError::Token(e.to_string()))?;
        let contents = guardmdm_crypto::encrypt_server_token(&json, &srv.certificate_pem)
            .map_err(|e| SimError::Token(e.to_string()))?;
        let safe_name: String = srv
            .name
            .chars()
            .map(|c| {
                if c.is_control() || "\"/\\:*?<>|".contains(c) {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        let out = ServerToken {
            file_name: format!("{safe_name}_Token_{}_smime.p7m", file_stamp(now)),
            contents,
            consumer_key: srv.consumer_key.clone(),
            access_token_expiry: iso8601(token.expiry),
        };
        srv.token = Some(token);
        srv.generation = srv.generation.wrapping_add(1);
        Ok(out)
    }

    /// Makes `server` the default for new devices of `family` (of any family when `None`);
    /// `server: None` clears it.
    pub(crate) fn set_default(&mut self, family: Option<DeviceFamily>, server: Option<u32>) {
        let slot = family.map_or(5, DeviceFamily::index);
        if let Some(s) = self.defaults.get_mut(slot) {
            *s = server.unwrap_or(NONE);
        }
    }

    /// Adds `count` new devices (purchases). Each goes to the default server for its
    /// family, or the org-wide default, with an `added` event (automatic assignment).
    pub(crate) fn purchase(
        &mut self,
        count: usize,
        family: Option<DeviceFamily>,
        now: i64,
    ) -> Vec<u32> {
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let dev = self.add_device(family, now);
            let fam = self.device(dev).map(|d| catalog::model(d.model).family);
            let target = fam
                .and_then(|f| self.defaults.get(f.index()).copied())
                .filter(|s| *s != NONE)
                .unwrap_or(self.defaults[5]);
            if target != NONE {
                self.assign_device(dev, target, AUTOMATIC, now);
            }
            out.push(dev);
        }
        out
    }

    /// Assigns one device to `target` and records what Apple's sync shows.
    pub(crate) fn assign_device(
        &mut self,
        dev: u32,
        target: u32,
        by: u32,
        at: i64,
    ) -> Option<Outcome> {
        let current = self.device(dev)?.server;
        let outcome = if current == NONE {
            Outcome::Assigned
        } else if current == target {
            Outcome::Reassigned
        } else {
            self.record(current, dev, OpType::Deleted, at);
            Outcome::Moved
        };
        let d = self.devices.get_mut(dev as usize)?;
        d.server = target;
        d.state = match outcome {
            Outcome::Assigned => DeviceState {
                assigned_at: at,
                assigned_by: by,
                ..DeviceState::UNASSIGNED
            },
            Outcome::Moved | Outcome::Reassigned => DeviceState {
                assigned_at: at,
                assigned_by: by,
                status: ProfileStatus::Removed,
                ..d.state
            },
        };
        let op = if outcome == Outcome::Assigned {
            OpType::Added
        } else {
            OpType::Modified
        };
        self.record(target, dev, op, at);
        Some(outcome)
    }

    /// Manual assignment of `serials` to `server` in the portal.
    pub(crate) fn assign_serials(
        &mut self,
        server: u32,
        serials: &[String],
        now: i64,
    ) -> AssignmentReport {
        let mut report = AssignmentReport {
            server_uuid: self.server(server).map(|s| s.uuid.clone()),
            ..AssignmentReport::default()
        };
        for serial in serials {
            let canonical = serial.trim().to_ascii_uppercase();
            match self
                .find(serial)
                .and_then(|d| self.assign_device(d, server, ADMIN, now))
            {
                Some(Outcome::Assigned) => report.assigned.push(canonical),
                Some(Outcome::Moved) => report.moved.push(canonical),
                Some(Outcome::Reassigned) => report.reassigned.push(canonical),
                None => report.unknown.push(serial.trim().to_string()),
            }
        }
        report
    }

    /// Takes `serials` off their MDM servers (`deleted` there).
    pub(crate) fn unassign_serials(&mut self, serials: &[String], now: i64) -> AssignmentReport {
        let mut report = AssignmentReport::default();
        for serial in serials {
            let canonical = serial.trim().to_ascii_uppercase();
            let Some(dev) = self.find(serial) else {
                report.unknown.push(serial.trim().to_string());
                continue;
            };
            let current = self.device(dev).map_or(NONE, |d| d.server);
            if current == NONE {
                report.unchanged.push(canonical);
                continue;
            }
            self.record(current, dev, OpType::Deleted, now);
            if let Some(d) = self.devices.get_mut(dev as usize) {
                d.server = NONE;
                d.state = DeviceState::UNASSIGNED;
            }
            report.unassigned.push(canonical);
        }
        report
    }

    /// What Apple hands `serial` at first boot. A device that receives its profile moves
    /// from `assigned` to `pushed` (a `modified` event, §4).
    pub(crate) fn activate(&mut self, serial: &str, now: i64) -> Result<Activation, SimError> {
        let dev = self
            .find(serial)
            .ok_or_else(|| SimError::UnknownDevice(serial.trim().to_string()))?;
        let (server, state, serial_number) = match self.device(dev) {
            Some(d) => (d.server, d.state, d.serial.as_str().to_string()),
            None => return Err(SimError::UnknownDevice(serial.to_string())),
        };
        let mut out = Activation {
            serial_number,
            status: "not_assigned".into(),
            server_uuid: self.server(server).map(|s| s.uuid.clone()),
            server_name: self.server(server).map(|s| s.name.clone()),
            profile: None,
            message: "the device is not assigned to an MDM server: Setup Assistant runs without remote management".into(),
        };
        if server == NONE {
            return Ok(out);
        }
        let has_profile = matches!(
            state.status,
            ProfileStatus::Assigned | ProfileStatus::Pushed
        );
        match self.profile(state.profile).filter(|_| has_profile) {
            None => {
                out.status = "no_profile".into();
                out.message = "the device's MDM server has not assigned it a profile: Setup Assistant runs without remote management".into();
            }
            Some(p) => {
                let mut json = p.json.clone();
                json.insert("profile_uuid".into(), p.uuid.clone().into());
                out.status = "profile".into();
                out.message = "the device enrolls at the profile's url".into();
                out.profile = Some(json.into());
                if state.status == ProfileStatus::Assigned
                    && let Some(d) = self.devices.get_mut(dev as usize)
                {
                    d.state.status = ProfileStatus::Pushed;
                    d.state.profile_push_time = now;
                    self.record(server, dev, OpType::Modified, now);
                }
            }
        }
        Ok(out)
    }

    /// The portal's view of a device.
    pub(crate) fn device_info(&self, dev: u32) -> Option<DeviceInfo> {
        let d = self.device(dev)?;
        let model = catalog::model(d.model);
        let server = self.server(d.server);
        Some(DeviceInfo {
            serial_number: d.serial.as_str().to_string(),
            model: model.name.to_string(),
            description: catalog::description(model, d.color, d.capacity),
            color: catalog::color_name(model, d.color).to_string(),
            device_family: model.family,
            os: model.family.os(10).to_string(),
            purchased: iso8601(d.purchased),
            server_uuid: server.map(|s| s.uuid.clone()),
            server_name: server.map(|s| s.name.clone()),
            profile_uuid: self.profile(d.state.profile).map(|p| p.uuid.clone()),
            profile_status: d.state.status.as_str().to_string(),
        })
    }

    /// The portal's view of a server.
    pub(crate) fn server_info(&self, server: u32) -> Option<ServerInfo> {
        let s = self.server(server)?;
        let mut default_for: Vec<String> = DeviceFamily::ALL
            .iter()
            .filter(|f| self.defaults.get(f.index()) == Some(&server))
            .map(|f| f.as_str().to_string())
            .collect();
        if self.defaults[5] == server {
            default_for.push("any".into());
        }
        Some(ServerInfo {
            server_uuid: s.uuid.clone(),
            server_name: s.name.clone(),
            consumer_key: s.consumer_key.clone(),
            created: iso8601(s.created),
            allow_release: s.allow_release,
            token_issued: s.token.as_ref().map(|t| iso8601(t.issued)),
            token_expiry: s.token.as_ref().map(|t| iso8601(t.expiry)),
            devices: s.live.len(),
            default_for,
        })
    }
}

/// A certificate is usable when a token can be encrypted to it.
fn check_certificate(pem: &str) -> Result<(), SimError> {
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(SimError::BadPublicKey("no PEM CERTIFICATE block".into()));
    }
    guardmdm_crypto::encrypt_server_token("{}", pem)
        .map(|_| ())
        .map_err(|e| SimError::BadPublicKey(e.to_string()))
}
