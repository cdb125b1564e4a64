//! Conformance cases for [`crate::MdmStore`].

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;
use time::{Duration, OffsetDateTime};
use tokio::sync::Barrier;

use super::{actions, audit};
use crate::StoredText;
use crate::{
    Authenticated, CommandStatus, EnrollChallenge, Enrollment, EnrollmentQuery, EnrollmentStatus,
    IssuedIdentity, MdmCommand, NewCommand, Store, StoreError, TokenUpdated, now,
};

const TOPIC: &str = "com.apple.mgmt.External.0f1e2d3c";

fn challenge(hash: &str, udid: &str, created_at: OffsetDateTime, ttl: Duration) -> EnrollChallenge {
    EnrollChallenge {
        challenge_hash: hash.to_string(),
        serial_number: format!("SER-{udid}"),
        udid: udid.to_string(),
        profile: Some("default".to_string()),
        created_at,
        expires_at: created_at + ttl,
        used_at: None,
    }
}

fn authenticate(udid: &str, serial: Option<&str>, at: OffsetDateTime) -> Authenticated {
    Authenticated {
        udid: udid.to_string(),
        serial_number: serial.map(str::to_string),
        topic: TOPIC.to_string(),
        identity_fingerprint: Some(format!("fp-{udid}")),
        device_info: json!({ "OSVersion": "18.0", "ProductName": "iPhone17,1", "udid": udid }),
        at,
    }
}

fn token_update(udid: &str, n: u8, unlock: Option<Vec<u8>>, at: OffsetDateTime) -> TokenUpdated {
    TokenUpdated {
        udid: udid.to_string(),
        topic: TOPIC.to_string(),
        push_token: vec![n; 32],
        push_magic: format!("magic-{n}"),
        unlock_token: unlock,
        awaiting_configuration: n % 2 == 1,
        at,
    }
}

fn command(uuid: &str, udid: &str, at: OffsetDateTime) -> NewCommand {
    NewCommand {
        uuid: uuid.to_string(),
        udid: udid.to_string(),
        request_type: "DeviceInformation".to_string(),
        payload: format!(
            "<plist><dict><key>CommandUUID</key><string>{uuid}</string></dict></plist>"
        )
        .into_bytes(),
        created_by: "admin".to_string(),
        at,
    }
}

async fn enqueue(store: &Arc<dyn Store>, uuid: &str, udid: &str, at: OffsetDateTime) {
    store
        .enqueue_command(&command(uuid, udid, at), None)
        .await
        .unwrap();
}

/// `next_command` answered with `uuid` (or nothing, for `None`).
async fn next_is(
    store: &Arc<dyn Store>,
    udid: &str,
    new_session: bool,
    at: OffsetDateTime,
    uuid: Option<&str>,
    what: &str,
) -> Option<MdmCommand> {
    let next = store.next_command(udid, new_session, at).await.unwrap();
    assert_eq!(next.as_ref().map(|c| c.uuid.as_str()), uuid, "{what}");
    if let Some(c) = &next {
        assert_eq!(c.udid, udid, "{what}: the device's own command");
        assert_eq!(c.status, CommandStatus::Sent, "{what}: marked sent");
        assert_eq!(c.updated_at, at, "{what}: updated_at");
        assert_eq!(
            store.command(&c.uuid).await.unwrap().as_ref(),
            Some(c),
            "{what}: as stored"
        );
    }
    next
}

async fn status_of(store: &Arc<dyn Store>, uuid: &str) -> &'static str {
    store.command(uuid).await.unwrap().unwrap().status.as_str()
}

async fn udids(store: &Arc<dyn Store>, query: EnrollmentQuery) -> Vec<String> {
    store
        .list_enrollments(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.udid)
        .collect()
}

