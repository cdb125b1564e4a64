//! Fetch and sync cursors (`docs/protocol.md` §3.2–§3.4) as pure functions.
//!
//! A cursor is a position in one MDM server's append-only event log. It is opaque on the
//! wire: base64 of `<issued>-<server>-<kind>-<position>-<end>-<generation>-<mac>` (observed
//! Apple cursors are base64 of a time stamp and a counter, §3.2), where the MAC is a
//! truncated HMAC-SHA1 under a per-simulator key, so garbage, edited cursors and another
//! server's cursors are all `INVALID_CURSOR`.
//!
//! - Fetch (§3.2) walks the devices live on the server whose latest event lies in
//!   `position..end`, where `end` is the log length when the fetch began. When nothing is
//!   left, the cursor's position is `end`, and fetching with it again is `EXHAUSTED_CURSOR`.
//! - Sync (§3.3) returns every event from `position` on; a fetch cursor used for sync
//!   continues from its position, so nothing between the fetch and the first sync is lost.
//!   A cursor is `EXPIRED_CURSOR` once it is older than the maximum age (seven days), or
//!   when it was issued before an injected "expire cursors" fault; a missing or empty cursor
//!   is `CURSOR_REQUIRED`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Longest cursor Apple accepts (§3.2: "up to 1000 chars").
pub const MAX_CURSOR_LEN: usize = 1000;

/// Which call issued a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorKind {
    /// `POST /server/devices`.
    Fetch,
    /// `POST /devices/sync`.
    Sync,
}

/// A decoded cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The MDM server's index in the simulator.
    pub server: u32,
    /// Fetch or sync.
    pub kind: CursorKind,
    /// Next log position to read.
    pub position: u64,
    /// For fetch: the log length when the fetch began. Equal to `position` for sync.
    pub end: u64,
    /// Simulated time it was issued, Unix seconds.
    pub issued: i64,
    /// The simulator's cursor generation when it was issued.
    pub generation: u32,
}

/// A cursor error, named as Apple names it (§3.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorError {
    /// `CURSOR_REQUIRED`: sync without a cursor.
    Required,
    /// `INVALID_CURSOR`: not a cursor this server issued.
    Invalid,
    /// `EXHAUSTED_CURSOR`: fetch with a cursor that already returned everything.
    Exhausted,
    /// `EXPIRED_CURSOR`: a sync cursor older than seven days.
    Expired,
}

impl CursorError {
    /// Apple's error code, the whole response body.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::Required => "CURSOR_REQUIRED",
            Self::Invalid => "INVALID_CURSOR",
            Self::Exhausted => "EXHAUSTED_CURSOR",
            Self::Expired => "EXPIRED_CURSOR",
        }
    }
}

/// What a cursor is checked against.
#[derive(Debug, Clone, Copy)]
pub struct CursorContext<'a> {
    /// The per-simulator MAC key.
    pub key: &'a [u8],
    /// The calling MDM server's index.
    pub server: u32,
    /// The server's log length now.
    pub log_len: u64,
    /// Simulated time now.
    pub now: i64,
    /// Maximum sync cursor age in seconds (seven days).
    pub max_age: i64,
    /// The current cursor generation; older ones are expired.
    pub generation: u32,
}

/// Encodes `cursor` for the wire.
#[must_use]
pub fn encode(cursor: &Cursor, key: &[u8]) -> String {
    let kind = match cursor.kind {
        CursorKind::Fetch => 'F',
        CursorKind::Sync => 'S',
    };
    let text = format!(
        "{}-{}-{kind}-{}-{}-{}",
        cursor.issued, cursor.server, cursor.position, cursor.end, cursor.generation
    );
    STANDARD.encode(format!("{text}-{}", mac(key, &text)))
}

fn mac(key: &[u8], text: &str) -> String {
    guardmdm_crypto::digest::hmac_sha1(key, text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Decodes a cursor issued to `ctx.server`.
///
/// # Errors
/// [`CursorError::Invalid`] for anything else, including positions past the log's end.
pub fn decode(text: &str, ctx: &CursorContext<'_>) -> Result<Cursor, CursorError> {
    if text.len() > MAX_CURSOR_LEN {
        return Err(CursorError::Invalid);
    }
    let raw = STANDARD
        .decode(text.trim())
        .map_err(|_| CursorError::Invalid)?;
    let raw = String::from_utf8(raw).map_err(|_| CursorError::Invalid)?;
    let (body, tag) = raw.rsplit_once('-').ok_or(CursorError::Invalid)?;
    if !crate::oauth::signature_matches(&mac(ctx.key, body), tag) {
        return Err(CursorError::Invalid);
    }
    let parts: Vec<&str> = body.split('-').collect();
    let [issued, server, kind, position, end, generation] = parts.as_slice() else {
        return Err(CursorError::Invalid);
    };
    let num = |s: &str| s.parse::<u64>().map_err(|_| CursorError::Invalid);
    let cursor = Cursor {
        issued: issued.parse().map_err(|_| CursorError::Invalid)?,
        server: server.parse().map_err(|_| CursorError::Invalid)?,
        kind: match *kind {
            "F" => CursorKind::Fetch,
            "S" => CursorKind::Sync,
            _ => return Err(CursorError::Invalid),
        },
        position: num(position)?,
        end: num(end)?,
        generation: generation.parse().map_err(|_| CursorError::Invalid)?,
    };
    if cursor.server != ctx.server || cursor.position > ctx.log_len || cursor.end > ctx.log_len {
        return Err(CursorError::Invalid);
    }
    Ok(cursor)
}

/// The log range a fetch page reads: live devices whose latest event is in `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchRange {
    /// First position to read.
    pub start: u64,
    /// Log length when the fetch began.
    pub end: u64,
}

/// Where a fetch continues. No cursor (or an empty one) starts a new fetch over the whole
/// log.
///
/// # Errors
/// `INVALID_CURSOR`, or `EXHAUSTED_CURSOR` for a finished fetch cursor or a sync cursor.
pub fn plan_fetch(
    cursor: Option<&str>,
    ctx: &CursorContext<'_>,
) -> Result<FetchRange, CursorError> {
    let Some(text) = cursor.filter(|c| !c.trim().is_empty()) else {
        return Ok(FetchRange {
            start: 0,
            end: ctx.log_len,
        });
    };
    let cursor = decode(text, ctx)?;
    match cursor.kind {
        CursorKind::Fetch if cursor.position < cursor.end => Ok(FetchRange {
            start: cursor.position,
            end: cursor.end,
        }),
        _ => Err(CursorError::Exhausted),
    }
}

/// Where a sync continues: the log position of the first event to return.
///
/// # Errors
/// `CURSOR_REQUIRED`, `INVALID_CURSOR` or `EXPIRED_CURSOR`.
pub fn plan_sync(cursor: Option<&str>, ctx: &CursorContext<'_>) -> Result<u64, CursorError> {
    let text = cursor
        .filter(|c| !c.trim().is_empty())
        .ok_or(CursorError::Required)?;
    let cursor = decode(text, ctx)?;
    if ctx.now.saturating_sub(cursor.issued) > ctx.max_age || cursor.generation < ctx.generation {
        return Err(CursorError::Expired);
    }
    Ok(cursor.position)
}

#[cfg(test)]
mod tests;
