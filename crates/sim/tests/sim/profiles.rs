//! Define, get, assign and disown (`docs/protocol.md` §3.6–§3.10).

use guardmdm_sim::{Fault, SimConfig};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Dep, setup, setup_with};

fn profile() -> Value {
    json!({"profile_name": "Corp", "url": "https://mdm.example.com/enroll", "is_supervised": true})
}

async fn define(dep: &mut Dep) -> String {
    let reply = dep.post("/profile", profile()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()["profile_uuid"].as_str().unwrap().to_string()
}

async fn serials(running: &guardmdm_sim::RunningSimulator, dep: &Dep) -> Vec<String> {
    running
        .sim
        .devices(Some(&dep.server.server_uuid), 0, 1000)
        .unwrap()
        .into_iter()
        .map(|d| d.serial_number)
        .collect()
}

#[tokio::test]
async fn define_and_get_profiles() {
    let (running, mut dep) = setup(2).await;
    let a = define(&mut dep).await;
    let b = define(&mut dep).await;
    assert_ne!(a, b, "every define makes a new profile_uuid");
    assert!(a.len() == 32 && a.chars().all(|c| c.is_ascii_hexdigit()));
    let got = dep
        .call(Method::GET, &format!("/profile?profile_uuid={a}"), None)
        .await
        .json();
    assert_eq!(got["profile_uuid"], a.as_str());
    assert_eq!(got["url"], "https://mdm.example.com/enroll");
    dep.call(Method::GET, "/profile", None)
        .await
        .assert(400, "PROFILE_UUID_REQUIRED");
    dep.call(Method::GET, "/profile?profile_uuid=FFFF", None)
        .await
        .assert(400, "NOT_FOUND");
    let s = serials(&running, &dep).await;
    let mut with_devices = profile();
    with_devices["devices"] = json!([s[0], "NOPE00000"]);
    let reply = dep.post("/profile", with_devices).await.json();
    assert_eq!(reply["devices"][&s[0]], "SUCCESS");
    assert_eq!(reply["devices"]["NOPE00000"], "NOT_ACCESSIBLE");
    let raw = dep
        .raw(Method::POST, "/profile", Some("{not json".into()), None)
        .await;
    raw.assert(400, "MALFORMED_REQUEST_BODY");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn every_validation_code_over_http() {
    let (running, mut dep) = setup(0).await;
    let cases = [
        (json!({"url": "https://x.example"}), "CONFIG_NAME_REQUIRED"),
        (
            json!({"profile_name": "", "url": "https://x.example"}),
            "CONFIG_NAME_INVALID",
        ),
        (json!({"profile_name": "P"}), "CONFIG_URL_REQUIRED"),
        (
            json!({"profile_name": "P", "url": "nope"}),
            "CONFIG_URL_INVALID",
        ),
        (
            json!({"profile_name": "P", "url": "https://x.example", "department": ""}),
            "DEPARTMENT_INVALID",
        ),
        (
            json!({"profile_name": "P", "url": "https://x.example", "is_mdm_removable": false}),
            "FLAGS_INVALID",
        ),
        (
            json!({"profile_name": "P", "url": "https://x.example", "language": "e"}),
            "LOCALE_INVALID",
        ),
        (
            json!({"profile_name": "P", "url": "https://x.example", "org_magic": ""}),
            "MAGIC_INVALID",
        ),
        (
            json!({"profile_name": "P", "url": "https://x.example", "support_email_address": "x"}),
            "SUPPORT_EMAIL_INVALID",
        ),
        (
            json!({"profile_name": "P", "url": "https://x.example", "support_phone_number": ""}),
            "SUPPORT_PHONE_INVALID",
        ),
    ];
    for (body, code) in cases {
        dep.post("/profile", body).await.assert(400, code);
    }
    running.stop().await.unwrap();
}

#[tokio::test]
async fn assign_results_limits_and_throttling() {
    let config = SimConfig {
        devices: 5,
        assign_failure_threshold: Some(3),
        ..SimConfig::default()
    };
    let (running, mut dep) = setup_with(config).await;
    let uuid = define(&mut dep).await;
    let s = serials(&running, &dep).await;
    let assign = |devices: Value| json!({"profile_uuid": uuid, "devices": devices});

    let r = dep
        .post("/profile/devices", assign(json!([s[0], "NOPE00000"])))
        .await
        .json();
    assert_eq!(r["devices"][&s[0]], "SUCCESS");
    assert_eq!(r["devices"]["NOPE00000"], "NOT_ACCESSIBLE");
    assert!(r.get("retry_after_seconds").is_none());
    let put = dep
        .call(Method::PUT, "/profile/devices", Some(assign(json!([s[1]]))))
        .await
        .json();
    assert_eq!(
        put["devices"][&s[1]], "SUCCESS",
        "PUT works as well as POST"
    );

    running
        .sim
        .inject_fault(Fault::ThrottleAssign {
            devices: 1,
            retry_after_seconds: 42,
        })
        .unwrap();
    let r = dep
        .post("/profile/devices", assign(json!([s[2], s[3]])))
        .await
        .json();
    assert_eq!(r["devices"][&s[2]], "THROTTLED");
    assert_eq!(r["devices"][&s[3]], "SUCCESS");
    assert_eq!(r["retry_after_seconds"], 42);
    // Before protocol version 9 there is no THROTTLED: it is FAILED, without a retry time.
    dep.version = 8;
    running
        .sim
        .inject_fault(Fault::ThrottleAssign {
            devices: 1,
            retry_after_seconds: 42,
        })
        .unwrap();
    let r = dep
        .post("/profile/devices", assign(json!([s[2]])))
        .await
        .json();
    assert_eq!(r["devices"][&s[2]], "FAILED");
    assert!(r.get("retry_after_seconds").is_none());
    dep.version = 10;
    running
        .sim
        .inject_fault(Fault::FailAssign { devices: 1 })
        .unwrap();
    let r = dep
        .post("/profile/devices", assign(json!([s[2]])))
        .await
        .json();
    assert_eq!(r["devices"][&s[2]], "FAILED");
    // Hammering one serial: the fourth attempt within the hour fails (§9.5).
    for _ in 0..3 {
        let r = dep
            .post("/profile/devices", assign(json!([s[4]])))
            .await
            .json();
        assert_eq!(r["devices"][&s[4]], "SUCCESS");
    }
    let r = dep
        .post("/profile/devices", assign(json!([s[4]])))
        .await
        .json();
    assert_eq!(r["devices"][&s[4]], "FAILED");

    let too_many: Vec<String> = (0..1001).map(|i| format!("SERIAL{i:05}")).collect();
    dep.post("/profile/devices", assign(json!(too_many)))
        .await
        .assert(400, "DEVICE_LIMIT_EXCEEDED");
    dep.post("/profile/devices", assign(json!([])))
        .await
        .assert(400, "DEVICE_ID_REQUIRED");
    dep.post("/profile/devices", json!({"devices": [s[0]]}))
        .await
        .assert(400, "PROFILE_UUID_REQUIRED");
    dep.post(
        "/profile/devices",
        json!({"profile_uuid": "0000", "devices": [s[0]]}),
    )
    .await
    .assert(404, "NOT_FOUND");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_profile_of_another_server_is_not_found() {
    let (running, mut a) = setup(1).await;
    let mut b = Dep::register(&running, "Second").await;
    let uuid = define(&mut a).await;
    b.post(
        "/profile/devices",
        json!({"profile_uuid": uuid, "devices": ["X1234567"]}),
    )
    .await
    .assert(404, "NOT_FOUND");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn disown_needs_the_release_setting() {
    let (running, mut dep) = setup(2).await;
    let s = serials(&running, &dep).await;
    let (_, cursor) = dep.fetch_all(100).await;
    dep.post("/devices/disown", json!({"devices": [s[0]]}))
        .await
        .assert(403, "ACCESS_DENIED");
    running
        .sim
        .set_allow_release(&dep.server.server_uuid, true)
        .unwrap();
    let r = dep
        .post("/devices/disown", json!({"devices": [s[0], "NOPE00000"]}))
        .await
        .json();
    assert_eq!(r["devices"][&s[0]], "SUCCESS");
    assert_eq!(r["devices"]["NOPE00000"], "NOT_ACCESSIBLE");
    let page = dep.sync(&cursor).await;
    assert_eq!(page["devices"][0]["op_type"], "deleted");
    assert!(
        running.sim.device(&s[0]).is_none(),
        "disowned devices leave the organisation"
    );
    dep.post("/devices/disown", json!({"devices": []}))
        .await
        .assert(400, "DEVICE_ID_REQUIRED");
    running.stop().await.unwrap();
}
