//! `/api/v1/apns` (the push certificate), `/api/v1/enrollments` (enrolled devices) and their
//! `commands`, and `/api/v1/commands/{uuid}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use guardmdm_service::command_spec::CommandSpec;
use guardmdm_service::mdm::{
    CommandView, EnrollmentView, NewCommandRequest, PushCertificateView, PushRequestView,
    PushUpload, ReleaseOutcome, Released, StuckDevice,
};
use secrecy::SecretString;
use serde::Deserialize;

use crate::auth::Caller;
use crate::extract::{ApiJson, ApiQuery, LimitedBytes};
use crate::{ApiError, AppState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PushUploadBody {
    /// PEM certificate.
    certificate_pem: Option<String>,
    /// PEM private key (unencrypted).
    key_pem: Option<String>,
    /// A PKCS#12 file, base64.
    pkcs12_base64: Option<String>,
    /// Its password.
    password: Option<String>,
    /// Accept a topic change.
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnrollmentsQuery {
    status: Option<String>,
    serial: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitQuery {
    limit: Option<u32>,
}

pub(crate) async fn show_push_certificate(
    State(state): State<AppState>,
) -> Result<Json<Option<PushCertificateView>>, ApiError> {
    Ok(Json(state.services.mdm.push_certificate().await?))
}

pub(crate) async fn upload_push_certificate(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiJson(body): ApiJson<PushUploadBody>,
) -> Result<Json<PushCertificateView>, ApiError> {
    let upload = match (body.certificate_pem, body.key_pem, body.pkcs12_base64) {
        (Some(certificate), None, None) if body.password.is_none() => PushUpload::Certificate {
            certificate: certificate.into_bytes(),
        },
        (Some(certificate), Some(key), None) => PushUpload::Pem {
            certificate: certificate.into_bytes(),
            key: key.into_bytes(),
        },
        (None, None, Some(p12)) => PushUpload::Pkcs12 {
            der: base64::engine::general_purpose::STANDARD
                .decode(p12.trim())
                .map_err(|e| ApiError::BadRequest(format!("pkcs12_base64 is not base64: {e}")))?,
            password: SecretString::from(body.password.unwrap_or_default()),
        },
        _ => {
            return Err(ApiError::BadRequest(
                "send certificate_pem alone (the certificate Apple issued for GuardMDM's request), certificate_pem and key_pem, or pkcs12_base64 (and password)"
                    .to_string(),
            ));
        }
    };
    Ok(Json(
        state
            .services
            .mdm
            .upload_push_certificate(&actor, upload, body.force)
            .await?,
    ))
}

/// `GET /apns/csr`: the pending push certificate request.
pub(crate) async fn push_request(
    State(state): State<AppState>,
) -> Result<Json<Option<PushRequestView>>, ApiError> {
    Ok(Json(state.services.mdm.push_request().await?))
}

/// `POST /apns/csr`: a new key and certificate request (replacing the pending one).
pub(crate) async fn create_push_request(
    State(state): State<AppState>,
    Caller(actor): Caller,
) -> Result<(StatusCode, Json<PushRequestView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.services.mdm.create_push_request(&actor).await?),
    ))
}

pub(crate) async fn enrollments(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<EnrollmentsQuery>,
) -> Result<Json<Vec<EnrollmentView>>, ApiError> {
    Ok(Json(
        state
            .services
            .mdm
            .enrollments(q.status, q.serial, q.after, q.limit.unwrap_or(100))
            .await?,
    ))
}

/// `GET /enrollments/stuck`: devices stuck in Setup Assistant, the longest waiting first.
pub(crate) async fn stuck_enrollments(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> Result<Json<Vec<StuckDevice>>, ApiError> {
    Ok(Json(
        state
            .services
            .mdm
            .stuck_devices(q.limit.unwrap_or(100))
            .await?,
    ))
}

/// `POST /enrollments/{udid}/release`: `DeviceConfigured` now.
pub(crate) async fn release_enrollment(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(udid): Path<String>,
) -> Result<Json<Released>, ApiError> {
    Ok(Json(state.services.mdm.release(&actor, &udid).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseBody {
    udids: Vec<String>,
}

/// `POST /enrollments/release`: [`release_enrollment`] for each of `udids`.
pub(crate) async fn release_enrollments(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiJson(body): ApiJson<ReleaseBody>,
) -> Result<Json<Vec<ReleaseOutcome>>, ApiError> {
    Ok(Json(
        state.services.mdm.release_many(&actor, &body.udids).await?,
    ))
}

pub(crate) async fn enrollment(
    State(state): State<AppState>,
    Path(udid): Path<String>,
) -> Result<Json<EnrollmentView>, ApiError> {
    Ok(Json(state.services.mdm.enrollment(&udid).await?))
}

pub(crate) async fn commands(
    State(state): State<AppState>,
    Path(udid): Path<String>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> Result<Json<Vec<CommandView>>, ApiError> {
    Ok(Json(
        state
            .services
            .mdm
            .commands(&udid, q.limit.unwrap_or(50))
            .await?,
    ))
}

pub(crate) async fn command(
    State(state): State<AppState>,
    Path(uuid): Path<String>,
) -> Result<Json<CommandView>, ApiError> {
    Ok(Json(state.services.mdm.command(&uuid).await?))
}

/// `POST /enrollments/{udid}/commands`: JSON for the common commands, or a raw command
/// plist (`application/x-plist`, `application/xml`, `text/xml`).
pub(crate) async fn send_command(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(udid): Path<String>,
    headers: HeaderMap,
    LimitedBytes(body): LimitedBytes<{ guardmdm_mdm_protocol::MAX_COMMAND_BYTES }>,
) -> Result<(StatusCode, Json<CommandView>), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let request = match content_type.as_str() {
        "application/x-plist" | "application/xml" | "text/xml" => {
            NewCommandRequest::Raw(body.to_vec())
        }
        "application/json" => {
            let parsed: CommandSpec = serde_json::from_slice(&body)
                .map_err(|e| ApiError::BadRequest(format!("the command is malformed: {e}")))?;
            NewCommandRequest::Typed(parsed.to_request().map_err(|e| {
                ApiError::BadRequest(format!(
                    "{e}; or send a raw plist (Content-Type: application/x-plist)"
                ))
            })?)
        }
        other => {
            return Err(ApiError::BadRequest(format!(
                "unsupported Content-Type {other:?}: send JSON or a plist"
            )));
        }
    };
    let view = state
        .services
        .mdm
        .send_command(&actor, &udid, request)
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}