pub async fn challenges_are_single_use_expire_and_purge(store: Arc<dyn Store>) {
    let t = now();
    let live = challenge("h-live", "U1", t, Duration::minutes(10));
    store.create_enroll_challenge(&live).await.unwrap();
    let dup = store
        .create_enroll_challenge(&live)
        .await
        .expect_err("the same challenge twice");
    assert!(dup.is_conflict(), "duplicate challenge: {dup:?}");

    assert_eq!(
        store
            .consume_enroll_challenge("h-unknown", t)
            .await
            .unwrap(),
        None,
        "an unknown challenge"
    );
    let used_at = t + Duration::seconds(1);
    let used = store
        .consume_enroll_challenge("h-live", used_at)
        .await
        .unwrap()
        .expect("first use");
    assert_eq!(
        used,
        EnrollChallenge {
            used_at: Some(used_at),
            ..live.clone()
        },
        "the challenge as stored, now used"
    );
    assert_eq!(
        store
            .consume_enroll_challenge("h-live", used_at + Duration::seconds(1))
            .await
            .unwrap(),
        None,
        "second use"
    );

    // Valid up to (not including) expires_at.
    let short = challenge("h-short", "U2", t, Duration::seconds(60));
    let edge = challenge("h-edge", "U3", t, Duration::seconds(60));
    store.create_enroll_challenge(&short).await.unwrap();
    store.create_enroll_challenge(&edge).await.unwrap();
    assert_eq!(
        store
            .consume_enroll_challenge("h-short", short.expires_at)
            .await
            .unwrap(),
        None,
        "at its expiry"
    );
    assert_eq!(
        store
            .consume_enroll_challenge("h-short", short.expires_at + Duration::seconds(1))
            .await
            .unwrap(),
        None,
        "after its expiry"
    );
    let just_in_time = edge.expires_at - Duration::microseconds(1);
    assert_eq!(
        store
            .consume_enroll_challenge("h-edge", just_in_time)
            .await
            .unwrap()
            .map(|c| c.used_at),
        Some(Some(just_in_time)),
        "a microsecond before its expiry"
    );

    let old = challenge("h-old", "U4", t - Duration::hours(2), Duration::hours(1));
    let spare = challenge("h-spare", "U5", t, Duration::minutes(10));
    store.create_enroll_challenge(&old).await.unwrap();
    store.create_enroll_challenge(&spare).await.unwrap();
    // Expired before t+61s: h-short, h-edge (used or not) and h-old.
    assert_eq!(
        store
            .purge_enroll_challenges(t + Duration::seconds(61))
            .await
            .unwrap(),
        3,
        "purges the expired ones"
    );
    assert_eq!(
        store
            .purge_enroll_challenges(t + Duration::seconds(61))
            .await
            .unwrap(),
        0,
        "nothing left to purge"
    );
    assert_eq!(
        store
            .consume_enroll_challenge("h-spare", t + Duration::seconds(2))
            .await
            .unwrap()
            .map(|c| c.udid),
        Some("U5".to_string()),
        "an unexpired challenge survives the purge"
    );
    // The two unexpired ones (one used, one now used) were kept until they expire.
    assert_eq!(
        store
            .purge_enroll_challenges(t + Duration::minutes(11))
            .await
            .unwrap(),
        2,
        "used but unexpired challenges are kept until they expire"
    );
}

pub async fn concurrent_consumers_get_a_challenge_once(store: Arc<dyn Store>) {
    const CONSUMERS: usize = 16;
    let t = now();
    for round in 0..5 {
        let hash = format!("h-race-{round}");
        store
            .create_enroll_challenge(&challenge(&hash, "U1", t, Duration::minutes(5)))
            .await
            .unwrap();
        let barrier = Arc::new(Barrier::new(CONSUMERS));
        let tasks: Vec<_> = (0..CONSUMERS)
            .map(|i| {
                let store = store.clone();
                let barrier = barrier.clone();
                let hash = hash.clone();
                let at = t + Duration::microseconds(i64::try_from(i).unwrap());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.consume_enroll_challenge(&hash, at).await.unwrap()
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            if let Some(c) = task.await.unwrap() {
                winners.push(c);
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one of {CONSUMERS} concurrent consumers gets the challenge"
        );
        assert_eq!(winners[0].challenge_hash, hash);
        assert!(winners[0].used_at.is_some());
    }
}

pub async fn identities_record_and_look_up(store: Arc<dyn Store>) {
    let t = now();
    let identity = IssuedIdentity {
        fingerprint: "ab".repeat(32),
        cert_serial: "0123456789abcdef".to_string(),
        udid: "U1".to_string(),
        serial_number: "SER1".to_string(),
        issued_at: t,
        not_after: t + Duration::days(365),
    };
    store.record_identity(&identity).await.unwrap();
    let other = IssuedIdentity {
        fingerprint: "cd".repeat(32),
        udid: "U2".to_string(),
        ..identity.clone()
    };
    store.record_identity(&other).await.unwrap();
    assert_eq!(
        store.identity(&identity.fingerprint).await.unwrap(),
        Some(identity.clone())
    );
    assert_eq!(
        store.identity(&other.fingerprint).await.unwrap(),
        Some(other)
    );
    assert_eq!(store.identity(&"ef".repeat(32)).await.unwrap(), None);
    let dup = store
        .record_identity(&IssuedIdentity {
            udid: "U3".to_string(),
            ..identity.clone()
        })
        .await
        .expect_err("the same fingerprint twice");
    assert!(dup.is_conflict(), "duplicate fingerprint: {dup:?}");
    assert_eq!(
        store.identity(&identity.fingerprint).await.unwrap(),
        Some(identity),
        "the refused write changed nothing"
    );
}

pub async fn authenticate_then_token_updates(store: Arc<dyn Store>) {
    let t1 = now();
    let auth = authenticate("U1", Some("SER1"), t1);
    let authenticated = store.record_authenticate(&auth).await.unwrap();
    let expected = Enrollment {
        udid: "U1".to_string(),
        serial_number: Some("SER1".to_string()),
        status: EnrollmentStatus::Authenticated,
        topic: Some(TOPIC.to_string()),
        identity_fingerprint: Some("fp-U1".to_string()),
        push_token: None,
        push_magic: None,
        unlock_token: None,
        awaiting_configuration: false,
        awaiting_since: None,
        device_info: auth.device_info.clone(),
        enrolled_at: None,
        last_seen_at: t1,
        created_at: t1,
        updated_at: t1,
    };
    assert_eq!(authenticated, expected, "Authenticate");
    assert_eq!(
        store.enrollment("U1").await.unwrap(),
        Some(expected.clone())
    );

    let t2 = t1 + Duration::seconds(1);
    let (enrolled, first) = store
        .record_token_update(&token_update("U1", 1, Some(vec![7; 300]), t2))
        .await
        .unwrap();
    assert!(first, "the first TokenUpdate");
    let expected = Enrollment {
        status: EnrollmentStatus::Enrolled,
        push_token: Some(vec![1; 32]),
        push_magic: Some("magic-1".to_string()),
        unlock_token: Some(vec![7; 300]),
        awaiting_configuration: true,
        awaiting_since: Some(t2),
        enrolled_at: Some(t2),
        last_seen_at: t2,
        updated_at: t2,
        ..expected
    };
    assert_eq!(enrolled, expected, "first TokenUpdate");
    assert_eq!(
        store.enrollment("U1").await.unwrap(),
        Some(expected.clone())
    );

    let t3 = t2 + Duration::seconds(1);
    let mut update = token_update("U1", 2, None, t3);
    update.topic = "com.apple.mgmt.External.other".to_string();
    let (renewed, first) = store.record_token_update(&update).await.unwrap();
    assert!(!first, "a later TokenUpdate is not the first");
    let expected = Enrollment {
        topic: Some("com.apple.mgmt.External.other".to_string()),
        push_token: Some(vec![2; 32]),
        push_magic: Some("magic-2".to_string()),
        awaiting_configuration: false,
        awaiting_since: None,
        last_seen_at: t3,
        updated_at: t3,
        ..expected
    };
    assert_eq!(
        renewed, expected,
        "a later TokenUpdate: new token and magic, the UnlockToken and enrolled_at kept"
    );
    assert_eq!(store.enrollment("U1").await.unwrap(), Some(expected));

    let t4 = t3 + Duration::seconds(1);
    let (replaced, first) = store
        .record_token_update(&token_update("U1", 3, Some(vec![8; 10]), t4))
        .await
        .unwrap();
    assert!(!first);
    assert_eq!(
        replaced.unlock_token,
        Some(vec![8; 10]),
        "a new UnlockToken"
    );
    assert_eq!(replaced.enrolled_at, Some(t2));

    let unknown = store
        .record_token_update(&token_update("U-unknown", 1, None, t4))
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound)),
        "TokenUpdate without Authenticate: {unknown:?}"
    );
    assert_eq!(store.enrollment("U-unknown").await.unwrap(), None);
}

