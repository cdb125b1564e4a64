//! The conformance suite every backend runs (feature `testsuite`).
//!
//! A backend's `tests/conformance.rs` expands [`conformance_tests!`](crate::conformance_tests)
//! with a function that makes a fresh, empty, migrated store: one test per case.

// This module is test code compiled into the library for the backends' tests: failing loudly
// with a panic is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use time::Duration;
use uuid::Uuid;

use crate::{
    AbmAccount, AbmEntry, EntryId, NewAbmEntry, NewApiKey, NewAuditEvent, ServerTokenRecord, Store,
    StoreError, TokenProblem, now,
};

/// A fresh, empty, migrated store for one case, and what must live as long as it (its
/// temporary directory, say).
pub struct Fresh {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Dropped when the case ends.
    pub keep: Box<dyn std::any::Any + Send>,
}

/// One `#[tokio::test]` per conformance case, each on a fresh store: a backend's
/// `tests/conformance.rs` says `guardmdm_store::conformance_tests!(make);`, where `make` is an
/// `async fn() -> Option<Fresh>`, `None` when the backend cannot run here (it says why; the
/// case passes without running). A failing case fails alone, under its own name.
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@cases $make;
            basics::backend_answers,
            basics::migrations_are_all_applied_and_known,
            basics::meta_init_is_first_writer_wins,
            basics::leases_have_one_holder_until_they_lapse,
            basics::abm_entries_create_get_list,
            basics::abm_entry_names_are_unique,
            basics::abm_settings_update,
            basics::abm_server_token_install_and_renew_keep_the_entry,
            basics::abm_problem_set_and_clear,
            basics::abm_delete,
            basics::abm_unknown_names_are_not_found,
            basics::api_keys_lifecycle,
            basics::api_key_touch_is_rate_limited,
            basics::audit_pagination,
            admins::admins_create_find_list_delete,
            admins::sessions_open_touch_close_and_purge,
            admins::sign_in_failures_count_per_name_and_client,
            admins::sign_in_reservations_respect_the_limits,
            devices::pages_apply_latest_wins_remove_and_restore,
            devices::reconcile_marks_unseen_devices_removed,
            devices::staged_pages_are_listed_once_merged,
            devices::a_page_is_all_or_nothing_even_when_dropped_midway,
            devices::device_listing_filters_and_pages,
            devices::device_listing_by_assignment_state,
            devices::device_listing_orders_prefixes_and_cursors,
            devices::runs_and_leases,
            devices::claims_start_or_find_the_run_and_end_dead_ones,
            assignment::profiles_create_update_and_keep_versions,
            assignment::profile_delete_is_refused_while_used,
            assignment::definitions_are_idempotent_per_entry_profile_and_version,
            assignment::os_defaults_set_replace_and_clear,
            assignment::groups_create_update_and_delete,
            assignment::group_members_in_bulk,
            assignment::device_profiles_in_bulk,
            assignment::serial_presence_answers_in_input_order,
            assignment::assignment_config_is_one_snapshot,
            assignment::assignment_inputs_join_and_page,
            assignment::assignments_write_read_back_and_count,
            assignment::removed_devices_get_removed_records,
            assignment::passes_keep_the_last_per_entry,
            assignment::incremental_candidates_are_changed_unsettled_or_due,
            mdm::challenges_are_single_use_expire_and_purge,
            mdm::concurrent_consumers_get_a_challenge_once,
            mdm::identities_record_and_look_up,
            mdm::authenticate_then_token_updates,
            mdm::re_enrollment_resets_the_enrollment,
            mdm::enrollment_status_awaiting_and_touch,
            mdm::enrollments_list_filter_and_page,
            mdm::commands_are_first_in_first_out,
            mdm::new_sessions_requeue_sent_and_not_now,
            mdm::command_results_are_recorded_per_device,
            mdm::commands_enqueue_audit_conflict_and_list,
            mdm::open_commands_are_counted_per_device_and_sender,
            mdm::concurrent_next_commands_never_share_one,
            mdm::awaiting_devices_are_listed_counted_and_keep_their_start,
            mdm::release_cancels_open_commands_and_queues_first,
            mdm::secrets_init_first_writer_wins_and_put_replaces,
            os_updates::minimum_os_set_replace_and_clear,
            os_updates::os_update_events_count_per_kind_and_list_newest_first,
        );
    };
    (@cases $make:path; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                if let Some(fresh) = $make().await {
                    $crate::testsuite::$module::$case(fresh.store).await;
                    drop(fresh.keep);
                }
            }
        )*
    };
}

