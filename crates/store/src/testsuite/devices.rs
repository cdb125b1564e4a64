//! Conformance cases for [`crate::DeviceSyncStore`].

use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::{
    AbmDevice, AssignState, DeviceQuery, EntryId, GroupId, NewAbmEntry, PageCounts, PageWrite,
    Store, SyncPhase, SyncRunId, SyncState, now,
};

fn at_secs(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
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
        .create_abm_entry(&new, &super::audit("abm.create", name))
        .await
        .unwrap()
        .id
}

fn device(serial: &str, op: Option<&str>, op_date: Option<OffsetDateTime>) -> AbmDevice {
    AbmDevice {
        serial_number: serial.to_string(),
        model: "iPhone 16".to_string(),
        os: Some("iOS".to_string()),
        device_family: Some("iPhone".to_string()),
        op_type: op.map(str::to_string),
        op_date,
        profile_status: Some("empty".to_string()),
        ..AbmDevice::default()
    }
}

fn state(cursor: &str, phase: SyncPhase) -> SyncState {
    SyncState {
        cursor: Some(cursor.to_string()),
        phase,
        generation: 0,
        reconcile: false,
    }
}

async fn apply(
    store: &Arc<dyn Store>,
    entry_id: EntryId,
    run_id: SyncRunId,
    devices: &[AbmDevice],
    state: &SyncState,
) -> PageCounts {
    let page = PageWrite {
        entry_id,
        devices,
        state,
        run_id,
        at: now(),
    };
    store.apply_device_page(&page).await.unwrap()
}

async fn present(store: &Arc<dyn Store>, entry_id: EntryId) -> Vec<String> {
    let q = DeviceQuery {
        entry_id: Some(entry_id),
        removed: Some(false),
        limit: 10_000,
        ..DeviceQuery::default()
    };
    store
        .list_abm_devices(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.device.serial_number)
        .collect()
}

pub async fn pages_apply_latest_wins_remove_and_restore(store: Arc<dyn Store>) {
    let e = entry(&store, "e").await;
    let run = store
        .start_sync_run(e, "manual", "me", now())
        .await
        .unwrap();
    let t0 = at_secs(now());
    let fetched = [
        device("A1", None, None),
        device("B2", None, None),
        device("C3", None, None),
    ];
    let counts = apply(&store, e, run.id, &fetched, &state("c1", SyncPhase::Fetch)).await;
    assert_eq!(
        counts,
        PageCounts {
            added: 3,
            modified: 0,
            removed: 0
        }
    );
    assert_eq!(
        store.sync_state(e).await.unwrap(),
        state("c1", SyncPhase::Fetch),
        "cursor saved with the page"
    );

    let mut newer = device("A1", Some("modified"), Some(t0 + Duration::hours(2)));
    newer.color = Some("Blue".to_string());
    let counts = apply(
        &store,
        e,
        run.id,
        &[newer, device("B2", Some("deleted"), Some(t0))],
        &state("c2", SyncPhase::Sync),
    )
    .await;
    assert_eq!(
        counts,
        PageCounts {
            added: 0,
            modified: 1,
            removed: 1
        }
    );
    // An older record for A1 is ignored: the latest op_date wins.
    let mut older = device("A1", Some("modified"), Some(t0 + Duration::hours(1)));
    older.color = Some("Red".to_string());
    apply(&store, e, run.id, &[older], &state("c3", SyncPhase::Sync)).await;
    let all = store
        .list_abm_devices(&DeviceQuery {
            entry_id: Some(e),
            limit: 100,
            ..DeviceQuery::default()
        })
        .await
        .unwrap();
    let a1 = all.iter().find(|d| d.device.serial_number == "A1").unwrap();
    assert_eq!(a1.device.color.as_deref(), Some("Blue"));
    assert_eq!(a1.device.op_date, Some(t0 + Duration::hours(2)));
    let b2 = all.iter().find(|d| d.device.serial_number == "B2").unwrap();
    assert_eq!(b2.removed_at, Some(t0), "removed from ABM, history kept");
    assert_eq!(b2.device.model, "iPhone 16");
    assert_eq!(present(&store, e).await, ["A1", "C3"]);
    assert_eq!(store.count_abm_devices(e, true).await.unwrap(), 3);
    assert_eq!(store.count_abm_devices(e, false).await.unwrap(), 2);

    // B2 comes back.
    let counts = apply(
        &store,
        e,
        run.id,
        &[device("B2", Some("added"), Some(t0 + Duration::hours(3)))],
        &state("c4", SyncPhase::Sync),
    )
    .await;
    assert_eq!(
        counts,
        PageCounts {
            added: 1,
            modified: 0,
            removed: 0
        }
    );
    assert_eq!(present(&store, e).await, ["A1", "B2", "C3"]);
    let run = store.get_sync_run(run.id).await.unwrap();
    assert_eq!(
        (run.pages, run.counts),
        (
            4,
            PageCounts {
                added: 4,
                modified: 2,
                removed: 1
            }
        )
    );

    // Entries are separate: the same serial elsewhere is another record.
    let other = entry(&store, "other").await;
    let run2 = store
        .start_sync_run(other, "manual", "me", now())
        .await
        .unwrap();
    apply(
        &store,
        other,
        run2.id,
        &[device("A1", None, None)],
        &state("x", SyncPhase::Fetch),
    )
    .await;
    assert_eq!(present(&store, e).await.len(), 3);
    assert_eq!(present(&store, other).await, ["A1"]);
    // Deleting the entry deletes its devices and bookkeeping.
    store
        .delete_abm_entry("other", &super::audit("abm.delete", "other"))
        .await
        .unwrap();
    assert_eq!(store.count_abm_devices(other, true).await.unwrap(), 0);
    assert_eq!(store.sync_state(other).await.unwrap(), SyncState::default());
}

