//! Enums the store keeps as fixed text (states, statuses, OS keys): one way to read them back.

use crate::StoreError;

/// An enum stored as one of a fixed set of texts.
pub trait StoredText: Copy + 'static {
    /// What the values are, for error messages: `assignment state`, `OS`.
    const WHAT: &'static str;
    /// Every value.
    const VALUES: &'static [Self];

    /// Its stored text.
    fn as_str(self) -> &'static str;

    /// The value stored as exactly `text`; `None` for anything else.
    fn from_stored(text: &str) -> Option<Self> {
        Self::VALUES.iter().copied().find(|v| v.as_str() == text)
    }

    /// Reads a stored text back.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] naming the text and the accepted ones, for anything else (a
    /// hand edit, or a newer GuardMDM's value).
    fn parse_stored(text: &str) -> Result<Self, StoreError> {
        Self::from_stored(text).ok_or_else(|| {
            let accepted: Vec<&str> = Self::VALUES.iter().map(|v| v.as_str()).collect();
            StoreError::Corrupt(format!(
                "{} {text:?} is not one of {}",
                Self::WHAT,
                accepted.join(", ")
            ))
        })
    }
}

/// Implements [`StoredText`] (and `Display` as the stored text, unless told `no_display`) for
/// an enum with an inherent `ALL` array and `as_str`.
macro_rules! stored_text {
    ($type:ty, $what:literal) => {
        stored_text!($type, $what, no_display);
        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(<$type>::as_str(*self))
            }
        }
    };
    ($type:ty, $what:literal, no_display) => {
        impl $crate::StoredText for $type {
            const WHAT: &'static str = $what;
            const VALUES: &'static [Self] = &<$type>::ALL;

            fn as_str(self) -> &'static str {
                <$type>::as_str(self)
            }
        }
    };
}
pub(crate) use stored_text;
