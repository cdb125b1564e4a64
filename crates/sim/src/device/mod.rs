//! Simulated Apple devices: an iPhone, iPad, Mac, Apple TV or Vision Pro of the simulated
//! organisation that goes through Automated Device Enrollment against a real MDM server over
//! HTTP, the way the device does it (`docs/protocol.md` §6–§7), and then obeys MDM commands.
//!
//! [`SimDevice`] has one method per step of a device's life, usable alone or all together
//! with [`SimDevice::enroll_and_run`]:
//!
//! 1. [`SimDevice::activate`]: Setup Assistant asks Apple (the [`Simulator`]) for its cloud
//!    configuration: the ADE profile, or nothing;
//! 2. [`SimDevice::post_machine_info`]: the signed MachineInfo goes to the profile's `url`;
//!    the answer must be an enrollment profile the device trusts and understands;
//! 3. [`SimDevice::scep`]: the device gets its MDM identity from the profile's SCEP service;
//! 4. [`SimDevice::check_in_authenticate`] and [`SimDevice::check_in_token_update`]: the
//!    check-in messages, which make it enrolled;
//! 5. [`SimDevice::poll`]: one MDM session on the command channel (what a push triggers).
//!
//! The device's own identity (what signs its MachineInfo) comes from a
//! [`guardmdm_crypto::DeviceCa`], standing in for Apple's device CA; give the server
//! [`guardmdm_crypto::DeviceCa::anchor_pem`] as its device trust anchors. With an
//! [`ApnsSim`] attached, the device registers its push token there, and a push wakes it up.
//!
//! The device behaves as Apple documents, not as any server expects: it refuses what a device
//! refuses (an untrusted or malformed profile, a bad SCEP answer, an `IdentityCertificateUUID`
//! that names no SCEP payload), answers unknown commands with Apple's error, and can be made
//! to fail (`NotNow`, a dropped connection).

mod commands;
mod enroll;
mod error;
mod hardware;
mod profile;
mod session;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use guardmdm_crypto::{Certificate, DeviceCa, Identity};
use plist::{Dictionary, Value};
use serde::Serialize;

use crate::apns::ApnsSim;
use crate::catalog::DeviceFamily;
use crate::report::Activation;
use crate::sim::Simulator;

pub use error::DeviceError;
pub use profile::{EnrollmentInfo, InstalledProfile, MdmPayload, PayloadSummary, ScepPayload};

/// How long a device waits for an HTTP answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How many OS updates [`SimDevice::enroll_and_run`] installs for one enrollment before it
/// gives up on a server that keeps asking.
pub const MAX_OS_UPDATES: usize = 3;

/// The ADE profile a device received at activation (`docs/protocol.md` §5.1), as it reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdeProfile {
    /// `profile_uuid`.
    pub profile_uuid: Option<String>,
    /// `profile_name`.
    pub profile_name: Option<String>,
    /// `url`: where the MachineInfo goes.
    pub url: String,
    /// `configuration_web_url`: when set, the device opens it (a `GET` carrying the signed
    /// MachineInfo in `x-apple-aspen-deviceinfo`) instead of posting to `url`.
    pub configuration_web_url: Option<String>,
    /// `await_device_configured` (default `false`).
    pub await_device_configured: bool,
    /// `is_mdm_removable` (default `true`).
    pub is_mdm_removable: bool,
    /// `is_supervised` (ADE devices are supervised since iOS 13; default `true`).
    pub is_supervised: bool,
    /// `anchor_certs`, decoded.
    pub anchor_certs: Vec<Certificate>,
}

