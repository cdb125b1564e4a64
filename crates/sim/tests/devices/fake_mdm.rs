//! A small fake MDM server built from GuardMDM's protocol pieces (crypto's `ScepCa`,
//! `sign_profile`, `verify_attached`, `verify_detached`; mdm-protocol's `EnrollmentProfile`,
//! `parse_machine_info`, `parse_checkin`, `parse_report`, `Command`), just enough to take a
//! simulated device through enrollment, SCEP, check-in and commands, and to push it through
//! the `ApnsSim`. Not GuardMDM: no storage, no service layer.
//!
//! Routes: `POST /mdm/enroll`, `GET|POST /scep`, `PUT /mdm/checkin`, `PUT /mdm/connect`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine as _;
use guardmdm_crypto::scep::{
    CA_CAPS_CONTENT_TYPE, CA_CERT_CONTENT_TYPE, PKI_MESSAGE_CONTENT_TYPE, ScepCa, StaticChallenge,
    decode_message_param,
};
use guardmdm_crypto::{
    DeviceCa, Identity, TrustAnchors, sign_profile, verify_attached, verify_detached,
};
use guardmdm_mdm_protocol::{
    CheckinMessage, Command, CommandStatus, DeviceReport, ENROLLMENT_PROFILE_CONTENT_TYPE,
    EnrollmentProfile, MACHINE_INFO_CONTENT_TYPE, MachineInfo, MdmSettings, ProfileUuids,
    ScepSettings, parse_checkin, parse_machine_info, parse_report,
};
use secrecy::SecretString;

pub(crate) const TOPIC: &str = "com.apple.mgmt.External.5a1c3b2e-9d4f-4e6a-8b7c-0d1e2f3a4b5c";
pub(crate) const CHALLENGE: &str = "fake-mdm-challenge-1";
pub(crate) const PROFILE_ID: &str = "com.example.fakemdm.enroll";

/// How the server misbehaves, for the strictness tests.
#[derive(Debug, Clone, Default)]
pub(crate) struct Mode {
    /// Point `IdentityCertificateUUID` at a UUID that is no payload.
    pub(crate) wrong_identity_uuid: bool,
    /// Serve the profile unsigned.
    pub(crate) unsigned: bool,
    /// `SignMessage` in the MDM payload.
    pub(crate) sign_message: bool,
    /// `is_mdm_removable: false` → `PayloadRemovalDisallowed`.
    pub(crate) removable: bool,
}

/// A device's push details from its TokenUpdate.
#[derive(Debug, Clone)]
pub(crate) struct Push {
    pub(crate) token_hex: String,
    pub(crate) magic: String,
    pub(crate) topic: String,
    pub(crate) awaiting_configuration: bool,
}

#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) machine_infos: Vec<MachineInfo>,
    /// `(MessageType, UDID)` in order.
    pub(crate) checkins: Vec<(String, String)>,
    pub(crate) authenticates: Vec<guardmdm_mdm_protocol::Authenticate>,
    pub(crate) pushes: HashMap<String, Push>,
    pub(crate) reports: Vec<DeviceReport>,
    /// Requests whose Mdm-Signature was missing or not by our CA.
    pub(crate) bad_signatures: usize,
    queues: HashMap<String, VecDeque<Command>>,
    /// Commands answered NotNow: sent again in a later session, never in the same one.
    deferred: HashMap<String, VecDeque<Command>>,
}

pub(crate) struct FakeMdm {
    pub(crate) ca: ScepCa,
    pub(crate) signer: Identity,
    device_anchors: TrustAnchors,
    pub(crate) base_url: String,
    pub(crate) mode: Mutex<Mode>,
    pub(crate) seen: Mutex<Seen>,
    apns_url: Mutex<Option<String>>,
    h2: reqwest::Client,
}

