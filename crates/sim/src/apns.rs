//! A simulated Apple Push Notification service for MDM pushes (`docs/protocol.md` §7.5; Apple's
//! "Sending notification requests to APNs" and "Handling notification responses from APNs").
//!
//! It speaks cleartext HTTP/2 with prior knowledge (h2c; Apple's service is HTTP/2 over TLS
//! with the push certificate as client identity, which is not simulated):
//! `POST /3/device/<hex token>` with `apns-push-type: mdm`, `apns-topic` and the body
//! `{"mdm":"<PushMagic>"}`. A delivered push is answered 200 with an `apns-id` header and
//! wakes the [`SimDevice`] that registered the token: the device runs
//! [`SimDevice::poll`] in a spawned task, provided the `PushMagic` is its own (a device
//! ignores other pushes). Refusals are Apple's JSON `{"reason": …}`; see [`ApnsSim`] for
//! which and when.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::device::{Inner, PollSummary, SimDevice};

/// Largest payload APNs accepts for a regular push: 4 KB.
pub const MAX_PAYLOAD_BYTES: usize = 4096;

/// One push request the service answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushRecord {
    /// The device token from the path, as sent.
    pub token: String,
    /// `apns-topic`, if sent.
    pub topic: Option<String>,
    /// `apns-push-type`, if sent.
    pub push_type: Option<String>,
    /// The `mdm` value of the payload, if it had one.
    pub push_magic: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// Apple's `reason`, for a refusal.
    pub reason: Option<String>,
    /// The `apns-id` answered.
    pub apns_id: String,
    /// The UDID of the device woken, if any (the push was delivered to a registered device
    /// whose `PushMagic` matched).
    pub woke: Option<String>,
}

/// A device woken by a push, and how its session went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wake {
    /// The device's UDID.
    pub udid: String,
    /// The session's summary, or the device's error as text.
    pub result: Result<PollSummary, String>,
}

/// A device token the service knows.
#[derive(Debug)]
struct Registration {
    topic: String,
    push_magic: String,
    /// When the token stopped being valid (Unix milliseconds): the device was erased or left
    /// management. Pushes then get 410 `Unregistered`.
    unregistered_at: Option<u128>,
    device: Option<Weak<Inner>>,
}

#[derive(Debug, Default)]
struct ApnsState {
    /// The push certificate's topic; `None` accepts every `com.apple.mgmt.` topic.
    topic: Option<String>,
    tokens: HashMap<String, Registration>,
    pushes: Vec<PushRecord>,
    wakes: Vec<Wake>,
    faults: VecDeque<(u16, String)>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<ApnsState>,
    /// Woken sessions still running.
    in_flight: tokio::sync::watch::Sender<usize>,
    /// While `true`, pushes are held unanswered ([`ApnsSim::hold`]).
    held: tokio::sync::watch::Sender<bool>,
    /// Pushes being held now.
    waiting: tokio::sync::watch::Sender<usize>,
}

/// The simulated push service. Cheap to clone; every clone is the same service.
///
/// Checks, in order, each answered as Apple does (status, `reason`):
///
/// | Request | Answer |
/// |---|---|
/// | not HTTP/2 | 505 (no body; Apple's service only speaks HTTP/2) |
/// | a path other than `/3/device/<token>` | 404 `BadPath` |
/// | a method other than `POST` | 405 `MethodNotAllowed` |
/// | an injected fault ([`ApnsSim::fail_next`]) | its status and reason |
/// | a repeated `apns-*` header | 400 `DuplicateHeaders` |
/// | an empty token | 400 `MissingDeviceToken`; not hex: 400 `BadDeviceToken` |
/// | `apns-push-type` absent or not `mdm` | 400 `InvalidPushType` |
/// | `apns-topic` absent | 400 `MissingTopic`; not `com.apple.mgmt.…`: 400 `BadTopic`; not the certificate's topic ([`ApnsSim::for_topic`]): 400 `TopicDisallowed` |
/// | `apns-priority` not 1, 5 or 10 | 400 `BadPriority`; `apns-expiration` not a number: `BadExpirationDate`; `apns-id` not a UUID: `BadMessageId` |
/// | an empty body | 400 `PayloadEmpty`; over 4 KB: 413 `PayloadTooLarge` |
/// | a body that is not exactly `{"mdm": "<string>"}` | 400 `BadPayload` (a simulator check: Apple documents no code for it) |
/// | an unknown token | 400 `BadDeviceToken` |
/// | a token registered for another topic | 400 `DeviceTokenNotForTopic` |
/// | an unregistered token (erased or unenrolled device) | 410 `Unregistered` with `timestamp` |
/// | otherwise | 200, `apns-id` |
#[derive(Debug, Clone)]
pub struct ApnsSim {
    shared: Arc<Shared>,
}

