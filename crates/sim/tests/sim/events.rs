//! The sync events Apple produces for assignment and profile changes (`docs/protocol.md` §3.3,
//! §3.9, §9.2–§9.4), and device details (§3.5).

use serde_json::{Value, json};

use crate::common::{Dep, setup};

/// Drains sync from `cursor`; returns the events and the new cursor.
async fn drain(dep: &mut Dep, cursor: &str) -> (Vec<Value>, String) {
    let mut cursor = cursor.to_string();
    let mut events = Vec::new();
    loop {
        let page = dep.sync(&cursor).await;
        events.extend(page["devices"].as_array().unwrap().iter().cloned());
        cursor = page["cursor"].as_str().unwrap().to_string();
        if page["more_to_follow"] == false {
            return (events, cursor);
        }
    }
}

fn ops(events: &[Value]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["serial_number"].as_str().unwrap().to_string(),
                e["op_type"].as_str().unwrap().to_string(),
                e["profile_status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn triple(serial: &str, op: &str, status: &str) -> (String, String, String) {
    (serial.to_string(), op.to_string(), status.to_string())
}

#[tokio::test]
async fn portal_changes_and_profiles_produce_apples_events() {
    let (running, mut a) = setup(3).await;
    let mut b = Dep::register(&running, "Second").await;
    let (devices, ca) = a.fetch_all(100).await;
    let (_, cb) = b.fetch_all(100).await;
    let serial = |i: usize| devices[i]["serial_number"].as_str().unwrap().to_string();
    let (s0, s1, s2) = (serial(0), serial(1), serial(2));

    // Profile assign, then remove: modified/assigned, modified/removed with the old UUID.
    let profile = a
        .post(
            "/profile",
            json!({"profile_name": "P", "url": "https://mdm.example.com/enroll"}),
        )
        .await
        .json();
    let uuid = profile["profile_uuid"].as_str().unwrap().to_string();
    let r = a
        .post(
            "/profile/devices",
            json!({"profile_uuid": uuid, "devices": [s0]}),
        )
        .await
        .json();
    assert_eq!(r["devices"][&s0], "SUCCESS");
    let removed = a
        .call(
            reqwest::Method::DELETE,
            "/profile/devices",
            Some(json!({"devices": [s0, "NOTMINE123"]})),
        )
        .await
        .json();
    assert_eq!(removed["devices"][&s0], "SUCCESS");
    assert_eq!(removed["devices"]["NOTMINE123"], "NOT_ACCESSIBLE");
    let (events, ca) = drain(&mut a, &ca).await;
    assert_eq!(
        ops(&events),
        vec![
            triple(&s0, "modified", "assigned"),
            triple(&s0, "modified", "removed")
        ]
    );
    assert_eq!(
        events[1]["profile_uuid"],
        uuid.as_str(),
        "the old UUID stays (§3.9)"
    );

    // Move s1 from A to B in the portal: deleted on A, modified/removed on B (§9.2).
    running
        .sim
        .assign_devices(&b.server.server_uuid, &[&s1])
        .unwrap();
    // Re-assign s2 to the server it is on: modified/removed (§9.3).
    running
        .sim
        .assign_devices(&a.server.server_uuid, &[&s2])
        .unwrap();
    let (events, ca) = drain(&mut a, &ca).await;
    assert_eq!(
        ops(&events),
        vec![
            triple(&s1, "deleted", "empty"),
            triple(&s2, "modified", "removed")
        ]
    );
    let (events, cb) = drain(&mut b, &cb).await;
    assert_eq!(ops(&events), vec![triple(&s1, "modified", "removed")]);

    // Unassign then assign again: deleted, then added (§9.4).
    let report = running.sim.unassign_devices(&[&s1]);
    assert_eq!(report.unassigned, vec![s1.clone()]);
    running
        .sim
        .assign_devices(&b.server.server_uuid, &[&s1])
        .unwrap();
    let (events, _) = drain(&mut b, &cb).await;
    assert_eq!(
        ops(&events),
        vec![
            triple(&s1, "deleted", "removed"),
            triple(&s1, "added", "empty")
        ]
    );
    assert_eq!(events[1]["device_assigned_by"], "admin@example.com");
    assert_eq!(events[1]["op_date"], events[1]["device_assigned_date"]);

    // Activation delivers the profile and marks it pushed.
    let r = a
        .post(
            "/profile/devices",
            json!({"profile_uuid": uuid, "devices": [s0]}),
        )
        .await
        .json();
    assert_eq!(r["devices"][&s0], "SUCCESS");
    let activation = running.sim.activate(&s0).unwrap();
    assert_eq!(activation.status, "profile");
    assert_eq!(
        activation.profile.unwrap()["url"],
        "https://mdm.example.com/enroll"
    );
    let (events, _) = drain(&mut a, &ca).await;
    assert_eq!(
        ops(&events),
        vec![
            triple(&s0, "modified", "assigned"),
            triple(&s0, "modified", "pushed")
        ]
    );
    assert!(events[1]["profile_push_time"].is_string());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn device_details_only_show_this_servers_devices() {
    let (running, mut a) = setup(2).await;
    let mut b = Dep::register(&running, "Second").await;
    let mine = running
        .sim
        .devices(Some(&a.server.server_uuid), 0, 10)
        .unwrap()[0]
        .serial_number
        .clone();
    let reply = a
        .post("/devices", json!({"devices": [mine, "UNKNOWN0001"]}))
        .await
        .json();
    assert_eq!(reply["devices"][&mine]["response_status"], "SUCCESS");
    assert_eq!(reply["devices"][&mine]["serial_number"], mine.as_str());
    assert_eq!(
        reply["devices"]["UNKNOWN0001"]["response_status"],
        "NOT_ACCESSIBLE"
    );
    let theirs = b.post("/devices", json!({"devices": [mine]})).await.json();
    assert_eq!(
        theirs["devices"][&mine]["response_status"],
        "NOT_ACCESSIBLE"
    );
    a.post("/devices", json!({"devices": []}))
        .await
        .assert(400, "DEVICE_ID_REQUIRED");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn protocol_versions_gate_device_fields() {
    let (running, mut dep) = setup(0).await;
    let _ = running
        .sim
        .add_devices(1, Some(guardmdm_sim::DeviceFamily::IPad));
    let serial = running
        .sim
        .devices(Some(&dep.server.server_uuid), 0, 1)
        .unwrap()[0]
        .serial_number
        .clone();
    let details = |v: Value| v["devices"][&serial].clone();
    dep.version = 10;
    let v10 = details(
        dep.post("/devices", json!({"devices": [serial]}))
            .await
            .json(),
    );
    assert_eq!(v10["os"], "iPadOS");
    assert_eq!(v10["is_replacement_device"], false);
    assert!(v10["wifi_mac_address"].is_string());
    dep.version = 6;
    let v6 = details(
        dep.post("/devices", json!({"devices": [serial]}))
            .await
            .json(),
    );
    assert_eq!(v6["os"], "iOS");
    assert!(v6.get("wifi_mac_address").is_none());
    dep.version = 1;
    let v1 = details(
        dep.post("/devices", json!({"devices": [serial]}))
            .await
            .json(),
    );
    assert!(v1.get("device_family").is_none() && v1.get("os").is_none());
    running.stop().await.unwrap();
}
