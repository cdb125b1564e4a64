//! Errors building an APNs client. Pushing itself never fails as a whole: per-target problems
//! are [`PushOutcome`](crate::PushOutcome)s.

/// Why an [`ApnsClient`](crate::ApnsClient) could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApnsError {
    /// The identity PEM could not be read as PEM at all (bad base64, a section without its
    /// END line, a legacy `Proc-Type` header inside a key block).
    #[error("the push certificate PEM is malformed: {0}")]
    MalformedPem(String),
    /// The identity PEM holds no `CERTIFICATE` section.
    #[error("the push certificate PEM contains no certificate")]
    NoCertificate,
    /// The identity PEM holds no unencrypted private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or
    /// `EC PRIVATE KEY`).
    #[error("the push certificate PEM contains no private key")]
    NoPrivateKey,
    /// The private key is encrypted; decrypt it first (for example
    /// `openssl pkey -in key.pem -out plain.pem`).
    #[error("the push certificate's private key is encrypted; provide it unencrypted")]
    EncryptedPrivateKey,
    /// The identity PEM holds more than one private key, so which one to use is ambiguous.
    #[error("the push certificate PEM contains {0} private keys; expected exactly one")]
    SeveralPrivateKeys(usize),
    /// A section that is neither a certificate nor a private key (a CSR, a public key, a CRL).
    #[error("the push certificate PEM contains an unexpected {0} section")]
    UnexpectedPemSection(String),
    /// The private key could not be loaded (corrupt, or an unsupported algorithm).
    #[error("the push certificate's private key cannot be used: {0}")]
    InvalidPrivateKey(String),
    /// The first certificate could not be parsed.
    #[error("the push certificate cannot be parsed: {0}")]
    InvalidCertificate(String),
    /// The private key does not belong to the first certificate (the leaf must come first).
    #[error(
        "the private key does not match the push certificate (the first certificate in the PEM)"
    )]
    KeyMismatch,
    /// An `https` endpoint needs the push certificate for TLS client authentication.
    #[error("APNs over https needs the MDM push certificate and key")]
    MissingIdentity,
    /// The endpoint is not an `http` or `https` URL.
    #[error("unsupported APNs endpoint {0}: expected an https:// (or, for tests, http://) URL")]
    UnsupportedEndpoint(String),
    /// The extra trust anchors for the APNs server could not be read.
    #[error("the APNs server CA certificates cannot be read: {0}")]
    InvalidServerRoots(String),
    /// A setting is out of range (for example zero pushes in flight).
    #[error("invalid APNs setting: {0}")]
    InvalidSetting(String),
    /// The HTTP client refused the configuration.
    #[error("cannot build the APNs HTTP client: {0}")]
    HttpClient(String),
}