/// The cases of this file, under a module name like the others'.
pub mod basics {
    pub use super::{
        abm_delete, abm_entries_create_get_list, abm_entry_names_are_unique,
        abm_problem_set_and_clear, abm_server_token_install_and_renew_keep_the_entry,
        abm_settings_update, abm_unknown_names_are_not_found, api_key_touch_is_rate_limited,
        api_keys_lifecycle, audit_pagination, backend_answers,
        leases_have_one_holder_until_they_lapse, meta_init_is_first_writer_wins,
        migrations_are_all_applied_and_known,
    };
}

pub mod admins;
pub mod assignment;
pub mod devices;
pub mod mdm;
pub mod os_updates;

/// An audit event of the test actor: `action` on `target`.
pub fn audit(action: &str, target: &str) -> NewAuditEvent {
    NewAuditEvent {
        at: now(),
        actor: "test".to_string(),
        action: action.to_string(),
        target: target.to_string(),
        details: serde_json::json!({ "case": action }),
    }
}

/// A new ABM entry `name` with a placeholder certificate and sealed key.
pub fn new_entry(name: &str) -> NewAbmEntry {
    NewAbmEntry {
        id: EntryId::new_v4(),
        name: name.to_string(),
        certificate_pem: format!(
            "-----BEGIN CERTIFICATE-----\n{name}\n-----END CERTIFICATE-----\n"
        ),
        sealed_private_key: vec![1, 2, 3, 0, 255],
        batch_size: 100,
        abm_url: None,
        created_at: now(),
    }
}

fn account(uuid: &str) -> AbmAccount {
    AbmAccount {
        server_name: format!("Server {uuid}"),
        server_uuid: uuid.to_string(),
        org_name: Some("Example Org".to_string()),
        admin_id: None,
        checked_at: truncated_now_secs(),
    }
}

fn truncated_now_secs() -> time::OffsetDateTime {
    let t = now();
    t.replace_nanosecond(0).unwrap_or(t)
}

fn token(expires_in_days: i64) -> ServerTokenRecord {
    let t = now();
    ServerTokenRecord {
        sealed_token: vec![9; 40],
        expires_at: t + Duration::days(expires_in_days),
        uploaded_at: t,
    }
}

pub(crate) async fn actions(store: &Arc<dyn Store>) -> Vec<String> {
    let mut events = store.list_audit(1000, None).await.expect("list_audit");
    events.reverse();
    events.into_iter().map(|e| e.action).collect()
}

pub async fn backend_answers(store: Arc<dyn Store>) {
    store.ping().await.expect("backend_answers: ping");
    assert!(["sqlite", "postgres"].contains(&store.backend_name()));
}

pub async fn migrations_are_all_applied_and_known(store: Arc<dyn Store>) {
    let status = store.migrations().await.expect("migrations: status");
    assert!(
        !status.known.is_empty(),
        "migrations: the binary carries some"
    );
    assert_eq!(
        status.applied, status.known,
        "migrations: all applied at open"
    );
    assert!(status.failed.is_empty(), "migrations: none failed");
    assert!(status.missing().is_empty(), "migrations: none missing");
    assert!(status.unknown().is_empty(), "migrations: none unknown");
}

pub async fn meta_init_is_first_writer_wins(store: Arc<dyn Store>) {
    assert_eq!(store.get_meta("k").await.unwrap(), None, "meta: unset key");
    assert_eq!(store.init_meta("k", "first").await.unwrap(), "first");
    assert_eq!(
        store.init_meta("k", "second").await.unwrap(),
        "first",
        "meta: first wins"
    );
    assert_eq!(store.get_meta("k").await.unwrap().as_deref(), Some("first"));
}

