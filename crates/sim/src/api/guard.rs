//! What every DEP API request goes through before its handler (`docs/protocol.md` §2.3–§2.5):
//! injected delays and error statuses, `User-Agent` and `X-Server-Protocol-Version`, the
//! terms-and-conditions block, the session token (with rotation), and afterwards the
//! malformed-JSON fault.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use super::code;
use crate::sim::Simulator;
use crate::world::{Caller, auth_error};

/// The session header (§2.3).
pub(crate) const SESSION_HEADER: &str = "x-adm-auth-session";
/// The protocol version header (§2.3).
pub(crate) const VERSION_HEADER: &str = "x-server-protocol-version";

/// The DEP API middleware.
pub(crate) async fn dep_guard(
    State(sim): State<Simulator>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    let before = sim.shared.faults().before(&path);
    if before.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(before.delay_ms)).await;
    }
    if let Some((status, retry_after)) = before.status {
        return injected(status, retry_after);
    }
    let version = match check_headers(&req) {
        Ok(v) => v,
        Err(response) => return response,
    };
    if sim.shared.faults().terms_not_signed() {
        return code(403, "T_C_NOT_SIGNED");
    }
    let mut session = None;
    if path != "/session" {
        let token = req
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim()
            .to_string();
        let now = sim.shared.clock.now();
        let checked = sim.shared.world().use_session(&token, now);
        let (server, rotated) = match checked {
            Ok(ok) => ok,
            Err(e) => {
                let (status, body) = auth_error(e);
                return code(status, body);
            }
        };
        if sim.shared.faults().access_denied() {
            return code(403, "ACCESS_DENIED");
        }
        session = Some(rotated.unwrap_or(token));
        req.extensions_mut().insert(Caller { server, version });
    }
    let mut response = next.run(req).await;
    if let Some(token) = session.and_then(|t| HeaderValue::from_str(&t).ok()) {
        response.headers_mut().insert(SESSION_HEADER, token);
    }
    if response.status().is_success() && sim.shared.faults().take_malformed(&path) {
        return malformed(response).await;
    }
    response
}

/// `User-Agent` (400 `USER_AGENT_MISSING` / `USER_AGENT_INVALID`, §2.3) and the protocol
/// version (400 `X_SERVER_PROTOCOL_VERSION_MISSING` / `_INVALID`: Apple requires the header
/// but documents no code, so these names are the simulator's).
#[allow(clippy::result_large_err)] // the error is the reply itself
fn check_headers(req: &Request) -> Result<u32, Response> {
    match req
        .headers()
        .get(header::USER_AGENT)
        .map(HeaderValue::to_str)
    {
        None => return Err(code(400, "USER_AGENT_MISSING")),
        Some(Ok(ua)) if !ua.trim().is_empty() => {}
        Some(_) => return Err(code(400, "USER_AGENT_INVALID")),
    }
    let version = req
        .headers()
        .get(VERSION_HEADER)
        .ok_or_else(|| code(400, "X_SERVER_PROTOCOL_VERSION_MISSING"))?;
    version
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|v| *v >= 1)
        .ok_or_else(|| code(400, "X_SERVER_PROTOCOL_VERSION_INVALID"))
}

/// An injected error status, with `Retry-After` when given.
fn injected(status: u16, retry_after: Option<u64>) -> Response {
    let body = match status {
        429 => "TOO_MANY_REQUESTS",
        500 => "INTERNAL_SERVER_ERROR",
        502 => "BAD_GATEWAY",
        503 => "SERVICE_UNAVAILABLE",
        504 => "GATEWAY_TIMEOUT",
        _ => "ERROR",
    };
    let mut response = code(status, body);
    if let Some(seconds) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, seconds);
    }
    response
}

/// Cuts a response body in half, leaving status and headers: invalid JSON with a 200.
async fn malformed(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let cut = bytes.get(..bytes.len() / 2).unwrap_or_default();
    let cut = if cut.is_empty() { b"{".as_slice() } else { cut };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(cut.to_vec()))
}
