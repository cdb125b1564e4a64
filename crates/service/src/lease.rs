//! An ABM entry's sync lease, as the work that holds it keeps it: the sync's page loop and
//! the assignment pass both renew it as they go, and stop when another instance took it.
//! How the lease works across instances is in `docs/architecture.md` (§3).

use std::time::{Duration, Instant};

use guardmdm_store::{DeviceSyncStore, EntryId, StoreError};

/// How long a sync lease lasts without renewal unless configured (`--sync-lease-ttl`): well
/// inside one sync interval, so a dead instance's entries are taken over at the next tick,
/// and its runs are shown as ended (and Sync Now starts anew) once it lapsed.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(120);

/// When a lease holder renews its lease: after a quarter of its time to live, so a renewal
/// that is late by half the time to live still keeps it.
pub fn renew_after(ttl: Duration) -> Duration {
    ttl / 4
}

/// The lease's time to live in whole seconds, as the store takes it: at least one.
pub fn ttl_secs(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1)
}

/// A held lease, renewed by [`HeldLease::keep`] between steps of the work that holds it.
pub(crate) struct HeldLease<'a, S: ?Sized + DeviceSyncStore> {
    store: &'a S,
    entry_id: EntryId,
    holder: &'a str,
    ttl: Duration,
    renewed: Instant,
}

impl<'a, S: ?Sized + DeviceSyncStore> HeldLease<'a, S> {
    /// The lease `holder` has just taken (or renewed) on the entry.
    pub(crate) fn new(store: &'a S, entry_id: EntryId, holder: &'a str, ttl: Duration) -> Self {
        Self {
            store,
            entry_id,
            holder,
            ttl,
            renewed: Instant::now(),
        }
    }

    /// Renews the lease when it is due; `false` when another instance holds it now (the work
    /// must stop).
    ///
    /// # Errors
    /// Storage failures.
    pub(crate) async fn keep(&mut self) -> Result<bool, StoreError> {
        if self.renewed.elapsed() <= renew_after(self.ttl) {
            return Ok(true);
        }
        let kept = self
            .store
            .try_acquire_sync_lease(
                self.entry_id,
                self.holder,
                guardmdm_store::now(),
                ttl_secs(self.ttl),
            )
            .await?;
        if kept {
            self.renewed = Instant::now();
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardmdm_store::{AbmEntryStore, NewAbmEntry, NewAuditEvent};
    use guardmdm_store_sqlite::SqliteStore;

    async fn store_with_entry() -> (tempfile::TempDir, SqliteStore, EntryId) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("g.db")).await.unwrap();
        let now = guardmdm_store::now();
        let entry = store
            .create_abm_entry(
                &NewAbmEntry {
                    id: EntryId::new_v4(),
                    name: "main".into(),
                    certificate_pem: String::new(),
                    sealed_private_key: Vec::new(),
                    batch_size: 100,
                    abm_url: None,
                    created_at: now,
                },
                &NewAuditEvent {
                    at: now,
                    actor: "system".into(),
                    action: "abm_token.create".into(),
                    target: "main".into(),
                    details: serde_json::Value::Null,
                },
            )
            .await
            .unwrap();
        (dir, store, entry.id)
    }

    #[tokio::test]
    async fn a_held_lease_is_kept_until_another_instance_takes_it_after_it_lapsed() {
        let (_dir, store, entry) = store_with_entry().await;
        let ttl = Duration::from_secs(1);
        assert!(
            store
                .try_acquire_sync_lease(entry, "a", guardmdm_store::now(), ttl_secs(ttl))
                .await
                .unwrap()
        );
        let mut held = HeldLease::new(&store, entry, "a", ttl);
        assert!(held.keep().await.unwrap(), "not due: kept without asking");
        // Another instance cannot take it while it is held…
        assert!(
            !store
                .try_acquire_sync_lease(entry, "b", guardmdm_store::now(), ttl_secs(ttl))
                .await
                .unwrap()
        );
        // …but can once it lapsed unrenewed; the holder then learns it is lost.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(
            store
                .try_acquire_sync_lease(entry, "b", guardmdm_store::now(), ttl_secs(ttl))
                .await
                .unwrap()
        );
        assert!(!held.keep().await.unwrap(), "the lease was taken");
    }

    #[test]
    fn a_lease_is_renewed_well_before_it_lapses() {
        assert_eq!(
            renew_after(Duration::from_secs(120)),
            Duration::from_secs(30)
        );
        assert_eq!(
            renew_after(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(ttl_secs(Duration::from_secs(120)), 120);
        assert_eq!(ttl_secs(Duration::from_millis(300)), 1, "at least a second");
    }
}
