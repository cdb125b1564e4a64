//! `GET /session` and the session token (`docs/protocol.md` §2): OAuth 1.0a verification against
//! the server's current token, single-use nonces, idle expiry, rotation, and refusal of
//! sessions whose token was replaced by a newer download (§9.8).

use std::collections::{HashMap, HashSet};

use super::World;
use crate::config::secs;
use crate::oauth::{self, OAuthProblem, OAuthRequest};

/// A live session.
#[derive(Debug, Clone)]
struct Session {
    server: u32,
    generation: u32,
    last_used: i64,
    calls: u32,
}

/// Why a session token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionError {
    /// 401 `UNAUTHORIZED`: unknown or idle too long (§2.5).
    Unauthorized,
    /// 403 `FORBIDDEN`: its server token was replaced or expired (§2.5, §9.8).
    Forbidden,
}

/// Sessions and used nonces.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    live: HashMap<String, Session>,
    /// Rotated-out token → (its successor, usable until).
    retired: HashMap<String, (String, i64)>,
    /// (consumer key, token, timestamp, nonce) seen within the timestamp window.
    nonces: HashSet<(String, String, i64, String)>,
}

impl Sessions {
    /// Ends every session.
    pub(crate) fn clear(&mut self) {
        self.live.clear();
        self.retired.clear();
    }
}

impl World {
    /// Verifies a `/session` request sent to `base_uri` and opens a session.
    ///
    /// `real_now` judges `oauth_timestamp`; `now` (simulated) judges token expiry and starts
    /// the session's idle timer.
    pub(crate) fn open_session(
        &mut self,
        req: &OAuthRequest,
        base_uri: &str,
        real_now: i64,
        now: i64,
    ) -> Result<String, OAuthProblem> {
        let server = self
            .servers
            .iter()
            .position(|s| s.consumer_key == req.consumer_key)
            .ok_or(OAuthProblem::ConsumerKeyUnknown)?;
        let srv = self
            .servers
            .get(server)
            .ok_or(OAuthProblem::ConsumerKeyUnknown)?;
        let token = srv
            .token
            .as_ref()
            .filter(|t| t.access_token == req.token && now < t.expiry)
            .ok_or(OAuthProblem::TokenRejected)?;
        let base = oauth::base_string("GET", base_uri, &req.signed_params);
        let expected = oauth::sign(&token.consumer_secret, &token.access_secret, &base);
        if !oauth::signature_matches(&expected, &req.signature) {
            return Err(OAuthProblem::SignatureInvalid);
        }
        let window = secs(self.config.oauth_timestamp_window);
        if (real_now - req.timestamp).abs() > window {
            return Err(OAuthProblem::TimestampRefused);
        }
        let sessions = &mut self.sessions;
        if sessions.nonces.len() > 10_000 {
            sessions
                .nonces
                .retain(|(_, _, ts, _)| (real_now - ts).abs() <= window);
        }
        let key = (
            req.consumer_key.clone(),
            req.token.clone(),
            req.timestamp,
            req.nonce.clone(),
        );
        if !sessions.nonces.insert(key) {
            return Err(OAuthProblem::NonceUsed);
        }
        let generation = srv.generation;
        let token = session_token(now);
        let idle = secs(self.config.session_idle_timeout);
        if sessions.live.len() > 10_000 {
            sessions.live.retain(|_, s| now - s.last_used <= idle);
            sessions.retired.retain(|_, (_, until)| now <= *until);
        }
        sessions.live.insert(
            token.clone(),
            Session {
                server: u32::try_from(server).unwrap_or(super::NONE),
                generation,
                last_used: now,
                calls: 0,
            },
        );
        Ok(token)
    }

    /// Checks an `X-ADM-Auth-Session` token at simulated time `now`: the caller's server, and
    /// a new token when this call rotates it (§2.4).
    pub(crate) fn use_session(
        &mut self,
        token: &str,
        now: i64,
    ) -> Result<(u32, Option<String>), SessionError> {
        let idle = secs(self.config.session_idle_timeout);
        let rotate_every = self.config.session_rotate_every;
        let grace = secs(self.config.session_rotation_grace);
        let sessions = &mut self.sessions;
        let token = match sessions.retired.get(token) {
            Some((successor, until)) if now <= *until => successor.clone(),
            _ => token.to_string(),
        };
        let Some(session) = sessions.live.get_mut(&token) else {
            return Err(SessionError::Unauthorized);
        };
        if now - session.last_used > idle {
            sessions.live.remove(&token);
            return Err(SessionError::Unauthorized);
        }
        let server = session.server;
        let current = self.servers.get(server as usize);
        if current.is_none_or(|s| {
            s.generation != session.generation || s.token.as_ref().is_none_or(|t| now >= t.expiry)
        }) {
            return Err(SessionError::Forbidden);
        }
        session.last_used = now;
        session.calls = session.calls.saturating_add(1);
        let rotate = rotate_every.is_some_and(|n| n > 0 && session.calls % n == 0);
        if !rotate {
            return Ok((server, None));
        }
        let moved = session.clone();
        sessions.live.remove(&token);
        let fresh = session_token(now);
        sessions
            .live
            .insert(fresh.clone(), Session { calls: 0, ..moved });
        sessions.retired.insert(token, (fresh.clone(), now + grace));
        Ok((server, Some(fresh)))
    }
}

/// An opaque session token shaped like Apple's: a millisecond time stamp, `O`, and 40
/// random upper-case characters.
fn session_token(now: i64) -> String {
    let random = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
    .to_ascii_uppercase();
    format!(
        "{}O{}",
        now.saturating_mul(1000),
        random.get(..40).unwrap_or(&random)
    )
}

/// The reply for a refused session token: 401 `UNAUTHORIZED` or 403 `FORBIDDEN` (§2.5).
pub(crate) fn auth_error(e: SessionError) -> (u16, &'static str) {
    match e {
        SessionError::Unauthorized => (401, "UNAUTHORIZED"),
        SessionError::Forbidden => (403, "FORBIDDEN"),
    }
}
