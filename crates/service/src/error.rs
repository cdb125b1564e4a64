//! The one error type services return. The HTTP layer maps each variant to a status code.

use guardmdm_crypto::DepTokenError;
use guardmdm_store::StoreError;

/// Why a service call failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed or a value is out of range; the message says which.
    #[error("{0}")]
    Invalid(String),
    /// The input breaks rules; each error names its field (an ADE profile's checks).
    #[error("{message}")]
    Validation {
        /// A summary.
        message: String,
        /// Every problem found.
        errors: Vec<crate::profile_spec::FieldError>,
    },
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with what is stored (a name in use, another server's token).
    #[error("{0}")]
    Conflict(String),
    /// An uploaded server token could not be read.
    #[error("{0}")]
    BadToken(#[from] DepTokenError),
    /// An uploaded server token has already expired.
    #[error(
        "the server token expired on {expired_at}: download a new one from Apple Business Manager"
    )]
    TokenExpired {
        /// Its `access_token_expiry`, RFC 3339.
        expired_at: String,
    },
    /// Apple refused the uploaded server token (revoked, replaced by a newer download).
    #[error("{0}")]
    TokenRejected(String),
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// A failure that is not the caller's: storage, crypto, a bug. Logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// A [`ServiceError::Validation`] from a list of field errors.
    pub fn validation(errors: Vec<crate::profile_spec::FieldError>) -> Self {
        let message = match errors.as_slice() {
            [one] => format!("the profile is not valid: {}: {}", one.field, one.message),
            many => format!(
                "the profile is not valid: {} problems ({})",
                many.len(),
                many.iter()
                    .map(|e| e.field.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Self::Validation { message, errors }
    }
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        Self::Internal(err.to_string())
    }
}

impl From<guardmdm_crypto::SecretKeyError> for ServiceError {
    fn from(err: guardmdm_crypto::SecretKeyError) -> Self {
        Self::Internal(err.to_string())
    }
}