impl AdeProfile {
    fn from_json(json: &serde_json::Value) -> Result<Self, DeviceError> {
        let bad = |what: &str| DeviceError::AdeProfile(what.to_string());
        let string = |key: &str| json.get(key).and_then(|v| v.as_str()).map(str::to_string);
        let flag = |key: &str, default: bool| {
            json.get(key)
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(default)
        };
        let url = string("url").ok_or_else(|| bad("it has no url"))?;
        let mut anchor_certs = Vec::new();
        if let Some(list) = json.get("anchor_certs").and_then(|v| v.as_array()) {
            for item in list {
                let der = item
                    .as_str()
                    .and_then(|s| STANDARD.decode(s.trim()).ok())
                    .ok_or_else(|| bad("an anchor_certs entry is not base64"))?;
                anchor_certs.push(
                    Certificate::from_der(&der).map_err(|e| {
                        DeviceError::AdeProfile(format!("an anchor_certs entry: {e}"))
                    })?,
                );
            }
        }
        Ok(Self {
            profile_uuid: string("profile_uuid"),
            profile_name: string("profile_name"),
            url,
            configuration_web_url: string("configuration_web_url"),
            await_device_configured: flag("await_device_configured", false),
            is_mdm_removable: flag("is_mdm_removable", true),
            is_supervised: flag("is_supervised", true),
            anchor_certs,
        })
    }
}

/// Choices for a simulated device beyond its catalogue data.
#[derive(Debug, Clone)]
pub struct SimDeviceOptions {
    /// `LANGUAGE` in MachineInfo (default `en-US`).
    pub language: String,
    /// `(OSVersion, BuildVersion)` instead of the family's default release.
    pub os: Option<(String, String)>,
    /// The HTTP client to use (default: one per device with [`DEFAULT_TIMEOUT`]).
    pub http: Option<reqwest::Client>,
    /// `MDM_CAN_REQUEST_SOFTWARE_UPDATE` in MachineInfo (default `true`): whether the
    /// enrollment server may ask the device to update its OS first (`docs/protocol.md` §6.5).
    pub can_request_software_update: bool,
}

impl Default for SimDeviceOptions {
    fn default() -> Self {
        Self {
            language: "en-US".to_string(),
            os: None,
            http: None,
            can_request_software_update: true,
        }
    }
}

/// One command the device ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandRun {
    /// `CommandUUID`.
    pub command_uuid: String,
    /// `RequestType` (empty for a command the device could not read).
    pub request_type: String,
    /// The `Status` reported: `Acknowledged`, `Error`, `CommandFormatError` or `NotNow`.
    pub status: String,
}

/// What one MDM session ([`SimDevice::poll`]) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PollSummary {
    /// The commands received and what the device answered, in order.
    pub commands: Vec<CommandRun>,
    /// The session began by delivering a result a dropped connection had kept from the
    /// server, instead of `Idle`.
    pub resent_result: bool,
    /// The session ended with a dropped connection (an injected fault): the last result is
    /// kept for the next session.
    pub dropped: bool,
    /// The device was erased by this session.
    pub erased: bool,
    /// The device left management in this session (its MDM profile was removed).
    pub unenrolled: bool,
}

/// What [`SimDevice::enroll_and_run`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollmentReport {
    /// What Apple handed the device.
    pub activation: Activation,
    /// Whether the device enrolled (false when it had no profile).
    pub enrolled: bool,
    /// The session run after enrollment when no [`ApnsSim`] is attached.
    pub first_poll: Option<PollSummary>,
    /// The OS versions the enrollment server made the device install first, in order.
    pub os_updates: Vec<String>,
}

/// A snapshot of a device's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceStatus {
    /// `activated`, `profile_received`, `identity_issued`, `authenticated`, `enrolled`,
    /// `unenrolled`, `erased`, or `new`.
    pub phase: &'static str,
    /// Waiting in Setup Assistant for `DeviceConfigured`.
    pub awaiting_configuration: bool,
    /// Locked by `DeviceLock`.
    pub locked: bool,
    /// The push token, hex, once sent in a `TokenUpdate`.
    pub push_token: Option<String>,
    /// Identifiers of the installed profiles, the MDM enrollment profile first.
    pub profiles: Vec<String>,
    /// Why the device is no longer enrolled, if it is not.
    pub unenrolled_reason: Option<String>,
}

/// Immutable facts about the device.
#[derive(Debug)]
pub(crate) struct Facts {
    serial: String,
    family: DeviceFamily,
    marketing_model: &'static str,
    hw: hardware::Hardware,
    /// The OS it runs: it changes when the device installs an update the enrollment server
    /// asked for.
    os: Mutex<OsRelease>,
    can_request_software_update: bool,
    capacity_gb: f64,
    imei: Option<String>,
    wifi_mac: String,
    bluetooth_mac: String,
    ethernet_mac: Option<String>,
    language: String,
}

