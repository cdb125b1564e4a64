//! Fault injection: the ways Apple's service misbehaves, on demand (`docs/protocol.md` §2.5,
//! §3.4, §3.8, §3.15, §9). Faults apply to the DEP API only, never to the portal.

use serde::{Deserialize, Serialize};

/// A fault to inject, as posted to `POST /portal/faults` (`{"kind": "…", …}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// 403 `T_C_NOT_SIGNED` on every DEP call, `/session` included, until cleared: the org
    /// has not accepted new terms (§2.5, §9.7).
    TermsNotSigned,
    /// 403 `ACCESS_DENIED` on every DEP call but `/session`, until cleared (§2.5).
    AccessDenied,
    /// The next `count` DEP requests (only those to `path`, when given) are answered with
    /// `status` — 500, 503 or 429 are the useful ones — and `Retry-After: retry_after` when
    /// given (§3.15).
    Status {
        /// HTTP status, 400 to 599.
        status: u16,
        /// How many requests.
        #[serde(default = "one")]
        count: u32,
        /// `Retry-After` seconds.
        #[serde(default)]
        retry_after: Option<u64>,
        /// Only requests to this path (`/devices/sync`, …).
        #[serde(default)]
        path: Option<String>,
    },
    /// Slow responses: the next `count` DEP requests (all, when absent; only `path`'s when
    /// given) wait `millis` before they are handled.
    Delay {
        /// Milliseconds.
        millis: u64,
        /// How many requests; every request until cleared when absent.
        #[serde(default)]
        count: Option<u32>,
        /// Only requests to this path.
        #[serde(default)]
        path: Option<String>,
    },
    /// The next `count` successful JSON responses are cut in half: invalid JSON with a 200.
    MalformedJson {
        /// How many responses.
        #[serde(default = "one")]
        count: u32,
        /// Only responses to this path.
        #[serde(default)]
        path: Option<String>,
    },
    /// Apple's repeated-cursor quirk (§3.4): the next `count` fetch or sync pages requested
    /// with a cursor return their devices but echo the request's cursor with
    /// `more_to_follow: true`.
    RepeatedCursor {
        /// How many pages.
        #[serde(default = "one")]
        count: u32,
    },
    /// The next `devices` serials in assign calls come back `THROTTLED` (protocol version 9+;
    /// `FAILED` before) with `retry_after_seconds` (version 10+) (§3.8).
    ThrottleAssign {
        /// How many serials.
        devices: u32,
        /// The `retry_after_seconds` to report.
        #[serde(default = "sixty")]
        retry_after_seconds: u64,
    },
    /// The next `devices` serials in assign calls come back `FAILED` (§3.8, §9.5).
    FailAssign {
        /// How many serials.
        devices: u32,
    },
    /// Immediately ends every session: the next API call gets 401 `UNAUTHORIZED` (§2.4).
    ExpireSessions,
    /// Immediately expires every cursor issued so far: sync answers `EXPIRED_CURSOR` (§3.3).
    ExpireCursors,
}

fn one() -> u32 {
    1
}

fn sixty() -> u64 {
    60
}

/// What happens to a request before its handler runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Before {
    /// Milliseconds to wait first.
    pub delay_ms: u64,
    /// A status (and `Retry-After`) to answer with instead of handling the request.
    pub status: Option<(u16, Option<u64>)>,
}

/// What an injected assign fault does to one serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignFault {
    /// `THROTTLED`, retry after this many seconds.
    Throttled(u64),
    /// `FAILED`.
    Failed,
}

/// The armed faults. Counted faults disarm themselves as they fire.
#[derive(Debug, Clone, Default)]
pub struct FaultState {
    armed: Vec<Fault>,
}

impl FaultState {
    /// Arms `fault`. `ExpireSessions` and `ExpireCursors` are immediate actions for the
    /// caller; they are not kept.
    ///
    /// # Errors
    /// A message when the fault's values are out of range.
    pub fn arm(&mut self, fault: Fault) -> Result<(), String> {
        match &fault {
            Fault::Status { status, .. } if !(400..=599).contains(status) => {
                return Err(format!("status {status} is not an HTTP error status"));
            }
            Fault::ExpireSessions | Fault::ExpireCursors => return Ok(()),
            Fault::TermsNotSigned | Fault::AccessDenied if self.armed.contains(&fault) => {
                return Ok(());
            }
            _ => {}
        }
        self.armed.push(fault);
        Ok(())
    }

    /// Disarms everything.
    pub fn clear(&mut self) {
        self.armed.clear();
    }

    /// The armed faults, in arming order, with their remaining counts.
    #[must_use]
    pub fn list(&self) -> Vec<Fault> {
        self.armed.clone()
    }

    /// Whether `T_C_NOT_SIGNED` is armed.
    #[must_use]
    pub fn terms_not_signed(&self) -> bool {
        self.armed.contains(&Fault::TermsNotSigned)
    }

    /// Whether `ACCESS_DENIED` is armed.
    #[must_use]
    pub fn access_denied(&self) -> bool {
        self.armed.contains(&Fault::AccessDenied)
    }

