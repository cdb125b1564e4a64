//! Who may have a certificate: the challenge check GuardMDM's enrollment service supplies.

use secrecy::{ExposeSecret, SecretString};

use super::CsrInfo;

/// Decides whether a request may have a certificate. GuardMDM's enrollment service looks the
/// challenge up (and consumes it: single use is the policy's job); tests use
/// [`StaticChallenge`].
pub trait ChallengePolicy {
    /// `challenge` is the CSR's challengePassword (`None` when absent). Compare secrets in
    /// constant time.
    ///
    /// # Errors
    /// A [`Rejection`] turns into a FAILURE `badRequest` reply.
    fn check(&self, challenge: Option<&str>, csr: &CsrInfo) -> Result<(), Rejection>;
}

/// Why a [`ChallengePolicy`] refused a request (logged, never sent to the device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(String);

impl Rejection {
    /// A rejection with this reason.
    #[must_use]
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }

    /// The reason given.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.0
    }
}

/// A fixed, reusable challenge password, compared in constant time. For tests and single-user
/// set-ups; GuardMDM's enrollment flow issues single-use challenges instead.
pub struct StaticChallenge(SecretString);

impl StaticChallenge {
    /// Accepts exactly `challenge`.
    #[must_use]
    pub fn new(challenge: SecretString) -> Self {
        Self(challenge)
    }
}

impl ChallengePolicy for StaticChallenge {
    fn check(&self, challenge: Option<&str>, _csr: &CsrInfo) -> Result<(), Rejection> {
        let expected = self.0.expose_secret().as_bytes();
        match challenge {
            None => Err(Rejection::new("the CSR has no challenge password")),
            Some(given)
                if given.len() == expected.len()
                    && openssl::memcmp::eq(given.as_bytes(), expected) =>
            {
                Ok(())
            }
            Some(_) => Err(Rejection::new("wrong challenge password")),
        }
    }
}
