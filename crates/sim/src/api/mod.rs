//! HTTP: the DEP API at Apple's paths behind [`guard::dep_guard`], and the portal under
//! `/portal`. Handlers only parse, call the organisation, and reply.

mod dep;
mod guard;
mod portal;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};

use crate::sim::Simulator;

/// Apple's JSON media type (`docs/protocol.md` §2.3).
pub(crate) const JSON: &str = "application/json;charset=UTF8";
/// Error bodies are bare codes (§2.5).
const TEXT: &str = "text/plain;charset=UTF8";

/// Every route.
pub(crate) fn router(sim: Simulator) -> Router {
    let dep = Router::new()
        .route("/session", get(dep::session))
        .route("/account", get(dep::account))
        .route("/server/devices", post(dep::fetch))
        .route("/devices/sync", post(dep::sync))
        .route("/devices", post(dep::details))
        .route("/profile", post(dep::define_profile).get(dep::get_profile))
        .route(
            "/profile/devices",
            post(dep::assign).put(dep::assign).delete(dep::remove),
        )
        .route("/devices/disown", post(dep::disown))
        .route_layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            guard::dep_guard,
        ));
    Router::new()
        .merge(dep)
        .nest("/portal", portal::routes())
        .layer(axum::middleware::map_response_with_state(
            sim.clone(),
            date_header,
        ))
        .with_state(sim)
}

/// Every answer carries the simulated time in `Date`, as Apple's carry Apple's time
/// (clients read it to compare clocks; [`Simulator::advance_clock`] moves it).
async fn date_header(
    axum::extract::State(sim): axum::extract::State<Simulator>,
    mut response: Response,
) -> Response {
    let now = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(u64::try_from(sim.now().unix_timestamp()).unwrap_or(0));
    if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(now)) {
        response.headers_mut().insert(header::DATE, value);
    }
    response
}

/// A bare-code error reply, as Apple sends them.
pub(crate) fn code(status: u16, code: &str) -> Response {
    reply(status, TEXT, code.as_bytes().to_vec())
}

/// A JSON reply with Apple's media type.
pub(crate) fn json_bytes(status: u16, bytes: Vec<u8>) -> Response {
    reply(status, JSON, bytes)
}

/// A JSON value reply.
pub(crate) fn json_value(status: u16, value: &serde_json::Value) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_bytes(status, bytes),
        Err(_) => code(500, "INTERNAL_ERROR"),
    }
}

fn reply(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