pub async fn re_enrollment_resets_the_enrollment(store: Arc<dyn Store>) {
    let t1 = now();
    store
        .record_authenticate(&authenticate("U1", Some("SER1"), t1))
        .await
        .unwrap();
    let t2 = t1 + Duration::seconds(1);
    store
        .record_token_update(&token_update("U1", 1, Some(vec![7; 40]), t2))
        .await
        .unwrap();
    enqueue(&store, "cmd-before", "U1", t2).await;

    let t3 = t2 + Duration::minutes(5);
    let again = Authenticated {
        udid: "U1".to_string(),
        serial_number: Some("SER1-NEW".to_string()),
        topic: "com.apple.mgmt.External.new".to_string(),
        identity_fingerprint: Some("fp-new".to_string()),
        device_info: json!({ "OSVersion": "18.1" }),
        at: t3,
    };
    let reset = store.record_authenticate(&again).await.unwrap();
    let expected = Enrollment {
        udid: "U1".to_string(),
        serial_number: Some("SER1-NEW".to_string()),
        status: EnrollmentStatus::Authenticated,
        topic: Some("com.apple.mgmt.External.new".to_string()),
        identity_fingerprint: Some("fp-new".to_string()),
        push_token: None,
        push_magic: None,
        unlock_token: None,
        awaiting_configuration: false,
        awaiting_since: None,
        device_info: json!({ "OSVersion": "18.1" }),
        enrolled_at: None,
        last_seen_at: t3,
        created_at: t1,
        updated_at: t3,
    };
    assert_eq!(
        reset, expected,
        "Authenticate again: reset, created_at kept"
    );
    assert_eq!(store.enrollment("U1").await.unwrap(), Some(expected));
    assert_eq!(
        store
            .list_commands("U1", 10)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.uuid)
            .collect::<Vec<_>>(),
        ["cmd-before"],
        "the device keeps its commands"
    );

    let t4 = t3 + Duration::seconds(1);
    let (enrolled, first) = store
        .record_token_update(&token_update("U1", 2, None, t4))
        .await
        .unwrap();
    assert!(first, "the first TokenUpdate since the new Authenticate");
    assert_eq!(enrolled.enrolled_at, Some(t4));
    assert_eq!(enrolled.unlock_token, None, "the old UnlockToken is gone");
    assert_eq!(enrolled.created_at, t1);
}