impl Default for ApnsSim {
    fn default() -> Self {
        Self::new()
    }
}

impl ApnsSim {
    /// A service that accepts any MDM topic (`com.apple.mgmt.…`).
    #[must_use]
    pub fn new() -> Self {
        Self::with_state(ApnsState::default())
    }

    /// A service for one push certificate: other topics get 400 `TopicDisallowed`.
    #[must_use]
    pub fn for_topic(topic: &str) -> Self {
        Self::with_state(ApnsState {
            topic: Some(topic.to_string()),
            ..ApnsState::default()
        })
    }

    fn with_state(state: ApnsState) -> Self {
        let (in_flight, _) = tokio::sync::watch::channel(0);
        let (held, _) = tokio::sync::watch::channel(false);
        let (waiting, _) = tokio::sync::watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                in_flight,
                held,
                waiting,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, ApnsState> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The HTTP routes.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route("/3/device/{token}", axum::routing::any(push))
            .route("/3/device/", axum::routing::any(missing_token))
            .fallback(bad_path)
            .with_state(self.clone())
    }

    /// Serves the service on `listener` (cleartext; HTTP/2 with prior knowledge) in a
    /// background task.
    ///
    /// # Errors
    /// When the listener's address cannot be read.
    pub fn start(&self, listener: TcpListener) -> std::io::Result<RunningApnsSim> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = self.router();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(RunningApnsSim {
            addr,
            apns: self.clone(),
            stop: Some(stop),
            task,
        })
    }

    /// Registers a token without a device behind it (pushes to it are delivered and wake
    /// nobody). `token_hex` is compared case-insensitively.
    pub fn register(&self, token_hex: &str, topic: &str, push_magic: &str) {
        self.insert(token_hex, topic, push_magic, None);
    }

    /// Registers a device's token: a push to it with its `PushMagic` wakes the device.
    pub(crate) fn register_device(
        &self,
        token_hex: &str,
        topic: &str,
        push_magic: &str,
        device: Weak<Inner>,
    ) {
        self.insert(token_hex, topic, push_magic, Some(device));
    }

    fn insert(&self, token_hex: &str, topic: &str, push_magic: &str, device: Option<Weak<Inner>>) {
        self.state().tokens.insert(
            token_hex.to_ascii_lowercase(),
            Registration {
                topic: topic.to_string(),
                push_magic: push_magic.to_string(),
                unregistered_at: None,
                device,
            },
        );
    }

    /// Marks a token unregistered (the device was erased or left management): pushes get 410
    /// `Unregistered` with the time of this call.
    pub fn unregister(&self, token_hex: &str) {
        if let Some(r) = self.state().tokens.get_mut(&token_hex.to_ascii_lowercase()) {
            r.unregistered_at.get_or_insert_with(now_millis);
        }
    }

    /// The next `count` pushes get `status` with `reason` (e.g. 503 `ServiceUnavailable`, 429
    /// `TooManyRequests`), before any other check but the method and path.
    pub fn fail_next(&self, count: usize, status: u16, reason: &str) {
        let mut state = self.state();
        for _ in 0..count {
            state.faults.push_back((status, reason.to_string()));
        }
    }

    /// Holds every push from now on unanswered (as a slow or stalled APNs does) until
    /// [`Self::release`]; held pushes are not in [`Self::pushes`] until answered.
    pub fn hold(&self) {
        self.shared.held.send_replace(true);
    }

    /// Answers the held pushes and stops holding.
    pub fn release(&self) {
        self.shared.held.send_replace(false);
    }

    /// Waits until at least `count` pushes are being held; `false` on timeout.
    pub async fn wait_held(&self, count: usize, timeout: Duration) -> bool {
        let mut rx = self.shared.waiting.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n >= count))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Every push answered so far, oldest first.
    #[must_use]
    pub fn pushes(&self) -> Vec<PushRecord> {
        self.state().pushes.clone()
    }

    /// Every finished wake-up so far, oldest first.
    #[must_use]
    pub fn wakes(&self) -> Vec<Wake> {
        self.state().wakes.clone()
    }

    /// Waits until no woken device is still in its session; `false` on timeout.
    pub async fn settle(&self, timeout: Duration) -> bool {
        let mut rx = self.shared.in_flight.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Wakes `device` in a spawned task.
    fn wake(&self, device: SimDevice) {
        if device.is_silent() {
            // The push was accepted; the device stopped checking in and does not answer it.
            self.state().wakes.push(Wake {
                udid: device.udid().to_string(),
                result: Err("the device stopped checking in".to_string()),
            });
            return;
        }
        self.shared.in_flight.send_modify(|n| *n += 1);
        let apns = self.clone();
        tokio::spawn(async move {
            // A push can arrive while the device's TokenUpdate is still being answered (the
            // server pushes as soon as it records it): like a device, finish enrolling first.
            let mut result = device.poll().await;
            for _ in 0..100 {
                if !matches!(result, Err(crate::DeviceError::OutOfOrder { .. })) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                result = device.poll().await;
            }
            let result = result.map_err(|e| e.to_string());
            apns.state().wakes.push(Wake {
                udid: device.udid().to_string(),
                result,
            });
            apns.shared
                .in_flight
                .send_modify(|n| *n = n.saturating_sub(1));
        });
    }
}

