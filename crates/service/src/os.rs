//! The five operating systems GuardMDM keeps a default ADE profile for, and how an ABM device
//! record maps onto them: [`OsKey`], defined at the store boundary (`guardmdm_store`), where
//! an OS default is stored by its key.

pub use guardmdm_store::{OsKey, UnknownOs};

use crate::ServiceError;

impl From<UnknownOs> for ServiceError {
    fn from(err: UnknownOs) -> Self {
        Self::Invalid(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_os_is_invalid_input() {
        let err = ServiceError::from(OsKey::parse("android").unwrap_err());
        assert!(
            matches!(&err, ServiceError::Invalid(m) if m.contains("android")),
            "{err}"
        );
    }
}