pub async fn reconcile_marks_unseen_devices_removed(store: Arc<dyn Store>) {
    let e = entry(&store, "e").await;
    let run = store
        .start_sync_run(e, "manual", "me", now())
        .await
        .unwrap();
    let first = SyncState {
        generation: 1,
        ..state("c1", SyncPhase::Fetch)
    };
    apply(
        &store,
        e,
        run.id,
        &[
            device("A", None, None),
            device("B", None, None),
            device("C", None, None),
        ],
        &first,
    )
    .await;
    // A full refetch (generation 2) that no longer lists B.
    let second = SyncState {
        generation: 2,
        reconcile: true,
        ..state("d1", SyncPhase::Fetch)
    };
    apply(
        &store,
        e,
        run.id,
        &[device("A", None, None), device("C", None, None)],
        &second,
    )
    .await;
    let done = SyncState {
        reconcile: false,
        phase: SyncPhase::Sync,
        ..second.clone()
    };
    let removed = store
        .reconcile_unseen(e, 2, &done, run.id, now())
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(present(&store, e).await, ["A", "C"]);
    assert_eq!(store.sync_state(e).await.unwrap(), done);
    assert_eq!(store.get_sync_run(run.id).await.unwrap().counts.removed, 1);
    assert_eq!(
        store
            .reconcile_unseen(e, 2, &done, run.id, now())
            .await
            .unwrap(),
        0,
        "idempotent"
    );
}

async fn stage(
    store: &Arc<dyn Store>,
    entry_id: EntryId,
    run_id: SyncRunId,
    devices: &[AbmDevice],
    state: &SyncState,
) -> PageCounts {
    let page = PageWrite {
        entry_id,
        devices,
        state,
        run_id,
        at: now(),
    };
    store.stage_device_page(&page).await.unwrap()
}

