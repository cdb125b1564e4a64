//! The simulator over real sockets, driven by a small test-only DEP client with its own
//! RFC 5849 signer.

// Test helpers outside #[test] functions unwrap and panic freely: a failure is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod auth;
mod bench;
mod common;
mod events;
mod faults;
mod paging;
mod portal;
mod profiles;