pub async fn leases_have_one_holder_until_they_lapse(store: Arc<dyn Store>) {
    let t0 = now();
    let later = move |s: i64| t0 + Duration::seconds(s);
    assert!(
        store.claim_lease("acme", "a", t0, later(60)).await.unwrap(),
        "lease: a free lease is taken"
    );
    assert!(
        !store
            .claim_lease("acme", "b", later(30), later(90))
            .await
            .unwrap(),
        "lease: refused while another holder's runs"
    );
    assert!(
        store
            .claim_lease("other", "b", later(30), later(90))
            .await
            .unwrap(),
        "lease: names are independent"
    );
    assert!(
        store
            .claim_lease("acme", "a", later(30), later(120))
            .await
            .unwrap(),
        "lease: the holder extends it"
    );
    assert!(
        !store
            .claim_lease("acme", "b", later(90), later(150))
            .await
            .unwrap(),
        "lease: the extension holds"
    );
    assert!(
        store
            .claim_lease("acme", "b", later(120), later(180))
            .await
            .unwrap(),
        "lease: a lapsed lease is taken over"
    );
    store.release_lease("acme", "a").await.unwrap();
    assert!(
        !store
            .claim_lease("acme", "a", later(121), later(181))
            .await
            .unwrap(),
        "lease: releasing someone else's lease changes nothing"
    );
    store.release_lease("acme", "b").await.unwrap();
    assert!(
        store
            .claim_lease("acme", "a", later(122), later(182))
            .await
            .unwrap(),
        "lease: a released lease is free"
    );
    store.release_lease("acme", "a").await.unwrap();
    let claims = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .claim_lease("race", &format!("h{i}"), later(200), later(260))
                .await
                .unwrap()
        })
    });
    let mut won = 0;
    for claim in claims {
        if claim.await.unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1, "lease: concurrent claims, one winner");
}

pub async fn abm_entries_create_get_list(store: Arc<dyn Store>) {
    let b = new_entry("beta");
    let created = store
        .create_abm_entry(&b, &audit("abm.create", "beta"))
        .await
        .unwrap();
    assert_eq!(created.id, b.id);
    assert_eq!(created.name, "beta");
    assert_eq!(created.certificate_pem, b.certificate_pem);
    assert_eq!(created.sealed_private_key, b.sealed_private_key);
    assert_eq!(created.batch_size, 100);
    assert_eq!(created.abm_url, None);
    assert_eq!(created.server_token, None);
    assert_eq!(created.problem, None);
    assert_eq!(created.account, None);
    assert_eq!(
        created.created_at, b.created_at,
        "timestamps keep microseconds"
    );
    assert_eq!(created.updated_at, b.created_at);
    let mut a = new_entry("alpha");
    a.abm_url = Some("http://127.0.0.1:9/".to_string());
    a.batch_size = 1000;
    store
        .create_abm_entry(&a, &audit("abm.create", "alpha"))
        .await
        .unwrap();
    assert_eq!(store.get_abm_entry("beta").await.unwrap(), created);
    let alpha = store.get_abm_entry("alpha").await.unwrap();
    assert_eq!(alpha.abm_url.as_deref(), Some("http://127.0.0.1:9/"));
    assert_eq!(alpha.batch_size, 1000);
    let names: Vec<String> = store
        .list_abm_entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"], "list is by name");
    assert_eq!(actions(&store).await, ["abm.create", "abm.create"]);
}

pub async fn abm_entry_names_are_unique(store: Arc<dyn Store>) {
    store
        .create_abm_entry(&new_entry("x"), &audit("abm.create", "x"))
        .await
        .unwrap();
    let err = store
        .create_abm_entry(&new_entry("x"), &audit("abm.create", "x"))
        .await
        .expect_err("a second entry named x");
    assert!(err.is_conflict(), "duplicate name: {err:?}");
    assert_eq!(
        actions(&store).await,
        ["abm.create"],
        "no audit for a refused write"
    );
    // Names are compared exactly.
    store
        .create_abm_entry(&new_entry("X"), &audit("abm.create", "X"))
        .await
        .unwrap();
}

pub async fn abm_settings_update(store: Arc<dyn Store>) {
    let e = new_entry("s");
    store
        .create_abm_entry(&e, &audit("abm.create", "s"))
        .await
        .unwrap();
    let later = now() + Duration::seconds(5);
    let updated = store
        .update_abm_settings(
            "s",
            500,
            Some("http://sim.local/"),
            later,
            &audit("abm.set", "s"),
        )
        .await
        .unwrap();
    assert_eq!(updated.batch_size, 500);
    assert_eq!(updated.abm_url.as_deref(), Some("http://sim.local/"));
    assert_eq!(updated.updated_at, later);
    assert_eq!(updated.created_at, e.created_at);
    let cleared = store
        .update_abm_settings("s", 500, None, later, &audit("abm.set", "s"))
        .await
        .unwrap();
    assert_eq!(cleared.abm_url, None);
    assert_eq!(actions(&store).await, ["abm.create", "abm.set", "abm.set"]);
}