pub async fn staged_pages_are_listed_once_merged(store: Arc<dyn Store>) {
    let e = entry(&store, "e").await;
    let run = store
        .start_sync_run(e, "manual", "me", now())
        .await
        .unwrap();
    let t0 = at_secs(now());
    // Stored before the fetch: K (changed by a sync), R (removed from ABM, back in the fetch)
    // and Z (which the fetch no longer lists).
    let mut k = device("K", Some("modified"), Some(t0 + Duration::hours(2)));
    k.color = Some("Green".to_string());
    apply(
        &store,
        e,
        run.id,
        &[
            k,
            device("R", Some("deleted"), Some(t0)),
            device("Z", None, None),
        ],
        &state("s0", SyncPhase::Sync),
    )
    .await;
    assert!(
        !store.merge_staged_devices(e, now()).await.unwrap(),
        "nothing staged yet"
    );

    let fetch = SyncState {
        generation: 1,
        reconcile: true,
        ..state("f1", SyncPhase::Fetch)
    };
    let counts = stage(
        &store,
        e,
        run.id,
        &[device("A", None, None), device("R", None, None)],
        &fetch,
    )
    .await;
    assert_eq!(
        counts,
        PageCounts {
            added: 2,
            modified: 0,
            removed: 0
        },
        "counted against the stored devices: R comes back"
    );
    assert_eq!(
        store.sync_state(e).await.unwrap(),
        fetch,
        "the cursor is saved with the staged page"
    );
    assert_eq!(
        present(&store, e).await,
        ["K", "Z"],
        "staged, not listed yet"
    );

    // Another entry stages too; its records stay staged when this entry merges.
    let other = entry(&store, "other").await;
    let other_run = store
        .start_sync_run(other, "manual", "me", now())
        .await
        .unwrap();
    stage(
        &store,
        other,
        other_run.id,
        &[device("A", None, None)],
        &state("o1", SyncPhase::Fetch),
    )
    .await;

    let mut blue = device("A", None, None);
    blue.color = Some("Blue".to_string());
    // A full fetch's records carry no op_type or op_date.
    let mut fetched_k = device("K", None, None);
    fetched_k.color = Some("Red".to_string());
    let fetch2 = SyncState {
        cursor: Some("f2".to_string()),
        ..fetch.clone()
    };
    let counts = stage(
        &store,
        e,
        run.id,
        &[blue, fetched_k, device("B", None, None)],
        &fetch2,
    )
    .await;
    assert_eq!(
        (counts.added, counts.modified),
        (2, 1),
        "A is not stored yet, K is"
    );
    let run_now = store.get_sync_run(run.id).await.unwrap();
    assert_eq!(run_now.pages, 3);

    let merged_at = at_secs(now()) + Duration::seconds(5);
    assert!(store.merge_staged_devices(e, merged_at).await.unwrap());
    assert_eq!(present(&store, e).await, ["A", "B", "K", "R", "Z"]);
    let all = store
        .list_abm_devices(&DeviceQuery {
            entry_id: Some(e),
            limit: 100,
            ..DeviceQuery::default()
        })
        .await
        .unwrap();
    let get = |serial: &str| {
        all.iter()
            .find(|d| d.device.serial_number == serial)
            .unwrap()
    };
    assert_eq!(
        get("A").device.color.as_deref(),
        Some("Blue"),
        "the last record staged wins"
    );
    assert_eq!(get("A").first_seen_at, merged_at);
    assert_eq!(get("A").updated_at, merged_at);
    assert_eq!(get("K").device.color.as_deref(), Some("Red"));
    assert_eq!(
        get("K").device.op_date,
        Some(t0 + Duration::hours(2)),
        "the sync's op_date is kept"
    );
    assert_eq!(get("R").removed_at, None, "restored");
    assert!(get("Z").first_seen_at < merged_at, "untouched");
    assert!(
        !store.merge_staged_devices(e, now()).await.unwrap(),
        "the staging area is empty after a merge"
    );
    assert_eq!(present(&store, other).await, Vec::<String>::new());

    // The fetch ends: Z was not seen by generation 1.
    let done = SyncState {
        reconcile: false,
        phase: SyncPhase::Sync,
        ..fetch2.clone()
    };
    let removed = store
        .reconcile_unseen(e, 1, &done, run.id, now())
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(present(&store, e).await, ["A", "B", "K", "R"]);

    assert!(store.merge_staged_devices(other, now()).await.unwrap());
    assert_eq!(present(&store, other).await, ["A"]);
    // Deleting an entry deletes what it staged.
    stage(
        &store,
        other,
        other_run.id,
        &[device("Q", None, None)],
        &state("o2", SyncPhase::Fetch),
    )
    .await;
    store
        .delete_abm_entry("other", &super::audit("abm.delete", "other"))
        .await
        .unwrap();
    assert!(!store.merge_staged_devices(other, now()).await.unwrap());
    // A sync still running for a deleted entry stages nothing.
    let page = PageWrite {
        entry_id: other,
        devices: &[device("P", None, None)],
        state: &state("o3", SyncPhase::Fetch),
        run_id: other_run.id,
        at: now(),
    };
    assert!(store.stage_device_page(&page).await.is_err());
    assert!(!store.merge_staged_devices(other, now()).await.unwrap());
}

