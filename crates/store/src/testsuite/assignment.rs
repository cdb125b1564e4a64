//! Conformance cases for [`crate::AssignmentConfigStore`] and [`crate::AssignmentStateStore`].

use std::sync::Arc;

use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::{actions, audit};
use crate::{
    AbmDevice, AdeProfile, AssignState, AssignmentPass, AssignmentRecord, DeviceQuery, EntryId,
    GroupId, GroupUpdate, NewAbmEntry, NewAuditEvent, NewDeviceGroup, OsDefault, OsKey, PageWrite,
    ProfileDefinition, ProfileId, ProfileReferences, RuleRef, SerialPresence, Store, StoreError,
    StoredAbmDevice, SyncState, now,
};

/// Watches the assignment generation and the audit log across configuration changes.
struct Tracker {
    generation: i64,
    events: usize,
}

impl Tracker {
    async fn new(store: &Arc<dyn Store>) -> Self {
        Self {
            generation: store.assignment_generation().await.unwrap(),
            events: actions(store).await.len(),
        }
    }

    /// The last call was one configuration change: one bump, one audit event `action`.
    async fn changed(&mut self, store: &Arc<dyn Store>, action: &str) {
        let generation = store.assignment_generation().await.unwrap();
        assert_eq!(
            generation,
            self.generation + 1,
            "{action}: bumps the assignment generation exactly once"
        );
        let actions = actions(store).await;
        assert_eq!(
            actions.len(),
            self.events + 1,
            "{action}: writes one audit event"
        );
        assert_eq!(actions.last().map(String::as_str), Some(action));
        self.generation = generation;
        self.events = actions.len();
    }

    /// Nothing changed: no bump, no audit event.
    async fn unchanged(&self, store: &Arc<dyn Store>, what: &str) {
        assert_eq!(
            store.assignment_generation().await.unwrap(),
            self.generation,
            "{what}: no generation bump"
        );
        assert_eq!(
            actions(store).await.len(),
            self.events,
            "{what}: no audit event"
        );
    }
}

fn audit_by(action: &str, target: &str, actor: &str, at: OffsetDateTime) -> NewAuditEvent {
    NewAuditEvent {
        actor: actor.to_string(),
        at,
        ..audit(action, target)
    }
}

async fn entry(store: &Arc<dyn Store>, name: &str) -> EntryId {
    let new = NewAbmEntry {
        id: EntryId::new_v4(),
        name: name.to_string(),
        certificate_pem: "pem".to_string(),
        sealed_private_key: vec![1],
        batch_size: 100,
        abm_url: None,
        created_at: now(),
    };
    store
        .create_abm_entry(&new, &audit("abm.create", name))
        .await
        .unwrap()
        .id
}

fn device(serial: &str) -> AbmDevice {
    AbmDevice {
        serial_number: serial.to_string(),
        model: "iPhone 16".to_string(),
        os: Some("iOS".to_string()),
        device_family: Some("iPhone".to_string()),
        ..AbmDevice::default()
    }
}

fn deleted(serial: &str) -> AbmDevice {
    AbmDevice {
        op_type: Some("deleted".to_string()),
        op_date: Some(now()),
        ..device(serial)
    }
}

/// Stores devices as sync pages of 1000.
async fn seed(store: &Arc<dyn Store>, entry_id: EntryId, devices: &[AbmDevice]) {
    let run = store
        .start_sync_run(entry_id, "manual", "test", now())
        .await
        .unwrap();
    let state = SyncState::default();
    for page in devices.chunks(1000) {
        store
            .apply_device_page(&PageWrite {
                entry_id,
                devices: page,
                state: &state,
                run_id: run.id,
                at: now(),
            })
            .await
            .unwrap();
    }
}

fn serials(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i:05}")).collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_string()).collect()
}

async fn profile(store: &Arc<dyn Store>, name: &str) -> AdeProfile {
    store
        .create_profile(
            ProfileId::new_v4(),
            name,
            &json!({ "profile_name": name }),
            &audit("ade_profile.create", name),
        )
        .await
        .unwrap()
}

fn group(name: &str, profile_id: Option<ProfileId>, priority: i32) -> NewDeviceGroup {
    NewDeviceGroup {
        id: GroupId::new_v4(),
        name: name.to_string(),
        rule: None,
        profile_id,
        priority,
    }
}

