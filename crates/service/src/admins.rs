//! Dashboard admins: accounts with argon2id passwords, sign-in sessions, and rate-limited
//! sign-in attempts.
//!
//! The rules are plain functions ([`validate_password`], [`sign_in_allowed`],
//! [`session_valid`], [`touch_interval`]); [`AdminService`] applies them over the store.
//! Failed attempts are stored, so the limits hold across every instance sharing the database:
//! at most [`MAX_FAILURES_PER_NAME`] failures for one name or [`MAX_FAILURES_PER_CLIENT`] from
//! one client address within [`FAILURE_WINDOW_MINUTES`] minutes. Each attempt is reserved (as
//! a failure) before its password is checked, so concurrent attempts cannot overrun a limit;
//! a successful sign-in deletes its reservation and clears the name's count. Password checks
//! (argon2id, about 19 MiB each) run at most [`PasswordChecks::concurrency`] at a time; a
//! sign-in that cannot get a turn within [`PasswordChecks::wait`] is answered busy. Sessions
//! end after an idle timeout and an absolute lifetime ([`SessionPolicy`]); only a SHA-256 of
//! the session token is stored.

use std::sync::{Arc, OnceLock};

use guardmdm_crypto::{api_token, password};
use guardmdm_store::{
    AdminStore, NewAdmin, NewSession, Session, SignInFailures, SignInLimits, SignInReservation,
    Store, StoreError,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::abm_entries::audit;
use crate::names::validate_name;
use crate::{Actor, ServiceError};

/// Shortest accepted password.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest accepted password (argon2 hashes anything, but a megabyte "password" is abuse).
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Failed attempts for one name within the window before sign-in is refused.
pub const MAX_FAILURES_PER_NAME: usize = 5;
/// Failed attempts from one client address within the window before sign-in is refused.
pub const MAX_FAILURES_PER_CLIENT: usize = 20;
/// The window failed attempts count in.
pub const FAILURE_WINDOW_MINUTES: i64 = 15;
/// The longest interval between two writes of a session's last use.
const MAX_TOUCH_INTERVAL: Duration = Duration::seconds(60);

/// How long sessions last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, used or not.
    pub lifetime: Duration,
}

impl Default for SessionPolicy {
    /// Two hours idle, twelve hours at most: a working day, signed in once.
    fn default() -> Self {
        Self {
            idle_timeout: Duration::hours(2),
            lifetime: Duration::hours(12),
        }
    }
}

/// How many password checks run at once, and how long a sign-in waits for its turn.
///
/// Each argon2id check takes tens of milliseconds of one core and about 19 MiB of memory, so
/// the cap bounds both; a sign-in that cannot start its check within `wait` is answered busy
/// at once instead of queueing without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordChecks {
    /// Password checks running at once, at least 1.
    pub concurrency: usize,
    /// How long a sign-in waits for a free check before it is answered busy.
    pub wait: std::time::Duration,
}

impl Default for PasswordChecks {
    /// One check per core (more only queue for the CPU while holding their memory), and a
    /// two-second wait: about as long as a person waits for a sign-in without retrying.
    fn default() -> Self {
        Self {
            concurrency: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            wait: std::time::Duration::from_secs(2),
        }
    }
}

/// Checks a new password: at least [`MIN_PASSWORD_LEN`] characters, at most
/// [`MAX_PASSWORD_LEN`], not only spaces.
///
/// # Errors
/// [`ServiceError::Invalid`] saying what is wrong.
pub fn validate_password(password: &str) -> Result<(), ServiceError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        return Err(ServiceError::Invalid(format!(
            "the password is {chars} characters long; use at least {MIN_PASSWORD_LEN}"
        )));
    }
    if chars > MAX_PASSWORD_LEN {
        return Err(ServiceError::Invalid(format!(
            "the password is {chars} characters long; at most {MAX_PASSWORD_LEN} are allowed"
        )));
    }
    if password.trim().is_empty() {
        return Err(ServiceError::Invalid(
            "the password is only white space".to_string(),
        ));
    }
    Ok(())
}

