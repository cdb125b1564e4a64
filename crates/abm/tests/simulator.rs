//! The client against GuardMDM's ABM simulator over real sockets: every endpoint, and every
//! fault the simulator injects the way Apple produces it.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use guardmdm_abm::{
    Client, ClientOptions, Credentials, DepError, DeviceStatus, OpType, Profile, ProfileStatus,
};
use guardmdm_crypto::{TokenKeyPair, decrypt_server_token, generate_token_key_pair};
use guardmdm_sim::{DeviceFamily, Fault, RunningSimulator, SimConfig, Simulator};

struct Env {
    sim: RunningSimulator,
    pair: TokenKeyPair,
    server_uuid: String,
}

impl Env {
    /// A simulator whose first MDM server (ours) adopts `devices` start-up devices.
    async fn new(devices: usize, config: SimConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = Simulator::new(SimConfig { devices, ..config })
            .start(listener)
            .unwrap();
        let pair = generate_token_key_pair("GuardMDM test").unwrap();
        let server_uuid = sim
            .sim
            .register_server("GuardMDM", &pair.certificate_pem)
            .unwrap()
            .server_uuid;
        Self {
            sim,
            pair,
            server_uuid,
        }
    }

    /// A client with a freshly downloaded token (which revokes the previous one).
    fn client(&self) -> Client {
        let token = self
            .sim
            .sim
            .download_token(&self.server_uuid, None)
            .unwrap();
        let tokens = decrypt_server_token(
            &token.contents,
            &self.pair.certificate_pem,
            &self.pair.private_key_pem,
        )
        .unwrap();
        let credentials = Credentials {
            consumer_key: tokens.consumer_key,
            consumer_secret: tokens.consumer_secret,
            access_token: tokens.access_token,
            access_secret: tokens.access_secret,
        };
        let options = ClientOptions {
            request_timeout: Duration::from_millis(1500),
            max_retries: 2,
            backoff_base: Duration::from_millis(5),
            backoff_max: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(2),
            ..ClientOptions::default()
        };
        Client::new(&self.sim.base_url(), credentials, options).unwrap()
    }
}

fn profile(name: &str) -> Profile {
    Profile {
        profile_name: name.to_string(),
        url: "https://mdm.example.com/mdm/enroll".to_string(),
        is_supervised: Some(true),
        is_mdm_removable: Some(false),
        is_mandatory: Some(true),
        await_device_configured: Some(false),
        allow_pairing: Some(false),
        department: Some("IT".to_string()),
        ..Profile::default()
    }
}

#[tokio::test]
async fn account_names_the_server_and_org() {
    let env = Env::new(0, SimConfig::default()).await;
    let account = env.client().account().await.unwrap();
    assert_eq!(account.server_name, "GuardMDM");
    assert_eq!(account.server_uuid, env.server_uuid);
    assert_eq!(account.org_name.as_deref(), Some("Example Corp"));
}

#[tokio::test]
async fn fetch_pages_with_the_cursor_then_the_cursor_is_exhausted() {
    let env = Env::new(250, SimConfig::default()).await;
    let client = env.client();
    let mut cursor: Option<String> = None;
    let mut serials = std::collections::BTreeSet::new();
    let mut pages = 0;
    loop {
        let page = client
            .fetch_devices(cursor.as_deref(), Some(100))
            .await
            .unwrap();
        pages += 1;
        assert!(page.devices.len() <= 100);
        serials.extend(page.devices.iter().map(|d| d.serial_number.clone()));
        cursor = page.cursor.clone();
        if !page.more_to_follow {
            break;
        }
    }
    assert_eq!((serials.len(), pages), (250, 3));
    let err = client
        .fetch_devices(cursor.as_deref(), Some(100))
        .await
        .unwrap_err();
    assert!(err.is_cursor_exhausted(), "{err:?}");
    // The default page is 100 devices.
    let first = client.fetch_devices(None, None).await.unwrap();
    assert_eq!(first.devices.len(), 100);
    let families: std::collections::BTreeSet<String> = first
        .devices
        .iter()
        .filter_map(|d| d.device_family.as_ref().map(ToString::to_string))
        .collect();
    assert!(families.len() >= 3, "several device families: {families:?}");
}