pub async fn a_page_is_all_or_nothing_even_when_dropped_midway(store: Arc<dyn Store>) {
    let e = entry(&store, "e").await;
    let run = store
        .start_sync_run(e, "manual", "me", now())
        .await
        .unwrap();
    let mut stored = 0_u64;
    let mut pages = 0_u64;
    // Drop the write after ever longer delays: before it starts, mid-transaction, after it.
    for (i, micros) in [0_u64, 50, 200, 1_000, 3_000, 10_000, 50_000, 1_000_000]
        .into_iter()
        .enumerate()
    {
        let devices: Vec<AbmDevice> = (0..1000)
            .map(|n| device(&format!("P{i}-{n:04}"), None, None))
            .collect();
        let cursor = format!("after-page-{i}");
        let st = state(&cursor, SyncPhase::Fetch);
        let page = PageWrite {
            entry_id: e,
            devices: &devices,
            state: &st,
            run_id: run.id,
            at: now(),
        };
        let finished = tokio::time::timeout(
            std::time::Duration::from_micros(micros),
            store.apply_device_page(&page),
        )
        .await;
        // A dropped write may still be committing (SQLite's worker thread finishes what it
        // was given): wait until the store is still, then the page is in whole or not at all.
        let mut count = store.count_abm_devices(e, true).await.unwrap();
        for _ in 0..50 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let again = store.count_abm_devices(e, true).await.unwrap();
            if again == count {
                break;
            }
            count = again;
        }
        let saved = store.sync_state(e).await.unwrap();
        if count == stored + 1000 {
            stored += 1000;
            pages += 1;
            assert_eq!(
                saved.cursor.as_deref(),
                Some(cursor.as_str()),
                "page {i}: cursor with devices"
            );
        } else {
            assert_eq!(
                count,
                stored,
                "page {i}: all or nothing (finished: {})",
                finished.is_ok()
            );
            assert_ne!(
                saved.cursor.as_deref(),
                Some(cursor.as_str()),
                "page {i}: no cursor without devices"
            );
        }
        assert_eq!(
            store.get_sync_run(run.id).await.unwrap().pages,
            pages,
            "page {i}: progress with devices"
        );
    }
    assert!(pages >= 1, "the long timeouts complete");
}

pub async fn device_listing_filters_and_pages(store: Arc<dyn Store>) {
    let e = entry(&store, "e").await;
    let run = store
        .start_sync_run(e, "manual", "me", now())
        .await
        .unwrap();
    let mut mac = device("M1", None, None);
    mac.os = Some("OSX".to_string());
    let devices = [
        device("I1", None, None),
        device("I2", None, None),
        mac,
        device("I3", Some("deleted"), Some(now())),
    ];
    apply(&store, e, run.id, &devices, &state("c", SyncPhase::Fetch)).await;
    let q =
        |os: Option<&str>, removed: Option<bool>, after: Option<&str>, limit: u32| DeviceQuery {
            entry_id: Some(e),
            os: os.map(str::to_string),
            removed,
            assignment_state: None,
            serial: None,
            after_serial: after.map(str::to_string),
            limit,
            ..DeviceQuery::default()
        };
    let serials = |v: Vec<crate::StoredAbmDevice>| {
        v.into_iter()
            .map(|d| d.device.serial_number)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        serials(
            store
                .list_abm_devices(&q(Some("osx"), None, None, 10))
                .await
                .unwrap()
        ),
        ["M1"]
    );
    assert_eq!(
        serials(
            store
                .list_abm_devices(&q(None, Some(true), None, 10))
                .await
                .unwrap()
        ),
        ["I3"]
    );
    assert_eq!(
        serials(
            store
                .list_abm_devices(&q(None, None, None, 2))
                .await
                .unwrap()
        ),
        ["I1", "I2"]
    );
    assert_eq!(
        serials(
            store
                .list_abm_devices(&q(None, None, Some("I2"), 10))
                .await
                .unwrap()
        ),
        ["I3", "M1"]
    );
    let one = DeviceQuery {
        serial: Some("I2".to_string()),
        ..q(None, None, None, 10)
    };
    assert_eq!(serials(store.list_abm_devices(&one).await.unwrap()), ["I2"]);
}

