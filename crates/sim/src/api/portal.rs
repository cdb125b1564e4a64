//! The portal: our own JSON REST API under `/portal` standing in for the ABM web pages (MDM
//! servers and tokens, default servers, purchases, manual and CSV assignment, activation)
//! plus the test controls (clock, faults). Errors are `{"error": CODE, "message": …}`.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use super::json_value;
use crate::catalog::DeviceFamily;
use crate::error::SimError;
use crate::faults::Fault;
use crate::sim::Simulator;

type Params = Query<HashMap<String, String>>;

/// The `/portal` routes.
pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/", get(index))
        .route("/org", get(org))
        .route("/servers", get(servers).post(register))
        .route("/servers/{uuid}", get(server).patch(update_server))
        .route("/servers/{uuid}/public-key", put(public_key))
        .route("/servers/{uuid}/token", get(token).post(token))
        .route("/default-server", put(default_server))
        .route("/devices", get(devices).post(purchase))
        .route("/devices/{serial}", get(device))
        .route("/assign", post(assign))
        .route("/unassign", post(unassign))
        .route("/assign-csv", post(assign_csv))
        .route("/activation/{serial}", get(activation))
        .route("/clock", get(clock))
        .route("/clock/advance", post(advance))
        .route("/faults", get(faults).post(inject).delete(clear))
        .route("/sessions/expire", post(expire_sessions))
        .route("/cursors/expire", post(expire_cursors))
}

fn error(e: &SimError) -> Response {
    json_value(
        e.status(),
        &json!({ "error": e.code(), "message": e.to_string() }),
    )
}

fn invalid(message: impl Into<String>) -> Response {
    error(&SimError::Invalid(message.into()))
}

fn ok<T: serde::Serialize>(result: Result<T, SimError>) -> Response {
    match result.map(|v| serde_json::to_value(v)) {
        Ok(Ok(value)) => json_value(200, &value),
        Ok(Err(e)) => invalid(e.to_string()),
        Err(e) => error(&e),
    }
}

/// Parses a JSON body, or answers 400.
#[allow(clippy::result_large_err)] // the error is the reply itself
fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("the body is not the expected JSON: {e}")))
}

async fn index() -> Response {
    json_value(
        200,
        &json!({
            "dep_api": "the DEP API is served at Apple's paths on this host: /session, /account, /server/devices, /devices/sync, /devices, /profile, /profile/devices, /devices/disown",
            "routes": [
                "GET /portal/org", "GET /portal/servers", "POST /portal/servers?name=NAME (body: certificate PEM)",
                "GET|PATCH /portal/servers/{uuid}", "PUT /portal/servers/{uuid}/public-key (body: PEM)",
                "GET|POST /portal/servers/{uuid}/token[?admin_id=EMAIL]", "PUT /portal/default-server",
                "GET|POST /portal/devices", "GET /portal/devices/{serial}", "POST /portal/assign",
                "POST /portal/unassign", "POST /portal/assign-csv?server_uuid=UUID (body: CSV)",
                "GET /portal/activation/{serial}", "GET /portal/clock", "POST /portal/clock/advance",
                "GET|POST|DELETE /portal/faults", "POST /portal/sessions/expire", "POST /portal/cursors/expire",
            ],
        }),
    )
}

async fn org(State(sim): State<Simulator>) -> Response {
    json_value(200, &sim.summary())
}

async fn servers(State(sim): State<Simulator>) -> Response {
    ok(Ok(sim.servers()))
}

async fn register(State(sim): State<Simulator>, Query(q): Params, pem: Bytes) -> Response {
    let Some(name) = q.get("name") else {
        return invalid("give the MDM server's name: POST /portal/servers?name=NAME");
    };
    let pem = String::from_utf8_lossy(&pem);
    let registered = sim.register_server(name, &pem).and_then(|info| {
        match q.get("allow_release").map(String::as_str) {
            Some("true" | "1") => {
                sim.set_allow_release(&info.server_uuid, true)?;
                sim.server(&info.server_uuid)
            }
            _ => Ok(info),
        }
    });
    match registered {
        Ok(info) => match serde_json::to_value(info) {
            Ok(v) => json_value(201, &v),
            Err(e) => invalid(e.to_string()),
        },
        Err(e) => error(&e),
    }
}