#[tokio::test]
async fn sync_reports_added_modified_deleted_and_the_cursor_errors() {
    let env = Env::new(10, SimConfig::default()).await;
    let client = env.client();
    let mut page = client.fetch_devices(None, Some(1000)).await.unwrap();
    let mut cursor = page.cursor.clone().unwrap();
    while page.more_to_follow {
        page = client
            .fetch_devices(Some(&cursor), Some(1000))
            .await
            .unwrap();
        cursor = page.cursor.clone().unwrap();
    }
    let sync = client.sync_devices(&cursor, None).await.unwrap();
    assert!(sync.devices.is_empty(), "nothing changed yet");
    let cursor = sync.cursor.unwrap();

    // New purchases go to the default server; one device leaves.
    env.sim
        .sim
        .set_default_server(None, Some(&env.server_uuid))
        .unwrap();
    let bought = env.sim.sim.add_devices(3, Some(DeviceFamily::IPhone));
    let leaving = page.devices[0].serial_number.clone();
    let report = env.sim.sim.unassign_devices(&[leaving.as_str()]);
    assert!(report.unknown.is_empty(), "{report:?}");
    let changes = client.sync_devices(&cursor, None).await.unwrap();
    let ops: Vec<(String, OpType)> = changes
        .devices
        .iter()
        .map(|d| (d.serial_number.clone(), d.op_type.clone().unwrap()))
        .collect();
    for d in &bought {
        assert!(
            ops.contains(&(d.serial_number.clone(), OpType::Added)),
            "{ops:?}"
        );
    }
    assert!(ops.contains(&(leaving, OpType::Deleted)), "{ops:?}");
    assert!(changes.devices.iter().all(|d| d.op_date.is_some()));

    assert_eq!(
        client.sync_devices("", None).await.unwrap_err(),
        DepError::CursorRequired
    );
    assert_eq!(
        client.sync_devices("garbage!", None).await.unwrap_err(),
        DepError::CursorInvalid
    );
    env.sim
        .sim
        .advance_clock(Duration::from_secs(8 * 24 * 3600));
    let err = client.sync_devices(&cursor, None).await.unwrap_err();
    assert_eq!(err, DepError::CursorExpired, "a cursor older than 7 days");
}

#[tokio::test]
async fn profiles_define_get_assign_remove_and_sync_shows_it() {
    let env = Env::new(5, SimConfig::default()).await;
    let client = env.client();
    let fetched = client.fetch_devices(None, None).await.unwrap();
    let serials: Vec<String> = fetched
        .devices
        .iter()
        .map(|d| d.serial_number.clone())
        .collect();

    let defined = client.define_profile(&profile("Staff")).await.unwrap();
    assert_eq!(defined.profile_uuid.len(), 32);
    let again = client.define_profile(&profile("Staff")).await.unwrap();
    assert_ne!(
        again.profile_uuid, defined.profile_uuid,
        "a new UUID on every define"
    );
    let read = client.get_profile(&defined.profile_uuid).await.unwrap();
    assert_eq!(
        (read.profile_name.as_str(), read.department.as_deref()),
        ("Staff", Some("IT"))
    );
    assert_eq!(read.allow_pairing, Some(false));
    let err = client
        .get_profile("00000000000000000000000000000000")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DepError::Api { code, .. } if code == "NOT_FOUND"),
        "{err:?}"
    );

    let mut bad = profile("Unsupervised but locked");
    bad.is_supervised = Some(false);
    let err = client.define_profile(&bad).await.unwrap_err();
    assert!(
        matches!(&err, DepError::Api { status: 400, code } if code == "FLAGS_INVALID"),
        "{err:?}"
    );

    let mut targets = serials[..2].to_vec();
    targets.push("NOTMINE00001".to_string());
    let assigned = client
        .assign_profile(&defined.profile_uuid, &targets)
        .await
        .unwrap();
    assert_eq!(assigned.devices[&serials[0]], DeviceStatus::Success);
    assert_eq!(
        assigned.devices["NOTMINE00001"],
        DeviceStatus::NotAccessible
    );
    let details = client.device_details(&targets).await.unwrap();
    assert_eq!(
        details.devices[&serials[0]].profile_uuid.as_deref(),
        Some(defined.profile_uuid.as_str())
    );
    assert_eq!(
        details.devices[&serials[0]].profile_status,
        Some(ProfileStatus::Assigned)
    );
    assert_eq!(
        details.devices["NOTMINE00001"].response_status,
        Some(DeviceStatus::NotAccessible)
    );

    let removed = client.remove_profile(&serials[..1]).await.unwrap();
    assert_eq!(removed.devices[&serials[0]], DeviceStatus::Success);
    let sync = client
        .sync_devices(fetched.cursor.as_deref().unwrap(), None)
        .await
        .unwrap();
    let last = sync
        .devices
        .iter()
        .rev()
        .find(|d| d.serial_number == serials[0])
        .unwrap();
    assert_eq!(last.op_type, Some(OpType::Modified));
    assert_eq!(last.profile_status, Some(ProfileStatus::Removed));

    let unknown = client
        .assign_profile("ffffffffffffffffffffffffffffffff", &serials[..1])
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, DepError::Api { status: 404, .. }),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn throttled_and_failed_assignments_come_back_per_serial() {
    let env = Env::new(4, SimConfig::default()).await;
    let client = env.client();
    let serials: Vec<String> = client
        .fetch_devices(None, None)
        .await
        .unwrap()
        .devices
        .iter()
        .map(|d| d.serial_number.clone())
        .collect();
    let uuid = client
        .define_profile(&profile("P"))
        .await
        .unwrap()
        .profile_uuid;
    env.sim
        .sim
        .inject_fault(Fault::ThrottleAssign {
            devices: 1,
            retry_after_seconds: 90,
        })
        .unwrap();
    env.sim
        .sim
        .inject_fault(Fault::FailAssign { devices: 1 })
        .unwrap();
    let result = client.assign_profile(&uuid, &serials).await.unwrap();
    let statuses: Vec<&DeviceStatus> = result.devices.values().collect();
    assert!(statuses.contains(&&DeviceStatus::Throttled), "{statuses:?}");
    assert!(statuses.contains(&&DeviceStatus::Failed), "{statuses:?}");
    assert_eq!(result.retry_after_seconds, Some(90));
}

