//! Check-in and the command channel: `Authenticate`, `TokenUpdate`, MDM sessions, and
//! leaving management.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use guardmdm_crypto::sign_detached;
use guardmdm_mdm_protocol::{CHECKIN_CONTENT_TYPE, REPORT_CONTENT_TYPE};
use plist::{Dictionary, Value};

use super::{
    CommandRun, DeviceError, PollSummary, Push, Reply, SimDevice, State, commands, plist_xml,
    random_bytes,
};
use crate::catalog::DeviceFamily;

impl SimDevice {
    /// `Authenticate` on the check-in URL (`docs/protocol.md` §7.2): `MessageType`, `UDID`,
    /// `Topic`, `SerialNumber`, `OSVersion`, `BuildVersion`, `ProductName`, `IMEI` for cellular
    /// models, and `DeviceName`, `Model`, `ModelName` for a Mac. Expects 200.
    ///
    /// # Errors
    /// [`DeviceError::OutOfOrder`] without an MDM identity, HTTP errors, or
    /// [`DeviceError::Unenrolled`] when the server refuses the device (401).
    pub async fn check_in_authenticate(&self) -> Result<(), DeviceError> {
        const STEP: &str = "check_in_authenticate";
        let topic = self.require_identity(STEP)?;
        let f = &self.inner.facts;
        let mut d = Dictionary::new();
        d.insert("MessageType".into(), Value::String("Authenticate".into()));
        d.insert("UDID".into(), Value::String(f.hw.udid.clone()));
        d.insert("Topic".into(), Value::String(topic));
        d.insert("SerialNumber".into(), Value::String(f.serial.clone()));
        let os = f.os();
        d.insert("OSVersion".into(), Value::String(os.version));
        d.insert("BuildVersion".into(), Value::String(os.build));
        d.insert("ProductName".into(), Value::String(f.hw.product.into()));
        if let Some(imei) = &f.imei {
            d.insert("IMEI".into(), Value::String(imei.clone()));
        }
        if f.family == DeviceFamily::Mac {
            d.insert("DeviceName".into(), Value::String(f.hw.model_name.into()));
            d.insert("Model".into(), Value::String(f.hw.model_number.clone()));
            d.insert("ModelName".into(), Value::String(f.hw.model_name.into()));
        }
        self.check_in(STEP, d).await?;
        self.state().authenticated = true;
        Ok(())
    }

    /// `TokenUpdate` on the check-in URL: `UDID`, `Topic`, `Token` (32 random bytes),
    /// `PushMagic` (a UUID), `UnlockToken` (iPhone and iPad), `AwaitingConfiguration` (true
    /// while the device waits for `DeviceConfigured`). Expects 200; the device is then
    /// enrolled, its MDM profile installed, and its token registered with the attached
    /// [`ApnsSim`](crate::ApnsSim).
    ///
    /// # Errors
    /// [`DeviceError::OutOfOrder`] before `Authenticate`, HTTP errors, or
    /// [`DeviceError::Unenrolled`].
    pub async fn check_in_token_update(&self) -> Result<(), DeviceError> {
        const STEP: &str = "check_in_token_update";
        let topic = self.require_identity(STEP)?;
        let (push, awaiting) = {
            let mut state = self.state();
            if !state.authenticated {
                return Err(DeviceError::OutOfOrder {
                    step: STEP,
                    missing: "check_in_authenticate",
                });
            }
            let family = self.family();
            let push = state
                .push
                .get_or_insert_with(|| Push {
                    token: random_bytes(32),
                    magic: guardmdm_mdm_protocol::new_uuid(),
                    unlock_token: matches!(family, DeviceFamily::IPhone | DeviceFamily::IPad)
                        .then(|| random_bytes(48)),
                })
                .clone();
            (push, state.awaiting_configuration)
        };
        let mut d = Dictionary::new();
        d.insert("MessageType".into(), Value::String("TokenUpdate".into()));
        d.insert("UDID".into(), Value::String(self.udid().to_string()));
        d.insert("Topic".into(), Value::String(topic.clone()));
        d.insert("Token".into(), Value::Data(push.token.clone()));
        d.insert("PushMagic".into(), Value::String(push.magic.clone()));
        if let Some(unlock) = &push.unlock_token {
            d.insert("UnlockToken".into(), Value::Data(unlock.clone()));
        }
        d.insert("AwaitingConfiguration".into(), Value::Boolean(awaiting));
        // The device has its push token from APNs before it tells the MDM server, so a push
        // the server sends while answering this TokenUpdate reaches it.
        let apns = self.state().apns.clone();
        if let Some(apns) = &apns {
            apns.register_device(&push.token_hex(), &topic, &push.magic, self.downgrade());
        }
        self.check_in(STEP, d).await?;
        let mut state = self.state();
        state.enrolled = true;
        if let Some(profile) = state.enrollment_profile.clone()
            && !state.installed.iter().any(|p| p.is_mdm_enrollment)
        {
            state.installed.insert(0, profile);
        }
        Ok(())
    }