pub async fn abm_server_token_install_and_renew_keep_the_entry(store: Arc<dyn Store>) {
    let e = new_entry("t");
    store
        .create_abm_entry(&e, &audit("abm.create", "t"))
        .await
        .unwrap();
    store
        .update_abm_settings("t", 250, Some("http://x/"), now(), &audit("abm.set", "t"))
        .await
        .unwrap();
    let first = token(365);
    // One value: two calls to `account` can straddle a second boundary.
    let first_account = account("uuid-1");
    let installed = store
        .store_server_token("t", &first, Some(&first_account), &audit("abm.upload", "t"))
        .await
        .unwrap();
    assert_eq!(installed.server_token.as_ref(), Some(&first));
    assert_eq!(installed.account.as_ref(), Some(&first_account));
    let problem = TokenProblem {
        kind: "rejected".to_string(),
        message: "re-upload".to_string(),
        since: now(),
    };
    store
        .set_abm_problem("t", Some(&problem), now())
        .await
        .unwrap();
    let mut second = token(300);
    second.sealed_token = vec![7; 50];
    let renewed = store
        .store_server_token("t", &second, None, &audit("abm.upload", "t"))
        .await
        .unwrap();
    assert_eq!(renewed.server_token.as_ref(), Some(&second));
    assert_eq!(
        renewed.problem, None,
        "a new token clears the reported problem"
    );
    assert_eq!(
        renewed.account,
        Some(first_account),
        "a renewal without an account check keeps the last one"
    );
    let AbmEntry {
        id,
        certificate_pem,
        sealed_private_key,
        batch_size,
        abm_url,
        created_at,
        ..
    } = renewed;
    assert_eq!(
        (
            id,
            certificate_pem,
            sealed_private_key,
            batch_size,
            abm_url,
            created_at
        ),
        (
            e.id,
            e.certificate_pem,
            e.sealed_private_key,
            250,
            Some("http://x/".to_string()),
            e.created_at
        ),
        "renewal keeps everything else"
    );
    assert_eq!(
        store.get_abm_entry("t").await.unwrap().server_token,
        Some(second)
    );
}

pub async fn abm_problem_set_and_clear(store: Arc<dyn Store>) {
    store
        .create_abm_entry(&new_entry("p"), &audit("abm.create", "p"))
        .await
        .unwrap();
    let problem = TokenProblem {
        kind: "terms_not_signed".to_string(),
        message: "Accept the new terms in Apple Business Manager".to_string(),
        since: now(),
    };
    store
        .set_abm_problem("p", Some(&problem), now())
        .await
        .unwrap();
    assert_eq!(
        store.get_abm_entry("p").await.unwrap().problem,
        Some(problem)
    );
    store.set_abm_problem("p", None, now()).await.unwrap();
    assert_eq!(store.get_abm_entry("p").await.unwrap().problem, None);
}

pub async fn abm_delete(store: Arc<dyn Store>) {
    store
        .create_abm_entry(&new_entry("d"), &audit("abm.create", "d"))
        .await
        .unwrap();
    store
        .store_server_token("d", &token(10), None, &audit("abm.upload", "d"))
        .await
        .unwrap();
    store
        .delete_abm_entry("d", &audit("abm.delete", "d"))
        .await
        .unwrap();
    assert!(store.get_abm_entry("d").await.unwrap_err().is_not_found());
    assert!(store.list_abm_entries().await.unwrap().is_empty());
    assert_eq!(
        actions(&store).await,
        ["abm.create", "abm.upload", "abm.delete"]
    );
    // The name is free again.
    store
        .create_abm_entry(&new_entry("d"), &audit("abm.create", "d"))
        .await
        .unwrap();
}

