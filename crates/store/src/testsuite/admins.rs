//! Conformance cases for [`crate::AdminStore`].

use std::sync::Arc;

use time::Duration;
use uuid::Uuid;

use super::{actions, audit};
use crate::{
    NewAdmin, NewSession, SignInFailures, SignInLimits, SignInReservation, Store, StoreError, now,
};

fn new_admin(name: &str) -> NewAdmin {
    NewAdmin {
        id: Uuid::new_v4(),
        name: name.to_string(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$salt${name}"),
        created_by: "admin-token".to_string(),
        created_at: now(),
    }
}

fn new_session(admin_id: Uuid, hash: &str) -> NewSession {
    let at = now();
    NewSession {
        token_hash: hash.to_string(),
        admin_id,
        csrf_token: format!("csrf-{hash}"),
        created_at: at,
        expires_at: at + Duration::hours(12),
        attempt: None,
    }
}

/// Limits so high they never refuse: for arranging failures.
fn no_limits(since: time::OffsetDateTime) -> SignInLimits {
    SignInLimits {
        since,
        per_name: 1000,
        per_client: 1000,
    }
}

/// Records a failed attempt (a reservation whose password was wrong).
async fn fail(store: &Arc<dyn Store>, name: &str, client: &str, at: time::OffsetDateTime) -> i64 {
    let reserved = store
        .reserve_sign_in_attempt(name, client, at, no_limits(at - Duration::hours(1)))
        .await
        .unwrap();
    match reserved {
        SignInReservation::Reserved { attempt } => attempt,
        SignInReservation::Refused(f) => panic!("refused under no limits: {f:?}"),
    }
}

pub async fn admins_create_find_list_delete(store: Arc<dyn Store>) {
    let a = new_admin("alice");
    let created = store
        .create_admin(&a, &audit("admin.create", "alice"))
        .await
        .unwrap();
    assert_eq!(
        (created.id, created.name.as_str(), &created.password_hash),
        (a.id, "alice", &a.password_hash)
    );
    assert_eq!(created.last_sign_in_at, None);
    let dup = store
        .create_admin(&new_admin("alice"), &audit("admin.create", "alice"))
        .await
        .expect_err("same name twice");
    assert!(dup.is_conflict(), "{dup:?}");
    store
        .create_admin(&new_admin("bob"), &audit("admin.create", "bob"))
        .await
        .unwrap();
    assert_eq!(
        store.find_admin("alice").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(store.find_admin("carol").await.unwrap(), None);
    let names: Vec<String> = store
        .list_admins()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    // Deleting ends the admin's sessions.
    store
        .open_session(
            &new_session(a.id, "h-alice"),
            "alice",
            &audit("admin.sign_in", "alice"),
        )
        .await
        .unwrap();
    let deleted = store
        .delete_admin("alice", &audit("admin.delete", "alice"))
        .await
        .unwrap();
    assert_eq!(deleted.id, a.id);
    assert_eq!(store.find_session("h-alice").await.unwrap(), None);
    let again = store
        .delete_admin("alice", &audit("admin.delete", "alice"))
        .await;
    assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
    assert_eq!(
        actions(&store).await,
        [
            "admin.create",
            "admin.create",
            "admin.sign_in",
            "admin.delete"
        ]
    );
}

pub async fn sessions_open_touch_close_and_purge(store: Arc<dyn Store>) {
    let a = new_admin("alice");
    store
        .create_admin(&a, &audit("admin.create", "alice"))
        .await
        .unwrap();
    fail(&store, "alice", "10.0.0.1", now()).await;
    // The successful attempt's own reservation is deleted with the session's opening.
    let this_one = fail(&store, "alice", "10.0.0.1", now()).await;
    let s = NewSession {
        attempt: Some(this_one),
        ..new_session(a.id, "h1")
    };
    store
        .open_session(&s, "alice", &audit("admin.sign_in", "alice"))
        .await
        .unwrap();
    let found = store.find_session("h1").await.unwrap().unwrap();
    assert_eq!(found.admin_name, "alice");
    assert_eq!(found.admin_id, a.id);
    assert_eq!(found.csrf_token, "csrf-h1");
    assert_eq!(
        (found.created_at, found.last_seen_at, found.expires_at),
        (s.created_at, s.created_at, s.expires_at)
    );
    assert_eq!(
        store
            .find_admin("alice")
            .await
            .unwrap()
            .unwrap()
            .last_sign_in_at,
        Some(s.created_at)
    );
    // A successful sign-in forgets the name's failures.
    let failures = store
        .sign_in_failures("alice", "10.0.0.1", now() - Duration::hours(1), 10)
        .await
        .unwrap();
    assert!(failures.by_name.is_empty(), "{failures:?}");
    assert_eq!(
        failures.by_client.len(),
        1,
        "the earlier failure still counts for the client, the successful attempt does not"
    );

    // Touches are rate limited.
    let soon = s.created_at + Duration::seconds(10);
    store
        .touch_session("h1", soon, Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(
        store
            .find_session("h1")
            .await
            .unwrap()
            .unwrap()
            .last_seen_at,
        s.created_at
    );
    let later = s.created_at + Duration::seconds(90);
    store
        .touch_session("h1", later, Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(
        store
            .find_session("h1")
            .await
            .unwrap()
            .unwrap()
            .last_seen_at,
        later
    );

    // Purge by absolute end and by idleness.
    store
        .open_session(
            &new_session(a.id, "h2"),
            "alice",
            &audit("admin.sign_in", "alice"),
        )
        .await
        .unwrap();
    let purged = store
        .purge_sessions(s.created_at, s.created_at - Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(purged, 0, "none past its end, none idle");
    let purged = store
        .purge_sessions(s.created_at, later - Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(purged, 1, "h2 idle since it opened; h1 used later");
    assert!(store.find_session("h1").await.unwrap().is_some());
    let purged = store
        .purge_sessions(s.expires_at + Duration::seconds(1), s.created_at)
        .await
        .unwrap();
    assert_eq!(purged, 1, "h1 past its absolute end");

    store
        .open_session(
            &new_session(a.id, "h3"),
            "alice",
            &audit("admin.sign_in", "alice"),
        )
        .await
        .unwrap();
    assert!(
        store
            .close_session("h3", Some(&audit("admin.sign_out", "alice")))
            .await
            .unwrap()
    );
    assert!(
        !store
            .close_session("h3", Some(&audit("admin.sign_out", "alice")))
            .await
            .unwrap(),
        "closed twice"
    );
    assert_eq!(store.find_session("h3").await.unwrap(), None);
    let acts = actions(&store).await;
    assert_eq!(
        acts.iter().filter(|a| *a == "admin.sign_out").count(),
        1,
        "{acts:?}"
    );
}

pub async fn sign_in_failures_count_per_name_and_client(store: Arc<dyn Store>) {
    let t0 = now() - Duration::minutes(30);
    for i in 0..3 {
        fail(&store, "alice", "10.0.0.1", t0 + Duration::minutes(i)).await;
    }
    for i in 0..4 {
        fail(&store, "bob", "10.0.0.1", t0 + Duration::minutes(20 + i)).await;
    }
    fail(&store, "alice", "10.0.0.2", t0 + Duration::minutes(25)).await;
    let f = store
        .sign_in_failures("alice", "10.0.0.1", t0, 10)
        .await
        .unwrap();
    assert_eq!(f.by_name.len(), 4);
    assert_eq!(f.by_client.len(), 7);
    assert_eq!(f.by_name[0], t0 + Duration::minutes(25), "newest first");
    let recent = store
        .sign_in_failures("alice", "10.0.0.1", t0 + Duration::minutes(15), 2)
        .await
        .unwrap();
    assert_eq!(recent.by_name, [t0 + Duration::minutes(25)]);
    assert_eq!(
        recent.by_client,
        [t0 + Duration::minutes(23), t0 + Duration::minutes(22)],
        "limited, newest first"
    );
    let purged = store
        .purge_sign_in_failures(t0 + Duration::minutes(20))
        .await
        .unwrap();
    assert_eq!(purged, 3);
    let f = store
        .sign_in_failures("alice", "10.0.0.1", t0, 10)
        .await
        .unwrap();
    assert_eq!((f.by_name.len(), f.by_client.len()), (1, 4));
}

/// Thirty reservations started at once (`who(i)` is the name and client of the i-th).
async fn race(
    store: &Arc<dyn Store>,
    who: impl Fn(usize) -> (String, String),
    limits: SignInLimits,
) -> Vec<SignInReservation> {
    const TRIES: usize = 30;
    let at = limits.since + Duration::minutes(15);
    let barrier = Arc::new(tokio::sync::Barrier::new(TRIES));
    let tasks: Vec<_> = (0..TRIES)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            let (name, client) = who(i);
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .reserve_sign_in_attempt(&name, &client, at, limits)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

pub async fn sign_in_reservations_respect_the_limits(store: Arc<dyn Store>) {
    let at = now();
    let limits = SignInLimits {
        since: at - Duration::minutes(15),
        per_name: 5,
        per_client: 20,
    };
    // Older failures are outside the window and count for nothing.
    fail(&store, "alice", "10.0.0.1", at - Duration::minutes(20)).await;
    let reserved = |r: &SignInReservation| matches!(r, SignInReservation::Reserved { .. });

    // Thirty concurrent reservations for one name, from thirty clients: exactly five.
    let answers = race(
        &store,
        |i| ("alice".to_string(), format!("10.1.0.{i}")),
        limits,
    )
    .await;
    assert_eq!(
        answers.iter().filter(|r| reserved(r)).count(),
        5,
        "{answers:?}"
    );
    for refused in answers.iter().filter(|r| !reserved(r)) {
        let SignInReservation::Refused(f) = refused else {
            unreachable!()
        };
        assert_eq!(
            f.by_name,
            vec![at; 5],
            "the refusal says which failures count"
        );
    }
    let f = store
        .sign_in_failures("alice", "10.1.0.0", limits.since, 100)
        .await
        .unwrap();
    assert_eq!(f.by_name.len(), 5, "refused attempts record nothing");

    // Thirty concurrent reservations from one client, for thirty names: exactly twenty.
    let answers = race(
        &store,
        |i| (format!("guess{i}"), "10.2.0.1".to_string()),
        limits,
    )
    .await;
    assert_eq!(answers.iter().filter(|r| reserved(r)).count(), 20);

    // A withdrawn attempt (never checked) counts for nobody; withdrawing twice is harmless.
    let SignInReservation::Reserved { attempt } = store
        .reserve_sign_in_attempt("bob", "10.3.0.1", at, limits)
        .await
        .unwrap()
    else {
        panic!("bob has no failures");
    };
    store.release_sign_in_attempt(attempt).await.unwrap();
    store.release_sign_in_attempt(attempt).await.unwrap();
    assert_eq!(
        store
            .sign_in_failures("bob", "10.3.0.1", limits.since, 100)
            .await
            .unwrap(),
        SignInFailures::default()
    );
}