    /// Consumes the delay and status faults that apply to a request to `path`.
    pub fn before(&mut self, path: &str) -> Before {
        let mut out = Before::default();
        for fault in &mut self.armed {
            match fault {
                Fault::Delay {
                    millis,
                    count,
                    path: p,
                } if applies(p.as_deref(), path) && count.is_none_or(|c| c > 0) => {
                    out.delay_ms = out.delay_ms.saturating_add(*millis);
                    if let Some(c) = count {
                        *c -= 1;
                    }
                }
                Fault::Status {
                    status,
                    count,
                    retry_after,
                    path: p,
                } if out.status.is_none() && *count > 0 && applies(p.as_deref(), path) => {
                    out.status = Some((*status, *retry_after));
                    *count -= 1;
                }
                _ => {}
            }
        }
        self.prune();
        out
    }

    /// Consumes one malformed-JSON fault that applies to `path`.
    pub fn take_malformed(&mut self, path: &str) -> bool {
        let hit = self.armed.iter_mut().find_map(|f| match f {
            Fault::MalformedJson { count, path: p }
                if *count > 0 && applies(p.as_deref(), path) =>
            {
                *count -= 1;
                Some(())
            }
            _ => None,
        });
        self.prune();
        hit.is_some()
    }

    /// Consumes one repeated-cursor fault.
    pub fn take_repeated_cursor(&mut self) -> bool {
        let hit = self.armed.iter_mut().find_map(|f| match f {
            Fault::RepeatedCursor { count } if *count > 0 => {
                *count -= 1;
                Some(())
            }
            _ => None,
        });
        self.prune();
        hit.is_some()
    }

    /// Consumes one serial's worth of an assign fault.
    pub fn take_assign(&mut self) -> Option<AssignFault> {
        let hit = self.armed.iter_mut().find_map(|f| match f {
            Fault::ThrottleAssign {
                devices,
                retry_after_seconds,
            } if *devices > 0 => {
                *devices -= 1;
                Some(AssignFault::Throttled(*retry_after_seconds))
            }
            Fault::FailAssign { devices } if *devices > 0 => {
                *devices -= 1;
                Some(AssignFault::Failed)
            }
            _ => None,
        });
        self.prune();
        hit
    }

    /// Drops counted faults that are used up.
    fn prune(&mut self) {
        self.armed.retain(|f| match f {
            Fault::Status { count, .. }
            | Fault::MalformedJson { count, .. }
            | Fault::RepeatedCursor { count } => *count > 0,
            Fault::Delay { count, .. } => count.is_none_or(|c| c > 0),
            Fault::ThrottleAssign { devices, .. } | Fault::FailAssign { devices } => *devices > 0,
            _ => true,
        });
    }
}

fn applies(filter: Option<&str>, path: &str) -> bool {
    filter.is_none_or(|p| p == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_status_faults_fire_then_disarm() {
        let mut f = FaultState::default();
        f.arm(Fault::Status {
            status: 503,
            count: 2,
            retry_after: Some(7),
            path: Some("/devices/sync".into()),
        })
        .unwrap();
        assert_eq!(f.before("/account").status, None);
        assert_eq!(f.before("/devices/sync").status, Some((503, Some(7))));
        assert_eq!(f.before("/devices/sync").status, Some((503, Some(7))));
        assert_eq!(f.before("/devices/sync").status, None);
        assert!(f.list().is_empty());
        assert!(
            f.arm(Fault::Status {
                status: 200,
                count: 1,
                retry_after: None,
                path: None
            })
            .is_err()
        );
    }

    #[test]
    fn sticky_faults_stay_until_cleared() {
        let mut f = FaultState::default();
        f.arm(Fault::TermsNotSigned).unwrap();
        f.arm(Fault::TermsNotSigned).unwrap();
        f.arm(Fault::Delay {
            millis: 5,
            count: None,
            path: None,
        })
        .unwrap();
        for _ in 0..3 {
            assert_eq!(f.before("/x").delay_ms, 5);
        }
        assert!(f.terms_not_signed());
        assert_eq!(f.list().len(), 2);
        f.clear();
        assert!(!f.terms_not_signed());
    }

    #[test]
    fn assign_faults_count_serials() {
        let mut f = FaultState::default();
        f.arm(Fault::ThrottleAssign {
            devices: 1,
            retry_after_seconds: 30,
        })
        .unwrap();
        f.arm(Fault::FailAssign { devices: 1 }).unwrap();
        assert_eq!(f.take_assign(), Some(AssignFault::Throttled(30)));
        assert_eq!(f.take_assign(), Some(AssignFault::Failed));
        assert_eq!(f.take_assign(), None);
    }

    #[test]
    fn faults_parse_from_portal_json() {
        let f: Fault =
            serde_json::from_str(r#"{"kind":"status","status":429,"retry_after":3}"#).unwrap();
        assert_eq!(
            f,
            Fault::Status {
                status: 429,
                count: 1,
                retry_after: Some(3),
                path: None
            }
        );
        let f: Fault = serde_json::from_str(r#"{"kind":"terms_not_signed"}"#).unwrap();
        assert_eq!(f, Fault::TermsNotSigned);
        assert!(serde_json::from_str::<Fault>(r#"{"kind":"nope"}"#).is_err());
    }
}
