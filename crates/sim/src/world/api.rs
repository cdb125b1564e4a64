//! The DEP API operations on the organisation (`docs/protocol.md` §3), each for the MDM server
//! the session belongs to. Errors are `(HTTP status, Apple's code)`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::World;
use crate::clock::iso8601;
use crate::config::secs;
use crate::cursor::{self, Cursor, CursorContext, CursorKind};
use crate::render::{self, DeviceJson};

/// `(status, code)`: an Apple error reply.
pub(crate) type ApiError = (u16, &'static str);

/// Page size when `limit` is absent or not positive, and the most a page holds (§3.2).
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// The largest page; larger limits are clamped to it.
pub(crate) const MAX_LIMIT: usize = 1000;
/// Most serials in one assign, remove or disown call (§3.8).
pub(crate) const MAX_DEVICES: usize = 1000;

/// Who is calling: the session's MDM server and the request's protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caller {
    pub(crate) server: u32,
    pub(crate) version: u32,
}

/// `FetchDeviceRequest` / `SyncDeviceRequest` (§3.2, §3.3).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageRequest {
    pub(crate) cursor: Option<String>,
    pub(crate) limit: Option<i64>,
}

/// `FetchDeviceResponse` (§3.2).
#[derive(Debug, Serialize)]
pub(crate) struct Page<'a> {
    pub(crate) cursor: String,
    pub(crate) devices: Vec<DeviceJson<'a>>,
    pub(crate) fetched_until: String,
    pub(crate) more_to_follow: bool,
}

/// `{"devices": [...]}` bodies.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DeviceList {
    pub(crate) devices: Option<Vec<String>>,
}

/// `ProfileServiceRequest` (§3.8).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AssignRequest {
    pub(crate) profile_uuid: Option<String>,
    pub(crate) devices: Option<Vec<String>>,
}

fn limit(requested: Option<i64>) -> usize {
    match requested {
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
        _ => DEFAULT_LIMIT,
    }
}

/// The serial list of a request: `DEVICE_ID_REQUIRED` when absent or empty, and 400
/// `DEVICE_LIMIT_EXCEEDED` beyond [`MAX_DEVICES`] (Apple documents the limit, not the code).
pub(crate) fn serials(devices: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    let list = devices
        .filter(|d| !d.is_empty())
        .ok_or((400, "DEVICE_ID_REQUIRED"))?;
    if list.len() > MAX_DEVICES {
        return Err((400, "DEVICE_LIMIT_EXCEEDED"));
    }
    Ok(list)
}

