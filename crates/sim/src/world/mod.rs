//! The simulated organisation: devices, MDM servers with their event logs, profiles and
//! sessions, behind one lock. Every change to a device's assignment or profile appends an
//! event to the log of each server concerned; fetch and sync cursors are positions in those
//! logs (`docs/protocol.md` §3.2–§3.4), so a page costs `O(log n + limit)` however many devices
//! exist.

mod api;
mod auth;
mod portal;
mod profiles;
mod seed;

use std::collections::{BTreeMap, HashMap};

pub(crate) use api::Caller;
pub(crate) use api::{AssignRequest, DeviceList, Page, PageRequest, serials};
pub(crate) use auth::{Sessions, auth_error};

use crate::config::SimConfig;
use crate::rng::SplitMix64;

/// "No server" / "no profile".
pub(crate) const NONE: u32 = u32::MAX;

/// `device_assigned_by` of automatic assignments (Fleet logs show `-1`, `docs/protocol.md` §4).
pub(crate) const AUTOMATIC: u32 = 0;
/// `device_assigned_by` of portal and CSV assignments: the organisation's administrator.
pub(crate) const ADMIN: u32 = 1;

/// A serial number, upper-case ASCII padded with zero bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Serial([u8; 12]);

impl Serial {
    /// The canonical form of `text`, or `None` when it cannot be a simulated serial.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        if t.is_empty() || t.len() > 12 || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let mut out = [0u8; 12];
        for (slot, b) in out.iter_mut().zip(t.bytes()) {
            *slot = b.to_ascii_uppercase();
        }
        Some(Self(out))
    }

    pub(crate) fn as_str(&self) -> &str {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(12);
        std::str::from_utf8(self.0.get(..len).unwrap_or_default()).unwrap_or_default()
    }
}

/// Apple's `profile_status` (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProfileStatus {
    Empty,
    Assigned,
    Pushed,
    Removed,
}

impl ProfileStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Assigned => "assigned",
            Self::Pushed => "pushed",
            Self::Removed => "removed",
        }
    }
}

/// Apple's sync `op_type` (§3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpType {
    Added,
    Modified,
    Deleted,
}

impl OpType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Modified => "modified",
            Self::Deleted => "deleted",
        }
    }
}

/// The part of a device that changes, copied into each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceState {
    pub(crate) assigned_at: i64,
    pub(crate) assigned_by: u32,
    pub(crate) profile: u32,
    pub(crate) status: ProfileStatus,
    pub(crate) profile_assign_time: i64,
    pub(crate) profile_push_time: i64,
}

impl DeviceState {
    pub(crate) const UNASSIGNED: Self = Self {
        assigned_at: 0,
        assigned_by: AUTOMATIC,
        profile: NONE,
        status: ProfileStatus::Empty,
        profile_assign_time: 0,
        profile_push_time: 0,
    };
}

/// One device of the organisation (about 80 bytes).
#[derive(Debug, Clone)]
pub(crate) struct Device {
    pub(crate) serial: Serial,
    pub(crate) model: u8,
    pub(crate) color: u8,
    pub(crate) capacity: u8,
    pub(crate) disowned: bool,
    pub(crate) purchased: i64,
    /// The MDM server it is assigned to, or [`NONE`].
    pub(crate) server: u32,
    /// The server whose live set holds it, and its latest event there.
    pub(crate) live_in: u32,
    pub(crate) seq: u64,
    pub(crate) state: DeviceState,
}

/// One entry of a server's event log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event {
    pub(crate) device: u32,
    pub(crate) op: OpType,
    pub(crate) at: i64,
    pub(crate) state: DeviceState,
}

/// A server token's OAuth values (§1.5).
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) consumer_secret: String,
    pub(crate) access_token: String,
    pub(crate) access_secret: String,
    pub(crate) issued: i64,
    pub(crate) expiry: i64,
    pub(crate) admin_id: String,
}

