//! Errors of the simulator's Rust API and portal.

/// Why a portal operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// No MDM server has this `server_uuid`.
    #[error("there is no MDM server {0}")]
    UnknownServer(String),
    /// MDM server names are unique in an organisation (`docs/protocol.md` §3.1).
    #[error("an MDM server named {0:?} already exists")]
    DuplicateServerName(String),
    /// The uploaded public key is not a usable PEM certificate.
    #[error("the public key is not a usable PEM certificate: {0}")]
    BadPublicKey(String),
    /// The serial number is not in the organisation.
    #[error("there is no device {0} in the organisation")]
    UnknownDevice(String),
    /// A value in the request is out of range or malformed.
    #[error("{0}")]
    Invalid(String),
    /// The server token could not be built.
    #[error("the server token could not be built: {0}")]
    Token(String),
}

impl SimError {
    /// The portal's error code for this error.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownServer(_) | Self::UnknownDevice(_) => "NOT_FOUND",
            Self::DuplicateServerName(_) => "CONFLICT",
            Self::BadPublicKey(_) | Self::Invalid(_) => "INVALID",
            Self::Token(_) => "INTERNAL",
        }
    }

    /// The portal's HTTP status for this error.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::UnknownServer(_) | Self::UnknownDevice(_) => 404,
            Self::DuplicateServerName(_) => 409,
            Self::BadPublicKey(_) | Self::Invalid(_) => 400,
            Self::Token(_) => 500,
        }
    }
}