pub async fn enrollment_status_awaiting_and_touch(store: Arc<dyn Store>) {
    let t1 = now();
    store
        .record_authenticate(&authenticate("U1", Some("SER1"), t1))
        .await
        .unwrap();
    let get = |store: Arc<dyn Store>| async move { store.enrollment("U1").await.unwrap().unwrap() };

    let t2 = t1 + Duration::seconds(1);
    store
        .set_enrollment_status("U1", EnrollmentStatus::CheckedOut, t2)
        .await
        .unwrap();
    let e = get(store.clone()).await;
    assert_eq!(
        (e.status.as_str(), e.updated_at, e.last_seen_at),
        ("checked_out", t2, t1),
        "status set"
    );
    let nf = store
        .set_enrollment_status("U-unknown", EnrollmentStatus::Unregistered, t2)
        .await;
    assert!(
        matches!(nf, Err(StoreError::NotFound)),
        "unknown device: {nf:?}"
    );

    let t3 = t2 + Duration::seconds(2);
    store
        .set_awaiting_configuration("U1", true, t3)
        .await
        .unwrap();
    let e = get(store.clone()).await;
    assert_eq!(
        (e.awaiting_configuration, e.awaiting_since, e.updated_at),
        (true, Some(t3), t3)
    );
    let t4 = t3 + Duration::seconds(1);
    store
        .set_awaiting_configuration("U1", false, t4)
        .await
        .unwrap();
    let e = get(store.clone()).await;
    assert_eq!(
        (e.awaiting_configuration, e.awaiting_since, e.updated_at),
        (false, None, t4)
    );
    let nf = store
        .set_awaiting_configuration("U-unknown", false, t4)
        .await;
    assert!(
        matches!(nf, Err(StoreError::NotFound)),
        "unknown device: {nf:?}"
    );

    let t5 = t4 + Duration::seconds(30);
    store.touch_enrollment("U1", t5).await.unwrap();
    let e = get(store.clone()).await;
    assert_eq!(
        (e.last_seen_at, e.updated_at),
        (t5, t4),
        "touch moves last_seen_at only"
    );
    store
        .touch_enrollment("U1", t5 - Duration::seconds(10))
        .await
        .unwrap();
    assert_eq!(
        get(store.clone()).await.last_seen_at,
        t5,
        "a late touch does not move last_seen_at back"
    );
    store.touch_enrollment("U-unknown", t5).await.unwrap();
    assert_eq!(store.enrollment("U-unknown").await.unwrap(), None);
}

pub async fn enrollments_list_filter_and_page(store: Arc<dyn Store>) {
    let t = now();
    for (udid, serial) in [
        ("U-c", Some("S1")),
        ("U-a", Some("S1")),
        ("U-e", Some("S3")),
        ("U-b", Some("S2")),
        ("U-d", None),
    ] {
        store
            .record_authenticate(&authenticate(udid, serial, t))
            .await
            .unwrap();
    }
    for udid in ["U-b", "U-d"] {
        store
            .record_token_update(&token_update(udid, 1, None, t))
            .await
            .unwrap();
    }
    store
        .set_enrollment_status("U-e", EnrollmentStatus::CheckedOut, t)
        .await
        .unwrap();
    let q = |status: Option<&str>, serial: Option<&str>, after: Option<&str>, limit: u32| {
        EnrollmentQuery {
            status: status.map(|s| EnrollmentStatus::parse_stored(s).unwrap()),
            serial_number: serial.map(str::to_string),
            after: after.map(str::to_string),
            limit,
        }
    };
    assert_eq!(udids(&store, q(None, None, None, 2)).await, ["U-a", "U-b"]);
    assert_eq!(
        udids(&store, q(None, None, Some("U-b"), 2)).await,
        ["U-c", "U-d"]
    );
    assert_eq!(udids(&store, q(None, None, Some("U-d"), 2)).await, ["U-e"]);
    assert!(
        udids(&store, q(None, None, Some("U-e"), 2))
            .await
            .is_empty()
    );
    assert_eq!(
        udids(&store, q(None, None, None, 100)).await,
        ["U-a", "U-b", "U-c", "U-d", "U-e"]
    );
    assert_eq!(
        udids(&store, q(Some("enrolled"), None, None, 100)).await,
        ["U-b", "U-d"]
    );
    assert_eq!(
        udids(&store, q(Some("enrolled"), None, Some("U-b"), 100)).await,
        ["U-d"]
    );
    assert_eq!(
        udids(&store, q(Some("authenticated"), None, None, 100)).await,
        ["U-a", "U-c"]
    );
    assert_eq!(
        udids(&store, q(Some("checked_out"), None, None, 100)).await,
        ["U-e"]
    );
    assert_eq!(udids(&store, q(None, Some("S1"), None, 1)).await, ["U-a"]);
    assert_eq!(
        udids(&store, q(None, Some("S1"), Some("U-a"), 1)).await,
        ["U-c"]
    );
    assert!(
        udids(&store, q(Some("enrolled"), Some("S1"), None, 100))
            .await
            .is_empty()
    );
    assert_eq!(
        udids(&store, q(Some("enrolled"), Some("S2"), None, 100)).await,
        ["U-b"]
    );
    let listed = store
        .list_enrollments(&q(None, Some("S2"), None, 10))
        .await
        .unwrap();
    assert_eq!(
        listed,
        vec![store.enrollment("U-b").await.unwrap().unwrap()],
        "listed enrollments are whole"
    );
}

