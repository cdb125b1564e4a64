//! Enrollment: the MachineInfo, the enrollment profile it gets, and the SCEP identity.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use guardmdm_crypto::scep::{
    CA_CERT_CONTENT_TYPE, PKI_MESSAGE_CONTENT_TYPE, ScepCapabilities, ScepClient,
};
use guardmdm_crypto::{
    Certificate, DeviceKey, Identity, TrustAnchors, sign_attached, verify_attached_signature,
};
use guardmdm_mdm_protocol::{
    DEVICE_INFO_HEADER, ENROLLMENT_PROFILE_CONTENT_TYPE, MACHINE_INFO_CONTENT_TYPE,
    SoftwareUpdateRequired,
};
use plist::{Dictionary, Value};
use secrecy::ExposeSecret;

use super::{
    AdeProfile, DeviceError, EnrollmentInfo, Reply, ScepPayload, SimDevice, plist_xml, profile,
};

impl SimDevice {
    /// The MachineInfo property list (`docs/protocol.md` §6.1).
    fn machine_info(&self) -> Result<Vec<u8>, DeviceError> {
        let f = &self.inner.facts;
        let mut d = Dictionary::new();
        let mut put = |k: &str, v: Value| {
            d.insert(k.to_string(), v);
        };
        put("UDID", Value::String(f.hw.udid.clone()));
        put("SERIAL", Value::String(f.serial.clone()));
        put("PRODUCT", Value::String(f.hw.product.to_string()));
        let os = f.os();
        put("VERSION", Value::String(os.build));
        put("OS_VERSION", Value::String(os.version));
        put("LANGUAGE", Value::String(f.language.clone()));
        if let Some(imei) = &f.imei {
            put("IMEI", Value::String(imei.clone()));
        }
        put(
            "MDM_CAN_REQUEST_SOFTWARE_UPDATE",
            Value::Boolean(f.can_request_software_update),
        );
        put(
            "SOFTWARE_UPDATE_DEVICE_ID",
            Value::String(f.hw.product.to_string()),
        );
        plist_xml(d, "post_machine_info")
    }

    /// Sends the signed MachineInfo to the ADE profile's `url` (or opens its
    /// `configuration_web_url`) and reads the enrollment profile it gets back.
    ///
    /// The answer must be 200 `application/x-apple-aspen-config`. A CMS-signed profile must
    /// verify; when the ADE profile has `anchor_certs`, its signer must chain to one of them
    /// and an unsigned profile is refused. (Devices apply `anchor_certs` to the TLS
    /// connection; the simulator speaks plain HTTP, so it applies them to the profile's
    /// signer instead.) The profile must hold exactly one `com.apple.mdm` payload whose
    /// `IdentityCertificateUUID` is the `PayloadUUID` of a `com.apple.security.scep` payload.
    ///
    /// # Errors
    /// [`DeviceError::OutOfOrder`] without an ADE profile, [`DeviceError::Transport`],
    /// [`DeviceError::Status`], [`DeviceError::ContentType`],
    /// [`DeviceError::SoftwareUpdateRequired`], [`DeviceError::UntrustedProfile`] or
    /// [`DeviceError::InvalidProfile`].
    pub async fn post_machine_info(&self) -> Result<EnrollmentInfo, DeviceError> {
        const STEP: &str = "post_machine_info";
        let ade = self.state().ade.clone().ok_or(DeviceError::OutOfOrder {
            step: STEP,
            missing: "activate, with an ADE profile,",
        })?;
        let body = self.machine_info()?;
        let signed =
            sign_attached(&body, &self.inner.identity).map_err(|e| DeviceError::Crypto {
                step: STEP,
                reason: e.to_string(),
            })?;
        let reply = match &ade.configuration_web_url {
            Some(web) => {
                let request = self
                    .inner
                    .http
                    .get(web)
                    .header(DEVICE_INFO_HEADER, STANDARD.encode(&signed));
                self.send(STEP, "GET", web, request).await?
            }
            None => {
                let request = self
                    .inner
                    .http
                    .post(&ade.url)
                    .header(reqwest::header::CONTENT_TYPE, MACHINE_INFO_CONTENT_TYPE)
                    .body(signed);
                self.send(STEP, "POST", &ade.url, request).await?
            }
        };
        if reply.status == 403
            && let Some(e) = software_update_required(&reply)
        {
            return Err(e);
        }
        if reply.status != 200 {
            return Err(reply.status_error(STEP));
        }
        if !reply
            .content_type
            .starts_with(ENROLLMENT_PROFILE_CONTENT_TYPE)
        {
            return Err(DeviceError::ContentType {
                step: STEP,
                url: reply.url,
                expected: ENROLLMENT_PROFILE_CONTENT_TYPE,
                found: reply.content_type,
            });
        }
        let (content, signer, certificates, trusted) = open_profile(&reply.body, &ade)?;
        let mut signer_certificates: Vec<Certificate> = signer.iter().cloned().collect();
        signer_certificates.extend(
            certificates
                .into_iter()
                .filter(|c| signer.as_ref() != Some(c)),
        );
        let parsed = profile::parse(&content, signer_certificates)
            .map_err(|p| DeviceError::InvalidProfile(p.message))?;
        let (scep, mdm, anchors) =
            profile::enrollment(&parsed, self.family()).map_err(DeviceError::InvalidProfile)?;
        let info = EnrollmentInfo {
            profile_identifier: parsed.profile.identifier.clone(),
            profile_uuid: parsed.profile.uuid.clone(),
            signer,
            signer_trusted: trusted,
            scep,
            mdm,
            anchors,
        };
        let mut installed = parsed.profile;
        installed.is_mdm_enrollment = true;
        installed.removal_disallowed |= !ade.is_mdm_removable;
        let mut state = self.state();
        state.enrollment = Some(info.clone());
        state.enrollment_profile = Some(installed);
        state.mdm_identity = None;
        state.authenticated = false;
        Ok(info)
    }