/// An [`ApnsSim`] serving HTTP, from [`ApnsSim::start`].
#[derive(Debug)]
pub struct RunningApnsSim {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The service.
    pub apns: ApnsSim,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningApnsSim {
    /// `http://ADDR`: the push endpoint's base URL (the client posts to
    /// `<base>/3/device/<token>`, with HTTP/2 prior knowledge).
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and waits for open connections to finish.
    ///
    /// # Errors
    /// The server's I/O error, if it failed.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

fn now_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Apple's refusal: JSON `{"reason"}` (and `timestamp` for 410), with the `apns-id`.
fn refusal(status: u16, reason: &str, apns_id: &str, timestamp: Option<u128>) -> Response {
    let body = match timestamp {
        Some(ts) => json!({ "reason": reason, "timestamp": ts }),
        None => json!({ "reason": reason }),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(id) = HeaderValue::from_str(apns_id) {
        response.headers_mut().insert("apns-id", id);
    }
    response
}

async fn bad_path(version: Version) -> Response {
    if version != Version::HTTP_2 {
        return StatusCode::HTTP_VERSION_NOT_SUPPORTED.into_response();
    }
    refusal(404, "BadPath", &new_apns_id(), None)
}

async fn missing_token(
    State(apns): State<ApnsSim>,
    method: Method,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    push(
        State(apns),
        Path(String::new()),
        method,
        version,
        headers,
        body,
    )
    .await
}

fn new_apns_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// One header's value, or `Err` when it is repeated.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ()> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(());
    }
    Ok(first.map(|v| v.to_str().unwrap_or("\u{fffd}")))
}

async fn push(
    State(apns): State<ApnsSim>,
    Path(token): Path<String>,
    method: Method,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if version != Version::HTTP_2 {
        return StatusCode::HTTP_VERSION_NOT_SUPPORTED.into_response();
    }
    if method != Method::POST {
        return refusal(405, "MethodNotAllowed", &new_apns_id(), None);
    }
    let mut held = apns.shared.held.subscribe();
    if *held.borrow_and_update() {
        apns.shared.waiting.send_modify(|n| *n += 1);
        let _ = held.wait_for(|h| !*h).await;
        apns.shared
            .waiting
            .send_modify(|n| *n = n.saturating_sub(1));
    }
    let mut record = PushRecord {
        token: token.clone(),
        topic: None,
        push_type: None,
        push_magic: None,
        status: 200,
        reason: None,
        apns_id: new_apns_id(),
        woke: None,
    };
    let answer = check(&apns, &token, &headers, &body, &mut record);
    let response = match &answer {
        Ok(_) => {
            let mut response = StatusCode::OK.into_response();
            if let Ok(id) = HeaderValue::from_str(&record.apns_id) {
                response.headers_mut().insert("apns-id", id);
            }
            response
        }
        Err((status, reason, timestamp)) => {
            record.status = *status;
            record.reason = Some(reason.clone());
            refusal(*status, reason, &record.apns_id, *timestamp)
        }
    };
    if let Ok(Some(device)) = answer {
        record.woke = Some(device.udid().to_string());
        apns.wake(device);
    }
    apns.state().pushes.push(record);
    response
}

/// `(status, reason, timestamp)`.
type Refusal = (u16, String, Option<u128>);

/// Apple's checks, in order; `Ok(Some(device))` when a device is to be woken.
fn check(
    apns: &ApnsSim,
    token: &str,
    headers: &HeaderMap,
    body: &[u8],
    record: &mut PushRecord,
) -> Result<Option<SimDevice>, Refusal> {
    if let Some((status, reason)) = apns.state().faults.pop_front() {
        return Err((status, reason, None));
    }
    let headers = PushHeaders::read(headers)?;
    record.push_type = headers.push_type.map(str::to_string);
    record.topic = headers.topic.map(str::to_string);
    let topic = headers.check(apns, token, record)?;
    let magic = push_magic(body)?;
    record.push_magic = Some(magic.clone());
    registered_device(apns, token, topic, &magic)
}

/// A 400 refusal with Apple's `reason`.
fn bad(reason: &str) -> Refusal {
    (400, reason.to_string(), None)
}

/// The `apns-*` request headers APNs reads.
struct PushHeaders<'a> {
    push_type: Option<&'a str>,
    topic: Option<&'a str>,
    priority: Option<&'a str>,
    expiration: Option<&'a str>,
    apns_id: Option<&'a str>,
    collapse_id: Option<&'a str>,
}

