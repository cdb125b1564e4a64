//! What enrolled devices say: check-in (`Authenticate`, `TokenUpdate`, `CheckOut`) and the
//! command channel (`Idle`, results, `NotNow`) (`docs/protocol.md` §7). A device proves who it is
//! with the identity GuardMDM's CA issued it, and may only speak for the UDID and serial number
//! that identity was issued to.
//!
//! The order matters on a public server: [`MdmService::prove_device`] checks the identity from
//! the request's headers alone (the `Mdm-Signature`'s signer, or a forwarded client
//! certificate), so a stranger is refused before its body is read; the HTTP layer then reads
//! the body within [`super::DeviceLimits`]; [`MdmService::checkin`] and
//! [`MdmService::connect`] verify the signature over the raw bytes before parsing them.

use guardmdm_crypto::{Certificate, DetachedSignature};
use guardmdm_mdm_protocol::{
    Authenticate, CheckinMessage, CommandStatus, TokenUpdate, parse_checkin, parse_report,
};
use guardmdm_store::{
    AssignmentConfigStore, AssignmentStateStore, Authenticated, CommandStatus as StoredStatus,
    DeviceSyncStore, Enrollment, EnrollmentStatus, IssuedIdentity, MdmStore, TokenUpdated,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{MdmError, MdmService};
use crate::profile_spec::ProfileSpec;

/// How stale a device's `last_seen_at` may get before a command-channel request writes it
/// again: a device in a session connects many times a minute, and a write per request (a
/// commit to the disk) was a large part of what an `Idle` with nothing queued cost.
pub const LAST_SEEN_RESOLUTION: time::Duration = time::Duration::minutes(1);

/// Whether a command-channel request at `now` writes the device's `last_seen_at` again.
#[must_use]
pub(super) fn last_seen_is_stale(last_seen_at: OffsetDateTime, now: OffsetDateTime) -> bool {
    now - last_seen_at >= LAST_SEEN_RESOLUTION
}

/// The identities [`MdmService::prove_device`] found on record, by fingerprint, so that a
/// device's every request does not look its identity up again. Safe because a recorded
/// identity never changes and is never removed (only found ones are kept: an unknown
/// fingerprint is looked up each time), and bounded: emptied when it reaches
/// [`IdentityCache::CAPACITY`] entries. The CA and validity checks still run on every request.
#[derive(Debug, Default)]
pub(super) struct IdentityCache(
    std::sync::Mutex<std::collections::HashMap<String, IssuedIdentity>>,
);

impl IdentityCache {
    /// At most this many identities (about 300 bytes each).
    const CAPACITY: usize = 50_000;

    fn get(&self, fingerprint: &str) -> Option<IssuedIdentity> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(fingerprint)
            .cloned()
    }

    fn insert(&self, identity: &IssuedIdentity) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= Self::CAPACITY {
            map.clear();
        }
        map.insert(identity.fingerprint.clone(), identity.clone());
    }
}

/// `created_by` of the commands queued from an ADE profile's `initial_commands`.
pub const INITIAL_COMMANDS_SENDER: &str = "initial-commands";

/// How a request proves the device's identity.
#[derive(Debug, Clone)]
pub enum DeviceIdentityProof {
    /// The `Mdm-Signature` header: base64 of a detached CMS signature over the body.
    MdmSignature(Vec<u8>),
    /// The TLS client certificate a trusted proxy forwarded (DER or PEM).
    ClientCertificate(Vec<u8>),
    /// Neither.
    Missing,
}