/// An OS version and its build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OsRelease {
    pub(crate) version: String,
    pub(crate) build: String,
}

impl Facts {
    /// The OS the device runs now.
    pub(crate) fn os(&self) -> OsRelease {
        self.os
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The push credentials the device sends in `TokenUpdate`.
#[derive(Debug, Clone)]
struct Push {
    token: Vec<u8>,
    magic: String,
    unlock_token: Option<Vec<u8>>,
}

impl Push {
    fn token_hex(&self) -> String {
        self.token.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Mutable state, behind the device's lock (never held across an `await`).
#[derive(Debug, Default)]
pub(crate) struct State {
    ade: Option<AdeProfile>,
    activated: bool,
    enrollment: Option<EnrollmentInfo>,
    enrollment_profile: Option<InstalledProfile>,
    mdm_identity: Option<Identity>,
    push: Option<Push>,
    authenticated: bool,
    enrolled: bool,
    awaiting_configuration: bool,
    erased: bool,
    unenrolled: Option<String>,
    locked: bool,
    /// Installed profiles; the MDM enrollment profile first once enrolled.
    installed: Vec<InstalledProfile>,
    /// A command result the server never received (dropped connection).
    cached_result: Option<(Vec<u8>, CommandRun)>,
    not_now: u32,
    /// Answer `NotNow` to every command of this `RequestType`, forever.
    not_now_forever: Option<String>,
    /// Pushes no longer wake the device: it stopped checking in.
    silent: bool,
    drop_connection: u32,
    apns: Option<ApnsSim>,
    history: Vec<CommandRun>,
}

pub(crate) struct Inner {
    facts: Facts,
    identity: Identity,
    http: reqwest::Client,
    state: Mutex<State>,
    /// Held for a whole MDM session: a device runs one at a time.
    session: tokio::sync::Mutex<()>,
}

/// A simulated device. Cheap to clone: every clone is the same device.
#[derive(Clone)]
pub struct SimDevice {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SimDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDevice")
            .field("serial", &self.inner.facts.serial)
            .field("udid", &self.inner.facts.hw.udid)
            .field("product", &self.inner.facts.hw.product)
            .finish_non_exhaustive()
    }
}

/// An HTTP answer.
struct Reply {
    url: String,
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn body_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let mut short: String = text.chars().take(300).collect();
        if text.chars().count() > 300 {
            short.push('…');
        }
        short
    }

    fn status_error(&self, step: &'static str) -> DeviceError {
        DeviceError::Status {
            step,
            url: self.url.clone(),
            status: self.status,
            body: self.body_text(),
        }
    }
}

impl SimDevice {
    /// The device with this serial number in `sim`'s organisation, with an identity from
    /// `ca` (`CN` = its UDID) and default options.
    ///
    /// # Errors
    /// [`DeviceError::UnknownSerial`], or [`DeviceError::Crypto`] when the identity cannot be
    /// made.
    pub fn new(sim: &Simulator, serial: &str, ca: &DeviceCa) -> Result<Self, DeviceError> {
        Self::with_options(sim, serial, ca, SimDeviceOptions::default())
    }

    /// [`SimDevice::new`] with options.
    ///
    /// # Errors
    /// As [`SimDevice::new`]; [`DeviceError::Transport`] when the HTTP client cannot be built.
    pub fn with_options(
        sim: &Simulator,
        serial: &str,
        ca: &DeviceCa,
        options: SimDeviceOptions,
    ) -> Result<Self, DeviceError> {
        let catalogued = sim
            .hardware(serial)
            .ok_or_else(|| DeviceError::UnknownSerial(serial.trim().to_string()))?;
        let hw = hardware::describe(catalogued.model, &catalogued.serial);
        let (os_version, build_version) = options
            .os
            .unwrap_or_else(|| (hw.os_version.to_string(), hw.build_version.to_string()));
        let identity = ca
            .issue_identity(&hw.udid)
            .map_err(|e| DeviceError::Crypto {
                step: "new",
                reason: e.to_string(),
            })?;
        let http = match options.http {
            Some(client) => client,
            None => reqwest::Client::builder()
                .timeout(DEFAULT_TIMEOUT)
                .connect_timeout(DEFAULT_TIMEOUT)
                .build()
                .map_err(|e| DeviceError::Transport {
                    step: "new",
                    method: "",
                    url: String::new(),
                    reason: error_chain(&e),
                })?,
        };
        let facts = Facts {
            serial: catalogued.serial,
            family: catalogued.model.family,
            marketing_model: catalogued.model.name,
            capacity_gb: capacity_gb(catalogued.capacity),
            imei: catalogued.radio.imei,
            wifi_mac: catalogued.radio.wifi_mac,
            bluetooth_mac: catalogued.radio.bluetooth_mac,
            ethernet_mac: catalogued.radio.ethernet_mac,
            language: options.language,
            os: Mutex::new(OsRelease {
                version: os_version,
                build: build_version,
            }),
            can_request_software_update: options.can_request_software_update,
            hw,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                facts,
                identity,
                http,
                state: Mutex::new(State::default()),
                session: tokio::sync::Mutex::new(()),
            }),
        })
    }

    pub(crate) fn downgrade(&self) -> Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn upgrade(weak: &Weak<Inner>) -> Option<Self> {
        weak.upgrade().map(|inner| Self { inner })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The serial number.
    #[must_use]
    pub fn serial(&self) -> &str {
        &self.inner.facts.serial
    }

    /// The UDID: `<chip ID>-<ECID>` for iPhone, iPad, Apple TV 4K and Vision Pro, the
    /// hardware UUID for a Mac, 40 hex digits for older devices.
    #[must_use]
    pub fn udid(&self) -> &str {
        &self.inner.facts.hw.udid
    }

    /// The family.
    #[must_use]
    pub fn family(&self) -> DeviceFamily {
        self.inner.facts.family
    }

    /// The product identifier, e.g. `iPhone17,1`.
    #[must_use]
    pub fn product(&self) -> &str {
        self.inner.facts.hw.product
    }

    /// The marketing model name, as ABM shows it.
    #[must_use]
    pub fn marketing_model(&self) -> &str {
        self.inner.facts.marketing_model
    }

    /// `OSVersion`, e.g. `18.5`.
    #[must_use]
    pub fn os_version(&self) -> String {
        self.inner.facts.os().version
    }

    /// `BuildVersion`, e.g. `22F76`.
    #[must_use]
    pub fn build_version(&self) -> String {
        self.inner.facts.os().build
    }

    /// The IMEI of a cellular model (the same as its DEP record).
    #[must_use]
    pub fn imei(&self) -> Option<&str> {
        self.inner.facts.imei.as_deref()
    }

    /// The device identity certificate (what signs the MachineInfo).
    #[must_use]
    pub fn device_certificate(&self) -> &Certificate {
        self.inner.identity.certificate()
    }

    /// The MDM identity certificate from SCEP, once issued.
    #[must_use]
    pub fn mdm_certificate(&self) -> Option<Certificate> {
        self.state()
            .mdm_identity
            .as_ref()
            .map(|i| i.certificate().clone())
    }

    /// The ADE profile received at activation.
    #[must_use]
    pub fn ade_profile(&self) -> Option<AdeProfile> {
        self.state().ade.clone()
    }

    /// What the device learned from its enrollment profile.
    #[must_use]
    pub fn enrollment(&self) -> Option<EnrollmentInfo> {
        self.state().enrollment.clone()
    }

    /// The installed profiles, the MDM enrollment profile first.
    #[must_use]
    pub fn installed_profiles(&self) -> Vec<InstalledProfile> {
        self.state().installed.clone()
    }

    /// Every command the device has run, oldest first.
    #[must_use]
    pub fn history(&self) -> Vec<CommandRun> {
        self.state().history.clone()
    }

    /// A snapshot of the device's state.
    #[must_use]
    pub fn status(&self) -> DeviceStatus {
        let s = self.state();
        let phase = if s.erased {
            "erased"
        } else if s.unenrolled.is_some() {
            "unenrolled"
        } else if s.enrolled {
            "enrolled"
        } else if s.authenticated {
            "authenticated"
        } else if s.mdm_identity.is_some() {
            "identity_issued"
        } else if s.enrollment.is_some() {
            "profile_received"
        } else if s.activated {
            "activated"
        } else {
            "new"
        };
        DeviceStatus {
            phase,
            awaiting_configuration: s.awaiting_configuration,
            locked: s.locked,
            push_token: s.push.as_ref().map(Push::token_hex),
            profiles: s.installed.iter().map(|p| p.identifier.clone()).collect(),
            unenrolled_reason: s.unenrolled.clone(),
        }
    }

    /// Registers the device's push token with `apns` at its next `TokenUpdate` (and at once,
    /// if it already sent one), so that pushes there wake it up.
    pub fn attach_apns(&self, apns: &ApnsSim) {
        let mut state = self.state();
        state.apns = Some(apns.clone());
        if let (Some(push), Some(enrollment), true) =
            (&state.push, &state.enrollment, state.enrolled)
        {
            apns.register_device(
                &push.token_hex(),
                &enrollment.mdm.topic,
                &push.magic,
                self.downgrade(),
            );
        }
    }

    /// Fault: answer `NotNow` to the next `count` commands.
    pub fn answer_not_now(&self, count: u32) {
        self.state().not_now = count;
    }

    /// Fault: answer `NotNow` to every command of `request_type` (e.g. an `InstallProfile` a
    /// device cannot run in Setup Assistant), forever; other commands run. Kept across
    /// activations. A real device asks again on its own after a `NotNow`: call
    /// [`Self::poll`] to make it ask.
    pub fn answer_not_now_forever(&self, request_type: &str) {
        self.state().not_now_forever = Some(request_type.to_string());
    }

    /// Fault: the device stops checking in: pushes from an attached [`ApnsSim`] no longer
    /// wake it (its enrollment check-ins still run when asked for). Kept across activations.
    pub fn stop_checking_in(&self) {
        self.state().silent = true;
    }

    /// Whether [`Self::stop_checking_in`] was called.
    #[must_use]
    pub fn is_silent(&self) -> bool {
        self.state().silent
    }

    /// Fault: drop the connection after running each of the next `count` commands, before
    /// its result reaches the server. The device keeps the result and delivers it at the
    /// start of its next session, as Apple's devices do.
    pub fn drop_connection(&self, count: u32) {
        self.state().drop_connection = count;
    }

    /// Setup Assistant asks Apple for the cloud configuration. A device that was set up
    /// before starts over (as after an erase). Keeps the ADE profile when there is one.
    ///
    /// # Errors
    /// [`DeviceError::UnknownSerial`] when the device is no longer in the organisation,
    /// [`DeviceError::AdeProfile`] for a profile it cannot use.
    pub fn activate(&self, sim: &Simulator) -> Result<Activation, DeviceError> {
        let activation = sim
            .activate(self.serial())
            .map_err(|_| DeviceError::UnknownSerial(self.serial().to_string()))?;
        let ade = match (&activation.status[..], &activation.profile) {
            ("profile", Some(json)) => Some(AdeProfile::from_json(json)?),
            _ => None,
        };
        let mut state = self.state();
        self.forget_enrollment(&mut state);
        let apns = state.apns.take();
        let history = std::mem::take(&mut state.history);
        let faults = (state.not_now, state.drop_connection);
        let not_now_forever = state.not_now_forever.take();
        let silent = state.silent;
        *state = State {
            awaiting_configuration: ade.as_ref().is_some_and(|a| a.await_device_configured),
            ade,
            activated: true,
            apns,
            history,
            not_now: faults.0,
            drop_connection: faults.1,
            not_now_forever,
            silent,
            ..State::default()
        };
        Ok(activation)
    }

    /// Every step: activate, then (with a profile) MachineInfo, SCEP, `Authenticate`,
    /// `TokenUpdate`. A real device polls only when pushed: with an [`ApnsSim`] attached the
    /// server's push does that; without one, one session is run at the end in its place.
    ///
    /// # Errors
    /// The first step's error.
    pub async fn enroll_and_run(&self, sim: &Simulator) -> Result<EnrollmentReport, DeviceError> {
        let activation = self.activate(sim)?;
        if activation.status != "profile" {
            return Ok(EnrollmentReport {
                activation,
                enrolled: false,
                first_poll: None,
                os_updates: Vec::new(),
            });
        }
        let mut os_updates = Vec::new();
        loop {
            match self.post_machine_info().await {
                Ok(_) => break,
                // Setup Assistant installs the update the server asks for and asks again; a
                // server that keeps asking after a few updates is refused.
                Err(DeviceError::SoftwareUpdateRequired {
                    os_version,
                    build_version,
                }) if os_updates.len() < MAX_OS_UPDATES => {
                    self.install_os_update(&os_version, build_version.as_deref());
                    os_updates.push(os_version);
                }
                Err(e) => return Err(e),
            }
        }
        self.scep().await?;
        self.check_in_authenticate().await?;
        self.check_in_token_update().await?;
        let first_poll = if self.state().apns.is_none() {
            Some(self.poll().await?)
        } else {
            None
        };
        Ok(EnrollmentReport {
            activation,
            enrolled: true,
            first_poll,
            os_updates,
        })
    }

    /// Installs OS `version` (build `build`, or one made up from the version when the server
    /// named none), as Setup Assistant does when enrollment answers "software update
    /// required".
    pub fn install_os_update(&self, version: &str, build: Option<&str>) {
        let build = build.map_or_else(
            || format!("SIM{}", version.replace('.', "")),
            str::to_string,
        );
        *self
            .inner
            .facts
            .os
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = OsRelease {
            version: version.to_string(),
            build,
        };
    }

    /// Sends a request and reads the whole answer.
    async fn send(
        &self,
        step: &'static str,
        method: &'static str,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Reply, DeviceError> {
        let transport = |e: &reqwest::Error| DeviceError::Transport {
            step,
            method,
            url: url.to_string(),
            reason: error_chain(e),
        };
        let response = request.send().await.map_err(|e| transport(&e))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let final_url = response.url().to_string();
        let body = response.bytes().await.map_err(|e| transport(&e))?;
        Ok(Reply {
            url: final_url,
            status,
            content_type,
            body: body.to_vec(),
        })
    }
}

