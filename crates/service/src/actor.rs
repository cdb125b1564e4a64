//! Who is acting: recorded in the audit log with every change.

/// The authenticated caller of an admin operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The bootstrap token from `--admin-token`.
    AdminToken,
    /// A named API key.
    ApiKey {
        /// The key's name.
        name: String,
    },
    /// An admin signed in to the dashboard.
    Admin {
        /// The admin's name.
        name: String,
    },
    /// GuardMDM itself (background jobs).
    System,
}

impl Actor {
    /// The name written to the audit log: `admin-token`, `api-key:<name>`, `admin:<name>` or
    /// `system`.
    pub fn audit_name(&self) -> String {
        match self {
            Self::AdminToken => "admin-token".to_string(),
            Self::ApiKey { name } => format!("api-key:{name}"),
            Self::Admin { name } => format!("admin:{name}"),
            Self::System => "system".to_string(),
        }
    }
}
