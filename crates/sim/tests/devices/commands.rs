//! The command loop: what the device answers, and its faults.

use guardmdm_crypto::sign_profile;
use guardmdm_mdm_protocol::{Command, CommandRequest, CommandStatus, DeviceReport};
use guardmdm_sim::{DeviceFamily, SimDevice};
use plist::Value;
use serde_json::json;

use crate::Setup;
use crate::fake_mdm::{self, Mode};

const WIFI_PROFILE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadIdentifier</key><string>com.example.wifi</string>
<key>PayloadUUID</key><string>6B0D1F8A-33A9-4C57-9F2D-0C0F5E3F5A11</string>
<key>PayloadDisplayName</key><string>Office Wi-Fi</string>
<key>PayloadContent</key><array><dict>
  <key>PayloadType</key><string>com.apple.wifi.managed</string>
  <key>PayloadVersion</key><integer>1</integer>
  <key>PayloadIdentifier</key><string>com.example.wifi.payload</string>
  <key>PayloadUUID</key><string>9A1C0F7E-7D1B-4E0F-8B7A-1D2C3B4A5F60</string>
  <key>SSID_STR</key><string>Office</string>
</dict></array>
</dict></plist>"#;

fn raw(request_type: &str) -> Command {
    let mut d = plist::Dictionary::new();
    d.insert("RequestType".into(), Value::String(request_type.into()));
    Command::new(CommandRequest::raw(d).unwrap())
}

fn only_report(setup: &Setup, command: &Command) -> DeviceReport {
    let reports = setup.mdm.report(&command.command_uuid);
    assert_eq!(reports.len(), 1, "{reports:?}");
    reports.into_iter().next().unwrap()
}

fn error_chain(report: &DeviceReport) -> Vec<(i64, String)> {
    report
        .error_chain
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i.error_code.unwrap(), i.error_domain.unwrap()))
        .collect()
}

async fn enrolled(setup: &Setup, family: DeviceFamily, extra: serde_json::Value) -> SimDevice {
    let device = setup.device(family, extra);
    device.enroll_and_run(&setup.sim).await.unwrap();
    device
}