    /// The MDM topic, once the device has an MDM identity.
    fn require_identity(&self, step: &'static str) -> Result<String, DeviceError> {
        let state = self.state();
        if state.erased {
            return Err(DeviceError::Erased);
        }
        if let Some(reason) = &state.unenrolled {
            return Err(DeviceError::Unenrolled(reason.clone()));
        }
        match (&state.enrollment, &state.mdm_identity) {
            (Some(e), Some(_)) => Ok(e.mdm.topic.clone()),
            _ => Err(DeviceError::OutOfOrder {
                step,
                missing: "scep",
            }),
        }
    }

    /// PUTs a check-in message.
    async fn check_in(&self, step: &'static str, message: Dictionary) -> Result<(), DeviceError> {
        let url = self
            .state()
            .enrollment
            .as_ref()
            .map(|e| e.mdm.effective_check_in_url().to_string())
            .unwrap_or_default();
        let body = plist_xml(message, step)?;
        let reply = self.put_mdm(step, &url, CHECKIN_CONTENT_TYPE, body).await?;
        self.mdm_status(step, &reply)
    }

    /// A PUT on a check-in or command URL, with `Mdm-Signature` when the profile asks.
    async fn put_mdm(
        &self,
        step: &'static str,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Reply, DeviceError> {
        let (sign, identity) = {
            let state = self.state();
            (
                state
                    .enrollment
                    .as_ref()
                    .is_some_and(|e| e.mdm.sign_message),
                state.mdm_identity.clone(),
            )
        };
        let mut request = self
            .inner
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::USER_AGENT, self.user_agent());
        if sign && let Some(identity) = identity {
            let signature = sign_detached(&body, &identity).map_err(|e| DeviceError::Crypto {
                step,
                reason: e.to_string(),
            })?;
            request = request.header("Mdm-Signature", STANDARD.encode(signature));
        }
        self.send(step, "PUT", url, request.body(body)).await
    }

    /// The `Mdm-Signature` header value this device sends with `body` (base64 of a detached
    /// CMS signature made with its SCEP identity): for tests that hand-craft a device's
    /// requests, a hostile device's included.
    ///
    /// # Errors
    /// [`DeviceError::OutOfOrder`] before SCEP, or a signing failure.
    pub fn mdm_signature(&self, body: &[u8]) -> Result<String, DeviceError> {
        const STEP: &str = "mdm_signature";
        let identity = self
            .state()
            .mdm_identity
            .clone()
            .ok_or(DeviceError::OutOfOrder {
                step: STEP,
                missing: "scep",
            })?;
        let signature = sign_detached(body, &identity).map_err(|e| DeviceError::Crypto {
            step: STEP,
            reason: e.to_string(),
        })?;
        Ok(STANDARD.encode(signature))
    }

    fn user_agent(&self) -> &'static str {
        if self.family() == DeviceFamily::Mac {
            "MDM-OSX/1.0 mdmclient/1"
        } else {
            "MDM/1.0"
        }
    }

    /// 200 is fine; 401 and 403 `com.apple.unrecognized.device` unenroll the device.
    fn mdm_status(&self, step: &'static str, reply: &Reply) -> Result<(), DeviceError> {
        match reply.status {
            200 => Ok(()),
            401 => Err(self.unenroll(format!("{} answered 401 to {step}", reply.url))),
            403 if reply.body_text().contains("com.apple.unrecognized.device") => Err(self
                .unenroll(format!(
                    "{} answered 403 com.apple.unrecognized.device to {step}",
                    reply.url
                ))),
            _ => Err(reply.status_error(step)),
        }
    }

    /// The device leaves management: its MDM profile and the profiles it brought go.
    fn unenroll(&self, reason: String) -> DeviceError {
        let mut state = self.state();
        self.forget_enrollment(&mut state);
        state.unenrolled = Some(reason.clone());
        DeviceError::Unenrolled(reason)
    }

    /// Drops everything the enrollment gave the device; its push token stops working.
    pub(super) fn forget_enrollment(&self, state: &mut State) {
        if let (Some(apns), Some(push)) = (&state.apns, &state.push) {
            apns.unregister(&push.token_hex());
        }
        state.enrollment = None;
        state.enrollment_profile = None;
        state.mdm_identity = None;
        state.push = None;
        state.authenticated = false;
        state.enrolled = false;
        state.installed.retain(|p| !p.is_managed);
        state.cached_result = None;
    }

    /// One MDM session, as a push triggers it: `PUT {UDID, Status: Idle}` on the `ServerURL`
    /// (or first the result a dropped connection kept), then, while the answer is a command,
    /// run it and `PUT` its result. An empty 200 ends the session. Concurrent calls wait for
    /// each other (a device runs one session at a time).
    ///
    /// # Errors
    /// [`DeviceError::OutOfOrder`] before enrollment, [`DeviceError::Erased`],
    /// [`DeviceError::Unenrolled`] (also when the server answers 401), HTTP errors, or
    /// [`DeviceError::BadCommand`] for an answer that is not a command plist at all.
    pub async fn poll(&self) -> Result<PollSummary, DeviceError> {
        let _session = self.inner.session.lock().await;
        let (url, cached) = self.session_start()?;
        let mut summary = PollSummary::default();
        let (mut body, mut pending_run) = match cached {
            Some((bytes, run)) => {
                summary.resent_result = true;
                (bytes, Some(run))
            }
            None => (self.idle_report()?, None),
        };
        let mut effect = commands::Effect::None;
        loop {
            let delivered = self.deliver(&url, &body, pending_run.take()).await;
            // An erase or a removed MDM profile happens once the result is sent, whether or
            // not it got through.
            match effect {
                commands::Effect::None => {}
                commands::Effect::Erase => {
                    self.erase();
                    summary.erased = true;
                    return delivered.map(|_| summary);
                }
                commands::Effect::RemoveMdm => {
                    if delivered.is_ok() {
                        self.remove_mdm_profile().await;
                    }
                    summary.unenrolled = true;
                    return delivered.map(|_| summary);
                }
            }
            let reply = delivered?;
            if reply.body.is_empty() {
                return Ok(summary);
            }
            let outcome = {
                let mut state = self.state();
                commands::execute(&self.inner.facts, &mut state, &reply.body)
            };
            let outcome = outcome.map_err(DeviceError::BadCommand)?;
            summary.commands.push(outcome.run.clone());
            body = plist_xml(outcome.report, POLL_STEP)?;
            effect = outcome.effect;
            if self.record_run(&body, &outcome.run) {
                summary.dropped = true;
                if effect == commands::Effect::Erase {
                    self.erase();
                    summary.erased = true;
                }
                return Ok(summary);
            }
            pending_run = Some(outcome.run);
        }
    }

    /// Where the session goes (the enrollment's `ServerURL`), and the result a dropped
    /// connection kept, to send first. Refuses when the device is erased, unenrolled, or not
    /// enrolled yet.
    fn session_start(&self) -> Result<(String, Option<KeptResult>), DeviceError> {
        let mut state = self.state();
        if state.erased {
            return Err(DeviceError::Erased);
        }
        if let Some(reason) = &state.unenrolled {
            return Err(DeviceError::Unenrolled(reason.clone()));
        }
        if !state.enrolled {
            return Err(DeviceError::OutOfOrder {
                step: POLL_STEP,
                missing: "check_in_token_update",
            });
        }
        let url = state
            .enrollment
            .as_ref()
            .map(|e| e.mdm.server_url.clone())
            .unwrap_or_default();
        Ok((url, state.cached_result.take()))
    }

    /// The report that opens a session: `{Status: Idle, UDID}`.
    fn idle_report(&self) -> Result<Vec<u8>, DeviceError> {
        let mut idle = Dictionary::new();
        idle.insert("Status".into(), Value::String("Idle".into()));
        idle.insert("UDID".into(), Value::String(self.udid().to_string()));
        plist_xml(idle, POLL_STEP)
    }

    /// Adds a command's `run` to the history. When a dropped connection is due (see
    /// [`SimDevice::drop_connection`]), keeps its result (`report`) for the next session and says `true`:
    /// the session ends without sending it.
    fn record_run(&self, report: &[u8], run: &CommandRun) -> bool {
        let mut state = self.state();
        state.history.push(run.clone());
        if state.drop_connection > 0 {
            state.drop_connection -= 1;
            state.cached_result = Some((report.to_vec(), run.clone()));
            true
        } else {
            false
        }
    }

    /// PUTs a report on the command channel. A result (`run`) that does not reach the server
    /// (transport error, or a status other than 200 and 401) is kept for the next session.
    async fn deliver(
        &self,
        url: &str,
        body: &[u8],
        run: Option<CommandRun>,
    ) -> Result<Reply, DeviceError> {
        const STEP: &str = "poll";
        let result = match self
            .put_mdm(STEP, url, REPORT_CONTENT_TYPE, body.to_vec())
            .await
        {
            Ok(reply) => self.mdm_status(STEP, &reply).map(|()| reply),
            Err(e) => Err(e),
        };
        if let (Err(e), Some(run)) = (&result, run)
            && !matches!(e, DeviceError::Unenrolled(_))
        {
            self.state().cached_result = Some((body.to_vec(), run));
        }
        result
    }

    /// `EraseDevice` done: everything is gone, the push token is dead, and the device waits in
    /// Setup Assistant for [`SimDevice::activate`].
    fn erase(&self) {
        let mut state = self.state();
        self.forget_enrollment(&mut state);
        state.installed.clear();
        state.ade = None;
        state.activated = false;
        state.erased = true;
        state.locked = false;
        state.awaiting_configuration = false;
    }

    /// The MDM profile was removed by `RemoveProfile`: `CheckOut` if the profile asks, then
    /// unmanaged.
    async fn remove_mdm_profile(&self) {
        let check_out = self
            .state()
            .enrollment
            .as_ref()
            .and_then(|e| e.mdm.check_out_when_removed.then(|| e.mdm.topic.clone()));
        if let Some(topic) = check_out {
            let mut d = Dictionary::new();
            d.insert("MessageType".into(), Value::String("CheckOut".into()));
            d.insert("Topic".into(), Value::String(topic));
            d.insert("UDID".into(), Value::String(self.udid().to_string()));
            // Best effort, as on a device.
            if let Err(e) = self.check_in("check_out", d).await {
                tracing::debug!(udid = self.udid(), error = %e, "CheckOut failed");
            }
        }
        let _ = self.unenroll("the MDM profile was removed by RemoveProfile".to_string());
    }
}

/// The step `poll` errors name.
const POLL_STEP: &str = "poll";

/// A result a dropped connection kept (the report, and the command run it answers).
type KeptResult = (Vec<u8>, CommandRun);