fn conflict_message(err: StoreError) -> String {
    match err {
        StoreError::Conflict(message) => message,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn record(serial: &str, state: AssignState) -> AssignmentRecord {
    let t = now();
    AssignmentRecord {
        serial_number: serial.to_string(),
        profile_id: Some(ProfileId::new_v4()),
        profile_version: Some(2),
        rule: RuleRef::Group {
            name: "sales".to_string(),
        },
        state,
        apple_uuid: Some(format!("APPLE-{serial}")),
        attempted_at: Some(t - Duration::minutes(5)),
        retry_at: Some(t + Duration::hours(24)),
        attempts: 3,
        last_error: Some("Apple said no".to_string()),
        updated_at: t,
    }
}

fn bare_record(serial: &str, state: AssignState) -> AssignmentRecord {
    AssignmentRecord {
        serial_number: serial.to_string(),
        profile_id: None,
        profile_version: None,
        rule: RuleRef::None,
        state,
        apple_uuid: None,
        attempted_at: None,
        retry_at: None,
        attempts: 0,
        last_error: None,
        updated_at: now(),
    }
}

pub async fn profiles_create_update_and_keep_versions(store: Arc<dyn Store>) {
    assert_eq!(store.assignment_generation().await.unwrap(), 0, "fresh");
    let mut t = Tracker::new(&store).await;
    let id = ProfileId::new_v4();
    let spec1 = json!({ "profile_name": "Standard", "skip_setup_items": ["Siri"] });
    let a1 = audit("ade_profile.create", "std");
    let created = store.create_profile(id, "std", &spec1, &a1).await.unwrap();
    t.changed(&store, "ade_profile.create").await;
    assert_eq!(
        created,
        AdeProfile {
            id,
            name: "std".to_string(),
            version: 1,
            spec: spec1.clone(),
            created_at: a1.at,
            updated_at: a1.at,
        }
    );

    let dup = store
        .create_profile(
            ProfileId::new_v4(),
            "std",
            &json!({}),
            &audit("ade_profile.create", "std"),
        )
        .await
        .unwrap_err();
    assert!(dup.is_conflict(), "a second profile named std: {dup:?}");
    t.unchanged(&store, "refused create").await;

    let spec2 = json!({ "profile_name": "Standard", "is_supervised": true });
    let a2 = audit_by(
        "ade_profile.update",
        "std",
        "api-key:ci",
        now() + Duration::seconds(5),
    );
    let v2 = store
        .update_profile(id, &spec2, Some(1), &a2)
        .await
        .unwrap();
    t.changed(&store, "ade_profile.update").await;
    assert_eq!(
        (v2.version, &v2.spec, v2.created_at, v2.updated_at),
        (2, &spec2, a1.at, a2.at),
        "a new current version; created_at stays"
    );

    let stale = store
        .update_profile(
            id,
            &json!({ "x": 1 }),
            Some(1),
            &audit("ade_profile.update", "std"),
        )
        .await
        .unwrap_err();
    assert!(stale.is_conflict(), "expected version 1, is 2: {stale:?}");
    t.unchanged(&store, "stale update").await;

    let spec3 = json!({ "profile_name": "Standard v3" });
    let a3 = audit_by(
        "ade_profile.update",
        "std",
        "admin-token",
        now() + Duration::seconds(10),
    );
    let v3 = store.update_profile(id, &spec3, None, &a3).await.unwrap();
    t.changed(&store, "ade_profile.update").await;
    assert_eq!((v3.version, &v3.spec), (3, &spec3));

    let unknown = store
        .update_profile(
            ProfileId::new_v4(),
            &spec1,
            None,
            &audit("ade_profile.update", "?"),
        )
        .await
        .unwrap_err();
    assert!(unknown.is_not_found(), "{unknown:?}");
    t.unchanged(&store, "update of an unknown profile").await;

    let versions = store.profile_versions(id).await.unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| (
                v.profile_id,
                v.version,
                v.spec.clone(),
                v.created_by.as_str(),
                v.created_at
            ))
            .collect::<Vec<_>>(),
        [
            (id, 1, spec1, "test", a1.at),
            (id, 2, spec2, "api-key:ci", a2.at),
            (id, 3, spec3.clone(), "admin-token", a3.at),
        ],
        "every version, oldest first, with its author"
    );
    assert!(
        store
            .profile_versions(ProfileId::new_v4())
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(store.get_profile("std").await.unwrap(), v3);
    assert!(store.get_profile("nope").await.unwrap_err().is_not_found());
    let alpha = profile(&store, "alpha").await;
    t.changed(&store, "ade_profile.create").await;
    let listed = store.list_profiles().await.unwrap();
    assert_eq!(listed, [alpha, v3], "profiles by name, current versions");
    assert_eq!(store.assignment_config().await.unwrap().profiles, listed);
}

pub async fn profile_delete_is_refused_while_used(store: Arc<dyn Store>) {
    let e = entry(&store, "e").await;
    let p = profile(&store, "p").await;
    let other = profile(&store, "other").await;
    store
        .record_profile_definition(&ProfileDefinition {
            entry_id: e,
            profile_id: p.id,
            version: 1,
            apple_uuid: "APPLE-P".to_string(),
            defined_at: now(),
        })
        .await
        .unwrap();
    for os in [OsKey::Macos, OsKey::Ios] {
        store
            .set_os_default(os, Some(p.id), &audit("ade_default.set", os.as_str()))
            .await
            .unwrap();
    }
    store
        .set_os_default(
            OsKey::Tvos,
            Some(other.id),
            &audit("ade_default.set", "tvos"),
        )
        .await
        .unwrap();
    let b = store
        .create_group(&group("b", Some(p.id), 2), &audit("group.create", "b"))
        .await
        .unwrap();
    let a = store
        .create_group(&group("a", Some(p.id), 1), &audit("group.create", "a"))
        .await
        .unwrap();
    store
        .create_group(&group("c", Some(other.id), 3), &audit("group.create", "c"))
        .await
        .unwrap();
    let explicit = strings(&["S1", "S2", "S3"]);
    store
        .set_device_profiles(&explicit, Some(p.id), &audit("device.assign", "3"))
        .await
        .unwrap();
    store
        .set_device_profiles(
            &strings(&["S4"]),
            Some(other.id),
            &audit("device.assign", "1"),
        )
        .await
        .unwrap();

    let refs = store.profile_references(p.id).await.unwrap();
    assert_eq!(
        refs,
        ProfileReferences {
            os_defaults: vec![OsKey::Ios, OsKey::Macos],
            groups: strings(&["a", "b"]),
            devices: 3,
        }
    );
    let t = Tracker::new(&store).await;
    let del = |s: Arc<dyn Store>| async move {
        s.delete_profile(p.id, &audit("ade_profile.delete", "p"))
            .await
    };
    let message = conflict_message(del(store.clone()).await.unwrap_err());
    assert_eq!(
        message,
        r#"profile "p" is used by: the ios, macos defaults; groups "a", "b"; 3 devices"#
    );
    t.unchanged(&store, "refused delete").await;

    // The defaults go: groups and devices still block.
    store
        .set_os_default(OsKey::Ios, None, &audit("ade_default.clear", "ios"))
        .await
        .unwrap();
    store
        .set_os_default(
            OsKey::Macos,
            Some(other.id),
            &audit("ade_default.set", "macos"),
        )
        .await
        .unwrap();
    let message = conflict_message(del(store.clone()).await.unwrap_err());
    assert_eq!(
        message,
        r#"profile "p" is used by: groups "a", "b"; 3 devices"#
    );
    // The groups go (one cleared, one deleted): devices still block.
    store
        .update_group(
            a.id,
            &GroupUpdate {
                profile_id: Some(None),
                ..GroupUpdate::default()
            },
            &audit("group.update", "a"),
        )
        .await
        .unwrap();
    store
        .delete_group(b.id, &audit("group.delete", "b"))
        .await
        .unwrap();
    let message = conflict_message(del(store.clone()).await.unwrap_err());
    assert_eq!(message, r#"profile "p" is used by: 3 devices"#);
    // The devices go: a group alone blocks too.
    store
        .set_device_profiles(&explicit, None, &audit("device.unassign", "3"))
        .await
        .unwrap();
    store
        .update_group(
            a.id,
            &GroupUpdate {
                profile_id: Some(Some(p.id)),
                ..GroupUpdate::default()
            },
            &audit("group.update", "a"),
        )
        .await
        .unwrap();
    let message = conflict_message(del(store.clone()).await.unwrap_err());
    assert_eq!(message, r#"profile "p" is used by: group "a""#);
    store
        .update_group(
            a.id,
            &GroupUpdate {
                profile_id: Some(None),
                ..GroupUpdate::default()
            },
            &audit("group.update", "a"),
        )
        .await
        .unwrap();
    // And a default alone.
    store
        .set_os_default(
            OsKey::Visionos,
            Some(p.id),
            &audit("ade_default.set", "visionos"),
        )
        .await
        .unwrap();
    let message = conflict_message(del(store.clone()).await.unwrap_err());
    assert_eq!(message, r#"profile "p" is used by: the visionos default"#);
    store
        .set_os_default(
            OsKey::Visionos,
            None,
            &audit("ade_default.clear", "visionos"),
        )
        .await
        .unwrap();

    assert!(store.profile_references(p.id).await.unwrap().is_empty());
    let mut t = Tracker::new(&store).await;
    del(store.clone()).await.unwrap();
    t.changed(&store, "ade_profile.delete").await;
    assert!(store.get_profile("p").await.unwrap_err().is_not_found());
    assert!(store.profile_versions(p.id).await.unwrap().is_empty());
    assert!(
        store.profile_definitions(p.id).await.unwrap().is_empty(),
        "definitions go with the profile"
    );
    assert!(store.entry_profile_definitions(e).await.unwrap().is_empty());
    assert!(del(store.clone()).await.unwrap_err().is_not_found());
    t.unchanged(&store, "delete of a deleted profile").await;

    // The other profile is still used by a default, a group and a device.
    let message = conflict_message(
        store
            .delete_profile(other.id, &audit("ade_profile.delete", "other"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        message,
        r#"profile "other" is used by: the macos, tvos defaults; group "c"; 1 device"#
    );
    assert_eq!(
        store.list_profiles().await.unwrap(),
        [store.get_profile("other").await.unwrap()]
    );
}

pub async fn definitions_are_idempotent_per_entry_profile_and_version(store: Arc<dyn Store>) {
    let e1 = entry(&store, "e1").await;
    let e2 = entry(&store, "e2").await;
    let p = profile(&store, "p").await;
    store
        .update_profile(
            p.id,
            &json!({ "v": 2 }),
            Some(1),
            &audit("ade_profile.update", "p"),
        )
        .await
        .unwrap();
    let t = Tracker::new(&store).await;
    let def = |entry_id: EntryId, version: i64, apple_uuid: &str| ProfileDefinition {
        entry_id,
        profile_id: p.id,
        version,
        apple_uuid: apple_uuid.to_string(),
        defined_at: now(),
    };
    let first = def(e1, 1, "APPLE-A");
    store.record_profile_definition(&first).await.unwrap();
    let again = def(e1, 1, "APPLE-B");
    store.record_profile_definition(&again).await.unwrap();
    let v2 = def(e1, 2, "APPLE-C");
    store.record_profile_definition(&v2).await.unwrap();
    let elsewhere = def(e2, 1, "APPLE-D");
    store.record_profile_definition(&elsewhere).await.unwrap();
    t.unchanged(&store, "recording a definition is no configuration change")
        .await;
    assert_eq!(
        store.entry_profile_definitions(e1).await.unwrap(),
        [again.clone(), v2.clone()],
        "the second record of (e1, p, 1) replaced the first"
    );
    assert_eq!(
        store.entry_profile_definitions(e2).await.unwrap(),
        std::slice::from_ref(&elsewhere)
    );
    let mut expected = vec![again, v2, elsewhere];
    expected.sort_by_key(|d| (d.entry_id, d.version));
    assert_eq!(store.profile_definitions(p.id).await.unwrap(), expected);
    let unknown_version = store
        .record_profile_definition(&def(e1, 9, "APPLE-X"))
        .await
        .unwrap_err();
    assert!(unknown_version.is_not_found(), "{unknown_version:?}");
    let unknown_entry = store
        .record_profile_definition(&def(EntryId::new_v4(), 1, "APPLE-X"))
        .await
        .unwrap_err();
    assert!(unknown_entry.is_not_found(), "{unknown_entry:?}");
    store
        .delete_abm_entry("e2", &audit("abm.delete", "e2"))
        .await
        .unwrap();
    assert_eq!(
        store.profile_definitions(p.id).await.unwrap().len(),
        2,
        "an entry's definitions go with it"
    );
}

pub async fn os_defaults_set_replace_and_clear(store: Arc<dyn Store>) {
    let p = profile(&store, "p").await;
    let q = profile(&store, "q").await;
    let mut t = Tracker::new(&store).await;
    assert!(store.os_defaults().await.unwrap().is_empty());
    let a1 = audit("ade_default.set", "ios");
    store
        .set_os_default(OsKey::Ios, Some(p.id), &a1)
        .await
        .unwrap();
    t.changed(&store, "ade_default.set").await;
    let a2 = audit("ade_default.set", "macos");
    store
        .set_os_default(OsKey::Macos, Some(q.id), &a2)
        .await
        .unwrap();
    t.changed(&store, "ade_default.set").await;
    let default = |os: OsKey, profile_id: ProfileId, updated_at: OffsetDateTime| OsDefault {
        os,
        profile_id,
        updated_at,
    };
    assert_eq!(
        store.os_defaults().await.unwrap(),
        [
            default(OsKey::Ios, p.id, a1.at),
            default(OsKey::Macos, q.id, a2.at)
        ]
    );
    let a3 = audit_by(
        "ade_default.set",
        "ios",
        "test",
        now() + Duration::seconds(3),
    );
    store
        .set_os_default(OsKey::Ios, Some(q.id), &a3)
        .await
        .unwrap();
    t.changed(&store, "ade_default.set").await;
    assert_eq!(
        store.os_defaults().await.unwrap(),
        [
            default(OsKey::Ios, q.id, a3.at),
            default(OsKey::Macos, q.id, a2.at)
        ],
        "replaced"
    );
    store
        .set_os_default(OsKey::Macos, None, &audit("ade_default.clear", "macos"))
        .await
        .unwrap();
    t.changed(&store, "ade_default.clear").await;
    assert_eq!(
        store.os_defaults().await.unwrap(),
        [default(OsKey::Ios, q.id, a3.at)],
        "cleared"
    );
    let unknown = store
        .set_os_default(
            OsKey::Tvos,
            Some(ProfileId::new_v4()),
            &audit("ade_default.set", "tvos"),
        )
        .await
        .unwrap_err();
    assert!(unknown.is_not_found(), "an unknown profile: {unknown:?}");
    t.unchanged(&store, "default to an unknown profile").await;
    let config = store.assignment_config().await.unwrap();
    assert_eq!(config.os_defaults, store.os_defaults().await.unwrap());
    assert_eq!(config.generation, t.generation);
}

pub async fn groups_create_update_and_delete(store: Arc<dyn Store>) {
    let p = profile(&store, "p").await;
    let mut t = Tracker::new(&store).await;
    let sales_new = group("sales", Some(p.id), 10);
    let a1 = audit("group.create", "sales");
    let sales = store.create_group(&sales_new, &a1).await.unwrap();
    t.changed(&store, "group.create").await;
    assert_eq!(
        (
            sales.id,
            sales.name.as_str(),
            &sales.rule,
            sales.profile_id,
            sales.priority,
            sales.member_count,
            sales.created_at,
            sales.updated_at
        ),
        (
            sales_new.id,
            "sales",
            &None,
            Some(p.id),
            10,
            0,
            a1.at,
            a1.at
        )
    );
    let rule = json!({ "all": [{ "attribute": "os", "equals": "OSX" }] });
    let macs_new = NewDeviceGroup {
        rule: Some(rule.clone()),
        ..group("macs", None, 5)
    };
    let macs = store
        .create_group(&macs_new, &audit("group.create", "macs"))
        .await
        .unwrap();
    t.changed(&store, "group.create").await;
    assert_eq!((&macs.rule, macs.profile_id), (&Some(rule), None));

    let dup = store
        .create_group(&group("sales", None, 1), &audit("group.create", "sales"))
        .await
        .unwrap_err();
    assert!(dup.is_conflict(), "{dup:?}");
    let unknown_profile = store
        .create_group(
            &group("ghost", Some(ProfileId::new_v4()), 1),
            &audit("group.create", "ghost"),
        )
        .await
        .unwrap_err();
    assert!(unknown_profile.is_not_found(), "{unknown_profile:?}");
    t.unchanged(&store, "refused creates").await;

    assert_eq!(
        store.list_groups().await.unwrap(),
        [macs.clone(), sales.clone()],
        "groups by name"
    );
    assert_eq!(store.get_group("sales").await.unwrap(), sales);
    assert!(store.get_group("nope").await.unwrap_err().is_not_found());

    // Only the given fields change.
    let a2 = audit_by(
        "group.update",
        "sales",
        "test",
        now() + Duration::seconds(2),
    );
    let updated = store
        .update_group(
            sales.id,
            &GroupUpdate {
                priority: Some(1),
                ..GroupUpdate::default()
            },
            &a2,
        )
        .await
        .unwrap();
    t.changed(&store, "group.update").await;
    assert_eq!(
        (
            updated.priority,
            updated.profile_id,
            &updated.rule,
            updated.created_at,
            updated.updated_at
        ),
        (1, Some(p.id), &None, a1.at, a2.at)
    );
    let cleared = store
        .update_group(
            sales.id,
            &GroupUpdate {
                profile_id: Some(None),
                ..GroupUpdate::default()
            },
            &audit("group.update", "sales"),
        )
        .await
        .unwrap();
    t.changed(&store, "group.update").await;
    assert_eq!((cleared.profile_id, cleared.priority), (None, 1));
    let rule2 = json!({ "any": [{ "attribute": "model", "contains": "MacBook" }] });
    let macs2 = store
        .update_group(
            macs.id,
            &GroupUpdate {
                rule: Some(rule2.clone()),
                profile_id: Some(Some(p.id)),
                priority: None,
            },
            &audit("group.update", "macs"),
        )
        .await
        .unwrap();
    t.changed(&store, "group.update").await;
    assert_eq!(
        (&macs2.rule, macs2.profile_id, macs2.priority),
        (&Some(rule2), Some(p.id), 5)
    );
    assert_eq!(store.get_group("macs").await.unwrap(), macs2);
    let unknown = store
        .update_group(
            GroupId::new_v4(),
            &GroupUpdate::default(),
            &audit("group.update", "?"),
        )
        .await
        .unwrap_err();
    assert!(unknown.is_not_found(), "{unknown:?}");
    let to_unknown_profile = store
        .update_group(
            sales.id,
            &GroupUpdate {
                profile_id: Some(Some(ProfileId::new_v4())),
                ..GroupUpdate::default()
            },
            &audit("group.update", "sales"),
        )
        .await
        .unwrap_err();
    assert!(to_unknown_profile.is_not_found(), "{to_unknown_profile:?}");
    t.unchanged(&store, "refused updates").await;

    // Members: static groups only.
    let added = store
        .add_group_members(
            sales.id,
            &strings(&["A", "B"]),
            &audit("group.add", "sales"),
        )
        .await;
    let added = added.unwrap();
    assert_eq!(added, 2);
    t.changed(&store, "group.add").await;
    assert_eq!(store.get_group("sales").await.unwrap().member_count, 2);
    assert_eq!(store.get_group("macs").await.unwrap().member_count, 0);
    let smart = store
        .add_group_members(macs.id, &strings(&["A"]), &audit("group.add", "macs"))
        .await
        .unwrap_err();
    assert!(
        smart.is_conflict(),
        "a smart group has no members: {smart:?}"
    );
    let unknown = store
        .add_group_members(
            GroupId::new_v4(),
            &strings(&["A"]),
            &audit("group.add", "?"),
        )
        .await
        .unwrap_err();
    assert!(unknown.is_not_found(), "{unknown:?}");
    t.unchanged(&store, "refused member adds").await;
    assert_eq!(store.groups_of_serial("A").await.unwrap(), [sales.id]);

    store
        .delete_group(sales.id, &audit("group.delete", "sales"))
        .await
        .unwrap();
    t.changed(&store, "group.delete").await;
    assert!(store.get_group("sales").await.unwrap_err().is_not_found());
    assert!(store.groups_of_serial("A").await.unwrap().is_empty());
    assert!(
        store
            .group_members(sales.id, None, 10)
            .await
            .unwrap()
            .is_empty(),
        "memberships go with the group"
    );
    let again = store
        .delete_group(sales.id, &audit("group.delete", "sales"))
        .await
        .unwrap_err();
    assert!(again.is_not_found(), "{again:?}");
    t.unchanged(&store, "delete of a deleted group").await;
    // The name is free again, with no members.
    let fresh = store
        .create_group(&group("sales", None, 1), &audit("group.create", "sales"))
        .await
        .unwrap();
    assert_eq!(fresh.member_count, 0);
    let config = store.assignment_config().await.unwrap();
    assert_eq!(config.groups, store.list_groups().await.unwrap());
}

pub async fn group_members_in_bulk(store: Arc<dyn Store>) {
    let g = store
        .create_group(&group("g-static", None, 1), &audit("group.create", "g"))
        .await
        .unwrap();
    let h = store
        .create_group(&group("h-static", None, 2), &audit("group.create", "h"))
        .await
        .unwrap();
    let mut t = Tracker::new(&store).await;
    let first = serials("S", 0..2500);
    assert_eq!(
        store
            .add_group_members(g.id, &first, &audit("group.add", "g"))
            .await
            .unwrap(),
        2500
    );
    t.changed(&store, "group.add").await;
    // 1000 serials of which 500 are members already, and a repeat: 500 new.
    let mut overlap = serials("S", 2000..3000);
    overlap.push("S02999".to_string());
    assert_eq!(
        store
            .add_group_members(g.id, &overlap, &audit("group.add", "g"))
            .await
            .unwrap(),
        500,
        "only new members count"
    );
    t.changed(&store, "group.add").await;
    assert_eq!(
        store.get_group("g-static").await.unwrap().member_count,
        3000
    );

    let all = serials("S", 0..3000);
    assert_eq!(
        store.group_members(g.id, None, 1000).await.unwrap(),
        all[..1000],
        "the first page"
    );
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .group_members(g.id, after.as_deref(), 700)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 700);
        after = page.last().cloned();
        paged.extend(page);
    }
    assert_eq!(
        paged, all,
        "keyset pages cover every member once, by serial"
    );

    let mut gone = serials("S", 0..1000);
    gone.push("NOT-A-MEMBER".to_string());
    assert_eq!(
        store
            .remove_group_members(g.id, &gone, &audit("group.remove", "g"))
            .await
            .unwrap(),
        1000,
        "only members count"
    );
    t.changed(&store, "group.remove").await;
    assert_eq!(
        store
            .remove_group_members(g.id, &gone, &audit("group.remove", "g"))
            .await
            .unwrap(),
        0
    );
    t.changed(&store, "group.remove").await;
    assert_eq!(
        store.get_group("g-static").await.unwrap().member_count,
        2000
    );
    assert_eq!(
        store.group_members(g.id, None, 1).await.unwrap(),
        ["S01000"]
    );
    let unknown = store
        .remove_group_members(GroupId::new_v4(), &gone, &audit("group.remove", "?"))
        .await
        .unwrap_err();
    assert!(unknown.is_not_found(), "{unknown:?}");
    t.unchanged(&store, "remove from an unknown group").await;

    store
        .add_group_members(
            h.id,
            &strings(&["S02500", "S00001"]),
            &audit("group.add", "h"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.groups_of_serial("S02500").await.unwrap(),
        [g.id, h.id],
        "by group name"
    );
    assert_eq!(store.groups_of_serial("S00001").await.unwrap(), [h.id]);
    assert!(store.groups_of_serial("S99999").await.unwrap().is_empty());
}

pub async fn device_profiles_in_bulk(store: Arc<dyn Store>) {
    let p = profile(&store, "p").await;
    let q = profile(&store, "q").await;
    let mut t = Tracker::new(&store).await;
    let all = serials("D", 0..2500);
    let set = |serials: Vec<String>, profile: Option<ProfileId>| {
        let store = store.clone();
        async move {
            store
                .set_device_profiles(&serials, profile, &audit("device.assign", "bulk"))
                .await
        }
    };
    assert_eq!(set(all.clone(), Some(p.id)).await.unwrap(), 2500);
    t.changed(&store, "device.assign").await;
    assert_eq!(store.device_profile("D00000").await.unwrap(), Some(p.id));
    assert_eq!(store.device_profile("D02499").await.unwrap(), Some(p.id));
    assert_eq!(store.device_profile("D02500").await.unwrap(), None);
    assert_eq!(
        set(all.clone(), Some(p.id)).await.unwrap(),
        0,
        "the same profile again changes nothing"
    );
    t.changed(&store, "device.assign").await;
    assert_eq!(set(all[..1200].to_vec(), Some(q.id)).await.unwrap(), 1200);
    t.changed(&store, "device.assign").await;
    assert_eq!(store.device_profile("D01199").await.unwrap(), Some(q.id));
    assert_eq!(store.device_profile("D01200").await.unwrap(), Some(p.id));
    assert_eq!(store.profile_references(p.id).await.unwrap().devices, 1300);
    assert_eq!(store.profile_references(q.id).await.unwrap().devices, 1200);
    assert_eq!(set(all.clone(), None).await.unwrap(), 2500, "cleared");
    t.changed(&store, "device.assign").await;
    assert_eq!(store.device_profile("D00001").await.unwrap(), None);
    assert_eq!(store.device_profile("D02001").await.unwrap(), None);
    assert!(store.profile_references(p.id).await.unwrap().is_empty());
    assert_eq!(set(all.clone(), None).await.unwrap(), 0);
    t.changed(&store, "device.assign").await;
    assert_eq!(
        set(strings(&["Y", "Y", "Z"]), Some(q.id)).await.unwrap(),
        2,
        "a repeated serial is one row"
    );
    t.changed(&store, "device.assign").await;
    let unknown = set(strings(&["X"]), Some(ProfileId::new_v4()))
        .await
        .unwrap_err();
    assert!(unknown.is_not_found(), "an unknown profile: {unknown:?}");
    t.unchanged(&store, "assigning an unknown profile").await;
    assert_eq!(store.device_profile("X").await.unwrap(), None);
}

pub async fn serial_presence_answers_in_input_order(store: Arc<dyn Store>) {
    let e1 = entry(&store, "e1").await;
    let e2 = entry(&store, "e2").await;
    seed(&store, e1, &[device("A"), device("B"), device("C")]).await;
    seed(&store, e1, &[deleted("B"), deleted("C")]).await;
    seed(&store, e2, &[device("B")]).await;
    use SerialPresence::{InAbm, Removed, Unknown};
    assert_eq!(
        store
            .serial_presence(&strings(&["D", "C", "A", "B", "D"]))
            .await
            .unwrap(),
        [Unknown, Removed, InAbm, InAbm, Unknown],
        "B is removed from e1 but present in e2"
    );
    assert!(store.serial_presence(&[]).await.unwrap().is_empty());
    let mut many = serials("U", 0..2500);
    many[1234] = "A".to_string();
    many[2400] = "C".to_string();
    many[7] = "B".to_string();
    let answers = store.serial_presence(&many).await.unwrap();
    assert_eq!(answers.len(), 2500);
    for (i, answer) in answers.iter().enumerate() {
        let expected = match i {
            1234 | 7 => InAbm,
            2400 => Removed,
            _ => Unknown,
        };
        assert_eq!(*answer, expected, "serial {i}");
    }
    // An explicit assignment or membership is no presence.
    let p = profile(&store, "p").await;
    store
        .set_device_profiles(&strings(&["E"]), Some(p.id), &audit("device.assign", "E"))
        .await
        .unwrap();
    assert_eq!(
        store.serial_presence(&strings(&["E"])).await.unwrap(),
        [Unknown]
    );
}

pub async fn assignment_config_is_one_snapshot(store: Arc<dyn Store>) {
    assert_eq!(
        store.assignment_config().await.unwrap(),
        crate::AssignmentConfig::default(),
        "empty before any change"
    );
    let p = profile(&store, "p").await;
    let q = profile(&store, "q").await;
    store
        .set_os_default(OsKey::Ios, Some(q.id), &audit("ade_default.set", "ios"))
        .await
        .unwrap();
    store
        .create_group(&group("z", Some(p.id), 1), &audit("group.create", "z"))
        .await
        .unwrap();
    let g = store
        .create_group(&group("y", None, 1), &audit("group.create", "y"))
        .await
        .unwrap();
    store
        .add_group_members(g.id, &strings(&["A", "B", "C"]), &audit("group.add", "y"))
        .await
        .unwrap();
    let config = store.assignment_config().await.unwrap();
    assert_eq!(config.generation, 6, "six changes");
    assert_eq!(
        config.generation,
        store.assignment_generation().await.unwrap()
    );
    assert_eq!(config.profiles, store.list_profiles().await.unwrap());
    assert_eq!(config.groups, store.list_groups().await.unwrap());
    assert_eq!(
        config
            .groups
            .iter()
            .map(|g| (g.name.as_str(), g.member_count))
            .collect::<Vec<_>>(),
        [("y", 3), ("z", 0)]
    );
    assert_eq!(config.os_defaults, store.os_defaults().await.unwrap());
    assert_eq!(config.os_defaults.len(), 1);
}

async fn stored(store: &Arc<dyn Store>, entry_id: EntryId) -> Vec<StoredAbmDevice> {
    store
        .list_abm_devices(&DeviceQuery {
            entry_id: Some(entry_id),
            limit: 100_000,
            ..DeviceQuery::default()
        })
        .await
        .unwrap()
}

pub async fn assignment_inputs_join_and_page(store: Arc<dyn Store>) {
    let e = entry(&store, "e").await;
    let other = entry(&store, "other").await;
    let p = profile(&store, "p").await;
    let q = profile(&store, "q").await;
    let g1 = store
        .create_group(&group("g1", None, 1), &audit("group.create", "g1"))
        .await
        .unwrap();
    let g2 = store
        .create_group(&group("g2", None, 2), &audit("group.create", "g2"))
        .await
        .unwrap();
    let present: Vec<AbmDevice> = ["N01", "N02", "N03", "N04", "N05", "N06", "N07"]
        .iter()
        .map(|s| device(s))
        .collect();
    seed(&store, e, &present).await;
    seed(&store, e, &[deleted("N04")]).await;
    seed(&store, other, &[device("N01"), device("Z99")]).await;
    store
        .set_device_profiles(
            &strings(&["N02", "Q77"]),
            Some(p.id),
            &audit("device.assign", "2"),
        )
        .await
        .unwrap();
    store
        .set_device_profiles(&strings(&["N05"]), Some(q.id), &audit("device.assign", "1"))
        .await
        .unwrap();
    store
        .add_group_members(
            g1.id,
            &strings(&["N03", "N04", "N05"]),
            &audit("group.add", "g1"),
        )
        .await
        .unwrap();
    store
        .add_group_members(g2.id, &strings(&["N05", "Q77"]), &audit("group.add", "g2"))
        .await
        .unwrap();
    let r1 = record("N01", AssignState::Assigned);
    let r4 = record("N04", AssignState::Pushed);
    store
        .write_assignments(e, &[r1.clone(), r4.clone()])
        .await
        .unwrap();

    let inputs = store.assignment_inputs(e, None, 100, None).await.unwrap();
    assert_eq!(
        inputs
            .iter()
            .map(|i| i.device.device.serial_number.as_str())
            .collect::<Vec<_>>(),
        ["N01", "N02", "N03", "N05", "N06", "N07"],
        "present devices only, by serial"
    );
    let devices = stored(&store, e).await;
    for input in &inputs {
        let d = devices
            .iter()
            .find(|d| d.device.serial_number == input.device.device.serial_number)
            .unwrap();
        assert_eq!(&input.device, d, "the stored device");
    }
    let by = |serial: &str| {
        inputs
            .iter()
            .find(|i| i.device.device.serial_number == serial)
            .unwrap()
            .clone()
    };
    let n01 = by("N01");
    assert_eq!(
        (n01.explicit_profile, n01.static_groups.clone(), n01.record),
        (None, vec![], Some(r1))
    );
    let n02 = by("N02");
    assert_eq!(
        (n02.explicit_profile, n02.static_groups.clone(), n02.record),
        (Some(p.id), vec![], None)
    );
    assert_eq!(by("N03").static_groups, [g1.id]);
    let n05 = by("N05");
    let mut both = vec![g1.id, g2.id];
    both.sort();
    let mut got = n05.static_groups.clone();
    got.sort();
    assert_eq!((n05.explicit_profile, got), (Some(q.id), both));
    let n06 = by("N06");
    assert_eq!(
        (n06.explicit_profile, n06.static_groups.len(), n06.record),
        (None, 0, None)
    );

    // Keyset pages.
    let page = |after: Option<&'static str>, limit: u32| {
        let store = store.clone();
        async move {
            store
                .assignment_inputs(e, after, limit, None)
                .await
                .unwrap()
                .into_iter()
                .map(|i| i.device.device.serial_number)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page(None, 2).await, ["N01", "N02"]);
    assert_eq!(page(Some("N02"), 2).await, ["N03", "N05"], "N04 is removed");
    assert_eq!(page(Some("N05"), 2).await, ["N06", "N07"]);
    assert!(page(Some("N07"), 2).await.is_empty());

    // Explicit profiles and groups follow the serial into any entry; records do not.
    let elsewhere = store
        .assignment_inputs(other, None, 10, None)
        .await
        .unwrap();
    assert_eq!(
        elsewhere
            .iter()
            .map(|i| (
                i.device.device.serial_number.as_str(),
                i.device.entry_id,
                i.record.is_some()
            ))
            .collect::<Vec<_>>(),
        [("N01", other, false), ("Z99", other, false)]
    );

    // A big entry: every page of 1000 crosses statement chunks.
    let big = entry(&store, "big").await;
    let many = serials("B", 0..2500);
    let devices: Vec<AbmDevice> = many.iter().map(|s| device(s)).collect();
    seed(&store, big, &devices).await;
    let evens: Vec<String> = many.iter().step_by(2).cloned().collect();
    store
        .add_group_members(g2.id, &evens, &audit("group.add", "g2"))
        .await
        .unwrap();
    let thirds: Vec<String> = many.iter().step_by(3).cloned().collect();
    store
        .set_device_profiles(&thirds, Some(q.id), &audit("device.assign", "thirds"))
        .await
        .unwrap();
    let records: Vec<AssignmentRecord> = many
        .iter()
        .step_by(5)
        .map(|s| bare_record(s, AssignState::Pending))
        .collect();
    store.write_assignments(big, &records).await.unwrap();
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let chunk = store
            .assignment_inputs(big, after.as_deref(), 1000, None)
            .await
            .unwrap();
        if chunk.is_empty() {
            break;
        }
        after = Some(chunk.last().unwrap().device.device.serial_number.clone());
        all.extend(chunk);
    }
    assert_eq!(
        all.iter()
            .map(|i| i.device.device.serial_number.clone())
            .collect::<Vec<_>>(),
        many
    );
    for (n, input) in all.iter().enumerate() {
        let serial = &input.device.device.serial_number;
        let groups: &[GroupId] = if n % 2 == 0 { &[g2.id] } else { &[] };
        assert_eq!(input.static_groups, groups, "{serial}: groups");
        let explicit = (n % 3 == 0).then_some(q.id);
        assert_eq!(input.explicit_profile, explicit, "{serial}: explicit");
        let rec = (n % 5 == 0).then(|| records[n / 5].clone());
        assert_eq!(input.record, rec, "{serial}: record");
    }
}

pub async fn assignments_write_read_back_and_count(store: Arc<dyn Store>) {
    let e = entry(&store, "e").await;
    let other = entry(&store, "other").await;
    let t = Tracker::new(&store).await;
    let a = record("A", AssignState::Assigned);
    let b = bare_record("B", AssignState::Unassigned);
    store
        .write_assignments(e, &[b.clone(), a.clone()])
        .await
        .unwrap();
    t.unchanged(&store, "records are not configuration").await;
    assert_eq!(
        store
            .assignments(e, &strings(&["B", "A", "missing", "A"]))
            .await
            .unwrap(),
        [a.clone(), b.clone()],
        "those that exist, by serial, equal to what was written"
    );
    assert!(
        store
            .assignments(other, &strings(&["A"]))
            .await
            .unwrap()
            .is_empty(),
        "records are per entry"
    );
    // Replace: every field, including back to None.
    let a2 = AssignmentRecord {
        rule: RuleRef::Default { os: OsKey::Ipados },
        ..bare_record("A", AssignState::Failed)
    };
    let b2 = record("B", AssignState::Pushed);
    store
        .write_assignments(e, &[a2.clone(), b2.clone()])
        .await
        .unwrap();
    assert_eq!(
        store.assignments(e, &strings(&["A", "B"])).await.unwrap(),
        [a2, b2.clone()]
    );
    // The last of repeated serials wins.
    let c1 = record("C", AssignState::Pending);
    let c2 = record("C", AssignState::Throttled);
    store.write_assignments(e, &[c1, c2.clone()]).await.unwrap();
    assert_eq!(store.assignments(e, &strings(&["C"])).await.unwrap(), [c2]);
    // Many in one call.
    let many: Vec<AssignmentRecord> = serials("M", 0..2500)
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if i % 2 == 0 {
                record(s, AssignState::Assigned)
            } else {
                bare_record(s, AssignState::NotAccessible)
            }
        })
        .collect();
    store.write_assignments(e, &many).await.unwrap();
    let mut asked = serials("M", 0..2510);
    asked.reverse();
    assert_eq!(store.assignments(e, &asked).await.unwrap(), many);
    assert_eq!(
        store.assignment_state_counts(e).await.unwrap(),
        [
            (AssignState::Assigned, 1250),
            (AssignState::Failed, 1),
            (AssignState::NotAccessible, 1250),
            (AssignState::Pushed, 1),
            (AssignState::Throttled, 1),
        ]
    );
    assert!(
        store
            .assignment_state_counts(other)
            .await
            .unwrap()
            .is_empty()
    );
    let unknown = store
        .write_assignments(EntryId::new_v4(), &[record("A", AssignState::Pending)])
        .await
        .unwrap_err();
    assert!(unknown.is_not_found(), "an unknown entry: {unknown:?}");
    store
        .delete_abm_entry("e", &audit("abm.delete", "e"))
        .await
        .unwrap();
    assert!(
        store.assignment_state_counts(e).await.unwrap().is_empty(),
        "records go with their entry"
    );
}

pub async fn removed_devices_get_removed_records(store: Arc<dyn Store>) {
    let e = entry(&store, "e").await;
    let other = entry(&store, "other").await;
    seed(
        &store,
        e,
        &[device("A"), device("B"), device("C"), device("D")],
    )
    .await;
    seed(&store, other, &[device("B")]).await;
    let records = [
        record("A", AssignState::Assigned),
        record("B", AssignState::Pushed),
        bare_record("C", AssignState::Removed),
        record("D", AssignState::Pending),
        bare_record("X", AssignState::Unassigned),
    ];
    store.write_assignments(e, &records).await.unwrap();
    store
        .write_assignments(other, &[record("B", AssignState::Assigned)])
        .await
        .unwrap();
    seed(&store, e, &[deleted("B"), deleted("C")]).await;
    let at = now() + Duration::seconds(1);
    assert_eq!(
        store.mark_removed_assignments(e, at).await.unwrap(),
        1,
        "B only: C is removed already, A and D are present, X has no device"
    );
    let after = store
        .assignments(e, &strings(&["A", "B", "C", "D", "X"]))
        .await
        .unwrap();
    let expected_b = AssignmentRecord {
        state: AssignState::Removed,
        updated_at: at,
        ..records[1].clone()
    };
    assert_eq!(
        after,
        [
            records[0].clone(),
            expected_b,
            records[2].clone(),
            records[3].clone(),
            records[4].clone()
        ]
    );
    assert_eq!(
        store.mark_removed_assignments(e, now()).await.unwrap(),
        0,
        "idempotent"
    );
    assert_eq!(
        store.assignments(other, &strings(&["B"])).await.unwrap()[0].state,
        AssignState::Assigned,
        "B is still in the other entry"
    );
    assert_eq!(
        store.mark_removed_assignments(other, now()).await.unwrap(),
        0
    );
    assert_eq!(
        store.assignment_state_counts(e).await.unwrap(),
        [
            (AssignState::Assigned, 1),
            (AssignState::Pending, 1),
            (AssignState::Removed, 2),
            (AssignState::Unassigned, 1),
        ]
    );
}

pub async fn passes_keep_the_last_per_entry(store: Arc<dyn Store>) {
    let e = entry(&store, "e").await;
    let other = entry(&store, "other").await;
    assert_eq!(store.last_assignment_pass(e).await.unwrap(), None);
    let first = AssignmentPass {
        entry_id: e,
        generation: 3,
        finished_at: now(),
        summary: json!({ "assigned": 10, "pushed": 2, "errors": [] }),
        error: None,
    };
    store.finish_assignment_pass(&first).await.unwrap();
    assert_eq!(store.last_assignment_pass(e).await.unwrap(), Some(first));
    let second = AssignmentPass {
        entry_id: e,
        generation: 4,
        finished_at: now() + Duration::seconds(30),
        summary: json!({ "assigned": 9 }),
        error: Some("the server token expired".to_string()),
    };
    store.finish_assignment_pass(&second).await.unwrap();
    assert_eq!(
        store.last_assignment_pass(e).await.unwrap(),
        Some(second),
        "replaced"
    );
    assert_eq!(store.last_assignment_pass(other).await.unwrap(), None);
    let unknown = store
        .finish_assignment_pass(&AssignmentPass {
            entry_id: EntryId::new_v4(),
            generation: 1,
            finished_at: now(),
            summary: json!({}),
            error: None,
        })
        .await
        .unwrap_err();
    assert!(unknown.is_not_found(), "an unknown entry: {unknown:?}");
    store
        .delete_abm_entry("e", &audit("abm.delete", "e"))
        .await
        .unwrap();
    assert_eq!(store.last_assignment_pass(e).await.unwrap(), None);
}

pub async fn incremental_candidates_are_changed_unsettled_or_due(store: Arc<dyn Store>) {
    let e = entry(&store, "e").await;
    let all: Vec<AbmDevice> = ["S1", "S2", "S3", "S4", "S5", "S6", "S7"]
        .iter()
        .map(|s| device(s))
        .collect();
    seed(&store, e, &all).await;
    seed(&store, e, &[deleted("S7")]).await;
    let t = now();
    let settled =
        |serial: &str, state: AssignState, retry_at: Option<OffsetDateTime>| AssignmentRecord {
            retry_at,
            ..record(serial, state)
        };
    store
        .write_assignments(
            e,
            &[
                settled("S1", AssignState::Assigned, None),
                settled("S2", AssignState::Pending, None),
                settled("S3", AssignState::Failed, Some(t - Duration::minutes(1))),
                settled("S4", AssignState::Throttled, Some(t + Duration::hours(1))),
                settled("S6", AssignState::Unassigned, None),
                settled("S7", AssignState::Pending, None),
            ],
        )
        .await
        .unwrap();
    let only = crate::InputFilter {
        changed_after: t + Duration::seconds(1),
        due_by: t,
    };
    // S2 pending, S3 due; S1, S4 (not due), S5 and S6 are settled or unchanged; S7 left ABM.
    let found = store.assignment_candidates(e, &only).await.unwrap();
    assert_eq!(found, ["S2", "S3"]);
    // A device Apple changed since counts, whatever its record; a new device too.
    let mut s1 = device("S1");
    s1.profile_status = Some("removed".to_string());
    s1.op_type = Some("modified".to_string());
    s1.op_date = Some(now());
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let before_change = now();
    seed(&store, e, &[s1, device("S8")]).await;
    let only = crate::InputFilter {
        changed_after: before_change,
        due_by: t,
    };
    let found = store.assignment_candidates(e, &only).await.unwrap();
    assert_eq!(found, ["S1", "S2", "S3", "S8"]);
    // The inputs of just those serials, present only, by serial.
    let pick = |inputs: Vec<crate::AssignmentInput>| {
        inputs
            .into_iter()
            .map(|i| i.device.device.serial_number)
            .collect::<Vec<_>>()
    };
    let wanted = [
        "S8".to_string(),
        "S3".to_string(),
        "S7".to_string(),
        "NOPE".to_string(),
    ];
    assert_eq!(
        pick(
            store
                .assignment_inputs(e, None, 100, Some(&wanted))
                .await
                .unwrap()
        ),
        ["S3", "S8"]
    );
    assert!(
        store
            .assignment_inputs(e, None, 100, Some(&[]))
            .await
            .unwrap()
            .is_empty()
    );
}