/// Whether a sign-in may be tried given the recent failures (newest first, as the store
/// returns them); `Err(retry_at)` when a limit is reached: the time at which enough of the
/// failures will have left the window.
pub fn sign_in_allowed(
    failures: &SignInFailures,
    now: OffsetDateTime,
) -> Result<(), OffsetDateTime> {
    let window = Duration::minutes(FAILURE_WINDOW_MINUTES);
    let mut retry_at: Option<OffsetDateTime> = None;
    for (times, limit) in [
        (&failures.by_name, MAX_FAILURES_PER_NAME),
        (&failures.by_client, MAX_FAILURES_PER_CLIENT),
    ] {
        let recent: Vec<&OffsetDateTime> = times.iter().filter(|t| now - **t < window).collect();
        if recent.len() >= limit {
            // The limit-th newest failure must leave the window before one more is allowed.
            let at = *recent[limit - 1] + window;
            retry_at = Some(retry_at.map_or(at, |r| r.max(at)));
        }
    }
    retry_at.map_or(Ok(()), Err)
}

/// How often at most a session's last use is written: a hundredth of the idle timeout, and
/// at most a minute. A request within this interval of the stored last use writes nothing, so
/// the stored value may be up to this much older than the true last use.
pub fn touch_interval(policy: SessionPolicy) -> Duration {
    (policy.idle_timeout / 100_i32).min(MAX_TOUCH_INTERVAL)
}

/// Whether a session is still valid at `now` under `policy`: before its absolute end, and
/// used within the idle timeout. The stored last use lags the true one by less than
/// [`touch_interval`], so a session is accepted until the stored last use plus the idle
/// timeout plus that interval: a session used at `t` never ends before `t + idle_timeout`,
/// and ends at most one touch interval after it.
pub fn session_valid(session: &Session, policy: SessionPolicy, now: OffsetDateTime) -> bool {
    now < session.expires_at
        && now - session.last_seen_at < policy.idle_timeout + touch_interval(policy)
}

/// An admin as the API and CLI show it: never the password hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminView {
    /// Identifier.
    pub id: Uuid,
    /// Sign-in name.
    pub name: String,
    /// Who created it.
    pub created_by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The last successful sign-in.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_sign_in_at: Option<OffsetDateTime>,
}

impl From<guardmdm_store::Admin> for AdminView {
    fn from(a: guardmdm_store::Admin) -> Self {
        Self {
            id: a.id,
            name: a.name,
            created_by: a.created_by,
            created_at: a.created_at,
            last_sign_in_at: a.last_sign_in_at,
        }
    }
}

/// A session just opened: the token goes into the cookie, once.
#[derive(Debug)]
pub struct SignedIn {
    /// The session token (the cookie value). GuardMDM keeps only its hash.
    pub token: SecretString,
    /// The admin.
    pub admin: String,
    /// When the session ends at the latest.
    pub expires_at: OffsetDateTime,
}

/// A valid session, as a request presents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardSession {
    /// The admin's name.
    pub admin: String,
    /// The CSRF synchronizer token forms and htmx requests must echo.
    pub csrf_token: String,
}

impl DashboardSession {
    /// The actor for the audit log.
    pub fn actor(&self) -> Actor {
        Actor::Admin {
            name: self.admin.clone(),
        }
    }
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Unknown name or wrong password (which one is not said).
    #[error("wrong name or password")]
    WrongCredentials,
    /// Too many failed attempts for this name or from this address.
    #[error("too many failed sign-in attempts: try again after {retry_at}")]
    TooManyAttempts {
        /// When a new attempt will be accepted.
        retry_at: OffsetDateTime,
    },
    /// Too many password checks in progress: the attempt was not checked, nor counted.
    #[error("too many sign-ins are being checked at once: try again in a few seconds")]
    Busy {
        /// When to try again.
        retry_after: std::time::Duration,
    },
    /// Anything else.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for SignInError {
    fn from(e: StoreError) -> Self {
        Self::Service(e.into())
    }
}

/// Admins and their dashboard sessions.
pub struct AdminService<S: ?Sized = dyn Store> {
    store: Arc<S>,
    policy: SessionPolicy,
    decoy: Arc<OnceLock<String>>,
    checks: CheckPool,
    check_wait: std::time::Duration,
}

impl<S: ?Sized> Clone for AdminService<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            policy: self.policy,
            decoy: self.decoy.clone(),
            checks: self.checks.clone(),
            check_wait: self.check_wait,
        }
    }
}

type CheckJob = Box<dyn FnOnce() + Send>;

