//! A minimum OS at enrollment: the global minimum per OS an admin sets, and what happened to
//! devices below it (held for an update, or let through because they cannot be asked).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::stored_text::stored_text;
use crate::{NewAuditEvent, OsKey, StoreError};

/// A minimum: a version (`17.5`, checked by the service) or the newest Apple offers the device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OsMinimum {
    /// At least this version.
    Version(String),
    /// The newest version Apple's software catalogue offers the device.
    Latest,
}

impl OsMinimum {
    /// `latest` or the version: the stored and displayed text.
    pub fn as_text(&self) -> &str {
        match self {
            Self::Version(v) => v,
            Self::Latest => "latest",
        }
    }

    /// Reads the stored text back.
    pub fn from_text(text: &str) -> Self {
        if text == "latest" {
            Self::Latest
        } else {
            Self::Version(text.to_string())
        }
    }
}

impl std::fmt::Display for OsMinimum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_text())
    }
}

/// The global minimum of one OS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinimumOs {
    /// The OS.
    pub os: OsKey,
    /// The minimum.
    pub minimum: OsMinimum,
    /// When it was set.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What enrollment did with a device below its minimum, stored as [`OsUpdateOutcome::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OsUpdateOutcome {
    /// Answered 403 "software update required": the device updates and asks again.
    Held,
    /// Let through: the device cannot be asked to update.
    NotAsked,
}

impl OsUpdateOutcome {
    /// Both.
    pub const ALL: [Self; 2] = [Self::Held, Self::NotAsked];

    /// `held` or `not_asked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::NotAsked => "not_asked",
        }
    }
}

stored_text!(OsUpdateOutcome, "OS update outcome");

/// One kind of event for one device: the same device, OS version, outcome and minimum seen
/// again counts up and moves `last_at` (a device retrying cannot grow the table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsUpdateEvent {
    /// The serial.
    pub serial_number: String,
    /// The UDID that asked.
    pub udid: String,
    /// The OS version the device ran (`""` when it did not say).
    pub device_version: String,
    /// Its build (`VERSION`).
    pub device_build: Option<String>,
    /// The version required.
    pub required_version: String,
    /// The build required, when known.
    pub required_build: Option<String>,
    /// Held or let through.
    pub outcome: OsUpdateOutcome,
    /// Why it could not be asked (for `not_asked`).
    pub reason: Option<String>,
    /// First time.
    #[serde(with = "time::serde::rfc3339")]
    pub first_at: OffsetDateTime,
    /// Latest time.
    #[serde(with = "time::serde::rfc3339")]
    pub last_at: OffsetDateTime,
    /// How many times.
    pub count: i64,
}

/// Minimum OS settings and the events of enrollment against them.
#[async_trait]
pub trait OsUpdateStore: Send + Sync {
    /// Every global minimum, by OS.
    async fn minimum_os(&self) -> Result<Vec<MinimumOs>, StoreError>;

    /// Sets (`Some`) or clears (`None`) the global minimum of `os`, audited.
    async fn set_minimum_os(
        &self,
        os: OsKey,
        minimum: Option<&OsMinimum>,
        audit: &NewAuditEvent,
    ) -> Result<(), StoreError>;

    /// Records an event at `event.last_at`: a new row, or one more of the same kind (the
    /// stored `count` goes up by one, `last_at` and `udid`/`device_build`/`reason` are
    /// replaced; `first_at` and `count` of the argument are ignored then).
    async fn record_os_update_event(&self, event: &OsUpdateEvent) -> Result<(), StoreError>;

    /// The events of a serial, newest first.
    async fn os_update_events(&self, serial: &str) -> Result<Vec<OsUpdateEvent>, StoreError>;
}