pub async fn commands_are_first_in_first_out(store: Arc<dyn Store>) {
    let t = now();
    // Equal timestamps: the order they were queued in, whatever their UUIDs.
    for uuid in ["cmd-c", "cmd-a", "cmd-b"] {
        let queued = store
            .enqueue_command(&command(uuid, "U1", t), None)
            .await
            .unwrap();
        let expected = MdmCommand {
            uuid: uuid.to_string(),
            udid: "U1".to_string(),
            request_type: "DeviceInformation".to_string(),
            payload: command(uuid, "U1", t).payload,
            status: CommandStatus::Queued,
            result: None,
            created_by: "admin".to_string(),
            not_now_count: 0,
            created_at: t,
            updated_at: t,
            completed_at: None,
        };
        assert_eq!(queued, expected, "enqueue returns the queued command");
        assert_eq!(store.command(uuid).await.unwrap(), Some(expected));
    }
    // Queued later but created earlier: it goes first.
    enqueue(&store, "cmd-early", "U1", t - Duration::seconds(1)).await;
    enqueue(&store, "other-1", "U2", t - Duration::hours(1)).await;

    let at = t + Duration::seconds(1);
    let first = next_is(&store, "U1", true, at, Some("cmd-early"), "oldest first")
        .await
        .unwrap();
    assert_eq!(first.created_at, t - Duration::seconds(1));
    next_is(&store, "U1", false, at, Some("cmd-c"), "tie: queued first").await;
    next_is(&store, "U1", false, at, Some("cmd-a"), "tie: queued second").await;
    next_is(&store, "U1", false, at, Some("cmd-b"), "tie: queued third").await;
    next_is(&store, "U1", false, at, None, "U1's queue is empty").await;
    next_is(&store, "U2", false, at, Some("other-1"), "U2's own command").await;
    next_is(
        &store,
        "U-none",
        true,
        at,
        None,
        "a device without commands",
    )
    .await;
    assert_eq!(store.command("cmd-unknown").await.unwrap(), None);
}

pub async fn new_sessions_requeue_sent_and_not_now(store: Arc<dyn Store>) {
    let t = now();
    enqueue(&store, "A", "U1", t).await;
    enqueue(&store, "B", "U1", t + Duration::seconds(1)).await;
    enqueue(&store, "C", "U1", t + Duration::seconds(2)).await;

    // Session 1: A is sent and never answered; B is answered NotNow; C is acknowledged.
    let s1 = t + Duration::seconds(10);
    next_is(&store, "U1", true, s1, Some("A"), "session 1: A").await;
    next_is(&store, "U1", false, s1, Some("B"), "session 1: B").await;
    let not_now = store
        .record_command_result(
            "U1",
            "B",
            CommandStatus::NotNow,
            Some(b"<plist>NotNow</plist>"),
            s1,
        )
        .await
        .unwrap();
    assert_eq!(
        (
            not_now.status.as_str(),
            not_now.result.as_deref(),
            not_now.completed_at,
            not_now.updated_at
        ),
        ("not_now", None, None, s1),
        "NotNow: status set, result kept (none), not completed"
    );
    next_is(&store, "U1", false, s1, Some("C"), "session 1: C").await;
    next_is(
        &store,
        "U1",
        false,
        s1,
        None,
        "same session: neither the unanswered A nor the NotNow B again",
    )
    .await;
    assert_eq!(status_of(&store, "A").await, "sent");
    assert_eq!(status_of(&store, "B").await, "not_now");
    store
        .record_command_result(
            "U1",
            "C",
            CommandStatus::Acknowledged,
            Some(b"<plist>ok</plist>"),
            s1,
        )
        .await
        .unwrap();

    // Session 2 (Idle): A and B are queued again, in their original order; C is done.
    let s2 = s1 + Duration::minutes(1);
    next_is(&store, "U1", true, s2, Some("A"), "session 2: A again").await;
    assert_eq!(
        status_of(&store, "B").await,
        "queued",
        "the new session queued B again"
    );
    next_is(&store, "U1", false, s2, Some("B"), "session 2: B again").await;
    next_is(&store, "U1", false, s2, None, "session 2: C is done").await;

    // Session 3: B answers NotNow again, A is still unanswered; a new session resends both.
    store
        .record_command_result("U1", "B", CommandStatus::NotNow, None, s2)
        .await
        .unwrap();
    let s3 = s2 + Duration::minutes(1);
    next_is(&store, "U1", true, s3, Some("A"), "session 3: A").await;
    next_is(&store, "U1", false, s3, Some("B"), "session 3: B").await;
    next_is(&store, "U1", true, s3, Some("A"), "another Idle resends A").await;
    assert_eq!(status_of(&store, "C").await, "acknowledged");
}