fn plist_xml(dict: Dictionary, step: &'static str) -> Result<Vec<u8>, DeviceError> {
    let mut out = Vec::new();
    Value::Dictionary(dict)
        .to_writer_xml(&mut out)
        .map_err(|e| DeviceError::Crypto {
            step,
            reason: format!("writing a property list: {e}"),
        })?;
    Ok(out)
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    out.truncate(len);
    out
}

/// `"256GB"` / `"1TB"` as the `DeviceCapacity` a device reports (GiB of a decimal capacity).
fn capacity_gb(capacity: &str) -> f64 {
    let (number, unit) = capacity.split_at(capacity.len().saturating_sub(2));
    let n: f64 = number.parse().unwrap_or(64.0);
    let bytes = if unit == "TB" { n * 1e12 } else { n * 1e9 };
    (bytes / 1_073_741_824.0 * 100.0).round() / 100.0
}

/// An error and its sources, on one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ade_profiles_take_apples_defaults() {
        let ade = AdeProfile::from_json(&serde_json::json!({
            "url": "https://mdm.example.com/enroll",
            "profile_uuid": "ABC",
        }))
        .unwrap();
        assert!(ade.is_mdm_removable && ade.is_supervised && !ade.await_device_configured);
        assert!(ade.anchor_certs.is_empty());
        assert!(AdeProfile::from_json(&serde_json::json!({})).is_err());
        let err = AdeProfile::from_json(&serde_json::json!({
            "url": "https://mdm.example.com/enroll",
            "anchor_certs": ["not base64!"],
        }))
        .unwrap_err();
        assert!(matches!(err, DeviceError::AdeProfile(_)), "{err}");
    }

    #[test]
    fn capacities_are_reported_in_gib() {
        assert!((capacity_gb("256GB") - 238.42).abs() < 0.01);
        assert!((capacity_gb("1TB") - 931.32).abs() < 0.01);
    }

    #[test]
    fn random_bytes_have_the_length_asked() {
        assert_eq!(random_bytes(32).len(), 32);
        assert_eq!(random_bytes(48).len(), 48);
        assert_ne!(random_bytes(32), random_bytes(32));
    }
}
