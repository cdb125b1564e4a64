//! `/api/v1/profiles` (ADE profiles, their versions and device-level assignment),
//! `/api/v1/os-defaults` and `/api/v1/explicit-assignments`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use guardmdm_service::ServiceError;
use guardmdm_service::os::OsKey;
use guardmdm_service::profile_spec::ProfileSpec;
use guardmdm_service::profiles::{OsDefaultView, ProfileView, ProfileWrite, VersionView};
use guardmdm_service::serial_list::{CsvReport, SerialInput};
use serde::{Deserialize, Deserializer};

use crate::auth::Caller;
use crate::extract::{ApiJson, ApiQuery, LimitedBytes};
use crate::{ApiError, AppState, MAX_JSON_BODY_BYTES};

/// The largest serial-number upload: 100,000 rows fit with room to spare.
pub(crate) const MAX_SERIALS_BODY_BYTES: usize = 32 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateQuery {
    /// Refuse the update unless the profile is at this version.
    expected_version: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DryRunQuery {
    #[serde(default)]
    pub(crate) dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DefaultBody {
    /// The profile's name; `null` clears the default.
    #[serde(deserialize_with = "nullable")]
    profile: Option<String>,
}

fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SerialsBody {
    serials: Vec<String>,
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// A profile specification from a JSON or YAML body (by `Content-Type`).
fn spec_from(headers: &HeaderMap, body: &[u8]) -> Result<ProfileSpec, ApiError> {
    let hint = match content_type(headers).as_str() {
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => Some("yaml"),
        "application/json" | "" => Some("json"),
        other => {
            return Err(ApiError::BadRequest(format!(
                "unsupported Content-Type {other:?}: send the profile as application/json or application/yaml"
            )));
        }
    };
    ProfileSpec::parse(body, hint).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Serials from a JSON body (`{"serials": [...]}`) or a CSV (`text/csv`).
pub(crate) fn serials_from(headers: &HeaderMap, body: &[u8]) -> Result<SerialInput, ApiError> {
    match content_type(headers).as_str() {
        "text/csv" | "text/plain" | "application/csv" => Ok(SerialInput::Csv(body.to_vec())),
        "application/json" | "" => {
            let parsed: SerialsBody = serde_json::from_slice(body).map_err(|e| {
                ApiError::BadRequest(format!(
                    "the body must be {{\"serials\": [\"...\"]}} or a CSV sent as text/csv: {e}"
                ))
            })?;
            Ok(SerialInput::Serials(parsed.serials))
        }
        other => Err(ApiError::BadRequest(format!(
            "unsupported Content-Type {other:?}: send application/json or text/csv"
        ))),
    }
}

pub(crate) async fn list(
    State(state): State<AppState>,
) -> Result<Json<Vec<ProfileView>>, ApiError> {
    Ok(Json(state.services.profiles.list().await?))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(actor): Caller,
    headers: HeaderMap,
    LimitedBytes(body): LimitedBytes<MAX_JSON_BODY_BYTES>,
) -> Result<(StatusCode, Json<ProfileView>), ApiError> {
    let spec = spec_from(&headers, &body)?;
    let view = state.services.profiles.create(&actor, spec).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ProfileView>, ApiError> {
    Ok(Json(state.services.profiles.get(&name).await?))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<UpdateQuery>,
    headers: HeaderMap,
    LimitedBytes(body): LimitedBytes<MAX_JSON_BODY_BYTES>,
) -> Result<Json<ProfileWrite>, ApiError> {
    let spec = spec_from(&headers, &body)?;
    Ok(Json(
        state
            .services
            .profiles
            .update(&actor, &name, spec, query.expected_version)
            .await?,
    ))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.services.profiles.delete(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn versions(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<VersionView>>, ApiError> {
    Ok(Json(state.services.profiles.versions(&name).await?))
}

pub(crate) async fn assign(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<DryRunQuery>,
    headers: HeaderMap,
    LimitedBytes(body): LimitedBytes<MAX_SERIALS_BODY_BYTES>,
) -> Result<Json<CsvReport>, ApiError> {
    let input = serials_from(&headers, &body)?;
    Ok(Json(
        state
            .services
            .profiles
            .assign(&actor, Some(&name), input, query.dry_run)
            .await?,
    ))
}

pub(crate) async fn clear_explicit(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiQuery(query): ApiQuery<DryRunQuery>,
    headers: HeaderMap,
    LimitedBytes(body): LimitedBytes<MAX_SERIALS_BODY_BYTES>,
) -> Result<Json<CsvReport>, ApiError> {
    let input = serials_from(&headers, &body)?;
    Ok(Json(
        state
            .services
            .profiles
            .assign(&actor, None, input, query.dry_run)
            .await?,
    ))
}

pub(crate) async fn defaults(
    State(state): State<AppState>,
) -> Result<Json<Vec<OsDefaultView>>, ApiError> {
    Ok(Json(state.services.profiles.defaults().await?))
}

pub(crate) async fn set_default(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(os): Path<String>,
    ApiJson(body): ApiJson<DefaultBody>,
) -> Result<Json<Vec<OsDefaultView>>, ApiError> {
    let os = OsKey::parse(&os).map_err(ServiceError::from)?;
    Ok(Json(
        state
            .services
            .profiles
            .set_default(&actor, os, body.profile.as_deref())
            .await?,
    ))
}