#[tokio::test]
async fn disown_needs_the_release_setting() {
    let env = Env::new(2, SimConfig::default()).await;
    let client = env.client();
    let serial = client.fetch_devices(None, None).await.unwrap().devices[0]
        .serial_number
        .clone();
    let err = client
        .disown_devices(std::slice::from_ref(&serial))
        .await
        .unwrap_err();
    assert_eq!(err, DepError::AccessDenied);
    env.sim
        .sim
        .set_allow_release(&env.server_uuid, true)
        .unwrap();
    let done = client
        .disown_devices(std::slice::from_ref(&serial))
        .await
        .unwrap();
    assert_eq!(done.devices[&serial], DeviceStatus::Success);
}

#[tokio::test]
async fn terms_not_signed_blocks_until_accepted() {
    let env = Env::new(0, SimConfig::default()).await;
    let client = env.client();
    env.sim.sim.inject_fault(Fault::TermsNotSigned).unwrap();
    let err = client.account().await.unwrap_err();
    assert_eq!(err, DepError::TermsNotSigned);
    assert_eq!(err.token_problem().unwrap().0, "terms_not_signed");
    env.sim.sim.clear_faults();
    client.account().await.unwrap();
}

#[tokio::test]
async fn a_replaced_token_is_rejected() {
    let env = Env::new(0, SimConfig::default()).await;
    let old = env.client();
    old.account().await.unwrap();
    let _new = env.client(); // downloading a new token revokes the old one
    env.sim.sim.expire_sessions();
    let err = old.account().await.unwrap_err();
    assert!(matches!(err, DepError::TokenRejected { .. }), "{err:?}");
}

#[tokio::test]
async fn sessions_that_expire_or_rotate_never_fail_a_call() {
    let config = SimConfig {
        session_rotate_every: Some(2),
        session_rotation_grace: Duration::ZERO,
        ..SimConfig::default()
    };
    let env = Env::new(0, config).await;
    let client = env.client();
    for _ in 0..6 {
        client.account().await.unwrap();
    }
    env.sim.sim.inject_fault(Fault::ExpireSessions).unwrap();
    client.account().await.unwrap();
}

#[tokio::test]
async fn busy_slow_and_broken_answers() {
    let env = Env::new(3, SimConfig::default()).await;
    let client = env.client();
    client.account().await.unwrap();

    env.sim
        .sim
        .inject_fault(Fault::Status {
            status: 503,
            count: 1,
            retry_after: Some(1),
            path: None,
        })
        .unwrap();
    let started = std::time::Instant::now();
    client.account().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "honoured Retry-After"
    );

    env.sim
        .sim
        .inject_fault(Fault::Status {
            status: 429,
            count: 1,
            retry_after: Some(3600),
            path: None,
        })
        .unwrap();
    let err = client.account().await.unwrap_err();
    assert!(
        matches!(err, DepError::Throttled { status: 429, .. }),
        "{err:?}"
    );

    env.sim
        .sim
        .inject_fault(Fault::Status {
            status: 500,
            count: 5,
            retry_after: None,
            path: None,
        })
        .unwrap();
    assert_eq!(
        client.account().await.unwrap_err(),
        DepError::Server { status: 500 }
    );
    env.sim.sim.clear_faults();

    env.sim
        .sim
        .inject_fault(Fault::Delay {
            millis: 3000,
            count: Some(3),
            path: None,
        })
        .unwrap();
    let err = client.account().await.unwrap_err();
    assert!(
        matches!(&err, DepError::Transport { message, .. } if message.contains("timed out")),
        "{err:?}"
    );
    env.sim.sim.clear_faults();

    env.sim
        .sim
        .inject_fault(Fault::MalformedJson {
            count: 1,
            path: None,
        })
        .unwrap();
    assert!(matches!(
        client.fetch_devices(None, None).await.unwrap_err(),
        DepError::Decode(_)
    ));
}

#[tokio::test]
async fn the_repeated_cursor_quirk_is_visible_to_the_caller() {
    let env = Env::new(30, SimConfig::default()).await;
    let client = env.client();
    let first = client.fetch_devices(None, Some(10)).await.unwrap();
    let cursor = first.cursor.unwrap();
    env.sim
        .sim
        .inject_fault(Fault::RepeatedCursor { count: 1 })
        .unwrap();
    let page = client.fetch_devices(Some(&cursor), Some(10)).await.unwrap();
    assert!(page.more_to_follow);
    assert_eq!(
        page.cursor.as_deref(),
        Some(cursor.as_str()),
        "Apple echoed the same cursor"
    );
}