pub async fn device_listing_by_assignment_state(store: Arc<dyn Store>) {
    let e = entry(&store, "e").await;
    let f = entry(&store, "f").await;
    let run = store
        .start_sync_run(e, "manual", "me", now())
        .await
        .unwrap();
    let mut mac = device("M1", None, None);
    mac.os = Some("OSX".to_string());
    let devices = [
        device("A1", None, None),
        device("B2", None, None),
        device("C3", None, None),
        device("D4", Some("deleted"), Some(now())),
        mac,
        device("N5", None, None),
    ];
    apply(&store, e, run.id, &devices, &state("c", SyncPhase::Fetch)).await;
    let run_f = store
        .start_sync_run(f, "manual", "me", now())
        .await
        .unwrap();
    apply(
        &store,
        f,
        run_f.id,
        &[device("B2", None, None), device("Z9", None, None)],
        &state("c", SyncPhase::Fetch),
    )
    .await;
    let record = |serial: &str, state: AssignState| crate::AssignmentRecord {
        serial_number: serial.to_string(),
        profile_id: None,
        profile_version: None,
        rule: crate::RuleRef::None,
        state,
        apple_uuid: None,
        attempted_at: None,
        retry_at: None,
        attempts: 0,
        last_error: None,
        updated_at: now(),
    };
    store
        .write_assignments(
            e,
            &[
                record("A1", AssignState::Pushed),
                record("B2", AssignState::Failed),
                record("C3", AssignState::Pushed),
                record("D4", AssignState::Pushed),
                record("M1", AssignState::Pushed),
            ],
        )
        .await
        .unwrap();
    // N5 has no record; f's B2 is pushed, e's is failed.
    store
        .write_assignments(
            f,
            &[
                record("B2", AssignState::Pushed),
                record("Z9", AssignState::Failed),
            ],
        )
        .await
        .unwrap();
    let list = |query: DeviceQuery| {
        let store = store.clone();
        async move {
            store
                .list_abm_devices(&query)
                .await
                .unwrap()
                .into_iter()
                .map(|d| (d.device.serial_number, d.entry_id))
                .collect::<Vec<_>>()
        }
    };
    let pushed = |entry_id: Option<EntryId>| DeviceQuery {
        entry_id,
        assignment_state: Some(AssignState::Pushed),
        limit: 100,
        ..DeviceQuery::default()
    };
    let s = |serial: &str, entry: EntryId| (serial.to_string(), entry);
    assert_eq!(
        list(pushed(Some(e))).await,
        [s("A1", e), s("C3", e), s("D4", e), s("M1", e)],
        "the entry's pushed devices, by serial"
    );
    assert_eq!(
        list(pushed(None)).await,
        [s("A1", e), s("B2", f), s("C3", e), s("D4", e), s("M1", e)],
        "every entry's: the state of the record of that entry"
    );
    assert_eq!(
        list(DeviceQuery {
            removed: Some(false),
            os: Some("ios".to_string()),
            after_serial: Some("A1".to_string()),
            limit: 2,
            ..pushed(None)
        })
        .await,
        [s("B2", f), s("C3", e)],
        "with the other filters and keyset pages"
    );
    assert_eq!(
        list(DeviceQuery {
            removed: Some(true),
            ..pushed(Some(e))
        })
        .await,
        [s("D4", e)]
    );
    assert_eq!(
        list(DeviceQuery {
            assignment_state: Some(AssignState::Failed),
            ..pushed(None)
        })
        .await,
        [s("B2", e), s("Z9", f)]
    );
    assert!(
        list(DeviceQuery {
            assignment_state: Some(AssignState::Throttled),
            ..pushed(None)
        })
        .await
        .is_empty()
    );
    assert_eq!(
        list(DeviceQuery {
            entry_id: Some(e),
            limit: 100,
            ..DeviceQuery::default()
        })
        .await
        .len(),
        6,
        "no state filter: every device, with or without a record"
    );
}

