//! Prometheus metrics: HTTP request counts and latencies, recorded by middleware, and the ABM
//! token gauges, computed at scrape time from the store.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use guardmdm_service::mdm::PushCertificateView;
use guardmdm_service::tls_status::{CertificateSource, ServedCertificate};
use guardmdm_service::{AbmEntryView, TokenState};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;

type Labels = Vec<(String, String)>;

fn new_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.5, 12))
}

/// Metrics kept across requests.
pub struct HttpMetrics {
    requests: Family<Labels, Counter>,
    durations: Family<Labels, Histogram, fn() -> Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(new_histogram),
        }
    }
}

/// The method as a label: the standard methods by name, anything else as `other`, so that
/// anonymous requests cannot mint labels (each would live in memory and in `/metrics`).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Counts and times every request by method, matched route and status: each label comes from
/// a closed set (the standard methods or `other`, the router's own routes or `unmatched`,
/// the status code).
pub(crate) async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = method_label(req.method()).to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels: Labels = vec![
        ("method".to_string(), method.clone()),
        ("route".to_string(), route.clone()),
        ("status".to_string(), status),
    ];
    state.metrics.requests.get_or_create(&labels).inc();
    state
        .metrics
        .durations
        .get_or_create(&vec![
            ("method".to_string(), method),
            ("route".to_string(), route),
        ])
        .observe(started.elapsed().as_secs_f64());
    response
}

const ALL_STATES: [TokenState; 6] = [
    TokenState::Pending,
    TokenState::Active,
    TokenState::Expiring,
    TokenState::Expired,
    TokenState::TermsNotSigned,
    TokenState::Rejected,
];

/// The exposition text: ABM token gauges for `entries`, the certificates, the devices stuck
/// in Setup Assistant, then the HTTP metrics.
pub(crate) fn render(
    metrics: &HttpMetrics,
    entries: &[AbmEntryView],
    push: Option<&PushCertificateView>,
    tls: Option<&ServedCertificate>,
    stuck: u64,
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    register_build_info(&mut registry);
    register_abm_tokens(&mut registry, entries);
    if let Some(push) = push {
        register_push_certificate(&mut registry, push);
    }
    if let Some(tls) = tls {
        register_tls_certificate(&mut registry, tls);
    }
    register_stuck_devices(&mut registry, stuck);
    registry.register(
        "guardmdm_http_requests",
        "HTTP requests by method, matched route and status",
        metrics.requests.clone(),
    );
    registry.register(
        "guardmdm_http_request_duration_seconds",
        "HTTP request latency by method and matched route",
        metrics.durations.clone(),
    );
    let mut out = String::new();
    encode_registry(&mut out, &registry)?;
    encode_eof(&mut out)?;
    Ok(out)
}

/// `guardmdm_build_info`: this build's version, as a label of a gauge that is always 1.
fn register_build_info(registry: &mut Registry) {
    let build: Family<Labels, Gauge> = Family::default();
    build
        .get_or_create(&vec![(
            "version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        )])
        .set(1);
    registry.register("guardmdm_build_info", "GuardMDM version (always 1)", build);
}

/// Per ABM entry: when its server token expires, and its health as one gauge per state (1
/// for the current one), so an alert can name the state without knowing the others.
fn register_abm_tokens(registry: &mut Registry, entries: &[AbmEntryView]) {
    let expiry: Family<Labels, Gauge> = Family::default();
    let state: Family<Labels, Gauge> = Family::default();
    for entry in entries {
        let token = vec![("token".to_string(), entry.name.clone())];
        if let Some(at) = entry.health.expires_at {
            expiry.get_or_create(&token).set(at.unix_timestamp());
        }
        for s in ALL_STATES {
            let mut labels = token.clone();
            labels.push(("state".to_string(), s.as_str().to_string()));
            state
                .get_or_create(&labels)
                .set(i64::from(entry.health.state == s));
        }
    }
    registry.register(
        "guardmdm_abm_token_expiry_timestamp_seconds",
        "When each ABM server token expires (access_token_expiry), Unix seconds",
        expiry,
    );
    registry.register(
        "guardmdm_abm_token_state",
        "ABM token health: 1 for the entry's current state, 0 for the others",
        state,
    );
}

/// When the MDM push certificate expires, labelled with its topic.
fn register_push_certificate(registry: &mut Registry, push: &PushCertificateView) {
    let apns: Family<Labels, Gauge> = Family::default();
    apns.get_or_create(&vec![("topic".to_string(), push.topic.clone())])
        .set(push.not_after.unix_timestamp());
    registry.register(
        "guardmdm_apns_certificate_expiry_timestamp_seconds",
        "When the MDM push certificate expires, Unix seconds (renew it with the same Apple Account before then)",
        apns,
    );
}

/// When the HTTPS certificate served expires, labelled with where it comes from.
fn register_tls_certificate(registry: &mut Registry, tls: &ServedCertificate) {
    let served: Family<Labels, Gauge> = Family::default();
    let source = match tls.source {
        CertificateSource::Files => "files",
        CertificateSource::Acme => "acme",
    };
    served
        .get_or_create(&vec![("source".to_string(), source.to_string())])
        .set(tls.not_after.unix_timestamp());
    registry.register(
        "guardmdm_tls_certificate_expiry_timestamp_seconds",
        "When the HTTPS certificate served on --listen expires, Unix seconds (source: files or acme)",
        served,
    );
}

/// How many devices wait in Setup Assistant longer than `--stuck-after`.
fn register_stuck_devices(registry: &mut Registry, stuck: u64) {
    let gauge: Gauge = Gauge::default();
    gauge.set(i64::try_from(stuck).unwrap_or(i64::MAX));
    registry.register(
        "guardmdm_setup_assistant_stuck_devices",
        "Devices waiting in Setup Assistant for DeviceConfigured longer than --stuck-after",
        gauge,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_set_share_one_label() {
        assert_eq!(method_label(&Method::PUT), "PUT");
        assert_eq!(method_label(&Method::OPTIONS), "OPTIONS");
        for junk in ["M000001XXXX", "PROPFIND", "get"] {
            let method = Method::from_bytes(junk.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{junk}");
        }
    }
}