async fn server(State(sim): State<Simulator>, Path(uuid): Path<String>) -> Response {
    ok(sim.server(&uuid))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerUpdate {
    allow_release: Option<bool>,
}

async fn update_server(
    State(sim): State<Simulator>,
    Path(uuid): Path<String>,
    bytes: Bytes,
) -> Response {
    let update: ServerUpdate = match body(&bytes) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Some(allow) = update.allow_release
        && let Err(e) = sim.set_allow_release(&uuid, allow)
    {
        return error(&e);
    }
    ok(sim.server(&uuid))
}

async fn public_key(
    State(sim): State<Simulator>,
    Path(uuid): Path<String>,
    pem: Bytes,
) -> Response {
    let pem = String::from_utf8_lossy(&pem);
    ok(sim
        .set_public_key(&uuid, &pem)
        .and_then(|()| sim.server(&uuid)))
}

async fn token(
    State(sim): State<Simulator>,
    Path(uuid): Path<String>,
    Query(q): Params,
) -> Response {
    match sim.download_token(&uuid, q.get("admin_id").map(String::as_str)) {
        Ok(token) => {
            let disposition = format!("attachment; filename=\"{}\"", token.file_name);
            let mut response = token.contents.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pkcs7-mime"),
            );
            if let Ok(value) = HeaderValue::from_str(&disposition) {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            response
        }
        Err(e) => error(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultServer {
    server_uuid: Option<String>,
    device_family: Option<String>,
}

async fn default_server(State(sim): State<Simulator>, bytes: Bytes) -> Response {
    let req: DefaultServer = match body(&bytes) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let family = match req
        .device_family
        .as_deref()
        .filter(|f| !f.eq_ignore_ascii_case("any"))
    {
        None => None,
        Some(f) => match DeviceFamily::parse(f) {
            Some(family) => Some(family),
            None => return invalid(format!("unknown device family {f:?}")),
        },
    };
    ok(sim
        .set_default_server(family, req.server_uuid.as_deref())
        .map(|()| sim.servers()))
}

async fn devices(State(sim): State<Simulator>, Query(q): Params) -> Response {
    let number = |k: &str, default: usize| q.get(k).and_then(|v| v.parse().ok()).unwrap_or(default);
    let limit = number("limit", 100).min(1000);
    ok(sim.devices(
        q.get("server_uuid").map(String::as_str),
        number("offset", 0),
        limit,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Purchase {
    count: usize,
    device_family: Option<String>,
}

async fn purchase(State(sim): State<Simulator>, bytes: Bytes) -> Response {
    let req: Purchase = match body(&bytes) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if req.count == 0 || req.count > 1_000_000 {
        return invalid("count must be 1 to 1000000");
    }
    let family = match req.device_family.as_deref() {
        None => None,
        Some(f) => match DeviceFamily::parse(f) {
            Some(family) => Some(family),
            None => return invalid(format!("unknown device family {f:?}")),
        },
    };
    let added = sim.add_devices(req.count, family);
    match serde_json::to_value(added) {
        Ok(v) => json_value(201, &v),
        Err(e) => invalid(e.to_string()),
    }
}

async fn device(State(sim): State<Simulator>, Path(serial): Path<String>) -> Response {
    ok(sim.device(&serial).ok_or(SimError::UnknownDevice(serial)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Assign {
    server_uuid: String,
    serials: Vec<String>,
}

async fn assign(State(sim): State<Simulator>, bytes: Bytes) -> Response {
    match body::<Assign>(&bytes) {
        Ok(req) => ok(sim.assign_devices(&req.server_uuid, &req.serials)),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Unassign {
    serials: Vec<String>,
}

async fn unassign(State(sim): State<Simulator>, bytes: Bytes) -> Response {
    match body::<Unassign>(&bytes) {
        Ok(req) => ok(Ok(sim.unassign_devices(&req.serials))),
        Err(r) => r,
    }
}

async fn assign_csv(State(sim): State<Simulator>, Query(q): Params, csv: Bytes) -> Response {
    let Some(uuid) = q.get("server_uuid") else {
        return invalid("give the target server: POST /portal/assign-csv?server_uuid=UUID");
    };
    ok(sim.assign_csv(uuid, &String::from_utf8_lossy(&csv)))
}

async fn activation(State(sim): State<Simulator>, Path(serial): Path<String>) -> Response {
    ok(sim.activate(&serial))
}

async fn clock(State(sim): State<Simulator>) -> Response {
    json_value(
        200,
        &json!({ "now": crate::clock::iso8601(sim.now().unix_timestamp()) }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: u64,
}

async fn advance(State(sim): State<Simulator>, bytes: Bytes) -> Response {
    match body::<Advance>(&bytes) {
        Ok(req) => {
            sim.advance_clock(std::time::Duration::from_secs(req.seconds));
            clock(State(sim)).await
        }
        Err(r) => r,
    }
}

async fn faults(State(sim): State<Simulator>) -> Response {
    ok(Ok(sim.faults()))
}

async fn inject(State(sim): State<Simulator>, bytes: Bytes) -> Response {
    match body::<Fault>(&bytes) {
        Ok(fault) => ok(sim.inject_fault(fault).map(|()| sim.faults())),
        Err(r) => r,
    }
}

async fn clear(State(sim): State<Simulator>) -> Response {
    sim.clear_faults();
    ok(Ok(Value::Array(Vec::new())))
}

async fn expire_sessions(State(sim): State<Simulator>) -> Response {
    sim.expire_sessions();
    json_value(200, &json!({ "expired": "sessions" }))
}

async fn expire_cursors(State(sim): State<Simulator>) -> Response {
    sim.expire_cursors();
    json_value(200, &json!({ "expired": "cursors" }))
}