/// Where password checks run: [`PasswordChecks::concurrency`] threads of their own, and as
/// many permits. Dedicated threads bound the memory as well as the CPU: the allocator keeps
/// each thread's last 19 MiB argon2 buffer for reuse, so checks spread over the runtime's
/// blocking pool (up to hundreds of threads) would leave that much behind on every thread
/// that ever ran one; here it is `concurrency` × 19 MiB at most, however many sign-ins come.
#[derive(Clone)]
struct CheckPool {
    permits: Arc<Semaphore>,
    jobs: std::sync::mpsc::Sender<CheckJob>,
}

impl CheckPool {
    /// `threads` worker threads (at least one); they end when the last clone is dropped.
    fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let (jobs, queue) = std::sync::mpsc::channel::<CheckJob>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for n in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-check-{n}"))
                .spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(q) => q.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // the pool is gone
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password-check thread");
            }
        }
        Self {
            permits: Arc::new(Semaphore::new(threads)),
            jobs,
        }
    }
}

impl<S: ?Sized + AdminStore + 'static> AdminService<S> {
    /// A service over `store` with session `policy` and the default [`PasswordChecks`].
    pub fn new(store: Arc<S>, policy: SessionPolicy) -> Self {
        let checks = PasswordChecks::default();
        Self {
            store,
            policy,
            decoy: Arc::new(OnceLock::new()),
            checks: CheckPool::new(checks.concurrency),
            check_wait: checks.wait,
        }
    }

    /// The same service with session `policy`.
    #[must_use]
    pub fn with_policy(mut self, policy: SessionPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The same service with password `checks` limits.
    #[must_use]
    pub fn with_password_checks(mut self, checks: PasswordChecks) -> Self {
        self.checks = CheckPool::new(checks.concurrency);
        self.check_wait = checks.wait;
        self
    }

    /// The session policy.
    pub fn policy(&self) -> SessionPolicy {
        self.policy
    }

    /// Creates an admin.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a bad name or password, [`ServiceError::Conflict`] for a
    /// name in use.
    pub async fn create(
        &self,
        actor: &Actor,
        name: &str,
        password: SecretString,
    ) -> Result<AdminView, ServiceError> {
        validate_name(name, "admin name")?;
        validate_password(password.expose_secret())?;
        // An authenticated caller: waits for its turn as long as it takes.
        let permit = self
            .checks
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let hash = blocking(&self.checks, permit, move || {
            password::hash_password(&password)
        })
        .await?
        .map_err(internal)?;
        let now = guardmdm_store::now();
        let new = NewAdmin {
            id: Uuid::new_v4(),
            name: name.to_string(),
            password_hash: hash,
            created_by: actor.audit_name(),
            created_at: now,
        };
        let event = audit(actor, "admin.create", name, now, serde_json::json!({}));
        match self.store.create_admin(&new, &event).await {
            Ok(admin) => Ok(admin.into()),
            Err(StoreError::Conflict(_)) => Err(ServiceError::Conflict(format!(
                "an admin named {name:?} already exists"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Every admin, by name.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list(&self) -> Result<Vec<AdminView>, ServiceError> {
        Ok(self
            .store
            .list_admins()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Deletes an admin; its sessions end at once.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown name.
    pub async fn delete(&self, actor: &Actor, name: &str) -> Result<AdminView, ServiceError> {
        let now = guardmdm_store::now();
        let event = audit(actor, "admin.delete", name, now, serde_json::json!({}));
        match self.store.delete_admin(name, &event).await {
            Ok(admin) => Ok(admin.into()),
            Err(StoreError::NotFound) => {
                Err(ServiceError::NotFound(format!("no admin named {name:?}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Signs `name` in from `client` (its address), opening a session.
    ///
    /// The attempt is first reserved in the store as a failure, atomically with the count of
    /// recent failures (so concurrent attempts cannot overrun a limit), then its password is
    /// checked when a check is free; a correct password deletes the reservation.
    ///
    /// # Errors
    /// [`SignInError::TooManyAttempts`] over a limit (checked before the password, so a
    /// guesser learns nothing), [`SignInError::Busy`] when no password check is free in time
    /// (not counted), [`SignInError::WrongCredentials`] for an unknown name or a wrong
    /// password (counted as a failure).
    pub async fn sign_in(
        &self,
        name: &str,
        password: SecretString,
        client: &str,
    ) -> Result<SignedIn, SignInError> {
        let now = guardmdm_store::now();
        let window_start = now - Duration::minutes(FAILURE_WINDOW_MINUTES);
        let limits = SignInLimits {
            since: window_start,
            per_name: u32::try_from(MAX_FAILURES_PER_NAME).unwrap_or(u32::MAX),
            per_client: u32::try_from(MAX_FAILURES_PER_CLIENT).unwrap_or(u32::MAX),
        };
        let attempt = match self
            .store
            .reserve_sign_in_attempt(name, client, now, limits)
            .await?
        {
            SignInReservation::Reserved { attempt } => attempt,
            SignInReservation::Refused(failures) => {
                // The store refused at a limit; the failures it saw say when one leaves the
                // window (the whole window if they somehow do not).
                let retry_at = sign_in_allowed(&failures, now)
                    .err()
                    .unwrap_or(now + Duration::minutes(FAILURE_WINDOW_MINUTES));
                tracing::warn!(admin = %name, client, "sign-in refused: too many failed attempts");
                return Err(SignInError::TooManyAttempts { retry_at });
            }
        };
        let admin = self.store.find_admin(name).await?;
        let matches = self
            .check_password(name, client, attempt, admin.as_ref(), password)
            .await?;
        let Some(admin) = admin.filter(|_| matches) else {
            // The reservation stays: it is this failure.
            tracing::info!(admin = %name, client, "sign-in failed");
            return Err(SignInError::WrongCredentials);
        };
        self.open_session(&admin, attempt, client, window_start)
            .await
    }

    /// Checks `password` against `admin`'s (against a decoy for an unknown name, so both take
    /// as long) once a password check is free. When none frees up in time, the reserved
    /// `attempt` is withdrawn and counts for nobody.
    async fn check_password(
        &self,
        name: &str,
        client: &str,
        attempt: i64,
        admin: Option<&guardmdm_store::Admin>,
        password: SecretString,
    ) -> Result<bool, SignInError> {
        let Ok(Ok(permit)) =
            tokio::time::timeout(self.check_wait, self.checks.permits.clone().acquire_owned())
                .await
        else {
            // Not checked: the attempt is withdrawn and counts for nobody.
            self.store.release_sign_in_attempt(attempt).await?;
            tracing::warn!(admin = %name, client, "sign-in refused: too many password checks in progress");
            return Err(SignInError::Busy {
                retry_after: self.check_wait,
            });
        };
        let stored = admin.map(|a| a.password_hash.clone());
        let decoy = self.decoy.clone();
        let matches = blocking(&self.checks, permit, move || {
            let stored = match stored {
                Some(hash) => hash,
                None => decoy_hash(&decoy)?,
            };
            Ok(password::verify_password(&password, &stored))
        })
        .await?
        .map_err(internal)?;
        Ok(matches)
    }

    /// Opens the session of `admin`, signed in with `attempt` from `client` (the attempt's
    /// reservation goes with it), and purges what expired: sessions, and failures older than
    /// `window_start`.
    async fn open_session(
        &self,
        admin: &guardmdm_store::Admin,
        attempt: i64,
        client: &str,
        window_start: OffsetDateTime,
    ) -> Result<SignedIn, SignInError> {
        // The session starts now, after the check (which may have waited for its turn).
        let now = guardmdm_store::now();
        let token = api_token::random_token().map_err(|e| internal(e.into()))?;
        let csrf = api_token::random_token().map_err(|e| internal(e.into()))?;
        let session = NewSession {
            token_hash: api_token::hash(&token),
            admin_id: admin.id,
            csrf_token: csrf.expose_secret().to_string(),
            created_at: now,
            expires_at: now + self.policy.lifetime,
            attempt: Some(attempt),
        };
        let actor = Actor::Admin {
            name: admin.name.clone(),
        };
        let event = audit(
            &actor,
            "admin.sign_in",
            &admin.name,
            now,
            serde_json::json!({ "client": client }),
        );
        self.store
            .open_session(&session, &admin.name, &event)
            .await?;
        // Housekeeping rides on sign-ins: nothing else needs a timer.
        let idle_before = now - self.policy.idle_timeout - touch_interval(self.policy);
        self.store.purge_sessions(now, idle_before).await?;
        self.store.purge_sign_in_failures(window_start).await?;
        tracing::info!(admin = %admin.name, client, "signed in");
        Ok(SignedIn {
            token,
            admin: admin.name.clone(),
            expires_at: session.expires_at,
        })
    }

    /// The valid session of `token`, if any; records its use.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn session(&self, token: &str) -> Result<Option<DashboardSession>, ServiceError> {
        let hash = api_token::hash(&SecretString::from(token.to_string()));
        let Some(session) = self.store.find_session(&hash).await? else {
            return Ok(None);
        };
        let now = guardmdm_store::now();
        if !session_valid(&session, self.policy, now) {
            self.store.close_session(&hash, None).await?;
            return Ok(None);
        }
        self.store
            .touch_session(&hash, now, touch_interval(self.policy))
            .await?;
        Ok(Some(DashboardSession {
            admin: session.admin_name,
            csrf_token: session.csrf_token,
        }))
    }

    /// Ends the session of `token` (a no-op for an unknown one).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn sign_out(&self, token: &str) -> Result<(), ServiceError> {
        let hash = api_token::hash(&SecretString::from(token.to_string()));
        let Some(session) = self.store.find_session(&hash).await? else {
            return Ok(());
        };
        let actor = Actor::Admin {
            name: session.admin_name.clone(),
        };
        let event = audit(
            &actor,
            "admin.sign_out",
            &session.admin_name,
            guardmdm_store::now(),
            serde_json::json!({}),
        );
        self.store.close_session(&hash, Some(&event)).await?;
        Ok(())
    }
}

/// The hash unknown names are checked against, made once (on a blocking thread holding a
/// password-check permit: making it is one more argon2 run).
fn decoy_hash(decoy: &OnceLock<String>) -> Result<String, password::PasswordError> {
    if let Some(h) = decoy.get() {
        return Ok(h.clone());
    }
    let h = password::decoy_hash()?;
    Ok(decoy.get_or_init(|| h).clone())
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(internal)`
fn internal(e: password::PasswordError) -> ServiceError {
    ServiceError::Internal(e.to_string())
}

/// Runs `f` (argon2: tens of milliseconds of CPU) on a password-check thread of `pool`,
/// holding `permit` until it ends, even when the request that started it is dropped meanwhile.
async fn blocking<T: Send + 'static>(
    pool: &CheckPool,
    permit: OwnedSemaphorePermit,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    pool.jobs
        .send(Box::new(move || {
            let _permit = permit;
            let _ = answer.send(f());
        }))
        .map_err(|_| ServiceError::Internal("the password-check threads are gone".to_string()))?;
    answered
        .await
        .map_err(|_| ServiceError::Internal("a password check did not finish".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-27 12:00 UTC);

    #[test]
    fn password_policy() {
        validate_password("twelve chars").unwrap();
        validate_password(&"é".repeat(12)).unwrap();
        let short = validate_password("eleven char").unwrap_err();
        assert!(short.to_string().contains("at least 12"), "{short}");
        assert!(validate_password(&" ".repeat(20)).is_err());
        assert!(validate_password(&"x".repeat(MAX_PASSWORD_LEN + 1)).is_err());
    }

    fn minutes_ago(list: &[i64]) -> Vec<OffsetDateTime> {
        list.iter().map(|m| NOW - Duration::minutes(*m)).collect()
    }

    #[test]
    fn five_failures_per_name_within_the_window_lock_the_name() {
        let four = SignInFailures {
            by_name: minutes_ago(&[1, 2, 3, 4]),
            by_client: vec![],
        };
        assert_eq!(sign_in_allowed(&four, NOW), Ok(()));
        let five = SignInFailures {
            by_name: minutes_ago(&[1, 2, 3, 4, 10]),
            by_client: vec![],
        };
        // The fifth newest (10 minutes ago) leaves the window in 5 minutes.
        assert_eq!(sign_in_allowed(&five, NOW), Err(NOW + Duration::minutes(5)));
        let old = SignInFailures {
            by_name: minutes_ago(&[1, 2, 3, 4, 15, 16]),
            by_client: vec![],
        };
        assert_eq!(sign_in_allowed(&old, NOW), Ok(()), "outside the window");
    }

    #[test]
    fn twenty_failures_per_client_lock_the_client() {
        let every_half_minute: Vec<OffsetDateTime> =
            (0..20).map(|i| NOW - Duration::seconds(30 * i)).collect();
        let f = SignInFailures {
            by_name: vec![],
            by_client: every_half_minute.clone(),
        };
        // The 20th newest, 9.5 minutes old, leaves the window in 5.5 minutes.
        assert_eq!(sign_in_allowed(&f, NOW), Err(NOW + Duration::seconds(330)));
        let f = SignInFailures {
            by_name: vec![],
            by_client: every_half_minute[..19].to_vec(),
        };
        assert_eq!(sign_in_allowed(&f, NOW), Ok(()));
    }

    #[test]
    fn both_limits_take_the_later_retry() {
        let f = SignInFailures {
            by_name: minutes_ago(&[1, 1, 1, 1, 1]),
            by_client: minutes_ago(&(0..20).map(|i| 14 - i % 2).collect::<Vec<_>>()),
        };
        assert_eq!(sign_in_allowed(&f, NOW), Err(NOW + Duration::minutes(14)));
    }

    fn session(created_mins_ago: i64, seen_mins_ago: i64) -> Session {
        Session {
            token_hash: "h".into(),
            admin_id: Uuid::nil(),
            admin_name: "a".into(),
            csrf_token: "c".into(),
            created_at: NOW - Duration::minutes(created_mins_ago),
            last_seen_at: NOW - Duration::minutes(seen_mins_ago),
            expires_at: NOW - Duration::minutes(created_mins_ago) + Duration::hours(12),
        }
    }

    #[test]
    fn sessions_end_when_idle_or_too_old() {
        let p = SessionPolicy::default();
        assert!(session_valid(&session(60, 1), p, NOW));
        assert!(
            !session_valid(&session(180, 122), p, NOW),
            "idle 2 h and a touch interval"
        );
        assert!(
            session_valid(&session(180, 120), p, NOW),
            "within the touch interval"
        );
        assert!(session_valid(&session(180, 119), p, NOW));
        assert!(!session_valid(&session(12 * 60, 0), p, NOW), "12 h old");
    }

    #[test]
    fn the_touch_interval_is_a_hundredth_of_the_idle_timeout_and_at_most_a_minute() {
        let p = |idle| SessionPolicy {
            idle_timeout: idle,
            lifetime: Duration::hours(12),
        };
        assert_eq!(touch_interval(p(Duration::hours(2))), Duration::seconds(60));
        assert_eq!(
            touch_interval(p(Duration::seconds(90))),
            Duration::milliseconds(900)
        );
        assert_eq!(
            touch_interval(p(Duration::seconds(3))),
            Duration::milliseconds(30)
        );
    }

    /// A session used at the given seconds after sign-in, with the store's rule for touches
    /// (a write only when the stored last use is at least one touch interval old): whether it
    /// is valid at `at`, and the stored last use then.
    fn used_at(policy: SessionPolicy, uses: &[f64], at: f64) -> (bool, OffsetDateTime) {
        let secs = Duration::seconds_f64;
        let mut s = session(0, 0);
        s.created_at = NOW;
        s.last_seen_at = NOW;
        s.expires_at = NOW + policy.lifetime;
        for u in uses {
            let now = NOW + secs(*u);
            assert!(
                session_valid(&s, policy, now),
                "ended before its use at {u} s"
            );
            if s.last_seen_at <= now - touch_interval(policy) {
                s.last_seen_at = now;
            }
        }
        (session_valid(&s, policy, NOW + secs(at)), s.last_seen_at)
    }

    #[test]
    fn a_session_in_use_never_ends_before_its_last_use_plus_the_idle_timeout() {
        let p = SessionPolicy {
            idle_timeout: Duration::seconds(90),
            lifetime: Duration::hours(12),
        };
        // Used at 0, 30 and 59 s: alive at 91 s and until 59 + 90 = 149 s.
        assert!(used_at(p, &[0.0, 30.0, 59.0], 91.0).0);
        assert!(used_at(p, &[0.0, 30.0, 59.0], 148.99).0);
        // Ends at most one touch interval (0.9 s) after that.
        assert!(!used_at(p, &[0.0, 30.0, 59.0], 149.9).0);
        // Uses closer together than the touch interval write nothing, and still count.
        let (alive, stored) = used_at(p, &[0.0, 0.5, 0.8], 90.7);
        assert_eq!(stored, NOW, "no write within the touch interval");
        assert!(alive, "used at 0.8 s: alive until 90.8 s");
        assert!(!used_at(p, &[0.0, 0.5, 0.8], 90.9).0);
        // With the default policy (a minute between writes), a session used every 59 s for
        // hours lives; one used at 0 and 59 s ends within a minute after 59 s + 2 h.
        let d = SessionPolicy::default();
        let every_59: Vec<f64> = (0..200).map(|i| f64::from(i) * 59.0).collect();
        let last = every_59[199];
        assert!(used_at(d, &every_59, last + 7199.0).0);
        assert!(!used_at(d, &[0.0, 59.0], 59.0 + 7200.0 + 60.0).0);
    }
}