impl FakeMdm {
    /// Starts the server on 127.0.0.1:0; devices signed by `device_ca` may enroll.
    pub(crate) async fn start(device_ca: &DeviceCa, mode: Mode) -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let server = Arc::new(Self {
            ca: ScepCa::generate("Fake MDM SCEP CA").unwrap(),
            signer: Identity::generate_self_signed("Fake MDM Profile Signing").unwrap(),
            device_anchors: TrustAnchors::from_pem(device_ca.anchor_pem().as_bytes()).unwrap(),
            base_url,
            mode: Mutex::new(mode),
            seen: Mutex::new(Seen::default()),
            apns_url: Mutex::new(None),
            h2: reqwest::Client::builder()
                .http2_prior_knowledge()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap(),
        });
        let app = Router::new()
            .route("/mdm/enroll", post(enroll))
            .route("/scep", get(scep_get).post(scep_post))
            .route("/mdm/checkin", put(checkin))
            .route("/mdm/connect", put(connect))
            .route("/login", get(login).post(login))
            .with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        server
    }

    pub(crate) fn enroll_url(&self) -> String {
        format!("{}/mdm/enroll", self.base_url)
    }

    pub(crate) fn set_apns(&self, url: &str) {
        *self.apns_url.lock().unwrap() = Some(url.to_string());
    }

    /// Queues a command for a device.
    pub(crate) fn enqueue(&self, udid: &str, command: Command) {
        self.seen
            .lock()
            .unwrap()
            .queues
            .entry(udid.to_string())
            .or_default()
            .push_back(command);
    }

    /// Pushes a device through the APNs simulator; returns the HTTP status.
    pub(crate) async fn push(&self, udid: &str) -> u16 {
        let push = self.seen.lock().unwrap().pushes.get(udid).cloned().unwrap();
        let url = self.apns_url.lock().unwrap().clone().unwrap();
        self.h2
            .post(format!("{url}/3/device/{}", push.token_hex))
            .header("apns-push-type", "mdm")
            .header("apns-topic", &push.topic)
            .json(&serde_json::json!({ "mdm": push.magic }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The reports for one command.
    pub(crate) fn report(&self, command_uuid: &str) -> Vec<DeviceReport> {
        self.seen
            .lock()
            .unwrap()
            .reports
            .iter()
            .filter(|r| r.command_uuid.as_deref() == Some(command_uuid))
            .cloned()
            .collect()
    }

    /// Checks `Mdm-Signature` when the profile asked for it: the signer must be our CA's.
    fn check_signature(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        if !self.mode.lock().unwrap().sign_message {
            return headers.get("Mdm-Signature").is_none();
        }
        let ok = headers
            .get("Mdm-Signature")
            .and_then(|v| verify_detached(v.as_bytes(), body).ok())
            .is_some_and(|signer| self.ca.issued_by_me(&signer));
        if !ok {
            self.seen.lock().unwrap().bad_signatures += 1;
        }
        ok
    }
}

type App = State<Arc<FakeMdm>>;

async fn enroll(State(app): App, headers: HeaderMap, body: Bytes) -> Response {
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        != Some(MACHINE_INFO_CONTENT_TYPE)
    {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    let Ok(verified) = verify_attached(&body, &app.device_anchors) else {
        return StatusCode::FORBIDDEN.into_response();
    };
    let Ok(info) = parse_machine_info(&verified.content) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    // The device identity must be the UDID's.
    if verified.signer.subject_common_name() != Some(info.udid.as_str()) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let mode = app.mode.lock().unwrap().clone();
    let mut scep = ScepSettings::new(format!("{}/scep", app.base_url));
    scep.challenge = Some(SecretString::from(CHALLENGE));
    scep.subject = vec![
        ("O".to_string(), "Fake MDM".to_string()),
        ("CN".to_string(), info.udid.clone()),
    ];
    let mut mdm = MdmSettings::new(format!("{}/mdm/connect", app.base_url), TOPIC);
    mdm.check_in_url = Some(format!("{}/mdm/checkin", app.base_url));
    mdm.sign_message = mode.sign_message;
    let uuids = ProfileUuids::generate();
    let scep_uuid = uuids.scep.clone();
    let profile = EnrollmentProfile::new(PROFILE_ID, "Fake MDM enrollment", uuids, scep, mdm)
        .with_removable(mode.removable);
    let mut xml = profile.to_xml().unwrap();
    if mode.wrong_identity_uuid {
        xml = retarget_identity(&xml, &scep_uuid);
    }
    app.seen.lock().unwrap().machine_infos.push(info);
    let body = if mode.unsigned {
        xml
    } else {
        sign_profile(&xml, &app.signer).unwrap()
    };
    (
        [(header::CONTENT_TYPE, ENROLLMENT_PROFILE_CONTENT_TYPE)],
        body,
    )
        .into_response()
}

/// What a web flow would show: a login page, not a profile.
async fn login() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<html><body>Sign in</body></html>",
    )
        .into_response()
}

type Params = Query<HashMap<String, String>>;

async fn scep_get(State(app): App, Query(params): Params) -> Response {
    match params.get("operation").map(String::as_str) {
        Some("GetCACaps") => (
            [(header::CONTENT_TYPE, CA_CAPS_CONTENT_TYPE)],
            ScepCa::get_ca_caps(),
        )
            .into_response(),
        Some("GetCACert") => (
            [(header::CONTENT_TYPE, CA_CERT_CONTENT_TYPE)],
            app.ca.get_ca_cert(),
        )
            .into_response(),
        Some("PKIOperation") => match params.get("message").map(|m| decode_message_param(m)) {
            Some(Ok(der)) => pki_operation(&app, &der),
            _ => StatusCode::BAD_REQUEST.into_response(),
        },
        _ => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn scep_post(State(app): App, Query(params): Params, body: Bytes) -> Response {
    if params.get("operation").map(String::as_str) != Some("PKIOperation") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    pki_operation(&app, &body)
}

fn pki_operation(app: &FakeMdm, der: &[u8]) -> Response {
    let policy = StaticChallenge::new(SecretString::from(CHALLENGE));
    match app.ca.pki_operation(der, &policy) {
        Ok(response) => (
            [(header::CONTENT_TYPE, PKI_MESSAGE_CONTENT_TYPE)],
            response.der,
        )
            .into_response(),
        Err(e) if e.is_client_error() => StatusCode::BAD_REQUEST.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn checkin(State(app): App, headers: HeaderMap, body: Bytes) -> Response {
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        != Some(guardmdm_mdm_protocol::CHECKIN_CONTENT_TYPE)
    {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    if !app.check_signature(&headers, &body) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let Ok(message) = parse_checkin(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let udid = message.identity().as_str().to_string();
    let mut seen = app.seen.lock().unwrap();
    seen.checkins
        .push((message.message_type().to_string(), udid.clone()));
    match message {
        CheckinMessage::Authenticate(auth) => seen.authenticates.push(auth),
        CheckinMessage::TokenUpdate(update) => {
            use secrecy::ExposeSecret as _;
            seen.pushes.insert(
                udid,
                Push {
                    token_hex: update.token_hex(),
                    magic: update.push_magic.expose_secret().to_string(),
                    topic: update.topic.clone(),
                    awaiting_configuration: update.awaiting_configuration,
                },
            );
        }
        _ => {}
    }
    StatusCode::OK.into_response()
}

async fn connect(State(app): App, headers: HeaderMap, body: Bytes) -> Response {
    if !app.check_signature(&headers, &body) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let Ok(report) = parse_report(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let udid = report.identity.as_str().to_string();
    let mut seen = app.seen.lock().unwrap();
    if report.is_idle() {
        // A new session: what was deferred is due again.
        if let Some(deferred) = seen.deferred.remove(&udid) {
            let queue = seen.queues.entry(udid.clone()).or_default();
            for c in deferred.into_iter().rev() {
                queue.push_front(c);
            }
        }
    }
    let in_flight = report.command_uuid.clone();
    let status = report.status.clone();
    seen.reports.push(report);
    if let Some(uuid) = in_flight {
        let queue = seen.queues.entry(udid.clone()).or_default();
        if let Some(pos) = queue.iter().position(|c| c.command_uuid == uuid) {
            let command = queue.remove(pos).unwrap();
            if status == CommandStatus::NotNow {
                seen.deferred
                    .entry(udid.clone())
                    .or_default()
                    .push_back(command);
            }
        }
    }
    // The next command is the queue's head; it stays queued until its result arrives.
    let next = seen
        .queues
        .get(&udid)
        .and_then(|q| q.front())
        .map(|c| c.to_xml().unwrap());
    match next {
        Some(xml) => (
            [(header::CONTENT_TYPE, "application/xml; charset=UTF-8")],
            xml,
        )
            .into_response(),
        None => StatusCode::OK.into_response(),
    }
}

/// The profile with the MDM payload's `IdentityCertificateUUID` pointing at no payload.
fn retarget_identity(xml: &[u8], scep_uuid: &str) -> Vec<u8> {
    let mut value = plist::Value::from_reader(std::io::Cursor::new(xml)).unwrap();
    let payloads = value
        .as_dictionary_mut()
        .unwrap()
        .get_mut("PayloadContent")
        .unwrap()
        .as_array_mut()
        .unwrap();
    let mdm = payloads
        .iter_mut()
        .filter_map(plist::Value::as_dictionary_mut)
        .find(|p| p.get("PayloadType").and_then(plist::Value::as_string) == Some("com.apple.mdm"))
        .unwrap();
    assert_eq!(
        mdm.get("IdentityCertificateUUID")
            .and_then(plist::Value::as_string),
        Some(scep_uuid)
    );
    mdm.insert(
        "IdentityCertificateUUID".into(),
        plist::Value::String("00000000-0000-4000-8000-000000000000".into()),
    );
    let mut out = Vec::new();
    value.to_writer_xml(&mut out).unwrap();
    out
}

/// Base64 of a certificate, as ADE `anchor_certs` want it.
pub(crate) fn anchor(cert: &guardmdm_crypto::Certificate) -> String {
    base64::engine::general_purpose::STANDARD.encode(cert.to_der())
}