impl<'a> PushHeaders<'a> {
    /// The headers, each at most once (`DuplicateHeaders` otherwise).
    fn read(headers: &'a HeaderMap) -> Result<Self, Refusal> {
        let header = |name: &str| single(headers, name).map_err(|()| bad("DuplicateHeaders"));
        Ok(Self {
            push_type: header("apns-push-type")?,
            topic: header("apns-topic")?,
            priority: header("apns-priority")?,
            expiration: header("apns-expiration")?,
            apns_id: header("apns-id")?,
            collapse_id: header("apns-collapse-id")?,
        })
    }

    /// Apple's checks of the headers and the device token, in order; the topic when they
    /// pass. A valid `apns-id` becomes the record's.
    fn check(
        &self,
        apns: &ApnsSim,
        token: &str,
        record: &mut PushRecord,
    ) -> Result<&'a str, Refusal> {
        if let Some(id) = self.apns_id {
            if uuid::Uuid::try_parse(id).is_err() {
                return Err(bad("BadMessageId"));
            }
            record.apns_id = id.to_ascii_lowercase();
        }
        if token.is_empty() {
            return Err(bad("MissingDeviceToken"));
        }
        if !token.len().is_multiple_of(2) || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("BadDeviceToken"));
        }
        if self.push_type != Some("mdm") {
            return Err(bad("InvalidPushType"));
        }
        let topic = self.topic.ok_or_else(|| bad("MissingTopic"))?;
        if topic
            .strip_prefix("com.apple.mgmt.")
            .is_none_or(str::is_empty)
        {
            return Err(bad("BadTopic"));
        }
        if apns
            .state()
            .topic
            .as_ref()
            .is_some_and(|allowed| allowed != topic)
        {
            return Err(bad("TopicDisallowed"));
        }
        if self
            .priority
            .is_some_and(|p| !matches!(p, "1" | "5" | "10"))
        {
            return Err(bad("BadPriority"));
        }
        if self.expiration.is_some_and(|e| e.parse::<u64>().is_err()) {
            return Err(bad("BadExpirationDate"));
        }
        if self.collapse_id.is_some_and(|c| c.len() > 64) {
            return Err(bad("BadCollapseId"));
        }
        Ok(topic)
    }
}

/// The payload's `PushMagic`: the body must be `{"mdm": "<PushMagic>"}`, and at most
/// [`MAX_PAYLOAD_BYTES`].
fn push_magic(body: &[u8]) -> Result<String, Refusal> {
    if body.is_empty() {
        return Err(bad("PayloadEmpty"));
    }
    if body.len() > MAX_PAYLOAD_BYTES {
        return Err((413, "PayloadTooLarge".to_string(), None));
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) if map.len() == 1 => map
            .get("mdm")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| bad("BadPayload")),
        _ => Err(bad("BadPayload")),
    }
}

/// The device registered with `token` for `topic` (410 once it unregistered), to be woken
/// only if `magic` is its own `PushMagic`; the push is delivered either way.
fn registered_device(
    apns: &ApnsSim,
    token: &str,
    topic: &str,
    magic: &str,
) -> Result<Option<SimDevice>, Refusal> {
    let state = apns.state();
    let registration = state
        .tokens
        .get(&token.to_ascii_lowercase())
        .ok_or_else(|| bad("BadDeviceToken"))?;
    if registration.topic != topic {
        return Err(bad("DeviceTokenNotForTopic"));
    }
    if let Some(at) = registration.unregistered_at {
        return Err((410, "Unregistered".to_string(), Some(at)));
    }
    // Delivered. The device acts on it only if the PushMagic is its own.
    Ok(registration
        .device
        .as_ref()
        .filter(|_| registration.push_magic == magic)
        .and_then(SimDevice::upgrade))
}