/// An MDM server entry in the portal.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) uuid: String,
    pub(crate) name: String,
    pub(crate) certificate_pem: String,
    pub(crate) consumer_key: String,
    pub(crate) token: Option<Token>,
    /// Bumped by each token download: sessions of older tokens are refused.
    pub(crate) generation: u32,
    pub(crate) allow_release: bool,
    pub(crate) created: i64,
    pub(crate) events: Vec<Event>,
    /// Devices assigned here, by the position of their latest event.
    pub(crate) live: BTreeMap<u64, u32>,
}

/// A defined profile (§3.6); immutable.
#[derive(Debug)]
pub(crate) struct Profile {
    pub(crate) uuid: String,
    pub(crate) server: u32,
    pub(crate) json: serde_json::Map<String, serde_json::Value>,
}

/// The organisation and everything in it.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) config: SimConfig,
    pub(crate) org_id: String,
    pub(crate) devices: Vec<Device>,
    pub(crate) by_serial: HashMap<Serial, u32>,
    pub(crate) servers: Vec<Server>,
    pub(crate) profiles: Vec<Profile>,
    pub(crate) by_profile_uuid: HashMap<String, u32>,
    /// `device_assigned_by` values.
    pub(crate) people: Vec<String>,
    /// Default server per family ([`crate::DeviceFamily::index`]) and, last, for any family.
    pub(crate) defaults: [u32; 6],
    pub(crate) rng: SplitMix64,
    pub(crate) cursor_key: Vec<u8>,
    pub(crate) cursor_generation: u32,
    pub(crate) sessions: Sessions,
    /// Per serial: start of the current one-hour window and assign attempts in it.
    pub(crate) assign_attempts: HashMap<u32, (i64, u32)>,
}

impl World {
    /// The device index of a serial in the organisation (disowned devices excluded).
    pub(crate) fn find(&self, serial: &str) -> Option<u32> {
        let idx = *self.by_serial.get(&Serial::parse(serial)?)?;
        let device = self.devices.get(idx as usize)?;
        (!device.disowned).then_some(idx)
    }

    pub(crate) fn device(&self, idx: u32) -> Option<&Device> {
        self.devices.get(idx as usize)
    }

    pub(crate) fn server(&self, idx: u32) -> Option<&Server> {
        self.servers.get(idx as usize)
    }

    /// The server index for a `server_uuid` (case-insensitive).
    pub(crate) fn server_by_uuid(&self, uuid: &str) -> Option<u32> {
        let uuid = uuid.trim();
        self.servers
            .iter()
            .position(|s| s.uuid.eq_ignore_ascii_case(uuid))
            .and_then(|i| u32::try_from(i).ok())
    }

    pub(crate) fn person(&self, idx: u32) -> &str {
        self.people.get(idx as usize).map_or("", String::as_str)
    }

    pub(crate) fn profile(&self, idx: u32) -> Option<&Profile> {
        self.profiles.get(idx as usize)
    }

    /// Appends an event for `device` to `server`'s log with the device's current state, and
    /// keeps the server's live set in step: a `deleted` event takes the device out, any
    /// other puts it in at the new position.
    pub(crate) fn record(&mut self, server: u32, device: u32, op: OpType, at: i64) {
        let (Some(srv), Some(dev)) = (
            self.servers.get_mut(server as usize),
            self.devices.get_mut(device as usize),
        ) else {
            return;
        };
        let seq = srv.events.len() as u64;
        srv.events.push(Event {
            device,
            op,
            at,
            state: dev.state,
        });
        if dev.live_in == server {
            srv.live.remove(&dev.seq);
            dev.live_in = NONE;
        }
        if op != OpType::Deleted {
            srv.live.insert(seq, device);
            dev.live_in = server;
            dev.seq = seq;
        }
    }
}

/// A fresh random secret: `prefix` and 64 hex digits.
pub(crate) fn secret(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests;
