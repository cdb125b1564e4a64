//! ADE profile assignment end to end, against the ABM simulator, on every backend: profiles,
//! OS defaults, smart and static groups, explicit assignments, the profile each device ends
//! up with at Apple, re-assignment after an edit, Apple's FAILED / THROTTLED /
//! NOT_ACCESSIBLE answers, a crash between Apple's answer and our write, and serial CSVs.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::TestApp;
use guardmdm_sim::{DeviceFamily, Fault};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn create_profile(app: &TestApp, spec: Value) -> Value {
    let (status, body) = app.json(Method::POST, "/api/v1/profiles", Some(spec)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn set_default(app: &TestApp, os: &str, profile: Option<&str>) {
    let (status, body) = app
        .json(
            Method::PUT,
            &format!("/api/v1/os-defaults/{os}"),
            Some(json!({ "profile": profile })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Apple's current UUID of a profile for entry `entry`.
async fn apple_uuid(app: &TestApp, profile: &str, entry: &str) -> String {
    let (status, view) = app
        .json(Method::GET, &format!("/api/v1/profiles/{profile}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    view["definitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["abm_entry"] == entry && d["current"] == true)
        .unwrap_or_else(|| panic!("{profile} is not defined for {entry}: {view}"))["profile_uuid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// One serial's explanation (the first ABM record).
async fn show(app: &TestApp, serial: &str) -> Value {
    let (status, body) = app
        .json(Method::GET, &format!("/api/v1/devices/{serial}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body[0].clone()
}

/// Waits for the assignment passes that configuration changes started, then runs a sync
/// (which passes again with the latest configuration) and returns the run.
async fn settle(app: &TestApp, entry: &str) -> Value {
    let run = app.sync(entry, false).await;
    assert_eq!(run["outcome"], "succeeded", "{run}");
    run
}

/// Serial → (profile uuid, status) at the simulator for a server.
fn at_apple(app: &TestApp, server: &str) -> BTreeMap<String, (Option<String>, String)> {
    app.abm
        .sim
        .devices(Some(server), 0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|d| (d.serial_number, (d.profile_uuid, d.profile_status)))
        .collect()
}

#[tokio::test]
async fn every_device_gets_the_profile_its_rules_give_at_apple() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let server = app.connect_abm("main").await;
        let devices = app.abm.sim.add_devices(1000, None);
        let families: BTreeSet<&str> = devices.iter().map(|d| d.device_family.as_str()).collect();
        assert_eq!(families.len(), 5, "a mix of every family: {families:?}");
        settle(&app, "main").await;

        for name in ["phones", "macs", "tvs", "sales", "exec", "loaner"] {
            create_profile(
                &app,
                json!({ "name": name, "department": format!("{name} dept"), "skip_setup_items": ["Siri", "AppleID"] }),
            )
            .await;
        }
        set_default(&app, "ios", Some("phones")).await;
        set_default(&app, "macos", Some("macs")).await;
        set_default(&app, "tvos", Some("tvs")).await;
        // No iPadOS default: iPads fall back to the iOS default, except those the group takes.
        let (status, group) = app
            .json(
                Method::POST,
                "/api/v1/groups",
                Some(json!({
                    "name": "sales-ipads",
                    "rule": {"all": [{"field": "os", "op": "eq", "values": ["ipados"]},
                                     {"field": "color", "op": "ne", "values": ["Pink"]}]},
                    "profile": "sales",
                    "priority": 10
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{group}");
        let by_family = |f: DeviceFamily| -> Vec<String> {
            devices
                .iter()
                .filter(|d| d.device_family == f)
                .map(|d| d.serial_number.clone())
                .collect()
        };
        let macs = by_family(DeviceFamily::Mac);
        let iphones = by_family(DeviceFamily::IPhone);
        let loaners: Vec<String> = macs[..5].to_vec();
        let (status, group) = app
            .json(
                Method::POST,
                "/api/v1/groups",
                Some(json!({ "name": "loaners", "profile": "loaner", "priority": 5 })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{group}");
        let (status, report) = app
            .json(
                Method::POST,
                "/api/v1/groups/loaners/members",
                Some(json!({ "serials": loaners })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["counts"]["applied"], 5, "{report}");
        // Explicit beats every group: one loaner Mac and two iPhones.
        let exec: Vec<String> = vec![loaners[0].clone(), iphones[0].clone(), iphones[1].clone()];
        let (status, report) = app
            .json(
                Method::POST,
                "/api/v1/profiles/exec/assign",
                Some(json!({ "serials": exec })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["counts"]["applied"], 3, "{report}");

        settle(&app, "main").await;

        // What each device should have, worked out here from the rules.
        let mut uuids = BTreeMap::new();
        for name in ["phones", "macs", "tvs", "sales", "exec", "loaner"] {
            uuids.insert(name, apple_uuid(&app, name, "main").await);
        }
        let expected = |d: &guardmdm_sim::DeviceInfo| -> Option<&str> {
            if exec.contains(&d.serial_number) {
                return Some("exec");
            }
            if loaners.contains(&d.serial_number) {
                return Some("loaner");
            }
            match d.device_family {
                DeviceFamily::IPad if d.color != "Pink" => Some("sales"),
                DeviceFamily::IPad | DeviceFamily::IPhone => Some("phones"),
                DeviceFamily::Mac => Some("macs"),
                DeviceFamily::AppleTv => Some("tvs"),
                DeviceFamily::Vision => None,
            }
        };
        let apple = at_apple(&app, &server);
        assert_eq!(apple.len(), 1000);
        let mut unassigned = BTreeSet::new();
        for d in &devices {
            let (uuid, status) = &apple[&d.serial_number];
            match expected(d) {
                Some(profile) => {
                    assert_eq!(
                        uuid.as_deref(),
                        Some(uuids[profile].as_str()),
                        "{} ({:?}) should have {profile}",
                        d.serial_number,
                        d.device_family
                    );
                    assert_eq!(status, "assigned", "{}", d.serial_number);
                }
                None => {
                    assert_eq!(uuid, &None, "{}", d.serial_number);
                    unassigned.insert(d.serial_number.clone());
                }
            }
        }
        assert!(!unassigned.is_empty(), "the mix has Vision Pros");

        // Unassigned devices are listed as such, with the reason.
        let listed = app.device_set_with("assignment=unassigned").await;
        assert_eq!(listed, unassigned);
        let vision = show(&app, unassigned.first().unwrap()).await;
        assert_eq!(
            vision["resolution"]["unassigned_reason"],
            "no explicit profile, not in a group with a profile, no default for visionOS",
            "{vision}"
        );
        assert_eq!(vision["assignment"]["state"], "unassigned");
        assert_eq!(
            vision["assignment"]["last_error"], vision["resolution"]["unassigned_reason"],
            "the listing carries the reason too"
        );

        // Why this profile: an iPad in the group, with the iOS default shadowed.
        let ipad = devices
            .iter()
            .find(|d| d.device_family == DeviceFamily::IPad && d.color != "Pink")
            .unwrap();
        let why = show(&app, &ipad.serial_number).await;
        assert_eq!(why["resolution"]["rule"]["kind"], "group", "{why}");
        assert_eq!(why["resolution"]["profile"], "sales");
        let steps = why["resolution"]["steps"].as_array().unwrap();
        assert_eq!(steps[0]["outcome"], "skipped", "no explicit profile: {why}");
        assert!(
            steps
                .iter()
                .any(|s| s["outcome"] == "shadowed" && s["profile"] == "phones"),
            "the iOS default is shadowed: {why}"
        );
        assert_eq!(why["apple"]["up_to_date"], true, "{why}");
        assert_eq!(why["assignment"]["state"], "assigned");
        assert_eq!(why["groups"], json!(["sales-ipads"]));
        let exec_mac = show(&app, &loaners[0]).await;
        assert_eq!(
            exec_mac["resolution"]["rule"]["kind"], "device",
            "{exec_mac}"
        );
        assert_eq!(exec_mac["explicit_profile"], "exec");

        // Editing a profile defines a new one at Apple and re-assigns its devices.
        let old_phones = uuids["phones"].clone();
        let (status, write) = app
            .json(
                Method::PUT,
                "/api/v1/profiles/phones",
                Some(json!({ "name": "phones", "department": "Field sales", "support_phone_number": "+1 555 0100" })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{write}");
        assert_eq!(write["changed"], true);
        assert_eq!(write["profile"]["version"], 2);
        settle(&app, "main").await;
        let new_phones = apple_uuid(&app, "phones", "main").await;
        assert_ne!(new_phones, old_phones);
        let apple = at_apple(&app, &server);
        for d in devices.iter().filter(|d| expected(d) == Some("phones")) {
            assert_eq!(
                apple[&d.serial_number].0.as_deref(),
                Some(new_phones.as_str()),
                "{} re-assigned",
                d.serial_number
            );
        }
        for d in devices.iter().filter(|d| expected(d) == Some("macs")) {
            assert_eq!(
                apple[&d.serial_number].0.as_deref(),
                Some(uuids["macs"].as_str()),
                "unrelated devices keep their profile"
            );
        }
        let (_, versions) = app
            .json(Method::GET, "/api/v1/profiles/phones/versions", None)
            .await;
        let versions = versions.as_array().unwrap();
        assert_eq!(versions.len(), 2, "{versions:?}");
        assert_eq!(versions[0]["version"], 2);
        assert_eq!(
            versions[1]["definitions"][0]["profile_uuid"],
            old_phones.as_str()
        );
        // An identical update writes no version.
        let (_, same) = app
            .json(
                Method::PUT,
                "/api/v1/profiles/phones",
                Some(json!({ "name": "phones", "department": "Field sales", "support_phone_number": "+1 555 0100" })),
            )
            .await;
        assert_eq!(same["changed"], false, "{same}");
        assert_eq!(same["profile"]["version"], 2);

        // A used profile cannot be deleted; the error says where it is used.
        let (status, body) = app
            .json(Method::DELETE, "/api/v1/profiles/macs", None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("macos"),
            "{body}"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn failed_throttled_and_not_accessible_answers_are_tracked_per_device() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let server = app.connect_abm("main").await;
        create_profile(&app, json!({ "name": "phones" })).await;
        set_default(&app, "ios", Some("phones")).await;
        let devices = app.abm.sim.add_devices(20, Some(DeviceFamily::IPhone));
        app.abm
            .sim
            .inject_fault(Fault::FailAssign { devices: 3 })
            .unwrap();
        app.abm
            .sim
            .inject_fault(Fault::ThrottleAssign {
                devices: 2,
                retry_after_seconds: 1,
            })
            .unwrap();
        settle(&app, "main").await;
        let (mut failed, mut throttled, mut assigned) = Default::default();
        for _ in 0..100 {
            failed = app.device_set_with("assignment=failed").await;
            throttled = app.device_set_with("assignment=throttled").await;
            assigned = app.device_set_with("assignment=assigned").await;
            if failed.len() + throttled.len() + assigned.len() == 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let pending = app.device_set_with("assignment=pending").await;
        assert_eq!(
            (failed.len(), throttled.len(), assigned.len()),
            (3, 2, 15),
            "{failed:?} {throttled:?} pending {pending:?}"
        );
        let one_failed = show(&app, failed.first().unwrap()).await;
        let a = &one_failed["assignment"];
        assert!(a["last_error"].as_str().unwrap().contains("24-hour"), "{a}");
        let retry = time::OffsetDateTime::parse(
            a["retry_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let wait = retry - time::OffsetDateTime::now_utc();
        assert!(
            wait > time::Duration::hours(23) && wait <= time::Duration::hours(24),
            "{a}"
        );
        let one_throttled = show(&app, throttled.first().unwrap()).await;
        assert!(
            one_throttled["assignment"]["last_error"]
                .as_str()
                .unwrap()
                .contains("THROTTLED"),
            "{one_throttled}"
        );

        // After Apple's retry_after_seconds the throttled ones go through; the failed ones
        // rest for 24 hours.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        settle(&app, "main").await;
        assert_eq!(app.device_set_with("assignment=throttled").await.len(), 0);
        assert_eq!(app.device_set_with("assignment=failed").await, failed);
        assert_eq!(app.device_set_with("assignment=assigned").await.len(), 17);
        let apple = at_apple(&app, &server);
        for serial in &failed {
            assert_eq!(apple[serial].0, None, "not retried during the cooldown");
        }

        // A device moved to another MDM server in ABM before GuardMDM synced: Apple answers
        // NOT_ACCESSIBLE.
        app.create_entry("other").await;
        let other = app.register_in_abm("other", "Someone else").await;
        let moved = devices
            .iter()
            .map(|d| d.serial_number.clone())
            .find(|s| !failed.contains(s))
            .unwrap();
        let _ = app.abm.sim.assign_devices(&other, &[&moved]).unwrap();
        create_profile(&app, json!({ "name": "exec" })).await;
        let (status, report) = app
            .json(
                Method::POST,
                "/api/v1/profiles/exec/assign",
                Some(json!({ "serials": [moved] })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        let mut state = Value::Null;
        for _ in 0..200 {
            state = show(&app, &moved).await["assignment"].clone();
            if state["state"] == "not_accessible" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(state["state"], "not_accessible", "{state}");
        assert!(
            state["last_error"]
                .as_str()
                .unwrap()
                .contains("NOT_ACCESSIBLE")
        );
        // The next sync learns the device left: its record says removed.
        settle(&app, "main").await;
        assert_eq!(show(&app, &moved).await["assignment"]["state"], "removed");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_crash_between_apples_answer_and_our_write_is_redone() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let server = app.connect_abm("main").await;
        let devices = app.abm.sim.add_devices(40, Some(DeviceFamily::Mac));
        settle(&app, "main").await;
        create_profile(&app, json!({ "name": "a" })).await;
        create_profile(&app, json!({ "name": "b" })).await;
        // Configured in the store directly, so no background pass of the server races the
        // pass this test aborts: Macs default to "a", half of them are in a group with "b".
        let store = app.store().await;
        let a = store.get_profile("a").await.unwrap();
        let b = store.get_profile("b").await.unwrap();
        let audit = |action: &str| guardmdm_store::NewAuditEvent {
            at: guardmdm_store::now(),
            actor: "test".to_string(),
            action: action.to_string(),
            target: "test".to_string(),
            details: json!({}),
        };
        store
            .set_os_default(guardmdm_store::OsKey::Macos, Some(a.id), &audit("default"))
            .await
            .unwrap();
        let group = store
            .create_group(
                &guardmdm_store::NewDeviceGroup {
                    id: guardmdm_store::GroupId::new_v4(),
                    name: "half".to_string(),
                    rule: None,
                    profile_id: Some(b.id),
                    priority: 1,
                },
                &audit("group"),
            )
            .await
            .unwrap();
        let half: Vec<String> = devices[..20]
            .iter()
            .map(|d| d.serial_number.clone())
            .collect();
        store
            .add_group_members(group.id, &half, &audit("members"))
            .await
            .unwrap();
        let entry = store.get_abm_entry("main").await.unwrap();

        // Each assign call takes 400 ms; the pass makes two (one per profile) and writes
        // after both. It is killed after the first answer and before the write.
        app.abm
            .sim
            .inject_fault(Fault::Delay {
                millis: 400,
                count: None,
                path: Some("/profile/devices".to_string()),
            })
            .unwrap();
        let crashed = app.instance().await;
        let holder = crashed.sync.holder().to_string();
        let task = tokio::spawn({
            let sync = crashed.sync.clone();
            let entry = entry.clone();
            async move { sync.assign_entry(&entry).await }
        });
        // Abort as soon as Apple has answered the first call (the second is then still in
        // its 400 ms delay, and nothing is written before both are answered).
        for _ in 0..1000 {
            let answered = at_apple(&app, &server)
                .values()
                .filter(|(uuid, _)| uuid.is_some())
                .count();
            if answered > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
        let _ = task.await;
        app.abm.sim.clear_faults();
        store.release_sync_lease(entry.id, &holder).await.unwrap();

        let apple = at_apple(&app, &server);
        let at_apple_count = apple.values().filter(|(uuid, _)| uuid.is_some()).count();
        assert_eq!(
            at_apple_count, 20,
            "Apple answered the first call: {apple:?}"
        );
        for d in &devices {
            let why = show(&app, &d.serial_number).await;
            assert_eq!(
                why["assignment"]["state"], "unassigned",
                "nothing was written before the crash (the record is the first sync's): {why}"
            );
        }

        // The next pass redoes the work: every device has its profile, here and at Apple.
        settle(&app, "main").await;
        let ua = apple_uuid(&app, "a", "main").await;
        let ub = apple_uuid(&app, "b", "main").await;
        let apple = at_apple(&app, &server);
        for d in &devices {
            let want = if half.contains(&d.serial_number) {
                &ub
            } else {
                &ua
            };
            assert_eq!(apple[&d.serial_number].0.as_ref(), Some(want));
            assert_eq!(
                show(&app, &d.serial_number).await["assignment"]["state"],
                "assigned"
            );
        }
        app.stop().await;
    }
}

async fn post_csv(app: &TestApp, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let resp = app
        .admin(Method::POST, path)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn serial_csvs_report_every_row_and_dry_runs_change_nothing() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let _server = app.connect_abm("main").await;
        let devices = app.abm.sim.add_devices(10, Some(DeviceFamily::IPad));
        let s: Vec<String> = devices.iter().map(|d| d.serial_number.clone()).collect();
        settle(&app, "main").await;
        let _ = app.abm.sim.unassign_devices(&[&s[9]]);
        settle(&app, "main").await;
        create_profile(&app, json!({ "name": "p" })).await;

        let csv = format!(
            "\u{feff}Asset,Serial Number,User\r\nA1,\"  {}  \",bob\r\n\r\nA2,{},x\r\nA3,{},dup\r\nA4,BAD-SERIAL!,x\r\nA5,ZZZZ99999999,x\r\nA6,{},x\r\nA7\r\n",
            s[0].to_lowercase(),
            s[1],
            s[0],
            s[9]
        );
        let (status, report) = post_csv(
            &app,
            "/api/v1/profiles/p/assign?dry_run=true",
            csv.clone().into_bytes(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["dry_run"], true);
        let outcomes: Vec<(u64, &str)> = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["line"].as_u64().unwrap(), r["outcome"].as_str().unwrap()))
            .collect();
        assert_eq!(
            outcomes,
            [
                (2, "applied"),
                (4, "applied"),
                (5, "duplicate_row"),
                (6, "malformed"),
                (7, "unknown_serial"),
                (8, "not_in_abm"),
                (9, "malformed"),
            ],
            "{report}"
        );
        assert_eq!(
            report["rows"][0]["serial"],
            s[0].as_str(),
            "upper-cased, trimmed"
        );
        let (_, view) = app.json(Method::GET, "/api/v1/profiles/p", None).await;
        assert_eq!(view["used_by"]["devices"], 0, "a dry run changes nothing");

        let (status, report) =
            post_csv(&app, "/api/v1/profiles/p/assign", csv.clone().into_bytes()).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["counts"]["applied"], 2, "{report}");
        let (_, view) = app.json(Method::GET, "/api/v1/profiles/p", None).await;
        assert_eq!(view["used_by"]["devices"], 2);

        let (status, _) = app
            .json(
                Method::POST,
                "/api/v1/groups",
                Some(json!({ "name": "team" })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, report) =
            post_csv(&app, "/api/v1/groups/team/members", csv.into_bytes()).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["counts"]["applied"], 2);
        let (_, members) = app
            .json(Method::GET, "/api/v1/groups/team/members", None)
            .await;
        let mut want = vec![s[0].clone(), s[1].clone()];
        want.sort();
        assert_eq!(members, json!(want));

        // 100,000 rows in one upload.
        let mut big = String::from("serial\n");
        for i in 0..100_000 {
            big.push_str(&format!("GMDM{i:08}\n"));
        }
        for serial in &s[..5] {
            big.push_str(serial);
            big.push('\n');
        }
        let (status, report) = post_csv(
            &app,
            "/api/v1/groups/team/members?dry_run=true",
            big.into_bytes(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(report["counts"]["unknown_serial"], 100_000);
        assert_eq!(report["counts"]["applied"], 5);
        assert_eq!(report["rows"].as_array().unwrap().len(), 100_005);

        // Unusable uploads are refused whole, with the reason, and change nothing.
        for (body, expect) in [
            (Vec::new(), "no rows"),
            (b"\0\x01\x02binary\0".to_vec(), "CSV"),
        ] {
            let (status, err) = post_csv(&app, "/api/v1/profiles/p/assign", body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
            assert!(err["message"].as_str().unwrap().contains(expect), "{err}");
        }
        let too_big = vec![b'A'; 33 * 1024 * 1024];
        let (status, _) = post_csv(&app, "/api/v1/profiles/p/assign", too_big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let (_, view) = app.json(Method::GET, "/api/v1/profiles/p", None).await;
        assert_eq!(view["used_by"]["devices"], 2);
        app.stop().await;
    }
}

#[tokio::test]
async fn invalid_profiles_are_refused_with_every_problem_named() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let (status, body) = app
            .json(
                Method::POST,
                "/api/v1/profiles",
                Some(json!({
                    "name": "bad",
                    "is_supervised": false,
                    "is_mdm_removable": false,
                    "url": "http://plain.example.com/enroll",
                    "support_email_address": "nobody",
                    "region": "us",
                    "profile_name": "x".repeat(126),
                })),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let codes: BTreeSet<&str> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["code"].as_str().unwrap())
            .collect();
        for code in [
            "FLAGS_INVALID",
            "CONFIG_URL_INVALID",
            "SUPPORT_EMAIL_INVALID",
            "LOCALE_INVALID",
            "CONFIG_NAME_INVALID",
        ] {
            assert!(codes.contains(code), "{code} in {body}");
        }
        // Unknown fields (typos) and malformed bodies are named too.
        let (status, body) = app
            .json(
                Method::POST,
                "/api/v1/profiles",
                Some(json!({ "name": "typo", "is_supervized": true })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("is_supervized"),
            "{body}"
        );
        // YAML works, and an unknown Setup Assistant pane is a warning, not an error.
        let resp = app
            .admin(Method::POST, "/api/v1/profiles")
            .header("content-type", "application/yaml")
            .body("name: yaml-one\nenrollment_type: user_initiated\nskip_setup_items:\n  - Siri\n  - appleid\n")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let view: Value = resp.json().await.unwrap();
        assert_eq!(view["apple"]["is_mandatory"], false, "{view}");
        assert_eq!(
            view["apple"]["is_supervised"], true,
            "booleans explicit: {view}"
        );
        assert_eq!(
            view["apple"]["url"],
            format!("{}/mdm/enroll", common::PUBLIC_URL)
        );
        assert!(
            view["warnings"].to_string().contains("AppleID"),
            "did you mean: {view}"
        );
        let (status, _) = app
            .json(
                Method::POST,
                "/api/v1/profiles",
                Some(json!({ "name": "yaml-one" })),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        app.stop().await;
    }
}
