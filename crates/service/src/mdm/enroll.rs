//! Automated Device Enrollment: the device posts its signed MachineInfo to the ADE profile's
//! `url` and receives a signed enrollment profile (`docs/protocol.md` §6), then runs SCEP against
//! GuardMDM's CA with the one-time challenge in it.

use guardmdm_crypto::{Rejection, ScepCa, sign_profile, verify_attached};
use guardmdm_mdm_protocol::enrollment::{
    EnrollmentProfile, MdmSettings as MdmPayload, ProfileUuids, ScepSettings, TrustAnchor,
};
use guardmdm_mdm_protocol::{MachineInfo, decode_device_info_header, parse_machine_info};
use guardmdm_store::{
    AdeProfile, AssignmentConfigStore, AssignmentStateStore, DeviceQuery, DeviceSyncStore,
    EnrollChallenge, IssuedIdentity, MdmStore, OsUpdateStore,
};
use secrecy::SecretString;

use super::os_check::EnrollAnswer;
use super::{CHALLENGE_TTL, CHECKIN_PATH, CONNECT_PATH, MdmError, MdmService, SCEP_PATH};
use crate::profile_spec::ProfileSpec;

/// SHA-256 (hex) of a challenge: what the store keeps.
fn challenge_hash(challenge: &str) -> String {
    guardmdm_crypto::digest::sha256_hex(challenge.as_bytes())
}

impl<S> MdmService<S>
where
    S: ?Sized
        + MdmStore
        + DeviceSyncStore
        + AssignmentStateStore
        + AssignmentConfigStore
        + OsUpdateStore
        + 'static,
{
    /// `POST` to the profile `url`: `body` is the DER CMS SignedData around the MachineInfo
    /// plist. Answers the signed enrollment profile (`application/x-apple-aspen-config`).
    ///
    /// # Errors
    /// 400 for a body that is not a signed MachineInfo; 403 for a signature that does not
    /// verify or chain to `--device-ca-file`, or a serial this server does not have in ABM;
    /// 503 without a push certificate.
    pub async fn enroll(&self, body: &[u8]) -> Result<EnrollAnswer, MdmError> {
        let verified = verify_attached(body, &self.settings.device_anchors).map_err(|e| {
            if e.is_trust_failure() {
                MdmError::forbidden(format!("the MachineInfo signature is not trusted: {e}"))
            } else {
                MdmError::bad_request(format!("the body is not a signed MachineInfo: {e}"))
            }
        })?;
        let info = parse_machine_info(&verified.content)
            .map_err(|e| MdmError::bad_request(format!("the MachineInfo is malformed: {e}")))?;
        self.enrollment_profile(&info).await
    }

    /// The `x-apple-aspen-deviceinfo` form (the `configuration_web_url` flow): the header's
    /// base64 holds the same signed MachineInfo.
    ///
    /// # Errors
    /// As [`Self::enroll`].
    pub async fn enroll_with_header(&self, header: &str) -> Result<EnrollAnswer, MdmError> {
        let der = decode_device_info_header(header).map_err(|e| {
            MdmError::bad_request(format!(
                "the x-apple-aspen-deviceinfo header is malformed: {e}"
            ))
        })?;
        self.enroll(&der).await
    }

    async fn enrollment_profile(&self, info: &MachineInfo) -> Result<EnrollAnswer, MdmError> {
        let serial = info.serial.trim().to_ascii_uppercase();
        let Some(profile) = self.given_profile(&serial).await? else {
            tracing::warn!(serial = %serial, udid = %info.udid, "enrollment refused: not an ABM device of this server");
            return Err(MdmError::forbidden(format!(
                "serial {serial} is not assigned to this MDM server in Apple Business Manager"
            )));
        };
        if let Some(update) = self
            .check_minimum_os(&serial, info, profile.as_ref())
            .await?
        {
            return Ok(EnrollAnswer::SoftwareUpdateRequired(update));
        }
        let spec: Option<ProfileSpec> = profile
            .as_ref()
            .and_then(|p| serde_json::from_value(p.spec.clone()).ok());
        let removable = spec
            .as_ref()
            .is_none_or(ProfileSpec::effective_is_mdm_removable);
        let topic = self.topic().await?;
        let keys = self.keys().await?;

        let mut raw = [0_u8; 32];
        guardmdm_crypto::digest::random_bytes(&mut raw).map_err(MdmError::internal)?;
        // Hex: the CSR carries the challenge as a PrintableString, which has no `_`.
        let challenge: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let now = guardmdm_store::now();
        self.store
            .create_enroll_challenge(&EnrollChallenge {
                challenge_hash: challenge_hash(&challenge),
                serial_number: serial.clone(),
                udid: info.udid.clone(),
                profile: profile.as_ref().map(|p| p.name.clone()),
                created_at: now,
                expires_at: now + CHALLENGE_TTL,
                used_at: None,
            })
            .await?;

        let mut scep = ScepSettings::new(self.settings.url(SCEP_PATH));
        scep.challenge = Some(SecretString::from(challenge));
        scep.name = Some("GuardMDM".to_string());
        scep.subject = vec![("CN".to_string(), format!("GuardMDM {serial}"))];
        let mut mdm = MdmPayload::new(self.settings.url(CONNECT_PATH), topic);
        mdm.check_in_url = Some(self.settings.url(CHECKIN_PATH));
        let xml = EnrollmentProfile::new(
            "com.guardmdm.enrollment",
            "GuardMDM enrollment",
            ProfileUuids::generate(),
            scep,
            mdm,
        )
        .with_organization("GuardMDM")
        .with_description(match &profile {
            Some(p) => format!("Remote management by GuardMDM (ADE profile {})", p.name),
            None => "Remote management by GuardMDM".to_string(),
        })
        .with_removable(removable)
        .with_trust_anchor(TrustAnchor::new(
            "GuardMDM Device CA",
            keys.ca.certificate().to_der().to_vec(),
        ))
        .to_xml()
        .map_err(MdmError::internal)?;
        let signed = sign_profile(&xml, &keys.signer).map_err(MdmError::internal)?;
        tracing::info!(serial = %serial, udid = %info.udid, profile = profile.as_ref().map_or("", |p| p.name.as_str()), "enrollment profile issued");
        Ok(EnrollAnswer::Profile(signed))
    }
}

