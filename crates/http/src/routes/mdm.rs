//! The device-facing endpoints (`docs/protocol.md` §6–§7): the ADE enrollment URL, SCEP, check-in
//! and the command channel. No admin token here: devices prove themselves with their SCEP
//! identity (`Mdm-Signature`, or a client certificate a trusted proxy forwards). Errors are
//! plain text with a 4xx/5xx status and never 401, which would make a device unenroll.

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use guardmdm_mdm_protocol::{
    CHECKIN_CONTENT_TYPE, DEVICE_INFO_HEADER, MAX_MACHINE_INFO_BYTES, MDM_SIGNATURE_HEADER,
};
use guardmdm_service::mdm::{DeviceIdentityProof, EnrollAnswer, MdmError, ProvenDevice};
use http_body_util::BodyExt as _;
use serde::Deserialize;

use crate::AppState;

/// `application/x-apple-aspen-config`: what an enrollment answer is.
const ASPEN_CONFIG: &str = "application/x-apple-aspen-config";
/// A SCEP message may carry a CSR and certificates; far below this.
const MAX_SCEP_BYTES: usize = 64 * 1024;

fn failure(e: &MdmError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // Never 401 to a device (it would unenroll).
    let status = if status == StatusCode::UNAUTHORIZED {
        StatusCode::FORBIDDEN
    } else {
        status
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", e.message),
    )
        .into_response()
}

/// Reads a body of at most `limit` bytes: a `Content-Length` over it is refused (413) before a
/// byte is read, and a body without one (chunked) is cut off at the limit (413).
async fn body(request: Request, what: &str, limit: usize) -> Result<Bytes, Response> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(failure(&MdmError::too_large(what, declared, limit)));
    }
    match http_body_util::Limited::new(request.into_body(), limit)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(failure(&MdmError::too_large(what, None, limit)))
        }
        Err(e) => Err(failure(&MdmError {
            status: 400,
            message: format!("the {what} could not be read: {e}"),
        })),
    }
}

/// The device behind a request, proven from its headers before its body is read.
async fn prove(state: &AppState, proof: DeviceIdentityProof) -> Result<ProvenDevice, Response> {
    state
        .services
        .mdm
        .prove_device(&proof)
        .await
        .map_err(|e| failure(&e))
}

/// The identity a request proves: a client certificate from the trusted proxy header when
/// one is configured and present, else the `Mdm-Signature` header.
fn proof(state: &AppState, headers: &HeaderMap) -> DeviceIdentityProof {
    if let Some(name) = &state.client_cert_header
        && let Some(value) = headers.get(&**name).and_then(|v| v.to_str().ok())
    {
        return DeviceIdentityProof::ClientCertificate(forwarded_certificate(value));
    }
    match headers.get(MDM_SIGNATURE_HEADER) {
        Some(v) => DeviceIdentityProof::MdmSignature(v.as_bytes().to_vec()),
        None => DeviceIdentityProof::Missing,
    }
}

/// A forwarded client certificate: RFC 9440 `:base64DER:`, URL-escaped PEM, or PEM.
fn forwarded_certificate(value: &str) -> Vec<u8> {
    use base64::Engine as _;
    let value = value.trim();
    if let Some(inner) = value.strip_prefix(':').and_then(|v| v.strip_suffix(':')) {
        return base64::engine::general_purpose::STANDARD
            .decode(inner)
            .unwrap_or_default();
    }
    percent_encoding::percent_decode_str(value).collect()
}

/// `POST /mdm/enroll`: the signed MachineInfo in, the signed enrollment profile out.
pub(crate) async fn enroll(State(state): State<AppState>, request: Request) -> Response {
    let xml = wants_xml(request.headers());
    // The MachineInfo's signature is verified before its plist is read (`enroll`).
    let bytes = match body(request, "MachineInfo", MAX_MACHINE_INFO_BYTES).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match state.services.mdm.enroll(&bytes).await {
        Ok(answer) => enroll_answer(answer, xml),
        Err(e) => failure(&e),
    }
}

/// `GET /mdm/enroll` with `x-apple-aspen-deviceinfo` (the `configuration_web_url` flow).
pub(crate) async fn enroll_web(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(info) = headers
        .get(DEVICE_INFO_HEADER)
        .and_then(|v| v.to_str().ok())
    else {
        return failure(&MdmError {
            status: 400,
            message: format!("the {DEVICE_INFO_HEADER} header is missing"),
        });
    };
    match state.services.mdm.enroll_with_header(info).await {
        Ok(answer) => enroll_answer(answer, wants_xml(&headers)),
        Err(e) => failure(&e),
    }
}

/// Whether the device prefers the property list form of an error document: its `Accept`
/// names XML and not JSON. JSON otherwise (`docs/protocol.md` §6.5).
fn wants_xml(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    accept.contains("xml") && !accept.contains("json")
}

