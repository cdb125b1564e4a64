//! The bookkeeping of background pushes, without I/O: which devices wait for a push, which
//! push is in flight, and what became of each device's last push.
//!
//! Pushes are coalesced per device: an MDM push carries no command, it only wakes the device,
//! which then fetches everything queued. So a device has at most one push waiting or in
//! flight, plus at most one more asked for while that one is in flight (it must wake the
//! device again for the commands queued after the first push went out). The queue of
//! waiting devices is bounded; a device that finds it full is not pushed and says why.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Longest failure reason kept per device (a reason is a sentence, not a log).
const MAX_REASON_CHARS: usize = 500;

/// What became of a push attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// APNs accepted the push.
    Sent,
    /// Not sent, or refused: the reason.
    Failed(String),
}

/// The push state of one device, as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PushStatus {
    /// `pending` (a push waits or is in flight), `sent` (APNs accepted the last push),
    /// `failed` (the last push failed: see `error`), or `none` (not pushed by this instance
    /// since it started).
    pub state: String,
    /// Why the last push failed, when `state` is `failed`.
    pub error: Option<String>,
    /// When this instance last started a push to the device.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_attempt_at: Option<OffsetDateTime>,
    /// When APNs last accepted a push to the device.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_success_at: Option<OffsetDateTime>,
}

/// What [`PushBook::request`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Requested {
    /// The device joined the queue.
    Queued,
    /// A push already waiting (or one more after the one in flight) covers it.
    Coalesced,
    /// The queue is full: the device is not pushed.
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Stage {
    /// Nothing waiting or in flight.
    #[default]
    Idle,
    /// In the queue.
    Queued,
    /// Being pushed; `again`: one more push was asked for meanwhile.
    InFlight { again: bool },
}

#[derive(Debug, Default)]
struct Device {
    stage: Stage,
    last: Option<Attempt>,
    last_attempt_at: Option<OffsetDateTime>,
    last_success_at: Option<OffsetDateTime>,
}

/// Waiting devices (bounded) and every pushed device's state.
#[derive(Debug)]
pub(crate) struct PushBook {
    capacity: usize,
    queue: VecDeque<String>,
    devices: HashMap<String, Device>,
}

impl PushBook {
    /// A book whose queue holds at most `capacity` devices (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            queue: VecDeque::new(),
            devices: HashMap::new(),
        }
    }

    fn full_reason(&self) -> String {
        format!(
            "not pushed: the push queue is full ({} devices wait for a push; see --push-queue-size); the device gets its commands when it next contacts GuardMDM",
            self.capacity
        )
    }

    /// Enqueues `udid` unless the queue is full.
    fn enqueue(&mut self, udid: &str) -> Requested {
        if self.queue.len() >= self.capacity {
            let reason = self.full_reason();
            let device = self.devices.entry(udid.to_string()).or_default();
            device.stage = Stage::Idle;
            device.last = Some(Attempt::Failed(reason));
            return Requested::Full;
        }
        self.queue.push_back(udid.to_string());
        self.devices.entry(udid.to_string()).or_default().stage = Stage::Queued;
        Requested::Queued
    }

    /// Asks for a push to `udid`.
    pub(crate) fn request(&mut self, udid: &str) -> Requested {
        let stage = self.devices.get(udid).map(|d| d.stage).unwrap_or_default();
        match stage {
            Stage::Idle => self.enqueue(udid),
            Stage::Queued | Stage::InFlight { again: true } => Requested::Coalesced,
            Stage::InFlight { again: false } => {
                if let Some(d) = self.devices.get_mut(udid) {
                    d.stage = Stage::InFlight { again: true };
                }
                Requested::Coalesced
            }
        }
    }

    /// The next device to push, now in flight (its attempt starts `now`).
    pub(crate) fn next(&mut self, now: OffsetDateTime) -> Option<String> {
        let udid = self.queue.pop_front()?;
        if let Some(d) = self.devices.get_mut(&udid) {
            d.stage = Stage::InFlight { again: false };
            d.last_attempt_at = Some(now);
        }
        Some(udid)
    }

    /// Records the outcome of `udid`'s push in flight. Returns `true` when the device was
    /// queued again (a push was asked for while this one was in flight).
    pub(crate) fn finish(&mut self, udid: &str, attempt: Attempt, now: OffsetDateTime) -> bool {
        let Some(d) = self.devices.get_mut(udid) else {
            return false;
        };
        let again = matches!(d.stage, Stage::InFlight { again: true });
        if attempt == Attempt::Sent {
            d.last_success_at = Some(now);
        }
        d.last = Some(match attempt {
            Attempt::Failed(reason) => Attempt::Failed(truncate(&reason)),
            sent @ Attempt::Sent => sent,
        });
        d.stage = Stage::Idle;
        again && self.enqueue(udid) == Requested::Queued
    }

    /// Devices waiting in the queue.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// `udid`'s push state.
    pub(crate) fn status(&self, udid: &str) -> PushStatus {
        let Some(d) = self.devices.get(udid) else {
            return PushStatus::none();
        };
        let (state, error) = match (&d.stage, &d.last) {
            (Stage::Queued | Stage::InFlight { .. }, _) => ("pending", None),
            (Stage::Idle, Some(Attempt::Sent)) => ("sent", None),
            (Stage::Idle, Some(Attempt::Failed(reason))) => ("failed", Some(reason.clone())),
            (Stage::Idle, None) => ("none", None),
        };
        PushStatus {
            state: state.to_string(),
            error,
            last_attempt_at: d.last_attempt_at,
            last_success_at: d.last_success_at,
        }
    }
}