pub async fn runs_and_leases(store: Arc<dyn Store>) {
    let e = entry(&store, "e").await;
    let t = now();
    assert!(store.try_acquire_sync_lease(e, "a", t, 60).await.unwrap());
    assert!(
        !store.try_acquire_sync_lease(e, "b", t, 60).await.unwrap(),
        "held by a"
    );
    assert!(
        store
            .try_acquire_sync_lease(e, "a", t + Duration::seconds(30), 60)
            .await
            .unwrap(),
        "a renews"
    );
    assert!(
        !store
            .try_acquire_sync_lease(e, "b", t + Duration::seconds(60), 60)
            .await
            .unwrap(),
        "renewed until t+90"
    );
    assert!(
        store
            .try_acquire_sync_lease(e, "b", t + Duration::seconds(91), 60)
            .await
            .unwrap(),
        "expired: b takes over"
    );
    store.release_sync_lease(e, "a").await.unwrap();
    assert!(
        !store
            .try_acquire_sync_lease(e, "a", t + Duration::seconds(92), 60)
            .await
            .unwrap(),
        "a cannot release b's lease"
    );
    store.release_sync_lease(e, "b").await.unwrap();
    assert!(
        store
            .try_acquire_sync_lease(e, "a", t + Duration::seconds(93), 60)
            .await
            .unwrap()
    );

    let r1 = store.start_sync_run(e, "scheduled", "a", t).await.unwrap();
    assert_eq!(
        (r1.outcome.as_str(), r1.pages, r1.finished_at),
        ("running", 0, None)
    );
    let r2 = store.start_sync_run(e, "manual", "b", t).await.unwrap();
    assert!(r2.id > r1.id);
    // a holds the lease until t+153; b has none: b's run is dead, a's is not.
    assert_eq!(
        store
            .end_dead_runs(Some(e), t + Duration::seconds(100), "b stopped")
            .await
            .unwrap(),
        1,
        "b's run"
    );
    let dead = store.get_sync_run(r2.id).await.unwrap();
    assert_eq!(
        (dead.outcome.as_str(), dead.error.as_deref()),
        ("interrupted", Some("b stopped"))
    );
    assert_eq!(store.get_sync_run(r1.id).await.unwrap().outcome, "running");
    let done = store
        .finish_sync_run(r1.id, "failed", Some("Token expired"), t)
        .await
        .unwrap();
    assert_eq!(
        (
            done.outcome.as_str(),
            done.error.as_deref(),
            done.finished_at
        ),
        ("failed", Some("Token expired"), Some(t))
    );
    let runs = store.list_sync_runs(e, 10).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        [r2.id, r1.id]
    );
    assert!(
        store
            .finish_sync_run(SyncRunId::from_inner(999_999), "failed", None, t)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

pub async fn claims_start_or_find_the_run_and_end_dead_ones(store: Arc<dyn Store>) {
    use crate::SyncClaim;
    let e = entry(&store, "e").await;
    let f = entry(&store, "f").await;
    let t = at_secs(now());
    let secs = Duration::seconds;
    let claim = |entry: EntryId, holder: &'static str, at: OffsetDateTime| {
        let store = store.clone();
        async move {
            store
                .claim_sync_run(entry, "manual", holder, at, 60, "its instance stopped")
                .await
                .unwrap()
        }
    };
    let SyncClaim::Started(r1) = claim(e, "a", t).await else {
        panic!("a starts")
    };
    assert_eq!(
        (r1.outcome.as_str(), r1.holder.as_str(), r1.trigger.as_str()),
        ("running", "a", "manual")
    );
    assert_eq!(
        claim(e, "b", t + secs(10)).await,
        SyncClaim::Running(r1.clone()),
        "a's lease is alive: b gets a's run"
    );
    // a stops renewing: once its lease lapsed, b's claim ends a's run and starts its own.
    let SyncClaim::Started(r2) = claim(e, "b", t + secs(61)).await else {
        panic!("b takes over")
    };
    let dead = store.get_sync_run(r1.id).await.unwrap();
    assert_eq!(
        (
            dead.outcome.as_str(),
            dead.error.as_deref(),
            dead.finished_at
        ),
        (
            "interrupted",
            Some("its instance stopped"),
            Some(t + secs(61))
        )
    );
    // A finished run whose holder still has the lease: nothing to show, the lease is held.
    store
        .finish_sync_run(r2.id, "succeeded", None, t + secs(62))
        .await
        .unwrap();
    assert_eq!(
        claim(e, "c", t + secs(63)).await,
        SyncClaim::Held {
            holder: "b".to_string()
        }
    );
    assert_eq!(
        store
            .end_dead_runs(Some(e), t + secs(63), "x")
            .await
            .unwrap(),
        0,
        "a finished run is not touched"
    );
    assert_eq!(
        store.get_sync_run(r2.id).await.unwrap().outcome,
        "succeeded"
    );
    store.release_sync_lease(e, "b").await.unwrap();

    // A store one process serves, at start-up: every lease and every running run is the
    // previous process's.
    let SyncClaim::Started(r3) = claim(e, "c", t + secs(64)).await else {
        panic!("c starts e")
    };
    let SyncClaim::Started(r4) = claim(f, "c", t + secs(64)).await else {
        panic!("c starts f")
    };
    assert_eq!(
        store
            .end_dead_runs(None, t + secs(65), "restart")
            .await
            .unwrap(),
        0,
        "c's leases are alive"
    );
    assert_eq!(store.clear_sync_leases().await.unwrap(), 2);
    assert_eq!(
        store
            .end_dead_runs(None, t + secs(65), "restart")
            .await
            .unwrap(),
        2
    );
    for id in [r3.id, r4.id] {
        let run = store.get_sync_run(id).await.unwrap();
        assert_eq!(
            (run.outcome.as_str(), run.error.as_deref()),
            ("interrupted", Some("restart"))
        );
    }

    // Claims at the same moment: exactly one starts, the other is answered that run.
    for round in 0..5_i64 {
        let at = t + secs(100 + round * 100);
        let (x, y) = tokio::join!(claim(e, "x", at), claim(e, "y", at));
        let (started, seen) = match (x, y) {
            (SyncClaim::Started(s), SyncClaim::Running(r))
            | (SyncClaim::Running(r), SyncClaim::Started(s)) => (s, r),
            other => panic!("one starts, the other sees it: {other:?}"),
        };
        assert_eq!(started, seen);
        store
            .finish_sync_run(started.id, "succeeded", None, at)
            .await
            .unwrap();
        store.release_sync_lease(e, &started.holder).await.unwrap();
    }
}