    /// Gets the MDM identity from the enrollment profile's SCEP service: `GetCACaps`,
    /// `GetCACert` (checked against `CAFingerprint` when given), a new RSA key of the
    /// payload's `Keysize`, then a `PKCSReq` with the payload's `Subject` and `Challenge`,
    /// POSTed when the CA advertises `POSTPKIOperation` (otherwise sent with GET).
    ///
    /// # Errors
    /// [`DeviceError::OutOfOrder`] before [`SimDevice::post_machine_info`], HTTP errors, or
    /// [`DeviceError::Scep`] (unusable capabilities or CA certificate, a FAILURE with its
    /// `failInfo`, a reply that does not answer the request).
    pub async fn scep(&self) -> Result<Certificate, DeviceError> {
        let scep = self
            .state()
            .enrollment
            .as_ref()
            .map(|e| e.scep.clone())
            .ok_or(DeviceError::OutOfOrder {
                step: SCEP_STEP,
                missing: "post_machine_info",
            })?;
        let reply = self.scep_get(&scep, "GetCACaps").await?;
        let caps = ScepCapabilities::parse(&String::from_utf8_lossy(&reply.body));
        let ca = self.scep_ca_certificate(&scep).await?;
        let client =
            ScepClient::for_capabilities(&caps).map_err(|e| DeviceError::Scep(e.to_string()))?;
        let key = generate_rsa_key(scep.key_size).await?;
        let subject: Vec<(&str, &str)> = scep
            .subject
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let challenge = scep.challenge.as_ref().map(|c| c.expose_secret());
        let (message, pending) = client
            .pkcs_req_with_subject(&ca, &key, &subject, challenge)
            .map_err(|e| DeviceError::Scep(e.to_string()))?;
        let reply = self
            .pki_operation(&scep, caps.post_pki_operation(), message)
            .await?;
        let cert = pending
            .read_cert_rep(&reply.body)
            .map_err(|e| DeviceError::Scep(e.to_string()))?;
        let identity = Identity::from_device_key(cert.clone(), &key, Vec::new()).map_err(|e| {
            DeviceError::Crypto {
                step: SCEP_STEP,
                reason: e.to_string(),
            }
        })?;
        let mut state = self.state();
        state.mdm_identity = Some(identity);
        state.authenticated = false;
        Ok(cert)
    }

    /// A GET of one SCEP `operation`, which must answer 200.
    async fn scep_get(&self, scep: &ScepPayload, operation: &str) -> Result<Reply, DeviceError> {
        let url = scep_operation_url(scep, operation)?;
        let reply = self
            .send(
                SCEP_STEP,
                "GET",
                url.as_str(),
                self.inner.http.get(url.as_str()),
            )
            .await?;
        if reply.status != 200 {
            return Err(reply.status_error(SCEP_STEP));
        }
        Ok(reply)
    }

    /// `GetCACert`: a single CA certificate (not an RA chain), which must match the
    /// payload's `CAFingerprint` when it has one (MD5, SHA-1 or SHA-256, by its length).
    async fn scep_ca_certificate(&self, scep: &ScepPayload) -> Result<Certificate, DeviceError> {
        let reply = self.scep_get(scep, "GetCACert").await?;
        if !reply.content_type.starts_with(CA_CERT_CONTENT_TYPE) {
            return Err(DeviceError::Scep(format!(
                "GetCACert answered {:?}; the simulator takes a single CA certificate \
                 ({CA_CERT_CONTENT_TYPE}), not an RA chain",
                reply.content_type
            )));
        }
        let ca = Certificate::from_der(&reply.body)
            .map_err(|e| DeviceError::Scep(format!("GetCACert: {e}")))?;
        if let Some(fingerprint) = &scep.ca_fingerprint {
            let der = ca.to_der();
            let actual = match fingerprint.len() {
                16 => guardmdm_crypto::digest::md5(der),
                20 => guardmdm_crypto::digest::sha1(der),
                _ => guardmdm_crypto::digest::sha256(der),
            };
            if &actual != fingerprint {
                return Err(DeviceError::Scep(
                    "the CA certificate does not match the payload's CAFingerprint".to_string(),
                ));
            }
        }
        Ok(ca)
    }

