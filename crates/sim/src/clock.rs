//! The simulated clock: real time plus an offset that tests and the portal can advance, so
//! that seven-day cursor expiry (`docs/protocol.md` §3.3), session idle expiry (§2.4) and the
//! one-year token validity (§1.5) can be exercised without waiting.
//!
//! OAuth timestamps (§2.1) are checked against the *real* clock: a client signs with its own
//! wall clock, which the simulation does not move.

use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

/// Real time plus an adjustable offset, in whole seconds. Cheap to read without locks.
#[derive(Debug, Default)]
pub struct SimClock {
    offset: AtomicI64,
}

impl SimClock {
    /// A clock that starts at `start` (or at the real time when `None`) and then runs at the
    /// speed of real time.
    #[must_use]
    pub fn new(start: Option<OffsetDateTime>) -> Self {
        let offset = start.map_or(0, |s| s.unix_timestamp() - real_now());
        Self {
            offset: AtomicI64::new(offset),
        }
    }

    /// Simulated time, in Unix seconds.
    #[must_use]
    pub fn now(&self) -> i64 {
        real_now() + self.offset.load(Ordering::Relaxed)
    }

    /// Moves simulated time forward by `seconds` (negative values move it back).
    pub fn advance(&self, seconds: i64) {
        self.offset.fetch_add(seconds, Ordering::Relaxed);
    }
}

/// Real time, in Unix seconds.
#[must_use]
pub fn real_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the ISO 8601 form Apple uses for every date in the DEP API (§4).
#[must_use]
pub fn iso8601(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The token file name's time stamp, `YYYY-MM-DDTHH-MM-SSZ` (§0: colons are not allowed in
/// file names).
#[must_use]
pub fn file_stamp(unix: i64) -> String {
    iso8601(unix).replace(':', "-")
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;

    #[test]
    fn iso8601_matches_the_time_crate() {
        for t in [
            0,
            951_782_400,
            1_656_000_000,
            1_709_164_800,
            4_102_444_799,
            -86_401,
        ] {
            let expected = OffsetDateTime::from_unix_timestamp(t)
                .unwrap()
                .format(&Rfc3339)
                .unwrap();
            assert_eq!(iso8601(t), expected, "{t}");
        }
    }

    #[test]
    fn file_stamp_has_no_colons() {
        assert_eq!(file_stamp(1_656_000_000), "2022-06-23T16-00-00Z");
    }

    #[test]
    fn the_clock_starts_where_asked_and_advances() {
        let start = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let clock = SimClock::new(Some(start));
        assert!((clock.now() - 1_700_000_000).abs() <= 1);
        clock.advance(8 * 86_400);
        assert!((clock.now() - 1_700_000_000 - 8 * 86_400).abs() <= 1);
    }
}