pub async fn device_listing_orders_prefixes_and_cursors(store: Arc<dyn Store>) {
    use crate::{Authenticated, DeviceCursor, DeviceOrder, NewDeviceGroup, TokenUpdated};
    let e = entry(&store, "e").await;
    let f = entry(&store, "f").await;
    let run = store
        .start_sync_run(e, "manual", "me", now())
        .await
        .unwrap();
    let with_model = |serial: &str, model: &str| AbmDevice {
        model: model.to_string(),
        ..device(serial, None, None)
    };
    apply(
        &store,
        e,
        run.id,
        &[
            with_model("C02A", "iMac"),
            with_model("C02B", "iPhone"),
            with_model("C03A", "iMac"),
            with_model("C0ZZ", "iPad"),
            with_model("D111", "iPhone"),
        ],
        &state("c", SyncPhase::Fetch),
    )
    .await;
    let run_f = store
        .start_sync_run(f, "manual", "me", now())
        .await
        .unwrap();
    apply(
        &store,
        f,
        run_f.id,
        &[with_model("C02A", "iMac")],
        &state("c", SyncPhase::Fetch),
    )
    .await;
    let keys = |v: Vec<crate::StoredAbmDevice>| {
        v.into_iter()
            .map(|d| {
                format!(
                    "{}{}",
                    d.device.serial_number,
                    if d.entry_id == f { "/f" } else { "" }
                )
            })
            .collect::<Vec<_>>()
    };
    // Serial prefixes are ranges: C02 is not C03, C0 is C02.., C03.. and C0ZZ.
    let prefix = |p: &str| DeviceQuery {
        serial_prefix: Some(p.to_string()),
        limit: 100,
        ..DeviceQuery::default()
    };
    let mut got = keys(store.list_abm_devices(&prefix("C02")).await.unwrap());
    got.sort();
    assert_eq!(got, ["C02A", "C02A/f", "C02B"]);
    assert_eq!(
        store.list_abm_devices(&prefix("C0")).await.unwrap().len(),
        5
    );
    assert_eq!(
        keys(store.list_abm_devices(&prefix("C0Z")).await.unwrap()),
        ["C0ZZ"]
    );
    assert!(
        store
            .list_abm_devices(&prefix("Z"))
            .await
            .unwrap()
            .is_empty()
    );

    // Every order pages through every device exactly once, both ways, with cursors.
    for order in [
        DeviceOrder::Serial,
        DeviceOrder::Model,
        DeviceOrder::Updated,
    ] {
        for descending in [false, true] {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let page = store
                    .list_abm_devices(&DeviceQuery {
                        order,
                        descending,
                        after: after.clone(),
                        limit: 2,
                        ..DeviceQuery::default()
                    })
                    .await
                    .unwrap();
                after = page.last().map(DeviceCursor::after);
                let n = page.len();
                seen.extend(page);
                if n < 2 {
                    break;
                }
            }
            assert_eq!(seen.len(), 6, "{order:?} desc={descending}");
            let sorted = {
                let mut s = seen.clone();
                s.sort_by(|a, b| {
                    let key = |d: &crate::StoredAbmDevice| match order {
                        DeviceOrder::Serial => String::new(),
                        DeviceOrder::Model => d.device.model.clone(),
                        DeviceOrder::Updated => {
                            format!("{:?}", d.updated_at.unix_timestamp_nanos())
                        }
                    };
                    (key(a), &a.device.serial_number, a.entry_id).cmp(&(
                        key(b),
                        &b.device.serial_number,
                        b.entry_id,
                    ))
                });
                if descending {
                    s.reverse();
                }
                s
            };
            assert_eq!(keys(seen), keys(sorted), "{order:?} desc={descending}");
        }
    }
    let by_model = store
        .list_abm_devices(&DeviceQuery {
            order: DeviceOrder::Model,
            entry_id: Some(e),
            limit: 100,
            ..DeviceQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        keys(by_model),
        ["C02A", "C03A", "C0ZZ", "C02B", "D111"],
        "iMac < iPad < iPhone, then serial"
    );

    // Static group members and enrolled devices.
    let group = store
        .create_group(
            &NewDeviceGroup {
                id: GroupId::new_v4(),
                name: "loaners".to_string(),
                rule: None,
                profile_id: None,
                priority: 100,
            },
            &super::audit("group.create", "loaners"),
        )
        .await
        .unwrap();
    store
        .add_group_members(
            group.id,
            &["C02B".to_string(), "D111".to_string()],
            &super::audit("group.add", "loaners"),
        )
        .await
        .unwrap();
    let members = DeviceQuery {
        group_id: Some(group.id),
        limit: 100,
        ..DeviceQuery::default()
    };
    assert_eq!(
        keys(store.list_abm_devices(&members).await.unwrap()),
        ["C02B", "D111"]
    );
    let at = now();
    store
        .record_authenticate(&Authenticated {
            udid: "UDID-1".to_string(),
            serial_number: Some("D111".to_string()),
            topic: "com.apple.mgmt.test".to_string(),
            identity_fingerprint: None,
            device_info: serde_json::json!({}),
            at,
        })
        .await
        .unwrap();
    store
        .record_authenticate(&Authenticated {
            udid: "UDID-2".to_string(),
            serial_number: Some("C02B".to_string()),
            topic: "com.apple.mgmt.test".to_string(),
            identity_fingerprint: None,
            device_info: serde_json::json!({}),
            at,
        })
        .await
        .unwrap();
    store
        .record_token_update(&TokenUpdated {
            udid: "UDID-1".to_string(),
            topic: "com.apple.mgmt.test".to_string(),
            push_token: vec![1],
            push_magic: "magic".to_string(),
            unlock_token: None,
            awaiting_configuration: false,
            at,
        })
        .await
        .unwrap();
    let enrolled = DeviceQuery {
        enrolled: Some(true),
        limit: 100,
        ..DeviceQuery::default()
    };
    assert_eq!(
        keys(store.list_abm_devices(&enrolled).await.unwrap()),
        ["D111"]
    );
    let not_enrolled = DeviceQuery {
        enrolled: Some(false),
        group_id: Some(group.id),
        ..enrolled
    };
    assert_eq!(
        keys(store.list_abm_devices(&not_enrolled).await.unwrap()),
        ["C02B"]
    );
    let mut states = store
        .enrollment_states(&["D111".to_string(), "C02B".to_string(), "C02A".to_string()])
        .await
        .unwrap();
    states.sort_by(|a, b| a.serial.cmp(&b.serial));
    let states: Vec<(&str, &str)> = states
        .iter()
        .map(|s| (s.serial.as_str(), s.status.as_str()))
        .collect();
    assert_eq!(states, [("C02B", "authenticated"), ("D111", "enrolled")]);
}