pub async fn command_results_are_recorded_per_device(store: Arc<dyn Store>) {
    let t = now();
    enqueue(&store, "X", "U1", t).await;
    enqueue(&store, "Y", "U2", t).await;
    enqueue(&store, "Z", "U1", t + Duration::seconds(1)).await;
    enqueue(&store, "W", "U1", t + Duration::seconds(2)).await;
    let sent = next_is(&store, "U1", true, t, Some("X"), "X sent")
        .await
        .unwrap();

    let t1 = t + Duration::seconds(5);
    let cross = store
        .record_command_result("U2", "X", CommandStatus::Acknowledged, Some(b"forged"), t1)
        .await;
    assert!(
        matches!(cross, Err(StoreError::NotFound)),
        "another device's command: {cross:?}"
    );
    let unknown = store
        .record_command_result("U1", "nope", CommandStatus::Acknowledged, None, t1)
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound)),
        "unknown UUID: {unknown:?}"
    );
    let bad = store
        .record_command_result("U1", "X", CommandStatus::Queued, Some(b"x"), t1)
        .await
        .expect_err("a status that is not an answer");
    assert!(bad.is_conflict(), "not an answer: {bad:?}");
    assert_eq!(
        store.command("X").await.unwrap(),
        Some(sent.clone()),
        "refused results change nothing"
    );

    let acked = store
        .record_command_result(
            "U1",
            "X",
            CommandStatus::Acknowledged,
            Some(b"<plist>ack</plist>"),
            t1,
        )
        .await
        .unwrap();
    assert_eq!(
        acked,
        MdmCommand {
            status: CommandStatus::Acknowledged,
            result: Some(b"<plist>ack</plist>".to_vec()),
            updated_at: t1,
            completed_at: Some(t1),
            ..sent
        }
    );
    assert_eq!(store.command("X").await.unwrap(), Some(acked));

    let t2 = t1 + Duration::seconds(1);
    let error = store
        .record_command_result(
            "U1",
            "Z",
            CommandStatus::Error,
            Some(b"<plist>err</plist>"),
            t2,
        )
        .await
        .unwrap();
    assert_eq!(
        (
            error.status.as_str(),
            error.result.as_deref(),
            error.completed_at
        ),
        ("error", Some(&b"<plist>err</plist>"[..]), Some(t2))
    );
    let format = store
        .record_command_result("U1", "W", CommandStatus::CommandFormatError, None, t2)
        .await
        .unwrap();
    assert_eq!(
        (format.status.as_str(), format.result, format.completed_at),
        ("command_format_error", None, Some(t2))
    );

    next_is(
        &store,
        "U1",
        true,
        t2,
        None,
        "answered commands are never sent again",
    )
    .await;
    assert_eq!(status_of(&store, "Y").await, "queued", "U2's untouched");
    next_is(&store, "U2", true, t2, Some("Y"), "U2's command").await;
}

pub async fn commands_enqueue_audit_conflict_and_list(store: Arc<dyn Store>) {
    let t = now();
    store
        .enqueue_command(&command("c1", "U1", t), Some(&audit("mdm.command", "U1")))
        .await
        .unwrap();
    enqueue(&store, "c2", "U1", t).await;
    let mut dup = command("c1", "U2", t + Duration::seconds(1));
    dup.payload = b"other".to_vec();
    dup.request_type = "EraseDevice".to_string();
    let err = store
        .enqueue_command(&dup, Some(&audit("mdm.command", "U2")))
        .await
        .expect_err("a duplicate command UUID");
    assert!(err.is_conflict(), "duplicate UUID: {err:?}");
    assert_eq!(
        actions(&store).await,
        ["mdm.command"],
        "one audit event: none without one, none for a refused enqueue"
    );
    let c1 = store.command("c1").await.unwrap().unwrap();
    assert_eq!(
        (c1.udid.as_str(), c1.request_type.as_str(), c1.payload),
        ("U1", "DeviceInformation", command("c1", "U1", t).payload),
        "the refused duplicate changed nothing"
    );
    assert!(store.list_commands("U2", 10).await.unwrap().is_empty());

    let later = t + Duration::seconds(1);
    enqueue(&store, "c3", "U1", later).await;
    enqueue(&store, "c4", "U1", later).await;
    enqueue(&store, "c0", "U1", t - Duration::hours(1)).await;
    enqueue(&store, "o1", "U2", t + Duration::hours(1)).await;
    let list = |limit: u32| {
        let store = store.clone();
        async move {
            store
                .list_commands("U1", limit)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.uuid)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(10).await,
        ["c4", "c3", "c2", "c1", "c0"],
        "newest first; equal times latest queued first"
    );
    assert_eq!(list(2).await, ["c4", "c3"], "limit");
    let o1 = store.list_commands("U2", 10).await.unwrap();
    assert_eq!(o1.len(), 1);
    assert_eq!(Some(&o1[0]), store.command("o1").await.unwrap().as_ref());
}

pub async fn concurrent_next_commands_never_share_one(store: Arc<dyn Store>) {
    const COMMANDS: usize = 8;
    const CALLERS: usize = 16;
    let t = now();
    for i in 0..COMMANDS {
        enqueue(&store, &format!("q-{i}"), "U1", t).await;
    }
    let barrier = Arc::new(Barrier::new(CALLERS));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .next_command("U1", false, t + Duration::seconds(1))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut taken = Vec::new();
    for task in tasks {
        if let Some(c) = task.await.unwrap() {
            taken.push(c.uuid);
        }
    }
    // Whatever a caller did not get is still queued.
    while let Some(c) = store
        .next_command("U1", false, t + Duration::seconds(2))
        .await
        .unwrap()
    {
        taken.push(c.uuid);
    }
    let distinct: HashSet<&String> = taken.iter().collect();
    assert_eq!(
        distinct.len(),
        taken.len(),
        "no command handed out twice: {taken:?}"
    );
    assert_eq!(taken.len(), COMMANDS, "every command handed out: {taken:?}");
}

