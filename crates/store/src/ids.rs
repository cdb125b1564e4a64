//! Typed ids: an ABM entry's, an ADE profile's, a device group's and a sync run's id are
//! distinct types, so passing one where another belongs does not compile.
//!
//! Each is its inner value on the wire and in storage: serde is transparent, `Display` and
//! `FromStr` are the inner value's. Backends bind [`Id::get`] and read columns back through
//! [`Id::from_inner`].
//!
//! ```
//! use guardmdm_store::{EntryId, ProfileId};
//!
//! fn entry_only(_: EntryId) {}
//! entry_only(EntryId::new_v4());
//! let _ = ProfileId::new_v4();
//! ```
//!
//! A profile's id where an entry's belongs does not compile:
//!
//! ```compile_fail
//! use guardmdm_store::{EntryId, ProfileId};
//!
//! fn entry_only(_: EntryId) {}
//! entry_only(ProfileId::new_v4());
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What the typed ids share: the value they wrap, for storage and explicit conversions.
pub trait Id: Copy + Sized {
    /// The value stored and sent: a [`Uuid`] or an `i64`.
    type Inner: Copy;

    /// The id with this value.
    fn from_inner(inner: Self::Inner) -> Self;

    /// The value.
    fn get(self) -> Self::Inner;
}

/// Defines an id newtype over `$inner` with the traits every id has.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(
            Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name($inner);

        impl $name {
            /// The id with this value.
            pub const fn from_inner(inner: $inner) -> Self {
                Self(inner)
            }

            /// The value.
            pub const fn get(self) -> $inner {
                self.0
            }
        }

        impl Id for $name {
            type Inner = $inner;

            fn from_inner(inner: $inner) -> Self {
                Self(inner)
            }

            fn get(self) -> $inner {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = <$inner as FromStr>::Err;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
    };
}

/// Defines a [`Uuid`] id newtype, with a random constructor for new records.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        id_type!($(#[$doc])* $name(Uuid));

        impl $name {
            /// A new random (version 4) id.
            pub fn new_v4() -> Self {
                Self(Uuid::new_v4())
            }
        }
    };
}

uuid_id!(
    /// An ABM entry's id.
    EntryId
);
uuid_id!(
    /// An ADE profile's id.
    ProfileId
);
uuid_id!(
    /// A device group's id.
    GroupId
);
id_type!(
    /// A sync run's id (increasing, assigned by the store).
    SyncRunId(i64)
);

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

    #[test]
    fn uuid_ids_are_their_uuid_in_json_and_text() {
        let uuid: Uuid = TEXT.parse().unwrap();
        let id = EntryId::from_inner(uuid);
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            serde_json::to_string(&uuid).unwrap()
        );
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{TEXT}\""));
        assert_eq!(
            serde_json::from_str::<EntryId>(&format!("\"{TEXT}\"")).unwrap(),
            id
        );
        assert_eq!(id.to_string(), TEXT);
        assert_eq!(TEXT.parse::<EntryId>().unwrap(), id);
        assert_eq!(id.get(), uuid);

        let profile = ProfileId::from_inner(uuid);
        assert_eq!(profile.to_string(), TEXT);
        assert_eq!(profile.to_string().parse::<ProfileId>().unwrap(), profile);
        let group = GroupId::new_v4();
        assert_eq!(group.to_string().parse::<GroupId>().unwrap(), group);
        assert_eq!(
            serde_json::from_value::<GroupId>(serde_json::to_value(group).unwrap()).unwrap(),
            group
        );
        assert_ne!(GroupId::new_v4(), group);
    }

    #[test]
    fn run_ids_are_their_number_in_json_and_text() {
        let id = SyncRunId::from_inner(42);
        assert_eq!(serde_json::to_string(&id).unwrap(), "42");
        assert_eq!(serde_json::from_str::<SyncRunId>("42").unwrap(), id);
        assert_eq!(id.to_string(), "42");
        assert_eq!("42".parse::<SyncRunId>().unwrap(), id);
        assert_eq!(<SyncRunId as Id>::get(id), 42);
        assert!(SyncRunId::from_inner(7) < id);
    }

    #[test]
    fn malformed_ids_do_not_parse() {
        assert!("not-a-uuid".parse::<ProfileId>().is_err());
        assert!(serde_json::from_str::<EntryId>("\"67e55044\"").is_err());
        assert!(serde_json::from_str::<EntryId>("42").is_err());
        assert!("4x".parse::<SyncRunId>().is_err());
        assert!(serde_json::from_str::<SyncRunId>("\"42\"").is_err());
    }

    #[test]
    fn ids_nest_transparently_in_records() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Record {
            entry_id: EntryId,
            profile_id: Option<ProfileId>,
            run: SyncRunId,
        }
        let uuid: Uuid = TEXT.parse().unwrap();
        let record = Record {
            entry_id: EntryId::from_inner(uuid),
            profile_id: None,
            run: SyncRunId::from_inner(3),
        };
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(
            json,
            format!(r#"{{"entry_id":"{TEXT}","profile_id":null,"run":3}}"#)
        );
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), record);
    }
}
