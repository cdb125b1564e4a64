//! Background jobs. Each runs until its `CancellationToken` is cancelled (graceful shutdown).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::tls_status::{TlsHealth, TlsStatus, tls_health};

use crate::health::TokenState;
use crate::{AbmEntryService, AbmEntryView};

/// How often token health is checked and warned about after the check at start-up.
pub const TOKEN_CHECK_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// The entries whose token needs an admin: expiring, expired, terms not signed, rejected.
pub fn entries_needing_attention(entries: &[AbmEntryView]) -> Vec<&AbmEntryView> {
    entries
        .iter()
        .filter(|e| e.health.state.needs_attention())
        .collect()
}

/// Logs a warning for every entry whose token needs an admin, and returns those entries.
///
/// # Errors
/// Storage failures.
pub async fn check_token_health(
    abm: &AbmEntryService,
) -> Result<Vec<AbmEntryView>, crate::ServiceError> {
    let entries = abm.list().await?;
    let flagged: Vec<AbmEntryView> = entries_needing_attention(&entries)
        .into_iter()
        .cloned()
        .collect();
    for entry in &flagged {
        let expires_at = entry
            .health
            .expires_at
            .map(|t| t.to_string())
            .unwrap_or_default();
        tracing::warn!(
            abm_entry = %entry.name,
            state = entry.health.state.as_str(),
            days_left = entry.health.days_left,
            expires_at = %expires_at,
            "ABM token needs attention: {}",
            entry.health.message
        );
    }
    if flagged.is_empty() {
        let pending = entries
            .iter()
            .filter(|e| e.health.state == TokenState::Pending)
            .count();
        tracing::info!(
            entries = entries.len(),
            pending,
            "ABM tokens checked: none expiring"
        );
    }
    Ok(flagged)
}

/// Runs `tick` at once and then every `period` until `cancel`. A tick that overruns delays
/// the next one instead of causing a burst.
pub async fn run_every<F, Fut>(period: Duration, cancel: CancellationToken, mut tick: F)
where
    F: FnMut() -> Fut + Send,
    Fut: Future<Output = ()> + Send,
{
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = interval.tick() => tick().await,
        }
    }
}

/// Logs a warning when the HTTPS certificate served needs an admin (expiring, expired,
/// missing, or its last reload or renewal failed), and returns its health; `None` when the
/// listener serves plain HTTP.
pub fn check_tls_health(status: &TlsStatus) -> Option<TlsHealth> {
    let state = status.snapshot();
    let health = tls_health(&state, time::OffsetDateTime::now_utc())?;
    let expires_at = state
        .certificate
        .map(|c| c.not_after.to_string())
        .unwrap_or_default();
    if health.needs_attention() {
        tracing::warn!(
            state = ?health.state,
            expires_at = %expires_at,
            "the HTTPS certificate needs attention: {}",
            health.message
        );
    } else {
        tracing::info!(expires_at = %expires_at, "HTTPS certificate checked: {}", health.message);
    }
    Some(health)
}

/// Checks token health (and the MDM push certificate's and the HTTPS certificate's expiry)
/// at once and then every [`TOKEN_CHECK_INTERVAL`] until `cancel`. A failed check is logged
/// and retried at the next tick.
pub async fn run_token_health_monitor(
    abm: AbmEntryService,
    mdm: crate::mdm::MdmService,
    cancel: CancellationToken,
    tls: Arc<TlsStatus>,
) {
    run_every(TOKEN_CHECK_INTERVAL, cancel, || async {
        check_tls_health(&tls);
        if let Err(e) = check_token_health(&abm).await {
            tracing::error!(error = %e, "ABM token health check failed");
        }
        match mdm.push_certificate().await {
            Ok(Some(push)) if push.state.needs_attention() => tracing::warn!(
                topic = %push.topic, state = push.state.as_str(), days_left = push.days_left,
                "the MDM push certificate needs renewing: {}", push.message
            ),
            Ok(Some(push)) => {
                tracing::info!(topic = %push.topic, days_left = push.days_left, "MDM push certificate checked");
            }
            Ok(None) => tracing::info!(
                "no MDM push certificate yet: devices cannot enroll until one is uploaded (guardmdm apns csr, then guardmdm apns upload --cert)"
            ),
            Err(e) => tracing::error!(error = %e, "push certificate check failed"),
        }
    })
    .await;
}

/// How often devices waiting in Setup Assistant are checked for an automatic release (the
/// ADE profile's `release_after`), at most: a shorter `--stuck-after` checks that often.
pub const AUTO_RELEASE_INTERVAL: Duration = Duration::from_secs(60);

/// Releases the devices whose ADE profile's `release_after` has passed
/// ([`crate::mdm::MdmService::auto_release`]) every [`AUTO_RELEASE_INTERVAL`] (or every
/// `--stuck-after`, when shorter), until `cancel`.
pub async fn run_auto_release(mdm: crate::mdm::MdmService, cancel: CancellationToken) {
    let period = Duration::try_from(mdm.stuck_after())
        .map_or(AUTO_RELEASE_INTERVAL, |d| d.min(AUTO_RELEASE_INTERVAL))
        .max(Duration::from_secs(1));
    run_every(period, cancel, || async {
        match mdm.auto_release(guardmdm_store::now()).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(
                    devices = n,
                    "released from Setup Assistant automatically (release_after)"
                );
            }
            Err(e) => tracing::error!(error = %e, "automatic release from Setup Assistant failed"),
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn the_tls_check_flags_a_certificate_that_needs_an_admin() {
        use crate::tls_status::{CertificateSource, ServedCertificate, TlsHealthState};
        let now = time::OffsetDateTime::now_utc();
        let served = |days: i64| ServedCertificate {
            source: CertificateSource::Files,
            names: vec!["mdm.example.com".to_string()],
            not_before: now - time::Duration::days(10),
            not_after: now + time::Duration::days(days),
            fingerprint: "ab".to_string(),
        };
        assert_eq!(check_tls_health(&TlsStatus::new(false)), None, "plain HTTP");
        let status = TlsStatus::new(true);
        assert_eq!(
            check_tls_health(&status).map(|h| h.state),
            Some(TlsHealthState::Missing)
        );
        status.served(served(200));
        assert!(!check_tls_health(&status).unwrap().needs_attention());
        status.served(served(5));
        let health = check_tls_health(&status).unwrap();
        assert_eq!(health.state, TlsHealthState::Expiring);
        assert!(health.message.contains("--tls-cert"), "{}", health.message);
    }

    #[tokio::test(start_paused = true)]
    async fn run_every_ticks_at_once_then_each_period_until_cancelled() {
        let count = Arc::new(AtomicUsize::new(0));
        let cancel = CancellationToken::new();
        let job = tokio::spawn(run_every(TOKEN_CHECK_INTERVAL, cancel.clone(), {
            let count = count.clone();
            move || {
                count.fetch_add(1, Ordering::SeqCst);
                async {}
            }
        }));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(count.load(Ordering::SeqCst), 1, "at start-up");
        tokio::time::sleep(TOKEN_CHECK_INTERVAL - Duration::from_secs(2)).await;
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "not again within the period"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(count.load(Ordering::SeqCst), 2, "again after the period");
        cancel.cancel();
        job.await.unwrap();
        tokio::time::sleep(TOKEN_CHECK_INTERVAL * 3).await;
        assert_eq!(count.load(Ordering::SeqCst), 2, "nothing after cancel");
    }
}