pub async fn secrets_init_first_writer_wins_and_put_replaces(store: Arc<dyn Store>) {
    assert_eq!(store.get_secret("scep_ca").await.unwrap(), None);
    assert_eq!(
        store.init_secret("scep_ca", b"first").await.unwrap(),
        b"first"
    );
    assert_eq!(
        store.init_secret("scep_ca", b"second").await.unwrap(),
        b"first",
        "the first writer wins"
    );
    assert_eq!(
        store.get_secret("scep_ca").await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    assert!(actions(&store).await.is_empty(), "init writes no audit");

    store
        .put_secret("scep_ca", b"third", &audit("mdm.secret.put", "scep_ca"))
        .await
        .unwrap();
    assert_eq!(
        store.get_secret("scep_ca").await.unwrap().as_deref(),
        Some(&b"third"[..]),
        "put replaces"
    );
    assert_eq!(
        store.init_secret("scep_ca", b"fourth").await.unwrap(),
        b"third"
    );
    store
        .put_secret("apns", &[0, 1, 255], &audit("mdm.secret.put", "apns"))
        .await
        .unwrap();
    assert_eq!(
        store.get_secret("apns").await.unwrap().as_deref(),
        Some(&[0, 1, 255][..]),
        "put stores a new name"
    );
    assert_eq!(store.get_secret("signing_identity").await.unwrap(), None);
    assert_eq!(
        actions(&store).await,
        ["mdm.secret.put", "mdm.secret.put"],
        "each put is audited"
    );

    // Several instances starting at once agree on one value.
    let barrier = Arc::new(Barrier::new(8));
    let tasks: Vec<_> = (0u8..8)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store.init_secret("signing_identity", &[i]).await.unwrap()
            })
        })
        .collect();
    let mut answers = HashSet::new();
    for task in tasks {
        answers.insert(task.await.unwrap());
    }
    assert_eq!(answers.len(), 1, "concurrent inits agree: {answers:?}");
    assert_eq!(
        store.get_secret("signing_identity").await.unwrap().as_ref(),
        answers.iter().next()
    );
}

pub async fn open_commands_are_counted_per_device_and_sender(store: Arc<dyn Store>) {
    let t = now();
    let by = |uuid: &str, udid: &str, created_by: &str| {
        let mut c = command(uuid, udid, t);
        c.created_by = created_by.to_string();
        c
    };
    for c in [
        by("s1", "U1", "setup"),
        by("s2", "U1", "setup"),
        by("s3", "U1", "setup"),
        by("a1", "U1", "admin"),
        by("s4", "U2", "setup"),
    ] {
        store.enqueue_command(&c, None).await.unwrap();
    }
    let open = |udid: &'static str, created_by: &'static str| {
        let store = store.clone();
        async move { store.count_open_commands(udid, created_by).await.unwrap() }
    };
    assert_eq!(open("U1", "setup").await, 3, "queued ones are open");
    assert_eq!(open("U1", "admin").await, 1);
    assert_eq!(open("U2", "setup").await, 1);
    assert_eq!(open("U3", "setup").await, 0, "an unknown device has none");

    let s1 = t + Duration::seconds(1);
    next_is(&store, "U1", true, s1, Some("s1"), "oldest first").await;
    assert_eq!(open("U1", "setup").await, 3, "a sent command is still open");
    store
        .record_command_result("U1", "s1", CommandStatus::NotNow, None, s1)
        .await
        .unwrap();
    assert_eq!(open("U1", "setup").await, 3, "NotNow keeps it open");
    next_is(&store, "U1", false, s1, Some("s2"), "the next one").await;
    store
        .record_command_result(
            "U1",
            "s2",
            CommandStatus::Acknowledged,
            Some(b"<plist/>"),
            s1,
        )
        .await
        .unwrap();
    assert_eq!(open("U1", "setup").await, 2, "an answered command is done");
    next_is(&store, "U1", false, s1, Some("s3"), "then s3").await;
    store
        .record_command_result("U1", "s3", CommandStatus::Error, Some(b"<plist/>"), s1)
        .await
        .unwrap();
    assert_eq!(
        open("U1", "setup").await,
        1,
        "an error is a final answer too"
    );
    let s2 = s1 + Duration::seconds(1);
    next_is(
        &store,
        "U1",
        true,
        s2,
        Some("s1"),
        "NotNow again next session",
    )
    .await;
    store
        .record_command_result(
            "U1",
            "s1",
            CommandStatus::CommandFormatError,
            Some(b"<plist/>"),
            s2,
        )
        .await
        .unwrap();
    assert_eq!(open("U1", "setup").await, 0);
    assert_eq!(open("U2", "setup").await, 1, "U2's untouched");
}

/// An enrolled device `udid`, awaiting configuration since `at` (or not).
async fn enrolled(store: &Arc<dyn Store>, udid: &str, awaiting: bool, at: OffsetDateTime) {
    store
        .record_authenticate(&authenticate(udid, Some(&format!("S-{udid}")), at))
        .await
        .unwrap();
    store
        .record_token_update(&token_update(udid, if awaiting { 1 } else { 2 }, None, at))
        .await
        .unwrap();
}

async fn awaiting(store: &Arc<dyn Store>, since: OffsetDateTime, limit: u32) -> Vec<String> {
    store
        .list_awaiting(since, limit)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.udid)
        .collect()
}

