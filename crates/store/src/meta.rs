//! Backend identity and liveness, and a small key/value table for server-wide facts.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::StoreError;

/// The database behind a store.
#[async_trait]
pub trait Backend: Send + Sync {
    /// `"sqlite"` or `"postgres"`.
    fn backend_name(&self) -> &'static str;

    /// A round trip to the database; `Ok` means it answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The schema migrations this binary carries and those the database records as applied.
    async fn migrations(&self) -> Result<MigrationStatus, StoreError>;
}

/// The schema migrations of this binary against those recorded in the database.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrationStatus {
    /// The versions this binary carries, ascending.
    pub known: Vec<i64>,
    /// The versions the database records as applied, ascending.
    pub applied: Vec<i64>,
    /// The versions recorded as started but not finished (a migration that failed midway).
    pub failed: Vec<i64>,
}

impl MigrationStatus {
    /// The status from this binary's migration versions and the database's records of
    /// `(version, success)`.
    pub fn from_records(known: Vec<i64>, records: &[(i64, bool)]) -> Self {
        let versions = |success: bool| {
            records
                .iter()
                .filter(|(_, ok)| *ok == success)
                .map(|(v, _)| *v)
                .collect()
        };
        Self {
            known,
            applied: versions(true),
            failed: versions(false),
        }
    }

    /// This binary's migrations the database has not applied.
    pub fn missing(&self) -> Vec<i64> {
        self.known
            .iter()
            .filter(|v| !self.applied.contains(v))
            .copied()
            .collect()
    }

    /// Migrations the database has applied that this binary does not know: a newer
    /// GuardMDM migrated it.
    pub fn unknown(&self) -> Vec<i64> {
        self.applied
            .iter()
            .filter(|v| !self.known.contains(v))
            .copied()
            .collect()
    }
}

/// Server-wide facts such as the check value of the secret key.
#[async_trait]
pub trait MetaStore: Send + Sync {
    /// The value under `key`; `None` when it was never set.
    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Sets `key` to `value` unless it already has a value. Returns the value now stored
    /// (the existing one when there was one), so concurrent first starts agree.
    async fn init_meta(&self, key: &str, value: &str) -> Result<String, StoreError>;

    /// Takes the lease `name` for `holder` until `until`, or extends it when `holder` has it
    /// already. Returns `false`, changing nothing, while another holder's lease runs (its
    /// `expires_at` is after `now`).
    async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Gives up the lease `name` if `holder` has it (another holder's lease stays).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::MigrationStatus;

    /// Versions applied but not carried are unknown (a newer GuardMDM migrated the
    /// database); records without success are failed, not applied; versions carried but not
    /// applied are missing.
    #[test]
    fn migration_records_classify_unknown_failed_and_missing() {
        let status = MigrationStatus::from_records(
            vec![1, 2, 3],
            &[(1, true), (2, false), (4, true), (5, false)],
        );
        assert_eq!(status.known, vec![1, 2, 3]);
        assert_eq!(status.applied, vec![1, 4]);
        assert_eq!(status.failed, vec![2, 5]);
        assert_eq!(status.unknown(), vec![4]);
        assert_eq!(status.missing(), vec![2, 3]);

        let current = MigrationStatus::from_records(vec![1, 2], &[(1, true), (2, true)]);
        assert!(current.unknown().is_empty());
        assert!(current.missing().is_empty());
        assert!(current.failed.is_empty());
    }
}
