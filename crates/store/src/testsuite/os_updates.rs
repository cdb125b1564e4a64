//! Minimum OS settings and enrollment events against them.

use std::sync::Arc;

use time::Duration;

use super::{actions, audit};
use crate::{OsKey, OsMinimum, OsUpdateEvent, OsUpdateOutcome, Store, now};

pub async fn minimum_os_set_replace_and_clear(store: Arc<dyn Store>) {
    assert!(store.minimum_os().await.unwrap().is_empty());
    let v175 = OsMinimum::Version("17.5".to_string());
    store
        .set_minimum_os(OsKey::Ios, Some(&v175), &audit("minimum_os.set", "ios"))
        .await
        .unwrap();
    store
        .set_minimum_os(
            OsKey::Macos,
            Some(&OsMinimum::Latest),
            &audit("minimum_os.set", "macos"),
        )
        .await
        .unwrap();
    let all = store.minimum_os().await.unwrap();
    let pairs: Vec<_> = all.iter().map(|m| (m.os, m.minimum.clone())).collect();
    assert_eq!(
        pairs,
        vec![
            (OsKey::Ios, v175.clone()),
            (OsKey::Macos, OsMinimum::Latest)
        ]
    );
    let v18 = OsMinimum::Version("18.0".to_string());
    store
        .set_minimum_os(OsKey::Ios, Some(&v18), &audit("minimum_os.set", "ios"))
        .await
        .unwrap();
    store
        .set_minimum_os(OsKey::Macos, None, &audit("minimum_os.clear", "macos"))
        .await
        .unwrap();
    let all = store.minimum_os().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].os, &all[0].minimum), (OsKey::Ios, &v18));
    assert_eq!(
        actions(&store).await,
        vec![
            "minimum_os.set",
            "minimum_os.set",
            "minimum_os.set",
            "minimum_os.clear"
        ]
    );
}

pub async fn os_update_events_count_per_kind_and_list_newest_first(store: Arc<dyn Store>) {
    let t0 = now() - Duration::minutes(10);
    let held = OsUpdateEvent {
        serial_number: "SER1".to_string(),
        udid: "U1".to_string(),
        device_version: "17.2".to_string(),
        device_build: Some("21C62".to_string()),
        required_version: "17.5".to_string(),
        required_build: Some("21F79".to_string()),
        outcome: OsUpdateOutcome::Held,
        reason: None,
        first_at: t0,
        last_at: t0,
        count: 1,
    };
    store.record_os_update_event(&held).await.unwrap();
    let again = OsUpdateEvent {
        last_at: t0 + Duration::minutes(1),
        ..held.clone()
    };
    store.record_os_update_event(&again).await.unwrap();
    let other = OsUpdateEvent {
        device_version: "16.7".to_string(),
        outcome: OsUpdateOutcome::NotAsked,
        reason: Some("cannot be asked".to_string()),
        first_at: t0 + Duration::minutes(5),
        last_at: t0 + Duration::minutes(5),
        ..held.clone()
    };
    store.record_os_update_event(&other).await.unwrap();
    store
        .record_os_update_event(&OsUpdateEvent {
            serial_number: "SER2".to_string(),
            ..held.clone()
        })
        .await
        .unwrap();

    let events = store.os_update_events("SER1").await.unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0], OsUpdateEvent { count: 1, ..other });
    assert_eq!(
        events[1],
        OsUpdateEvent {
            first_at: t0,
            last_at: t0 + Duration::minutes(1),
            count: 2,
            ..held
        }
    );
    assert!(store.os_update_events("NONE").await.unwrap().is_empty());
}