    /// `PKIOperation` with the request `message`: POSTed when the CA advertises
    /// `POSTPKIOperation` (`post`), else sent base64 in a GET; the reply must be a 200 PKI
    /// message.
    async fn pki_operation(
        &self,
        scep: &ScepPayload,
        post: bool,
        message: Vec<u8>,
    ) -> Result<Reply, DeviceError> {
        let url = scep_operation_url(scep, "PKIOperation")?;
        let reply = if post {
            let request = self
                .inner
                .http
                .post(url.as_str())
                .header(reqwest::header::CONTENT_TYPE, PKI_MESSAGE_CONTENT_TYPE)
                .body(message);
            self.send(SCEP_STEP, "POST", url.as_str(), request).await?
        } else {
            let mut get = url.clone();
            get.query_pairs_mut()
                .append_pair("message", &STANDARD.encode(&message));
            self.send(
                SCEP_STEP,
                "GET",
                get.as_str(),
                self.inner.http.get(get.as_str()),
            )
            .await?
        };
        if reply.status != 200 {
            return Err(reply.status_error(SCEP_STEP));
        }
        if !reply.content_type.starts_with(PKI_MESSAGE_CONTENT_TYPE) {
            return Err(DeviceError::ContentType {
                step: SCEP_STEP,
                url: reply.url,
                expected: PKI_MESSAGE_CONTENT_TYPE,
                found: reply.content_type,
            });
        }
        Ok(reply)
    }
}

/// The step SCEP errors name.
const SCEP_STEP: &str = "scep";

/// The URL of a SCEP `operation`: the payload's URL with `operation`, and its `Name` as
/// `message` for every operation but `PKIOperation` (whose `message` is the request).
fn scep_operation_url(scep: &ScepPayload, operation: &str) -> Result<url::Url, DeviceError> {
    let mut url =
        url::Url::parse(&scep.url).map_err(|e| DeviceError::Scep(format!("the SCEP URL: {e}")))?;
    url.query_pairs_mut().append_pair("operation", operation);
    if let Some(name) = &scep.name
        && operation != "PKIOperation"
    {
        url.query_pairs_mut().append_pair("message", name);
    }
    Ok(url)
}

/// A new RSA key of `key_size` bits, made off the async threads (it takes a while).
async fn generate_rsa_key(key_size: u32) -> Result<DeviceKey, DeviceError> {
    tokio::task::spawn_blocking(move || DeviceKey::generate_rsa(key_size))
        .await
        .map_err(|e| DeviceError::Crypto {
            step: SCEP_STEP,
            reason: e.to_string(),
        })?
        .map_err(|e| DeviceError::Crypto {
            step: SCEP_STEP,
            reason: e.to_string(),
        })
}

/// Unwraps the enrollment profile: verifies a CMS signature, and judges its signer with the
/// ADE profile's `anchor_certs` when there are any.
#[allow(clippy::type_complexity)]
fn open_profile(
    body: &[u8],
    ade: &AdeProfile,
) -> Result<(Vec<u8>, Option<Certificate>, Vec<Certificate>, bool), DeviceError> {
    let signed = body.first() == Some(&0x30);
    if !signed {
        if !ade.anchor_certs.is_empty() {
            return Err(DeviceError::UntrustedProfile(
                "the profile is unsigned, and the ADE profile's anchor_certs require a trusted \
                 signer"
                    .to_string(),
            ));
        }
        return Ok((body.to_vec(), None, Vec::new(), false));
    }
    let content = verify_attached_signature(body)
        .map_err(|e| DeviceError::UntrustedProfile(e.to_string()))?;
    let trusted = if ade.anchor_certs.is_empty() {
        false
    } else {
        let anchors = TrustAnchors::from_certificates(ade.anchor_certs.iter().cloned())
            .map_err(|e| DeviceError::AdeProfile(e.to_string()))?;
        anchors
            .verify(&content.signer, &content.certificates)
            .map_err(|e| {
                DeviceError::UntrustedProfile(format!(
                    "{e} (checked against the ADE profile's anchor_certs)"
                ))
            })?;
        true
    };
    Ok((
        content.content,
        Some(content.signer),
        content.certificates,
        trusted,
    ))
}

/// A 403 `com.apple.softwareupdate.required` answer (JSON or plist), if this is one.
fn software_update_required(reply: &Reply) -> Option<DeviceError> {
    let doc = SoftwareUpdateRequired::parse(&reply.content_type, &reply.body).ok()??;
    Some(DeviceError::SoftwareUpdateRequired {
        os_version: doc.os_version,
        build_version: doc.build_version,
    })
}
