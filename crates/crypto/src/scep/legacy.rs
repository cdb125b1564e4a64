//! OpenSSL 3's `legacy` provider, for single-DES envelopes (see `ScepCa::with_single_des`).
//!
//! The provider is loaded once, into the default library context, with the default provider
//! kept (`retain_fallbacks`), and stays loaded for the life of the process. It only adds
//! algorithms (DES, RC2, MD4, …) that callers must name to use; nothing that picks algorithms
//! itself starts choosing them.

use std::sync::OnceLock;

use openssl::provider::Provider;

use crate::describe;

static LEGACY: OnceLock<Result<Provider, String>> = OnceLock::new();

/// Loads the provider (once). The error says why it is unavailable.
pub(super) fn load() -> Result<(), String> {
    LEGACY
        .get_or_init(|| {
            Provider::try_load(None, "legacy", true).map_err(|e| {
                format!(
                    "OpenSSL's legacy provider (needed for single-DES SCEP requests) could not \
                     be loaded: {}",
                    describe(&e)
                )
            })
        })
        .as_ref()
        .map(|_| ())
        .map_err(Clone::clone)
}
