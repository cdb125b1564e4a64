//! The profile as serialized: Apple's key names, borrowed from the model.
//!
//! Each payload repeats the common `Payload*` keys rather than `#[serde(flatten)]`-ing a shared
//! header: flattening turns the struct into a map, and plist's serializer then writes an
//! `Option` value as `{Some: …}`.

use plist::Data;
use serde::Serialize;

/// The top-level `Configuration` dictionary.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Profile<'a> {
    pub(super) payload_type: &'static str,
    pub(super) payload_version: u32,
    pub(super) payload_identifier: &'a str,
    #[serde(rename = "PayloadUUID")]
    pub(super) payload_uuid: &'a str,
    pub(super) payload_display_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) payload_organization: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) payload_description: Option<&'a str>,
    pub(super) payload_scope: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) payload_removal_disallowed: Option<bool>,
    pub(super) payload_content: Vec<Payload<'a>>,
}

/// One entry of `PayloadContent`.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Payload<'a> {
    Root(Root<'a>),
    Scep(Scep<'a>),
    Mdm(Mdm<'a>),
}

/// `com.apple.security.root`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Root<'a> {
    pub(super) payload_type: &'static str,
    pub(super) payload_version: u32,
    pub(super) payload_identifier: String,
    #[serde(rename = "PayloadUUID")]
    pub(super) payload_uuid: &'a str,
    pub(super) payload_display_name: &'a str,
    pub(super) payload_content: Data,
}

/// `com.apple.security.scep`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Scep<'a> {
    pub(super) payload_type: &'static str,
    pub(super) payload_version: u32,
    pub(super) payload_identifier: String,
    #[serde(rename = "PayloadUUID")]
    pub(super) payload_uuid: &'a str,
    pub(super) payload_display_name: &'a str,
    pub(super) payload_content: ScepContent<'a>,
}

/// The SCEP payload's `PayloadContent` (Apple spells two keys with a space).
#[derive(Serialize)]
pub(super) struct ScepContent<'a> {
    #[serde(rename = "URL")]
    pub(super) url: &'a str,
    #[serde(rename = "Name", skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<&'a str>,
    #[serde(rename = "Subject", skip_serializing_if = "Vec::is_empty")]
    pub(super) subject: Vec<Vec<[&'a str; 2]>>,
    #[serde(rename = "Challenge", skip_serializing_if = "Option::is_none")]
    pub(super) challenge: Option<&'a str>,
    #[serde(rename = "Keysize")]
    pub(super) key_size: u32,
    #[serde(rename = "Key Type")]
    pub(super) key_type: &'static str,
    #[serde(rename = "Key Usage")]
    pub(super) key_usage: u32,
    #[serde(rename = "CAFingerprint", skip_serializing_if = "Option::is_none")]
    pub(super) ca_fingerprint: Option<Data>,
}

/// `com.apple.mdm`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Mdm<'a> {
    pub(super) payload_type: &'static str,
    pub(super) payload_version: u32,
    pub(super) payload_identifier: String,
    #[serde(rename = "PayloadUUID")]
    pub(super) payload_uuid: &'a str,
    pub(super) payload_display_name: &'a str,
    #[serde(rename = "ServerURL")]
    pub(super) server_url: &'a str,
    #[serde(rename = "CheckInURL", skip_serializing_if = "Option::is_none")]
    pub(super) check_in_url: Option<&'a str>,
    pub(super) topic: &'a str,
    #[serde(rename = "IdentityCertificateUUID")]
    pub(super) identity_certificate_uuid: &'a str,
    pub(super) access_rights: u32,
    pub(super) sign_message: bool,
    pub(super) check_out_when_removed: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub(super) server_capabilities: &'a [String],
    #[serde(
        rename = "ServerURLPinningCertificateUUIDs",
        skip_serializing_if = "<[String]>::is_empty"
    )]
    pub(super) server_url_pinning_certificate_uuids: &'a [String],
    #[serde(
        rename = "CheckInURLPinningCertificateUUIDs",
        skip_serializing_if = "<[String]>::is_empty"
    )]
    pub(super) check_in_url_pinning_certificate_uuids: &'a [String],
}