/// An enrolled device as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentView {
    /// UDID (or EnrollmentID).
    pub udid: String,
    /// Serial number.
    pub serial_number: Option<String>,
    /// `authenticated`, `enrolled`, `checked_out` or `unregistered`.
    pub status: EnrollmentStatus,
    /// Waiting in Setup Assistant for `DeviceConfigured`.
    pub awaiting_configuration: bool,
    /// Since when it waits there; `None` while it does not.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub awaiting_since: Option<OffsetDateTime>,
    /// Whether APNs can reach it (it sent a push token).
    pub pushable: bool,
    /// What it said about itself at `Authenticate`.
    pub device_info: serde_json::Value,
    /// When it became Enrolled.
    #[serde(with = "time::serde::rfc3339::option")]
    pub enrolled_at: Option<OffsetDateTime>,
    /// Its last request (to within [`LAST_SEEN_RESOLUTION`] for command-channel requests).
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// Its push state, as the instance answering knows it.
    #[serde(default)]
    pub push: super::PushStatus,
}

impl EnrollmentView {
    /// The view with its push state.
    #[must_use]
    pub fn with_push(mut self, push: super::PushStatus) -> Self {
        self.push = push;
        self
    }
}

impl From<Enrollment> for EnrollmentView {
    fn from(e: Enrollment) -> Self {
        Self {
            pushable: e.push_token.is_some() && e.push_magic.is_some(),
            udid: e.udid,
            serial_number: e.serial_number,
            status: e.status,
            awaiting_configuration: e.awaiting_configuration,
            awaiting_since: e.awaiting_since,
            device_info: e.device_info,
            enrolled_at: e.enrolled_at,
            last_seen_at: e.last_seen_at,
            push: super::PushStatus::none(),
        }
    }
}

/// A device whose identity a request's headers proved: a certificate GuardMDM's CA issued,
/// inside its validity, on record. With an `Mdm-Signature` the body must still match the
/// signature; [`MdmService::checkin`] and [`MdmService::connect`] check that before they parse
/// anything. Only [`MdmService::prove_device`] makes one.
#[derive(Debug)]
pub struct ProvenDevice {
    identity: IssuedIdentity,
    /// The signature the body must match; `None` for a client certificate (the TLS
    /// handshake proved the key).
    signature: Option<DetachedSignature>,
}

impl ProvenDevice {
    /// The UDID the identity was issued to.
    #[must_use]
    pub fn udid(&self) -> &str {
        &self.identity.udid
    }

    /// The identity, once `body` is proven to be what the device signed.
    fn for_body(&self, body: &[u8]) -> Result<&IssuedIdentity, MdmError> {
        if let Some(signature) = &self.signature {
            signature.verify(body).map_err(|e| {
                MdmError::forbidden(format!(
                    "the Mdm-Signature does not verify over the body: {e}"
                ))
            })?;
        }
        Ok(&self.identity)
    }
}

/// A check-in's `SerialNumber` must be the one the identity was issued for (the serial of
/// the MachineInfo verified at enrollment); one without a serial takes that one.
fn same_serial(identity: &IssuedIdentity, claimed: Option<&str>) -> Result<(), MdmError> {
    match claimed {
        Some(claimed) if !claimed.trim().eq_ignore_ascii_case(&identity.serial_number) => {
            tracing::warn!(udid = %identity.udid, bound = %identity.serial_number, claimed = %claimed, "a device claimed another serial number");
            Err(MdmError::forbidden(format!(
                "this identity was issued to serial number {}, not {claimed}",
                identity.serial_number
            )))
        }
        _ => Ok(()),
    }
}

