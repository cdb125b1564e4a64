//! GuardMDM's HTTP adapters (axum). Handlers extract and validate, call one service method,
//! and serialize (or render); no SQL, no crypto, no Apple calls live here.
//!
//! - `/`, `/signin`, `/signout`, `/devices…`, `/assets/…`: the web dashboard (see the
//!   `dashboard` module: sessions, CSRF, layout, and how to add a page).
//! - `/healthz`: unauthenticated.
//! - `/metrics` (Prometheus/OpenMetrics text): with an admin or API bearer token (it names
//!   ABM entries and the APNs topic); [`metrics_router`] serves it without one, for a
//!   separate listen address only the monitoring system reaches.
//! - `/api/v1/openapi.json`: the API description, unauthenticated.
//! - `/api/v1/…`: the admin REST API, `Authorization: Bearer <token>` on every route
//!   (401 with a JSON error otherwise, unknown routes included).

mod auth;
mod dashboard;
mod error;
mod extract;
mod metrics;
mod routes;
mod trace;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, put};
use guardmdm_service::Services;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

pub use error::ApiError;
pub use metrics::HttpMetrics;

/// Largest JSON request body accepted by the admin API.
pub const MAX_JSON_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The services.
    pub services: Services,
    /// Request counters and latency histograms.
    pub metrics: Arc<HttpMetrics>,
    /// The header a trusted proxy forwards device client certificates in.
    pub client_cert_header: Option<Arc<str>>,
    /// The origin (`scheme://host[:port]`) of the public URL: dashboard requests from it pass
    /// the Origin check (as do those from the `Host` they were sent to).
    pub public_origin: Option<Arc<str>>,
    /// Whether the session cookie is `Secure` (the public URL is https).
    pub secure_cookies: bool,
}

impl AppState {
    /// State over `services`, with fresh metrics.
    pub fn new(services: Services) -> Self {
        Self {
            services,
            metrics: Arc::new(HttpMetrics::default()),
            client_cert_header: None,
            public_origin: None,
            secure_cookies: false,
        }
    }

    /// The public URL admins reach the server at: session cookies are `Secure` when it is
    /// https, and its origin passes the dashboard's Origin check.
    #[must_use]
    pub fn with_public_url(mut self, url: &str) -> Self {
        self.public_origin = dashboard::origin(url).map(Arc::from);
        self.secure_cookies = url.starts_with("https://");
        self
    }

    /// Trusts client certificates forwarded in `header` (lower case).
    #[must_use]
    pub fn with_client_cert_header(mut self, header: Option<String>) -> Self {
        self.client_cert_header = header.map(|h| Arc::from(h.to_ascii_lowercase()));
        self
    }
}

/// The whole HTTP surface of `guardmdm serve`.
pub fn router(state: AppState) -> Router {
    let api = routes::api_router()
        .fallback(error::api_not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_admin,
        ))
        .route("/openapi.json", get(routes::openapi::document))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY_BYTES));
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route(
            "/metrics",
            get(routes::health::metrics).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::require_admin,
            )),
        )
        .nest("/api/v1", api)
        .route(
            "/mdm/enroll",
            get(routes::mdm::enroll_web).post(routes::mdm::enroll),
        )
        .route("/mdm/checkin", put(routes::mdm::checkin))
        .route("/mdm/connect", put(routes::mdm::connect))
        .route(
            "/scep",
            get(routes::mdm::scep_get).post(routes::mdm::scep_post),
        )
        .merge(
            dashboard::routes(state.clone())
                .layer(axum::middleware::from_fn(dashboard::security_headers)),
        )
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::record,
        ))
        .layer(trace::layer())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([
            axum::http::header::AUTHORIZATION,
        ]))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .with_state(state)
}

/// `/metrics` and `/healthz` without a token, for a listen address of their own that only
/// the monitoring system reaches (`--metrics-listen`). Its requests are not counted in the
/// HTTP metrics.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/metrics", get(routes::health::metrics))
        .fallback(error::not_found)
        .layer(CatchPanicLayer::custom(error::panic_response))
        .with_state(state)
}