#[tokio::test]
async fn the_device_answers_like_apples() {
    let setup = Setup::new(Mode {
        sign_message: true,
        ..Mode::default()
    })
    .await
    .with_apns()
    .await;
    let device = enrolled(&setup, DeviceFamily::IPhone, json!({})).await;
    let udid = device.udid().to_string();

    let info = Command::new(CommandRequest::device_information());
    let list = Command::new(CommandRequest::ProfileList);
    let signed = sign_profile(WIFI_PROFILE.as_bytes(), &setup.mdm.signer).unwrap();
    let install = Command::new(CommandRequest::install_profile(signed));
    let list_again = Command::new(CommandRequest::ProfileList);
    let not_a_profile = Command::new(CommandRequest::install_profile(b"hello".to_vec()));
    let remove_unknown = Command::new(CommandRequest::remove_profile("com.example.nothing"));
    let remove_mdm = Command::new(CommandRequest::remove_profile(fake_mdm::PROFILE_ID));
    let remove_wifi = Command::new(CommandRequest::remove_profile("com.example.wifi"));
    let unknown = raw("PlayLostModeSound2");
    let lock = Command::new(CommandRequest::DeviceLock(Default::default()));
    let all = [
        &info,
        &list,
        &install,
        &list_again,
        &not_a_profile,
        &remove_unknown,
        &remove_mdm,
        &remove_wifi,
        &unknown,
        &lock,
    ];
    for c in all {
        setup.mdm.enqueue(&udid, (*c).clone());
    }
    assert_eq!(setup.push_and_settle(&device).await, 200);
    assert_eq!(setup.mdm.seen.lock().unwrap().bad_signatures, 0);

    let r = only_report(&setup, &info);
    assert_eq!(r.status, CommandStatus::Acknowledged);
    let answers = r.raw["QueryResponses"].as_dictionary().unwrap();
    let text = |k: &str| {
        answers
            .get(k)
            .and_then(Value::as_string)
            .map(str::to_string)
    };
    assert_eq!(text("UDID").as_deref(), Some(udid.as_str()));
    assert_eq!(text("SerialNumber").as_deref(), Some(device.serial()));
    assert_eq!(text("ProductName").as_deref(), Some(device.product()));
    assert_eq!(
        text("OSVersion").as_deref(),
        Some(device.os_version().as_str())
    );
    assert_eq!(
        text("BuildVersion").as_deref(),
        Some(device.build_version().as_str())
    );
    assert_eq!(text("IMEI").as_deref(), device.imei());
    assert!(
        device.imei().is_some(),
        "every simulated iPhone is cellular"
    );
    assert_eq!(text("ModelName").as_deref(), Some("iPhone"));
    assert!(
        answers
            .get("DeviceCapacity")
            .and_then(Value::as_real)
            .unwrap()
            > 0.0
    );
    assert_eq!(answers.get("IsSupervised"), Some(&Value::Boolean(true)));
    assert!(
        answers.get("MEID").is_none(),
        "keys a device does not know are left out"
    );

    let r = only_report(&setup, &list);
    let profiles = r.raw["ProfileList"].as_array().unwrap();
    assert_eq!(profiles.len(), 1);
    let first = profiles[0].as_dictionary().unwrap();
    assert_eq!(
        first["PayloadIdentifier"].as_string(),
        Some(fake_mdm::PROFILE_ID)
    );
    assert!(first.contains_key("SignerCertificates"));

    assert_eq!(
        only_report(&setup, &install).status,
        CommandStatus::Acknowledged
    );
    let r = only_report(&setup, &list_again);
    let ids: Vec<&str> = r.raw["ProfileList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p.as_dictionary().unwrap()["PayloadIdentifier"]
                .as_string()
                .unwrap()
        })
        .collect();
    assert_eq!(
        ids,
        [fake_mdm::PROFILE_ID, "com.example.wifi"],
        "MDM profile first"
    );

    let r = only_report(&setup, &not_a_profile);
    assert_eq!(r.status, CommandStatus::Error);
    assert_eq!(
        error_chain(&r),
        [
            (4001, "MCInstallationErrorDomain".to_string()),
            (1000, "MCProfileErrorDomain".to_string())
        ]
    );

    let r = only_report(&setup, &remove_unknown);
    assert_eq!(r.status, CommandStatus::Error);
    assert_eq!(error_chain(&r), [(12075, "MDMErrorDomain".to_string())]);

    // The enrollment profile was not removable (the fake server's default).
    let r = only_report(&setup, &remove_mdm);
    assert_eq!(r.status, CommandStatus::Error);

    assert_eq!(
        only_report(&setup, &remove_wifi).status,
        CommandStatus::Acknowledged
    );

    let r = only_report(&setup, &unknown);
    assert_eq!(r.status, CommandStatus::Error);
    let chain = r.error_chain.unwrap();
    assert_eq!(chain[0].error_code, Some(12021));
    assert_eq!(chain[0].error_domain.as_deref(), Some("MCMDMErrorDomain"));
    assert!(
        chain[0]
            .us_english_description
            .as_deref()
            .unwrap()
            .contains("PlayLostModeSound2")
    );

    assert_eq!(
        only_report(&setup, &lock).status,
        CommandStatus::Acknowledged
    );
    assert!(device.status().locked);
    assert_eq!(device.status().profiles, [fake_mdm::PROFILE_ID]);
    let history: Vec<String> = device
        .history()
        .into_iter()
        .map(|r| r.request_type)
        .collect();
    assert_eq!(history.len(), all.len());
}