pub async fn abm_unknown_names_are_not_found(store: Arc<dyn Store>) {
    let nf = |r: Result<(), StoreError>, what: &str| {
        assert!(matches!(r, Err(StoreError::NotFound)), "{what}: {r:?}");
    };
    nf(store.get_abm_entry("nope").await.map(drop), "get");
    nf(
        store
            .update_abm_settings("nope", 1, None, now(), &audit("a", "nope"))
            .await
            .map(drop),
        "update",
    );
    nf(
        store
            .store_server_token("nope", &token(1), None, &audit("a", "nope"))
            .await
            .map(drop),
        "token",
    );
    nf(store.set_abm_problem("nope", None, now()).await, "problem");
    nf(
        store.delete_abm_entry("nope", &audit("a", "nope")).await,
        "delete",
    );
    assert!(
        actions(&store).await.is_empty(),
        "no audit for failed writes"
    );
}

fn new_key(name: &str, hash: &str) -> NewApiKey {
    NewApiKey {
        id: Uuid::new_v4(),
        name: name.to_string(),
        token_hash: hash.to_string(),
        created_by: "admin-token".to_string(),
        created_at: now(),
    }
}

pub async fn api_keys_lifecycle(store: Arc<dyn Store>) {
    let k = new_key("ci", "hash-1");
    let created = store
        .create_api_key(&k, &audit("api_key.create", "ci"))
        .await
        .unwrap();
    assert_eq!((created.id, created.name.as_str()), (k.id, "ci"));
    assert_eq!(created.created_at, k.created_at);
    assert_eq!((created.last_used_at, created.revoked_at), (None, None));
    let dup = store
        .create_api_key(&new_key("ci", "hash-2"), &audit("api_key.create", "ci"))
        .await
        .expect_err("same name twice");
    assert!(dup.is_conflict(), "{dup:?}");
    assert_eq!(
        store.find_active_api_key("hash-1").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(store.find_active_api_key("hash-x").await.unwrap(), None);
    let at = now();
    let revoked = store
        .revoke_api_key("ci", at, &audit("api_key.revoke", "ci"))
        .await
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(at));
    assert_eq!(
        store.find_active_api_key("hash-1").await.unwrap(),
        None,
        "revoked"
    );
    let again = store
        .revoke_api_key("ci", at, &audit("api_key.revoke", "ci"))
        .await;
    assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
    // A revoked name can be reused; the old key stays listed as revoked.
    store
        .create_api_key(&new_key("ci", "hash-3"), &audit("api_key.create", "ci"))
        .await
        .unwrap();
    let keys = store.list_api_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].revoked_at, Some(at));
    assert_eq!(keys[1].revoked_at, None);
    assert_eq!(
        actions(&store).await,
        ["api_key.create", "api_key.revoke", "api_key.create"]
    );
}

pub async fn api_key_touch_is_rate_limited(store: Arc<dyn Store>) {
    let k = new_key("t", "h");
    store
        .create_api_key(&k, &audit("api_key.create", "t"))
        .await
        .unwrap();
    let t0 = now();
    store.touch_api_key(k.id, t0, 60).await.unwrap();
    let used = |s: Arc<dyn Store>| async move {
        s.find_active_api_key("h")
            .await
            .unwrap()
            .unwrap()
            .last_used_at
    };
    assert_eq!(used(store.clone()).await, Some(t0));
    store
        .touch_api_key(k.id, t0 + Duration::seconds(30), 60)
        .await
        .unwrap();
    assert_eq!(used(store.clone()).await, Some(t0), "within the interval");
    let t2 = t0 + Duration::seconds(61);
    store.touch_api_key(k.id, t2, 60).await.unwrap();
    assert_eq!(used(store.clone()).await, Some(t2));
    store.touch_api_key(Uuid::new_v4(), t2, 60).await.unwrap();
}

pub async fn audit_pagination(store: Arc<dyn Store>) {
    for i in 0..5 {
        store
            .create_abm_entry(
                &new_entry(&format!("e{i}")),
                &audit("abm.create", &format!("e{i}")),
            )
            .await
            .unwrap();
    }
    let page = store.list_audit(2, None).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.target.as_str()).collect::<Vec<_>>(),
        ["e4", "e3"]
    );
    assert_eq!(page[0].actor, "test");
    assert_eq!(page[0].details, serde_json::json!({ "case": "abm.create" }));
    let next = store.list_audit(10, Some(page[1].id)).await.unwrap();
    assert_eq!(
        next.iter().map(|e| e.target.as_str()).collect::<Vec<_>>(),
        ["e2", "e1", "e0"]
    );
    assert!(next[0].id < page[1].id);
}