impl PushStatus {
    /// Not pushed by this instance.
    pub(crate) fn none() -> Self {
        Self {
            state: "none".to_string(),
            ..Self::default()
        }
    }
}

fn truncate(reason: &str) -> String {
    if reason.chars().count() <= MAX_REASON_CHARS {
        return reason.to_string();
    }
    let mut cut: String = reason.chars().take(MAX_REASON_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s)
    }

    #[test]
    fn many_requests_while_queued_make_one_push() {
        let mut book = PushBook::new(10);
        assert_eq!(book.request("a"), Requested::Queued);
        for _ in 0..50 {
            assert_eq!(book.request("a"), Requested::Coalesced);
        }
        assert_eq!(book.waiting(), 1);
        assert_eq!(book.status("a").state, "pending");
        assert_eq!(book.next(at(1)).as_deref(), Some("a"));
        assert_eq!(book.next(at(1)), None);
        assert!(!book.finish("a", Attempt::Sent, at(2)));
        let s = book.status("a");
        assert_eq!(s.state, "sent");
        assert_eq!(s.last_attempt_at, Some(at(1)));
        assert_eq!(s.last_success_at, Some(at(2)));
    }

    #[test]
    fn requests_during_a_push_make_exactly_one_more() {
        let mut book = PushBook::new(10);
        book.request("a");
        assert_eq!(book.next(at(1)).as_deref(), Some("a"));
        for _ in 0..20 {
            assert_eq!(book.request("a"), Requested::Coalesced);
        }
        assert_eq!(book.waiting(), 0, "nothing queued while in flight");
        assert_eq!(book.status("a").state, "pending");
        assert!(book.finish("a", Attempt::Sent, at(2)), "one more push");
        assert_eq!(book.waiting(), 1);
        assert_eq!(book.next(at(3)).as_deref(), Some("a"));
        assert!(!book.finish("a", Attempt::Sent, at(4)), "and no third");
        assert_eq!(book.next(at(5)), None);
    }

    #[test]
    fn a_failure_is_shown_with_its_reason_and_keeps_the_last_success() {
        let mut book = PushBook::new(10);
        assert_eq!(book.status("a"), PushStatus::none());
        book.request("a");
        book.next(at(1));
        book.finish("a", Attempt::Sent, at(2));
        book.request("a");
        book.next(at(3));
        book.finish("a", Attempt::Failed("cannot reach APNs".into()), at(4));
        let s = book.status("a");
        assert_eq!(s.state, "failed");
        assert_eq!(s.error.as_deref(), Some("cannot reach APNs"));
        assert_eq!(s.last_attempt_at, Some(at(3)));
        assert_eq!(s.last_success_at, Some(at(2)));
        let long = "x".repeat(2000);
        book.request("a");
        book.next(at(5));
        book.finish("a", Attempt::Failed(long), at(6));
        assert_eq!(
            book.status("a").error.unwrap().chars().count(),
            MAX_REASON_CHARS + 1
        );
    }

    #[test]
    fn a_full_queue_refuses_and_says_so() {
        let mut book = PushBook::new(2);
        assert_eq!(book.request("a"), Requested::Queued);
        assert_eq!(book.request("b"), Requested::Queued);
        assert_eq!(book.request("c"), Requested::Full);
        assert_eq!(book.waiting(), 2);
        let s = book.status("c");
        assert_eq!(s.state, "failed");
        assert!(s.error.unwrap().contains("queue is full"));
        // Room again: c can be queued.
        assert_eq!(book.next(at(1)).as_deref(), Some("a"));
        assert_eq!(book.request("c"), Requested::Queued);
        // a's second push finds the queue full when a finishes.
        book.request("a");
        assert!(!book.finish("a", Attempt::Sent, at(2)));
        assert_eq!(book.status("a").state, "failed");
    }
}