#[tokio::test]
async fn not_now_keeps_the_command_for_later() {
    let setup = Setup::new(Mode::default()).await;
    let device = enrolled(&setup, DeviceFamily::Mac, json!({})).await;
    let info = Command::new(CommandRequest::device_information_with([
        "SerialNumber",
        "EthernetMAC",
    ]));
    let list = Command::new(CommandRequest::ProfileList);
    setup.mdm.enqueue(device.udid(), info.clone());
    setup.mdm.enqueue(device.udid(), list.clone());
    device.answer_not_now(1);

    let summary = device.poll().await.unwrap();
    let statuses: Vec<&str> = summary.commands.iter().map(|c| c.status.as_str()).collect();
    assert_eq!(statuses, ["NotNow", "Acknowledged"]);
    assert_eq!(
        setup.mdm.report(&info.command_uuid)[0].status,
        CommandStatus::NotNow
    );

    // The next session gets it again, and now it runs.
    let summary = device.poll().await.unwrap();
    assert_eq!(summary.commands.len(), 1);
    let reports = setup.mdm.report(&info.command_uuid);
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[1].status, CommandStatus::Acknowledged);
    let answers = reports[1].raw["QueryResponses"].as_dictionary().unwrap();
    assert_eq!(answers.len(), 2, "a Mac has an Ethernet MAC: {answers:?}");
}

#[tokio::test]
async fn a_dropped_connection_delivers_the_result_next_time() {
    let setup = Setup::new(Mode::default()).await;
    let device = enrolled(&setup, DeviceFamily::AppleTv, json!({})).await;
    let info = Command::new(CommandRequest::device_information_with(["UDID"]));
    setup.mdm.enqueue(device.udid(), info.clone());
    device.drop_connection(1);

    let summary = device.poll().await.unwrap();
    assert!(summary.dropped);
    assert_eq!(summary.commands.len(), 1);
    assert!(
        setup.mdm.report(&info.command_uuid).is_empty(),
        "the server never got it"
    );

    let summary = device.poll().await.unwrap();
    assert!(summary.resent_result);
    assert!(summary.commands.is_empty());
    let reports = setup.mdm.report(&info.command_uuid);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].status, CommandStatus::Acknowledged);
    // The session began with the result, not with Idle: the server saw Idle, then (session
    // two) the result, and nothing else.
    let seen = setup.mdm.seen.lock().unwrap();
    let kinds: Vec<bool> = seen.reports.iter().map(|r| r.is_idle()).collect();
    assert_eq!(
        kinds,
        [true, true, false],
        "enrollment poll, dropped session, resent result"
    );
}

#[tokio::test]
async fn removing_a_removable_mdm_profile_unenrolls_the_device() {
    let setup = Setup::new(Mode {
        removable: true,
        ..Mode::default()
    })
    .await;
    let device = enrolled(&setup, DeviceFamily::Vision, json!({})).await;
    let remove = Command::new(CommandRequest::remove_profile(fake_mdm::PROFILE_ID));
    setup.mdm.enqueue(device.udid(), remove.clone());
    let summary = device.poll().await.unwrap();
    assert!(summary.unenrolled);
    assert_eq!(
        setup.mdm.report(&remove.command_uuid)[0].status,
        CommandStatus::Acknowledged
    );
    // CheckOutWhenRemoved is GuardMDM's default in the MDM payload.
    let last = setup.mdm.seen.lock().unwrap().checkins.last().cloned();
    assert_eq!(last.unwrap().0, "CheckOut");
    let status = device.status();
    assert_eq!(status.phase, "unenrolled");
    assert!(status.profiles.is_empty());
    assert!(device.poll().await.is_err());
}

#[tokio::test]
async fn not_now_forever_puts_off_one_request_type_in_every_session() {
    let setup = Setup::new(Mode::default()).await;
    let device = enrolled(&setup, DeviceFamily::AppleTv, json!({})).await;
    let list = Command::new(CommandRequest::ProfileList);
    let info = Command::new(CommandRequest::device_information_with(["UDID"]));
    setup.mdm.enqueue(device.udid(), list.clone());
    setup.mdm.enqueue(device.udid(), info.clone());
    device.answer_not_now_forever("ProfileList");

    for session in 0..3 {
        let summary = device.poll().await.unwrap();
        let statuses: Vec<&str> = summary.commands.iter().map(|c| c.status.as_str()).collect();
        let expected: &[&str] = if session == 0 {
            &["NotNow", "Acknowledged"]
        } else {
            &["NotNow"]
        };
        assert_eq!(statuses, expected, "session {session}");
    }
    let reports = setup.mdm.report(&list.command_uuid);
    assert_eq!(reports.len(), 3);
    assert!(reports.iter().all(|r| r.status == CommandStatus::NotNow));
}
