//! DEP API handlers (`docs/protocol.md` §2–§3). Bodies are parsed here so that invalid JSON is
//! Apple's 400 `MALFORMED_REQUEST_BODY` (§3.0).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{code, json_bytes, json_value};
use crate::clock::real_now;
use crate::oauth;
use crate::sim::Simulator;
use crate::world::{AssignRequest, Caller, DeviceList, PageRequest, World};

/// Parses a JSON body; an empty body is the type's default.
#[allow(clippy::result_large_err)] // the error is the reply itself
fn parse<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|_| code(400, "MALFORMED_REQUEST_BODY"))
}

/// Replies with the operation's JSON or Apple's error.
fn answer(result: Result<Value, (u16, &'static str)>) -> Response {
    match result {
        Ok(value) => json_value(200, &value),
        Err((status, body)) => code(status, body),
    }
}

/// `GET /session` (§2.1): verifies the OAuth 1.0a signature over the URL this request was
/// sent to (`X-Forwarded-Proto` or `http`, the `Host` header, the path).
pub(crate) async fn session(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let request = match oauth::parse_request(authorization, uri.query()) {
        Ok(r) => r,
        Err(problem) => return code(problem.status(), &problem.body()),
    };
    let host = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("http");
    let base_uri = oauth::base_uri(scheme, &host, uri.path());
    let now = sim.shared.clock.now();
    let opened = sim
        .shared
        .world()
        .open_session(&request, &base_uri, real_now(), now);
    match opened {
        Ok(token) => json_value(200, &json!({ "auth_session_token": token })),
        Err(problem) => code(problem.status(), &problem.body()),
    }
}

/// `GET /account` (§3.1).
pub(crate) async fn account(
    State(sim): State<Simulator>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let account = sim.shared.world().account(caller);
    json_value(200, &account)
}

/// `POST /server/devices` (§3.2).
pub(crate) async fn fetch(
    State(sim): State<Simulator>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    page(&sim, caller, &body, World::fetch_page)
}

/// `POST /devices/sync` (§3.3).
pub(crate) async fn sync(
    State(sim): State<Simulator>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    page(&sim, caller, &body, World::sync_page)
}

type PageFn = for<'a> fn(
    &'a World,
    Caller,
    &PageRequest,
    i64,
) -> Result<crate::world::Page<'a>, (u16, &'static str)>;

/// A fetch or sync page, with Apple's repeated-cursor quirk when injected (§3.4).
fn page(sim: &Simulator, caller: Caller, body: &Bytes, build: PageFn) -> Response {
    let req: PageRequest = match parse(body) {
        Ok(r) => r,
        Err(response) => return response,
    };
    let now = sim.shared.clock.now();
    let world = sim.shared.world();
    let mut page = match build(&world, caller, &req, now) {
        Ok(p) => p,
        Err((status, body)) => return code(status, body),
    };
    if let Some(cursor) = req.cursor.filter(|c| !c.is_empty())
        && sim.shared.faults().take_repeated_cursor()
    {
        page.cursor = cursor;
        page.more_to_follow = true;
    }
    let bytes = serde_json::to_vec(&page);
    drop(world);
    match bytes {
        Ok(b) => json_bytes(200, b),
        Err(_) => code(500, "INTERNAL_ERROR"),
    }
}

/// `POST /devices` (§3.5).
pub(crate) async fn details(
    State(sim): State<Simulator>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let list = match parse::<DeviceList>(&body).map(|l| l.devices.filter(|d| !d.is_empty())) {
        Ok(Some(list)) => list,
        Ok(None) => return code(400, "DEVICE_ID_REQUIRED"),
        Err(response) => return response,
    };
    match sim.shared.world().details(caller, &list) {
        Ok(bytes) => json_bytes(200, bytes),
        Err((status, body)) => code(status, body),
    }
}

/// `POST /profile` (§3.6).
pub(crate) async fn define_profile(
    State(sim): State<Simulator>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let value: Value = match parse(&body) {
        Ok(v) => v,
        Err(response) => return response,
    };
    let now = sim.shared.clock.now();
    let mut world = sim.shared.world();
    let mut faults = sim.shared.faults();
    answer(world.define_profile(caller, &value, now, &mut faults))
}

/// `GET /profile?profile_uuid=` (§3.7).
pub(crate) async fn get_profile(
    State(sim): State<Simulator>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let uuid = query.get("profile_uuid").map(String::as_str);
    answer(sim.shared.world().get_profile(caller, uuid))
}

/// Assign profile, `POST` or `PUT /profile/devices` (§3.8).
pub(crate) async fn assign(
    State(sim): State<Simulator>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let req: AssignRequest = match parse(&body) {
        Ok(r) => r,
        Err(response) => return response,
    };
    let now = sim.shared.clock.now();
    let mut world = sim.shared.world();
    let mut faults = sim.shared.faults();
    answer(world.assign_profile(caller, req, now, &mut faults))
}

/// Remove profile, `DELETE /profile/devices` (§3.9).
pub(crate) async fn remove(
    State(sim): State<Simulator>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let list = match parse::<DeviceList>(&body).map(|l| crate::world::serials(l.devices)) {
        Ok(Ok(list)) => list,
        Ok(Err((status, body))) => return code(status, body),
        Err(response) => return response,
    };
    let now = sim.shared.clock.now();
    json_value(200, &sim.shared.world().remove_profile(caller, &list, now))
}

/// `POST /devices/disown` (§3.10).
pub(crate) async fn disown(
    State(sim): State<Simulator>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let list = match parse::<DeviceList>(&body).map(|l| crate::world::serials(l.devices)) {
        Ok(Ok(list)) => list,
        Ok(Err((status, body))) => return code(status, body),
        Err(response) => return response,
    };
    let now = sim.shared.clock.now();
    answer(sim.shared.world().disown(caller, &list, now))
}