impl<S> MdmService<S>
where
    S: ?Sized + MdmStore + DeviceSyncStore + AssignmentStateStore + AssignmentConfigStore + 'static,
{
    /// The ADE profile (current version) an ABM device of this server was given: `None` when
    /// the serial is not one of this server's ABM devices, `Some(None)` when it has no
    /// profile.
    pub(super) async fn given_profile(
        &self,
        serial: &str,
    ) -> Result<Option<Option<AdeProfile>>, MdmError> {
        let devices = self
            .store
            .list_abm_devices(&DeviceQuery {
                serial: Some(serial.to_string()),
                removed: Some(false),
                limit: 10,
                ..DeviceQuery::default()
            })
            .await?;
        let Some(device) = devices.first() else {
            return Ok(None);
        };
        let record = self
            .store
            .assignments(device.entry_id, &[serial.to_string()])
            .await?
            .into_iter()
            .next();
        let profile = match record.and_then(|r| r.profile_id) {
            Some(id) => self
                .store
                .list_profiles()
                .await?
                .into_iter()
                .find(|p| p.id == id),
            None => None,
        };
        Ok(Some(profile))
    }

    /// `GetCACaps`.
    pub fn scep_ca_caps(&self) -> &'static str {
        ScepCa::get_ca_caps()
    }

    /// `GetCACert`: the CA certificate, DER.
    ///
    /// # Errors
    /// When the keys cannot be loaded.
    pub async fn scep_ca_cert(&self) -> Result<Vec<u8>, MdmError> {
        Ok(self.keys().await?.ca.get_ca_cert())
    }

    /// `PKIOperation`: a `PKCSReq` whose challenge must be one handed out in an enrollment
    /// profile, unused and unexpired; it is consumed. Refusals are FAILURE `CertRep`s (HTTP
    /// 200), as RFC 8894 asks. The issued certificate is bound to the challenge's device.
    ///
    /// # Errors
    /// 400 for a message too broken to answer.
    pub async fn scep_pki_operation(&self, message: &[u8]) -> Result<Vec<u8>, MdmError> {
        let keys = self.keys().await?;
        let request = keys.ca.decode_request(message).map_err(|e| {
            if e.is_client_error() {
                MdmError::bad_request(format!("the SCEP message is malformed: {e}"))
            } else {
                MdmError::internal(e)
            }
        })?;
        let now = guardmdm_store::now();
        let mut bound = None;
        let decision = match (request.problem(), request.csr(), request.challenge()) {
            (Some(_), _, _) => Ok(()),
            (None, Some(_), Some(challenge)) => {
                match self
                    .store
                    .consume_enroll_challenge(&challenge_hash(challenge), now)
                    .await?
                {
                    Some(found) => {
                        bound = Some(found);
                        Ok(())
                    }
                    None => Err(Rejection::new(
                        "unknown, used or expired enrollment challenge",
                    )),
                }
            }
            (None, _, _) => Err(Rejection::new("the CSR has no challenge password")),
        };
        let response = keys
            .ca
            .respond(&request, decision)
            .map_err(MdmError::internal)?;
        match (&response.outcome, bound) {
            (guardmdm_crypto::PkiOutcome::Issued(cert), Some(challenge)) => {
                self.store
                    .record_identity(&IssuedIdentity {
                        fingerprint: cert.sha256_fingerprint().to_string(),
                        cert_serial: cert.serial_hex().to_string(),
                        udid: challenge.udid.clone(),
                        serial_number: challenge.serial_number.clone(),
                        issued_at: now,
                        not_after: cert.not_after(),
                    })
                    .await?;
                tracing::info!(udid = %challenge.udid, serial = %challenge.serial_number, "device identity issued");
            }
            (guardmdm_crypto::PkiOutcome::Failed { fail_info, reason }, _) => {
                tracing::warn!(fail_info = %fail_info, reason = %reason, "SCEP request refused");
            }
            (guardmdm_crypto::PkiOutcome::Issued(_), None) => {
                return Err(MdmError::internal(
                    "a certificate was issued without a challenge",
                ));
            }
        }
        Ok(response.der)
    }
}
