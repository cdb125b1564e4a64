//! Dashboard accounts: admins (with an argon2id password hash), their sign-in sessions (only
//! a SHA-256 of each session token is stored), and failed sign-in attempts, counted in the
//! database so rate limiting holds across several instances. An attempt is reserved (counted
//! as a failure) before its password is checked, in one transaction with the count, so
//! concurrent attempts cannot all slip under a limit.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{NewAuditEvent, StoreError};

/// An admin to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAdmin {
    /// Identifier.
    pub id: Uuid,
    /// Sign-in name, unique.
    pub name: String,
    /// The PHC string of the password's argon2id hash.
    pub password_hash: String,
    /// Who created it (an audit actor).
    pub created_by: String,
    /// When.
    pub created_at: OffsetDateTime,
}

/// A stored admin.
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    /// Identifier.
    pub id: Uuid,
    /// Sign-in name.
    pub name: String,
    /// The PHC string of the password's argon2id hash.
    pub password_hash: String,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// The last successful sign-in; `None` if never.
    pub last_sign_in_at: Option<OffsetDateTime>,
}

/// A session to open at sign-in.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    /// Lowercase hex SHA-256 of the session token (the cookie value); the token is not stored.
    pub token_hash: String,
    /// The admin signed in.
    pub admin_id: Uuid,
    /// The session's CSRF synchronizer token.
    pub csrf_token: String,
    /// When it was opened.
    pub created_at: OffsetDateTime,
    /// When it ends at the latest, used or not (absolute lifetime).
    pub expires_at: OffsetDateTime,
    /// The sign-in attempt reserved for this sign-in ([`SignInReservation::Reserved`]): it
    /// was correct, so it is deleted and counts as a failure for nobody.
    pub attempt: Option<i64>,
}

/// A stored session with its admin's name.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// The admin.
    pub admin_id: Uuid,
    /// The admin's name.
    pub admin_name: String,
    /// The CSRF synchronizer token.
    pub csrf_token: String,
    /// When it was opened.
    pub created_at: OffsetDateTime,
    /// The last request seen with it (written at most once per touch interval).
    pub last_seen_at: OffsetDateTime,
    /// Absolute end.
    pub expires_at: OffsetDateTime,
}

/// Recent failed sign-ins, newest first: for one name, and from one client address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignInFailures {
    /// Failures for the name since the window's start (at most the limit asked for).
    pub by_name: Vec<OffsetDateTime>,
    /// Failures from the client address since the window's start (at most the limit).
    pub by_client: Vec<OffsetDateTime>,
}

/// The limits a sign-in attempt is reserved under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimits {
    /// Failures before this count (older ones have left the window).
    pub since: OffsetDateTime,
    /// At most this many failures (and attempts in progress) for one name.
    pub per_name: u32,
    /// At most this many failures (and attempts in progress) from one client address.
    pub per_client: u32,
}

/// The answer to a reservation of a sign-in attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInReservation {
    /// Under both limits: the attempt is recorded as a failure until the password proves
    /// right (then [`NewSession::attempt`] deletes it) or the attempt is withdrawn
    /// ([`AdminStore::release_sign_in_attempt`]).
    Reserved {
        /// The attempt's identifier.
        attempt: i64,
    },
    /// A limit is reached: nothing was recorded. The recent failures, newest first (at most
    /// the limit of each kind), say when to retry.
    Refused(SignInFailures),
}

/// Storage of admins, sessions and failed sign-ins.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Stores a new admin. [`StoreError::Conflict`] when the name is taken.
    async fn create_admin(
        &self,
        admin: &NewAdmin,
        audit: &NewAuditEvent,
    ) -> Result<Admin, StoreError>;

    /// Every admin, by name.
    async fn list_admins(&self) -> Result<Vec<Admin>, StoreError>;

    /// The admin with this name.
    async fn find_admin(&self, name: &str) -> Result<Option<Admin>, StoreError>;

    /// Deletes the admin and every session of it. [`StoreError::NotFound`] for an unknown
    /// name.
    async fn delete_admin(&self, name: &str, audit: &NewAuditEvent) -> Result<Admin, StoreError>;

    /// A successful sign-in: opens `session`, records the admin's last sign-in, deletes the
    /// session's reserved attempt, stops the name's failed attempts counting against the
    /// name (they still count against their client), and writes `audit`, in one transaction.
    async fn open_session(
        &self,
        session: &NewSession,
        name: &str,
        audit: &NewAuditEvent,
    ) -> Result<(), StoreError>;

    /// The session with this token hash, if it exists (expired or not: the caller decides).
    async fn find_session(&self, token_hash: &str) -> Result<Option<Session>, StoreError>;

    /// Records a use at `at`, unless one was recorded after `at - min_interval`.
    async fn touch_session(
        &self,
        token_hash: &str,
        at: OffsetDateTime,
        min_interval: time::Duration,
    ) -> Result<(), StoreError>;

    /// Ends a session; writes `audit` when given and the session existed. Returns whether it
    /// existed.
    async fn close_session(
        &self,
        token_hash: &str,
        audit: Option<&NewAuditEvent>,
    ) -> Result<bool, StoreError>;

    /// Deletes sessions whose absolute end is before `expired_before` or whose last use is
    /// before `idle_before`. Returns how many.
    async fn purge_sessions(
        &self,
        expired_before: OffsetDateTime,
        idle_before: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// Reserves a sign-in attempt for `name` from `client` at `at`: in one transaction
    /// (serialised per name and per client across every instance sharing the database),
    /// counts the failures since `limits.since` for the name and for the client and, when
    /// both are under their limits, records this attempt as a failure. Concurrent calls
    /// never grant more attempts than the limits allow.
    async fn reserve_sign_in_attempt(
        &self,
        name: &str,
        client: &str,
        at: OffsetDateTime,
        limits: SignInLimits,
    ) -> Result<SignInReservation, StoreError>;

    /// Withdraws a reserved attempt whose password was never checked (the server was too
    /// busy): it counts for nobody. A no-op for an unknown attempt.
    async fn release_sign_in_attempt(&self, attempt: i64) -> Result<(), StoreError>;

    /// Failures since `since`, newest first, at most `limit` of each kind.
    async fn sign_in_failures(
        &self,
        name: &str,
        client: &str,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<SignInFailures, StoreError>;

    /// Deletes failures older than `before`. Returns how many.
    async fn purge_sign_in_failures(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}