impl World {
    fn cursor_context(&self, caller: Caller, now: i64) -> CursorContext<'_> {
        CursorContext {
            key: &self.cursor_key,
            server: caller.server,
            log_len: self
                .server(caller.server)
                .map_or(0, |s| s.events.len() as u64),
            now,
            max_age: secs(self.config.cursor_max_age),
            generation: self.cursor_generation,
        }
    }

    fn issue_cursor(
        &self,
        caller: Caller,
        kind: CursorKind,
        position: u64,
        end: u64,
        now: i64,
    ) -> String {
        let c = Cursor {
            server: caller.server,
            kind,
            position,
            end,
            issued: now,
            generation: self.cursor_generation,
        };
        cursor::encode(&c, &self.cursor_key)
    }

    /// `GET /account` (§3.1); the v3 fields from protocol version 3.
    pub(crate) fn account(&self, caller: Caller) -> Value {
        let Some(srv) = self.server(caller.server) else {
            return json!({});
        };
        let org = &self.config.org;
        let admin = srv
            .token
            .as_ref()
            .map_or(org.admin_id.as_str(), |t| t.admin_id.as_str());
        let mut out = json!({
            "server_name": srv.name, "server_uuid": srv.uuid, "admin_id": admin,
            "facilitator_id": admin, "org_name": org.name, "org_email": org.email,
            "org_phone": org.phone, "org_address": org.address,
        });
        if caller.version >= 3 {
            let hash: String = guardmdm_crypto::digest::sha256(self.org_id.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let paged = json!({"default": DEFAULT_LIMIT, "maximum": MAX_LIMIT});
            out["org_id"] = json!(self.org_id);
            out["org_id_hash"] = json!(hash);
            out["org_type"] = json!(org.org_type);
            out["org_version"] = json!(org.org_version);
            out["urls"] = json!([
                {"uri": "/account", "http_method": ["GET"]},
                {"uri": "/server/devices", "http_method": ["POST"], "limit": paged},
                {"uri": "/devices/sync", "http_method": ["POST"], "limit": paged},
                {"uri": "/devices", "http_method": ["POST"]},
                {"uri": "/profile", "http_method": ["POST", "GET"]},
                {"uri": "/profile/devices", "http_method": ["POST", "PUT", "DELETE"]},
                {"uri": "/devices/disown", "http_method": ["POST"]},
            ]);
        }
        out
    }

    /// `POST /server/devices` (§3.2): devices live on the server, oldest change first.
    pub(crate) fn fetch_page(
        &self,
        caller: Caller,
        req: &PageRequest,
        now: i64,
    ) -> Result<Page<'_>, ApiError> {
        let ctx = self.cursor_context(caller, now);
        let range = cursor::plan_fetch(req.cursor.as_deref(), &ctx).map_err(|e| (400, e.code()))?;
        let srv = self.server(caller.server).ok_or((403, "FORBIDDEN"))?;
        let limit = limit(req.limit);
        let mut devices = Vec::with_capacity(limit.min(srv.live.len()));
        let mut next = range.end;
        let mut last_at = None;
        for (&seq, &dev) in srv.live.range(range.start..range.end) {
            if devices.len() == limit {
                next = seq;
                break;
            }
            let Some(d) = self.device(dev) else { continue };
            last_at = srv
                .events
                .get(usize::try_from(seq).unwrap_or(usize::MAX))
                .map(|e| e.at);
            devices.extend(render::device(self, dev, &d.state, None, caller.version));
        }
        Ok(Page {
            cursor: self.issue_cursor(caller, CursorKind::Fetch, next, range.end, now),
            devices,
            fetched_until: iso8601(last_at.unwrap_or(now)),
            more_to_follow: next < range.end,
        })
    }

    /// `POST /devices/sync` (§3.3): every event since the cursor, with `op_type`/`op_date`.
    pub(crate) fn sync_page(
        &self,
        caller: Caller,
        req: &PageRequest,
        now: i64,
    ) -> Result<Page<'_>, ApiError> {
        let ctx = self.cursor_context(caller, now);
        let start = cursor::plan_sync(req.cursor.as_deref(), &ctx).map_err(|e| (400, e.code()))?;
        let srv = self.server(caller.server).ok_or((403, "FORBIDDEN"))?;
        let len = srv.events.len();
        let from = usize::try_from(start).unwrap_or(len).min(len);
        let to = from.saturating_add(limit(req.limit)).min(len);
        let events = srv.events.get(from..to).unwrap_or_default();
        let devices = events
            .iter()
            .filter_map(|e| {
                render::device(self, e.device, &e.state, Some((e.op, e.at)), caller.version)
            })
            .collect();
        Ok(Page {
            cursor: self.issue_cursor(caller, CursorKind::Sync, to as u64, to as u64, now),
            devices,
            fetched_until: iso8601(events.last().map_or(now, |e| e.at)),
            more_to_follow: to < len,
        })
    }

    /// `POST /devices` (§3.5): full records for this server's devices, `NOT_ACCESSIBLE` for
    /// the rest.
    pub(crate) fn details(&self, caller: Caller, serials: &[String]) -> Result<Vec<u8>, ApiError> {
        #[derive(Serialize)]
        #[serde(untagged)]
        enum Detail<'a> {
            Found(Box<DeviceJson<'a>>),
            Missing {
                serial_number: &'a str,
                response_status: &'static str,
            },
        }
        let mut out = BTreeMap::new();
        for serial in serials {
            let found = self
                .find(serial)
                .and_then(|i| {
                    self.device(i)
                        .filter(|d| d.server == caller.server)
                        .map(|d| (i, d))
                })
                .and_then(|(i, d)| render::device(self, i, &d.state, None, caller.version));
            let detail = match found {
                Some(mut json) => {
                    json.response_status = Some("SUCCESS");
                    Detail::Found(Box::new(json))
                }
                None => Detail::Missing {
                    serial_number: serial,
                    response_status: "NOT_ACCESSIBLE",
                },
            };
            out.insert(serial.as_str(), detail);
        }
        serde_json::to_vec(&json!({ "devices": out })).map_err(|_| (500, "INTERNAL_ERROR"))
    }
}
