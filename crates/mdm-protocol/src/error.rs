//! Errors of the MDM wire: what was wrong with a body a device (or an admin) sent, or why a
//! command or profile could not be written.

/// What went wrong reading or writing an MDM property list.
///
/// `what` fields name the document in the words of the protocol ("check-in message", "command
/// report", "MachineInfo", "command upload"); `key` fields carry Apple's key, with a path for
/// nested keys (`Command.RequestType`). Messages never include values, so they are safe to log
/// and to show an admin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The body is over the size this crate accepts for that kind of document.
    #[error("the {what} is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// The document.
        what: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is empty.
    #[error("the {what} is empty")]
    Empty {
        /// The document.
        what: &'static str,
    },
    /// The body is not an XML or binary property list (or is truncated).
    #[error("the {what} is not a valid property list (XML or binary): {reason}")]
    NotAPlist {
        /// The document.
        what: &'static str,
        /// The parser's explanation.
        reason: String,
    },
    /// Arrays and dictionaries are nested deeper than any MDM document needs.
    #[error("the {what} nests arrays and dictionaries more than {limit} levels deep")]
    TooDeep {
        /// The document.
        what: &'static str,
        /// The nesting limit.
        limit: usize,
    },
    /// A binary property list expands to more values than its size allows (shared containers
    /// referenced over and over, the property-list form of a "billion laughs").
    #[error("the {what} expands to more than {limit} values")]
    TooManyValues {
        /// The document.
        what: &'static str,
        /// The value limit.
        limit: usize,
    },
    /// The top level of the property list is not a dictionary.
    #[error("the {what} must be a dictionary at its top level, not {found}")]
    NotADictionary {
        /// The document.
        what: &'static str,
        /// What it is instead ("an array", "a string", …).
        found: &'static str,
    },
    /// A required key is absent (or an empty string).
    #[error("the {what} has no {key}")]
    MissingKey {
        /// The document.
        what: &'static str,
        /// Apple's key.
        key: String,
    },
    /// A key holds the wrong kind of value.
    #[error("{key} in the {what} is {found}; it must be {expected}")]
    WrongType {
        /// The document.
        what: &'static str,
        /// Apple's key.
        key: String,
        /// The kind required ("a string", "data", …).
        expected: &'static str,
        /// The kind found.
        found: &'static str,
    },
    /// Neither `UDID` nor `EnrollmentID` is present, so the message speaks for no enrollment.
    #[error("the {what} has neither UDID nor EnrollmentID, so it names no enrollment")]
    MissingIdentity {
        /// The document.
        what: &'static str,
    },
    /// A key is present with the right type but a value the protocol does not allow.
    #[error("{key} in the {what} is invalid: {reason}")]
    InvalidValue {
        /// The document.
        what: &'static str,
        /// Apple's key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A command cannot be sent as built (empty identifier, PIN of the wrong length, raw
    /// command without a `RequestType`, …).
    #[error("the {request_type} command is invalid: {reason}")]
    InvalidCommand {
        /// The command's `RequestType` (or `(raw)` when it has none).
        request_type: String,
        /// Why.
        reason: String,
    },
    /// The enrollment profile settings are inconsistent (bad UUID, topic, access rights, …).
    #[error("the enrollment profile is invalid: {0}")]
    InvalidProfile(String),
    /// A header that carries base64 (such as `x-apple-aspen-deviceinfo`) does not decode.
    #[error("the {header} header is not valid base64: {reason}")]
    InvalidBase64 {
        /// The header's name.
        header: &'static str,
        /// The decoder's explanation.
        reason: String,
    },
    /// Writing a property list failed (a bug: every value this crate writes is representable).
    #[error("cannot write the property list: {0}")]
    Write(String),
}

impl ProtocolError {
    /// `true` when the input was at fault (answer the device or admin with 400); `false` for
    /// the server's own mistakes ([`InvalidProfile`](Self::InvalidProfile),
    /// [`Write`](Self::Write)), which deserve a 500 and a log line.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::InvalidProfile(_) | Self::Write(_))
    }
}