/// The enrollment profile, or 403 "software update required" as JSON or a plist.
fn enroll_answer(answer: EnrollAnswer, xml: bool) -> Response {
    match answer {
        EnrollAnswer::Profile(profile) => {
            ([(header::CONTENT_TYPE, ASPEN_CONFIG)], profile).into_response()
        }
        EnrollAnswer::SoftwareUpdateRequired(doc) => {
            let (content_type, body) = if xml {
                ("application/xml", doc.to_plist_xml())
            } else {
                ("application/json", doc.to_json())
            };
            match body {
                Ok(body) => (
                    StatusCode::FORBIDDEN,
                    [(header::CONTENT_TYPE, content_type)],
                    body,
                )
                    .into_response(),
                Err(e) => failure(&MdmError {
                    status: 500,
                    message: format!("the software update document could not be written: {e}"),
                }),
            }
        }
    }
}

/// `PUT /mdm/checkin`: the identity is checked from the headers, then the body read within
/// `--checkin-max-bytes`, then its signature verified, and only then is it parsed.
pub(crate) async fn checkin(State(state): State<AppState>, request: Request) -> Response {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with(CHECKIN_CONTENT_TYPE) {
        return failure(&MdmError {
            status: 400,
            message: format!("a check-in must be sent as {CHECKIN_CONTENT_TYPE}"),
        });
    }
    let device = match prove(&state, proof(&state, request.headers())).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let limit = state.services.mdm.settings().limits.checkin_bytes;
    let bytes = match body(request, "check-in", limit).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match state.services.mdm.checkin(&device, &bytes).await {
        Ok(answer) => answer.into_response(),
        Err(e) => failure(&e),
    }
}

/// `PUT /mdm/connect`: a result in, the next command out. As for check-ins, the identity
/// comes first, then the body within `--report-max-bytes`, its signature, and its plist.
pub(crate) async fn connect(State(state): State<AppState>, request: Request) -> Response {
    let device = match prove(&state, proof(&state, request.headers())).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let limit = state.services.mdm.settings().limits.report_bytes;
    let bytes = match body(request, "command report", limit).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match state.services.mdm.connect(&device, &bytes).await {
        Ok(command) if command.is_empty() => StatusCode::OK.into_response(),
        Ok(command) => (
            [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
            command,
        )
            .into_response(),
        Err(e) => failure(&e),
    }
}

#[derive(Deserialize)]
pub(crate) struct ScepQuery {
    operation: String,
    message: Option<String>,
}

/// `GET /scep?operation=GetCACaps|GetCACert|PKIOperation&message=…`.
pub(crate) async fn scep_get(
    State(state): State<AppState>,
    Query(query): Query<ScepQuery>,
) -> Response {
    let mdm = &state.services.mdm;
    match query.operation.as_str() {
        "GetCACaps" => (
            [(
                header::CONTENT_TYPE,
                guardmdm_crypto::scep::CA_CAPS_CONTENT_TYPE,
            )],
            mdm.scep_ca_caps(),
        )
            .into_response(),
        "GetCACert" => match mdm.scep_ca_cert().await {
            Ok(der) => (
                [(
                    header::CONTENT_TYPE,
                    guardmdm_crypto::scep::CA_CERT_CONTENT_TYPE,
                )],
                der,
            )
                .into_response(),
            Err(e) => failure(&e),
        },
        "PKIOperation" => {
            let Some(message) = query.message else {
                return failure(&MdmError {
                    status: 400,
                    message: "PKIOperation needs a message parameter".to_string(),
                });
            };
            match guardmdm_crypto::scep::decode_message_param(&message) {
                Ok(der) => pki_operation(&state, &der).await,
                Err(e) => failure(&MdmError {
                    status: 400,
                    message: e.to_string(),
                }),
            }
        }
        other => failure(&MdmError {
            status: 400,
            message: format!(
                "unsupported SCEP operation {other:?}: GetCACaps, GetCACert and PKIOperation are"
            ),
        }),
    }
}

/// `POST /scep?operation=PKIOperation` with the DER message as the body.
pub(crate) async fn scep_post(
    State(state): State<AppState>,
    Query(query): Query<ScepQuery>,
    request: Request,
) -> Response {
    if query.operation != "PKIOperation" {
        return failure(&MdmError {
            status: 400,
            message: format!("POST supports PKIOperation only, not {:?}", query.operation),
        });
    }
    match body(request, "SCEP message", MAX_SCEP_BYTES).await {
        Ok(der) => pki_operation(&state, &der).await,
        Err(r) => r,
    }
}

async fn pki_operation(state: &AppState, der: &[u8]) -> Response {
    match state.services.mdm.scep_pki_operation(der).await {
        Ok(reply) => (
            [(
                header::CONTENT_TYPE,
                guardmdm_crypto::scep::PKI_MESSAGE_CONTENT_TYPE,
            )],
            reply,
        )
            .into_response(),
        Err(e) => failure(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_certificates_in_every_form() {
        assert_eq!(forwarded_certificate(":AQID:"), vec![1, 2, 3]);
        assert_eq!(
            forwarded_certificate(
                "-----BEGIN%20CERTIFICATE-----%0AAB%0A-----END%20CERTIFICATE-----"
            ),
            b"-----BEGIN CERTIFICATE-----\nAB\n-----END CERTIFICATE-----".to_vec()
        );
        assert_eq!(forwarded_certificate("plain"), b"plain".to_vec());
    }
}
