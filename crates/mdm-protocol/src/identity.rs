//! Which enrollment a message speaks for.

use std::fmt;

use crate::error::ProtocolError;
use crate::plist_read::Fields;

/// The enrollment a check-in or command report speaks for: the device's `UDID`, or for a user
/// enrollment (BYOD), where Apple forbids the UDID, its per-enrollment `EnrollmentID`.
///
/// When a message carries both, the UDID wins: it is the stable key of a device enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeviceIdentity {
    /// `UDID`: device enrollment (ADE or profile-based).
    Udid(String),
    /// `EnrollmentID`: user enrollment, no UDID.
    EnrollmentId(String),
}

impl DeviceIdentity {
    /// The identifier itself.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Udid(s) | Self::EnrollmentId(s) => s,
        }
    }

    /// `true` for a user enrollment (identified by `EnrollmentID`).
    pub fn is_user_enrollment(&self) -> bool {
        matches!(self, Self::EnrollmentId(_))
    }

    /// Reads `UDID` / `EnrollmentID` from a message; returns the identity and the
    /// `EnrollmentID` as sent (which may accompany a UDID).
    pub(crate) fn read(
        fields: &Fields<'_>,
        what: &'static str,
    ) -> Result<(Self, Option<String>), ProtocolError> {
        let udid = fields.string("UDID")?;
        let enrollment_id = fields.string("EnrollmentID")?;
        let identity = match (udid, &enrollment_id) {
            (Some(udid), _) => Self::Udid(udid),
            (None, Some(id)) => Self::EnrollmentId(id.clone()),
            (None, None) => return Err(ProtocolError::MissingIdentity { what }),
        };
        Ok((identity, enrollment_id))
    }
}

impl fmt::Display for DeviceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
