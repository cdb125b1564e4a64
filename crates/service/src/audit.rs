//! Reading the audit log.

use std::sync::Arc;

pub use guardmdm_store::AuditEvent;
use guardmdm_store::{AuditStore, Store};

use crate::ServiceError;

/// Most events returned by one call.
pub const MAX_AUDIT_PAGE: u32 = 500;

/// The audit log.
pub struct AuditService<S: ?Sized = dyn Store> {
    store: Arc<S>,
}

impl<S: ?Sized> Clone for AuditService<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
        }
    }
}

impl<S: ?Sized + AuditStore> AuditService<S> {
    /// A service over `store`.
    pub fn new(store: Arc<S>) -> Self {
        Self { store }
    }

    /// Up to `limit` (at most [`MAX_AUDIT_PAGE`]) events, newest first, older than the event
    /// `before` when given.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a zero or too large limit; storage failures.
    pub async fn list(
        &self,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<AuditEvent>, ServiceError> {
        if limit == 0 || limit > MAX_AUDIT_PAGE {
            return Err(ServiceError::Invalid(format!(
                "limit must be between 1 and {MAX_AUDIT_PAGE}"
            )));
        }
        Ok(self.store.list_audit(limit, before).await?)
    }
}
