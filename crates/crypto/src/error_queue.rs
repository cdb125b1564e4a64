//! OpenSSL's per-thread error queue, kept to one operation.
//!
//! OpenSSL records why a call failed in a queue that belongs to the thread. rust-openssl
//! empties it into an `ErrorStack` when a call it wraps reports failure, but not when a call
//! answers "no" with a return value (`X509_verify` and `X509_REQ_verify` return 0 for a
//! signature that does not verify, with the reasons queued), nor when a call succeeds after
//! trying and discarding alternatives. Those entries stay on the thread, and the next call
//! that fails there, on behalf of another request served by the same tokio worker, reports
//! them as its own.
//!
//! The rule, with this module as its one home: every public operation of the crate that calls
//! OpenSSL starts with `let _queue = error_queue::isolate();`, which empties the queue then and
//! again when the operation returns; a "no" read from OpenSSL goes through [`verdict`], which
//! empties the queue at once, so that a later failure within the same operation does not
//! report it either.

use std::marker::PhantomData;

use openssl::error::ErrorStack;

/// The span of one public operation: the thread's OpenSSL error queue is emptied when it
/// starts ([`isolate`]) and when it is dropped. Not `Send`: the queue belongs to the thread.
#[must_use = "the queue is emptied again when this guard is dropped; bind it to a variable"]
pub(crate) struct Isolated {
    _thread_bound: PhantomData<*const ()>,
}

/// Empties the thread's OpenSSL error queue, and again when the returned guard is dropped.
pub(crate) fn isolate() -> Isolated {
    discard();
    Isolated {
        _thread_bound: PhantomData,
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        discard();
    }
}

/// Empties the thread's OpenSSL error queue.
pub(crate) fn discard() {
    drop(ErrorStack::get());
}

/// A yes/no answer from OpenSSL (`X509_verify`, `X509_REQ_verify`): `true` only for yes. A no
/// or an error leaves its reasons on the queue; they are discarded.
pub(crate) fn verdict(answer: Result<bool, ErrorStack>) -> bool {
    let yes = answer.unwrap_or(false);
    discard();
    yes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki;

    /// A certificate checked against a key that did not sign it: OpenSSL says no and queues
    /// its reasons (an RSA padding failure).
    fn provoke_a_no() -> Result<bool, ErrorStack> {
        let root = test_pki::root("Root");
        let stranger = test_pki::root("Stranger");
        root.cert.verify(&stranger.key)
    }

    #[test]
    fn a_no_leaves_reasons_on_the_queue_that_verdict_discards() {
        assert_eq!(provoke_a_no().ok(), Some(false));
        assert!(
            !ErrorStack::get().errors().is_empty(),
            "OpenSSL queues why it said no (else this test proves nothing)"
        );
        assert!(!verdict(provoke_a_no()));
        assert!(ErrorStack::get().errors().is_empty());
    }

    /// Refusals of malformed input by public operations, as text.
    fn refusals(ca: &crate::ScepCa) -> Vec<String> {
        let junk = b"\x30\x06\x02\x01\x01junk";
        vec![
            ca.decode_request(junk).unwrap_err().to_string(),
            crate::Certificate::from_der(junk).unwrap_err().to_string(),
            crate::verify_detached(junk, b"body")
                .unwrap_err()
                .to_string(),
            crate::verify_attached_signature(junk)
                .unwrap_err()
                .to_string(),
        ]
    }

    #[test]
    fn a_refusal_after_a_foreign_signature_reports_only_its_own_errors() {
        let ca = crate::ScepCa::generate("Same Name").unwrap();
        // What the refusals say on a thread where nothing else happened.
        let alone = std::thread::scope(|s| s.spawn(|| refusals(&ca)).join().unwrap());
        assert!(
            alone.iter().any(|r| r.contains("asn1")),
            "the refusals carry OpenSSL's reasons (else this test proves nothing): {alone:?}"
        );
        // A certificate from another CA of the same name: the signature check fails inside
        // OpenSSL, which queues its reasons (RSA padding).
        let foreign = crate::ScepCa::generate("Same Name").unwrap();
        assert_eq!(foreign.certificate().issuer(), ca.certificate().subject());
        assert!(!ca.issued_by_me(foreign.certificate()));
        assert_eq!(refusals(&ca), alone, "after a foreign signature");
        // Reasons left on the queue outside any public operation do not leak in either.
        let _ = provoke_a_no();
        assert_eq!(refusals(&ca), alone, "after reasons left on the queue");
    }

    #[test]
    fn isolate_empties_the_queue_at_both_ends() {
        let _ = provoke_a_no();
        {
            let _queue = isolate();
            assert!(ErrorStack::get().errors().is_empty());
            let _ = provoke_a_no();
        }
        assert!(ErrorStack::get().errors().is_empty());
    }
}