pub async fn awaiting_devices_are_listed_counted_and_keep_their_start(store: Arc<dyn Store>) {
    let t = now();
    enrolled(&store, "U-late", true, t).await;
    enrolled(&store, "U-early", true, t - Duration::minutes(40)).await;
    enrolled(&store, "U-mid", true, t - Duration::minutes(35)).await;
    enrolled(&store, "U-done", false, t - Duration::hours(2)).await;
    enrolled(&store, "U-out", true, t - Duration::hours(3)).await;
    store
        .set_enrollment_status("U-out", EnrollmentStatus::CheckedOut, t)
        .await
        .unwrap();
    store
        .record_authenticate(&authenticate("U-auth", None, t - Duration::hours(1)))
        .await
        .unwrap();

    let cutoff = t - Duration::minutes(30);
    assert_eq!(
        awaiting(&store, cutoff, 10).await,
        ["U-early", "U-mid"],
        "enrolled, waiting since the cutoff or before, the longest first"
    );
    assert_eq!(awaiting(&store, cutoff, 1).await, ["U-early"], "limit");
    assert_eq!(store.count_awaiting(cutoff).await.unwrap(), 2);
    assert_eq!(store.count_awaiting(t).await.unwrap(), 3);

    // A later TokenUpdate still awaiting keeps when the wait began.
    let (e, _) = store
        .record_token_update(&token_update("U-early", 3, None, t))
        .await
        .unwrap();
    assert_eq!(e.awaiting_since, Some(t - Duration::minutes(40)));
    // DeviceConfigured acknowledged: no longer waiting.
    store
        .set_awaiting_configuration("U-early", false, t)
        .await
        .unwrap();
    assert_eq!(awaiting(&store, cutoff, 10).await, ["U-mid"]);
    assert_eq!(store.count_awaiting(cutoff).await.unwrap(), 1);
}

pub async fn release_cancels_open_commands_and_queues_first(store: Arc<dyn Store>) {
    let t = now() - Duration::hours(1);
    enrolled(&store, "U1", true, t).await;
    enqueue(&store, "init-1", "U1", t).await;
    enqueue(&store, "init-2", "U1", t).await;
    enqueue(&store, "admin-1", "U1", t + Duration::seconds(1)).await;
    enqueue(&store, "done", "U1", t).await;
    enqueue(&store, "other", "U2", t).await;
    let at = t + Duration::seconds(2);
    next_is(&store, "U1", true, at, Some("init-1"), "first").await;
    for _ in 0..2 {
        store
            .record_command_result("U1", "init-1", CommandStatus::NotNow, None, at)
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .command("init-1")
            .await
            .unwrap()
            .unwrap()
            .not_now_count,
        2,
        "NotNow answers are counted"
    );
    store
        .record_command_result("U1", "done", CommandStatus::Acknowledged, None, at)
        .await
        .unwrap();
    assert_eq!(
        store
            .open_commands("U1")
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.uuid)
            .collect::<Vec<_>>(),
        ["init-1", "init-2", "admin-1"],
        "open commands in queue order"
    );

    let release = |udid: &str, uuid: &str| crate::Release {
        udid: udid.to_string(),
        cancel: vec![
            "init-1".to_string(),
            "init-2".to_string(),
            "done".to_string(),
        ],
        command: NewCommand {
            request_type: "DeviceConfigured".to_string(),
            created_by: "admin".to_string(),
            ..command(uuid, udid, at)
        },
        audit: audit("enrollment.release", udid),
    };
    let queued = store
        .release_enrollment(&release("U1", "dc"))
        .await
        .unwrap();
    assert_eq!(queued.status, CommandStatus::Queued);
    assert_eq!(
        queued.created_at,
        t + Duration::seconds(1) - Duration::microseconds(1)
    );
    assert_eq!(status_of(&store, "init-1").await, "cancelled");
    assert_eq!(status_of(&store, "init-2").await, "cancelled");
    assert_eq!(
        status_of(&store, "done").await,
        "acknowledged",
        "answered: kept"
    );
    assert_eq!(
        status_of(&store, "admin-1").await,
        "queued",
        "not listed: kept"
    );
    assert_eq!(status_of(&store, "other").await, "queued");
    assert_eq!(actions(&store).await, ["enrollment.release"]);
    next_is(&store, "U1", true, at, Some("dc"), "DeviceConfigured first").await;
    next_is(&store, "U1", false, at, Some("admin-1"), "then the rest").await;
    next_is(&store, "U1", false, at, None, "cancelled are never sent").await;
    assert_eq!(
        store.count_open_commands("U1", "admin").await.unwrap(),
        2,
        "cancelled commands are not open"
    );

    enrolled(&store, "U3", false, t).await;
    let err = store
        .release_enrollment(&release("U3", "dc3"))
        .await
        .expect_err("not waiting");
    assert!(err.is_conflict(), "{err:?}");
    let err = store
        .release_enrollment(&release("U-unknown", "dc4"))
        .await
        .expect_err("unknown");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(store.command("dc3").await.unwrap(), None, "nothing written");
    assert_eq!(actions(&store).await, ["enrollment.release"]);
}