impl<S> MdmService<S>
where
    S: ?Sized + MdmStore + DeviceSyncStore + AssignmentStateStore + AssignmentConfigStore + 'static,
{
    /// The identity a request proves from its headers alone, before its body is read:
    /// issued by GuardMDM's CA, inside its validity, and recorded at issuance. With
    /// `Mdm-Signature`, the signature over the body is checked later, by
    /// [`Self::checkin`] or [`Self::connect`].
    ///
    /// # Errors
    /// 431 for an `Mdm-Signature` header longer than `--mdm-signature-max-bytes`; 403 for a
    /// missing identity, a signature that is not a detached CMS signature, a certificate
    /// GuardMDM's CA did not issue, one outside its validity, or one it has no record of.
    pub async fn prove_device(
        &self,
        proof: &DeviceIdentityProof,
    ) -> Result<ProvenDevice, MdmError> {
        let (cert, signature) = match proof {
            DeviceIdentityProof::MdmSignature(header) => {
                let limit = self.settings.limits.signature_bytes;
                if header.len() > limit {
                    return Err(MdmError {
                        status: 431,
                        message: format!(
                            "the Mdm-Signature header is {} bytes; a device's signature takes far less, and this server accepts at most {limit}",
                            header.len()
                        ),
                    });
                }
                let signature = DetachedSignature::parse(header).map_err(|e| {
                    MdmError::forbidden(format!("the Mdm-Signature is not usable: {e}"))
                })?;
                (signature.signer().clone(), Some(signature))
            }
            DeviceIdentityProof::ClientCertificate(bytes) => (
                Certificate::from_der(bytes)
                    .or_else(|_| Certificate::from_pem(bytes))
                    .map_err(|e| {
                        MdmError::forbidden(format!(
                            "the forwarded client certificate is unreadable: {e}"
                        ))
                    })?,
                None,
            ),
            DeviceIdentityProof::Missing => {
                return Err(MdmError::forbidden(
                    "no device identity: the request has neither an Mdm-Signature header nor a client certificate from a trusted proxy",
                ));
            }
        };
        let keys = self.keys().await?;
        if !keys.ca.issued_by_me(&cert) {
            return Err(MdmError::forbidden(format!(
                "the identity {:?} was not issued by GuardMDM's CA",
                cert.subject()
            )));
        }
        if !cert.is_valid_at(OffsetDateTime::now_utc()) {
            return Err(MdmError::forbidden(format!(
                "the identity certificate is outside its validity (until {})",
                cert.not_after()
            )));
        }
        let fingerprint = cert.sha256_fingerprint();
        let identity = match self.identities.get(fingerprint) {
            Some(identity) => identity,
            None => {
                let identity =
                    self.store.identity(fingerprint).await?.ok_or_else(|| {
                        MdmError::forbidden("this identity is unknown to GuardMDM")
                    })?;
                self.identities.insert(&identity);
                identity
            }
        };
        Ok(ProvenDevice {
            identity,
            signature,
        })
    }

    fn same_device(identity: &IssuedIdentity, claimed: &str) -> Result<(), MdmError> {
        if identity.udid == claimed {
            Ok(())
        } else {
            tracing::warn!(identity = %identity.udid, claimed = %claimed, "a device spoke for another UDID");
            Err(MdmError::forbidden(format!(
                "this identity belongs to device {}, not {claimed}",
                identity.udid
            )))
        }
    }

    /// A check-in (`PUT` to the `CheckInURL`) from `device` ([`Self::prove_device`]).
    /// Answers an empty 200 body. The enrollment's serial number is always the one the
    /// identity was issued for.
    ///
    /// # Errors
    /// 403 for a body that does not match the `Mdm-Signature`, another device's UDID or
    /// serial number, or a wrong topic; 400 for a malformed plist or an unsupported message;
    /// 410 for user-channel authentication (GuardMDM does not manage user channels).
    pub async fn checkin(&self, device: &ProvenDevice, body: &[u8]) -> Result<Vec<u8>, MdmError> {
        let identity = device.for_body(body)?;
        let message = parse_checkin(body)
            .map_err(|e| MdmError::bad_request(format!("the check-in is malformed: {e}")))?;
        Self::same_device(identity, message.identity().as_str())?;
        let now = guardmdm_store::now();
        match message {
            CheckinMessage::Authenticate(auth) => self.authenticate(identity, auth, now).await?,
            CheckinMessage::TokenUpdate(update) => self.token_update(identity, update, now).await?,
            CheckinMessage::CheckOut(_) => {
                self.store
                    .set_enrollment_status(&identity.udid, EnrollmentStatus::CheckedOut, now)
                    .await?;
                tracing::info!(udid = %identity.udid, "CheckOut: the MDM profile was removed");
            }
            CheckinMessage::Other { message_type, .. } if message_type == "UserAuthenticate" => {
                return Err(MdmError {
                    status: 410,
                    message: "GuardMDM does not manage user channels".to_string(),
                });
            }
            CheckinMessage::Other { message_type, .. } => {
                return Err(MdmError::bad_request(format!(
                    "GuardMDM does not handle {message_type} check-ins"
                )));
            }
        }
        Ok(Vec::new())
    }

    /// `Authenticate`: records the device (its serial number must be the identity's) and
    /// what it says about itself.
    async fn authenticate(
        &self,
        identity: &IssuedIdentity,
        auth: Authenticate,
        now: OffsetDateTime,
    ) -> Result<(), MdmError> {
        same_serial(identity, auth.serial_number.as_deref())?;
        self.check_topic(&auth.topic).await?;
        let info = serde_json::json!({
            "OSVersion": auth.os_version,
            "BuildVersion": auth.build_version,
            "ProductName": auth.product_name,
            "DeviceName": auth.device_name,
            "Model": auth.model,
            "ModelName": auth.model_name,
            "IMEI": auth.imei,
            "MEID": auth.meid,
        });
        self.store
            .record_authenticate(&Authenticated {
                udid: identity.udid.clone(),
                serial_number: Some(identity.serial_number.clone()),
                topic: auth.topic,
                identity_fingerprint: Some(identity.fingerprint.clone()),
                device_info: info,
                at: now,
            })
            .await?;
        tracing::info!(udid = %identity.udid, serial = %identity.serial_number, "Authenticate");
        Ok(())
    }

    /// `TokenUpdate`: records the push token (and the sealed unlock token); the first one
    /// enrolls the device ([`Self::on_enrolled`]).
    async fn token_update(
        &self,
        identity: &IssuedIdentity,
        update: TokenUpdate,
        now: OffsetDateTime,
    ) -> Result<(), MdmError> {
        if update.is_user_channel() {
            // GuardMDM manages the device channel only; the user channel's token is
            // acknowledged and not used.
            return Ok(());
        }
        self.check_topic(&update.topic).await?;
        let unlock = match &update.unlock_token {
            Some(t) => Some(
                self.secrets
                    .seal(t.expose_secret(), &format!("unlock:{}", identity.udid))
                    .map_err(MdmError::internal)?,
            ),
            None => None,
        };
        let result = self
            .store
            .record_token_update(&TokenUpdated {
                udid: identity.udid.clone(),
                topic: update.topic.clone(),
                push_token: update.token.expose_secret().to_vec(),
                push_magic: update.push_magic.expose_secret().to_string(),
                unlock_token: unlock,
                awaiting_configuration: update.awaiting_configuration,
                at: now,
            })
            .await;
        let (enrollment, first) = match result {
            Ok(r) => r,
            Err(guardmdm_store::StoreError::NotFound) => {
                return Err(MdmError::forbidden(
                    "TokenUpdate before Authenticate: the device must authenticate first",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        if first {
            tracing::info!(udid = %identity.udid, serial = %identity.serial_number, awaiting = enrollment.awaiting_configuration, "device enrolled");
            self.on_enrolled(&enrollment).await?;
        }
        Ok(())
    }

    async fn check_topic(&self, topic: &str) -> Result<(), MdmError> {
        let ours = self.topic().await?;
        if topic == ours {
            Ok(())
        } else {
            Err(MdmError::forbidden(format!(
                "the device checks in with topic {topic}, but GuardMDM's push certificate has {ours}"
            )))
        }
    }

    /// After the first TokenUpdate: the initial commands of the device's ADE profile are
    /// queued; a device waiting in Setup Assistant gets `DeviceConfigured` at once when there
    /// are none (otherwise once they are answered, see [`Self::connect`]); the device is
    /// pushed in the background.
    async fn on_enrolled(&self, enrollment: &Enrollment) -> Result<(), MdmError> {
        let initial = self.initial_commands(enrollment).await?;
        let none = initial.is_empty();
        for request in initial {
            self.queue(&enrollment.udid, request, INITIAL_COMMANDS_SENDER, None)
                .await?;
        }
        if enrollment.awaiting_configuration && none {
            self.queue(
                &enrollment.udid,
                guardmdm_mdm_protocol::CommandRequest::DeviceConfigured,
                "system",
                None,
            )
            .await?;
        }
        self.request_push(&enrollment.udid);
        Ok(())
    }

    /// The `initial_commands` of the ADE profile the device was given (its current version).
    async fn initial_commands(
        &self,
        enrollment: &Enrollment,
    ) -> Result<Vec<guardmdm_mdm_protocol::CommandRequest>, MdmError> {
        let Some(serial) = &enrollment.serial_number else {
            return Ok(Vec::new());
        };
        let Some(Some(profile)) = self.given_profile(serial).await? else {
            return Ok(Vec::new());
        };
        let spec: ProfileSpec = match serde_json::from_value(profile.spec) {
            Ok(spec) => spec,
            Err(e) => {
                tracing::warn!(profile = %profile.name, error = %e, "stored ADE profile unreadable: no initial commands");
                return Ok(Vec::new());
            }
        };
        let mut requests = Vec::new();
        for command in spec.initial_commands.unwrap_or_default() {
            match command.to_request() {
                Ok(request) => requests.push(request),
                // Validated when the profile was written; a rule tightened since.
                Err(e) => {
                    tracing::warn!(profile = %profile.name, request_type = %command.request_type, error = %e, "initial command skipped");
                }
            }
        }
        tracing::info!(udid = %enrollment.udid, profile = %profile.name, commands = requests.len(), "initial commands queued");
        Ok(requests)
    }

    /// After an initial command's final answer: when it was the last one open and the device
    /// still waits in Setup Assistant, `DeviceConfigured` is queued.
    async fn after_initial_command(&self, udid: &str) -> Result<(), MdmError> {
        let awaiting = self
            .store
            .enrollment(udid)
            .await?
            .is_some_and(|e| e.awaiting_configuration);
        if awaiting
            && self
                .store
                .count_open_commands(udid, INITIAL_COMMANDS_SENDER)
                .await?
                == 0
        {
            tracing::info!(udid = %udid, "initial commands answered: DeviceConfigured");
            self.queue(
                udid,
                guardmdm_mdm_protocol::CommandRequest::DeviceConfigured,
                "system",
                None,
            )
            .await?;
        }
        Ok(())
    }

    /// The command channel (`PUT` to the `ServerURL`) from `device`
    /// ([`Self::prove_device`]): records a result and answers the next command's plist, or an
    /// empty body when there is none.
    ///
    /// # Errors
    /// 403 for a body that does not match the `Mdm-Signature`, another device's UDID or a
    /// device that is not enrolled; 400 for a malformed report or an unknown status; 404 for
    /// a result to a command it does not have.
    pub async fn connect(&self, device: &ProvenDevice, body: &[u8]) -> Result<Vec<u8>, MdmError> {
        let identity = device.for_body(body)?;
        let report = parse_report(body)
            .map_err(|e| MdmError::bad_request(format!("the report is malformed: {e}")))?;
        Self::same_device(identity, report.identity.as_str())?;
        let udid = identity.udid.as_str();
        let last_seen_at = match self.store.enrollment(udid).await? {
            Some(e)
                if matches!(
                    e.status,
                    EnrollmentStatus::Enrolled | EnrollmentStatus::Authenticated
                ) =>
            {
                e.last_seen_at
            }
            _ => {
                return Err(MdmError::forbidden(
                    "this device is not enrolled: it must check in (Authenticate, TokenUpdate) first",
                ));
            }
        };
        let now = guardmdm_store::now();
        if last_seen_is_stale(last_seen_at, now) {
            self.store.touch_enrollment(udid, now).await?;
        }
        if report.is_user_channel() {
            return Ok(Vec::new());
        }
        let status = match &report.status {
            CommandStatus::Idle => None,
            CommandStatus::Acknowledged => Some(StoredStatus::Acknowledged),
            CommandStatus::Error => Some(StoredStatus::Error),
            CommandStatus::CommandFormatError => Some(StoredStatus::CommandFormatError),
            CommandStatus::NotNow => Some(StoredStatus::NotNow),
            CommandStatus::Other(s) => {
                return Err(MdmError::bad_request(format!("unknown Status {s:?}")));
            }
        };
        if let (Some(status), Some(uuid)) = (status, report.command_uuid.as_deref()) {
            let result = status.is_final().then_some(body);
            let command = match self
                .store
                .record_command_result(udid, uuid, status, result, now)
                .await
            {
                Ok(c) => c,
                Err(guardmdm_store::StoreError::NotFound) => {
                    return Err(MdmError {
                        status: 404,
                        message: format!("this device has no command {uuid}"),
                    });
                }
                Err(e) => return Err(e.into()),
            };
            if command.request_type == "DeviceConfigured" && status == StoredStatus::Acknowledged {
                self.store
                    .set_awaiting_configuration(udid, false, now)
                    .await?;
            }
            if command.created_by == INITIAL_COMMANDS_SENDER && status.is_final() {
                self.after_initial_command(udid).await?;
            }
        }
        let next = self.store.next_command(udid, status.is_none(), now).await?;
        Ok(next.map(|c| c.payload).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> IssuedIdentity {
        IssuedIdentity {
            fingerprint: "AB:CD".to_string(),
            cert_serial: "01".to_string(),
            udid: "00008140-001A2B3C4D5E801C".to_string(),
            serial_number: "C39J79WQ529Q".to_string(),
            issued_at: OffsetDateTime::UNIX_EPOCH,
            not_after: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_identity_cache_keeps_found_identities_within_its_capacity() {
        let cache = IdentityCache::default();
        assert_eq!(cache.get("AB:CD"), None);
        cache.insert(&identity());
        assert_eq!(cache.get("AB:CD"), Some(identity()));
        assert_eq!(cache.get("AB:CE"), None);
        for i in 1..IdentityCache::CAPACITY {
            cache.insert(&IssuedIdentity {
                fingerprint: format!("F{i}"),
                ..identity()
            });
        }
        assert!(cache.get("AB:CD").is_some(), "full, not over");
        cache.insert(&IssuedIdentity {
            fingerprint: "LAST".to_string(),
            ..identity()
        });
        assert_eq!(cache.get("AB:CD"), None, "emptied at capacity");
        assert!(cache.get("LAST").is_some());
    }

    #[test]
    fn last_seen_is_written_again_once_a_minute_old() {
        let seen = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert!(!last_seen_is_stale(seen, seen));
        assert!(!last_seen_is_stale(
            seen,
            seen + time::Duration::seconds(59)
        ));
        assert!(last_seen_is_stale(seen, seen + time::Duration::minutes(1)));
        assert!(last_seen_is_stale(seen, seen + time::Duration::hours(3)));
        // A clock that went back does not write.
        assert!(!last_seen_is_stale(seen, seen - time::Duration::minutes(5)));
    }

    #[test]
    fn a_check_in_keeps_to_the_bound_serial() {
        let identity = identity();
        assert!(same_serial(&identity, None).is_ok());
        assert!(same_serial(&identity, Some("C39J79WQ529Q")).is_ok());
        // Devices send serials upper case; a stray space or case is not another device.
        assert!(same_serial(&identity, Some(" c39j79wq529q ")).is_ok());
        let err = same_serial(&identity, Some("G6T9JDPKV93Y")).unwrap_err();
        assert_eq!(err.status, 403);
        assert!(
            err.message.contains("C39J79WQ529Q") && err.message.contains("G6T9JDPKV93Y"),
            "{err}"
        );
    }

    #[test]
    fn a_device_speaks_only_for_its_own_udid() {
        let identity = identity();
        assert!(<MdmService>::same_device(&identity, "00008140-001A2B3C4D5E801C").is_ok());
        let err = <MdmService>::same_device(&identity, "00008140-FFFFFFFFFFFFFFFF").unwrap_err();
        assert_eq!(err.status, 403);
    }
}
