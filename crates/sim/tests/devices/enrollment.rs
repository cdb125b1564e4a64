//! A device from first boot to enrolled, step by step and all at once.

use guardmdm_mdm_protocol::{Command, CommandRequest, CommandStatus};
use guardmdm_sim::{DeviceError, DeviceFamily, SimDevice};
use serde_json::json;

use crate::fake_mdm::{self, Mode};
use crate::{Setup, device_ca};

#[tokio::test]
async fn an_iphone_enrolls_step_by_step() {
    let setup = Setup::new(Mode {
        sign_message: true,
        ..Mode::default()
    })
    .await;
    let device = setup.device(
        DeviceFamily::IPhone,
        json!({
            "await_device_configured": true,
            "is_mdm_removable": false,
            "anchor_certs": [fake_mdm::anchor(setup.mdm.signer.certificate())],
        }),
    );
    assert_eq!(device.udid().len(), 25, "{}", device.udid());
    assert!(device.product().starts_with("iPhone"));
    assert_eq!(device.status().phase, "new");

    // Out of order: nothing to enroll with yet.
    assert!(matches!(
        device.post_machine_info().await,
        Err(DeviceError::OutOfOrder { .. })
    ));

    let activation = device.activate(&setup.sim).unwrap();
    assert_eq!(activation.status, "profile");
    let ade = device.ade_profile().unwrap();
    assert!(ade.await_device_configured);
    assert!(!ade.is_mdm_removable);
    assert_eq!(ade.anchor_certs.len(), 1);
    // Apple marks the profile as pushed to the device.
    assert_eq!(
        setup.sim.device(device.serial()).unwrap().profile_status,
        "pushed"
    );

    let info = device.post_machine_info().await.unwrap();
    assert!(info.signer_trusted);
    assert_eq!(info.profile_identifier, fake_mdm::PROFILE_ID);
    assert_eq!(info.mdm.topic, fake_mdm::TOPIC);
    assert_eq!(info.mdm.identity_certificate_uuid, info.scep.payload_uuid);
    assert!(info.mdm.sign_message);
    assert_eq!(info.scep.key_size, 2048);
    {
        let seen = setup.mdm.seen.lock().unwrap();
        let machine_info = &seen.machine_infos[0];
        assert_eq!(machine_info.udid, device.udid());
        assert_eq!(machine_info.serial, device.serial());
        assert_eq!(machine_info.product, device.product());
        assert_eq!(machine_info.version, device.build_version());
        assert_eq!(
            machine_info.os_version.as_deref(),
            Some(device.os_version().as_str())
        );
        assert_eq!(machine_info.language.as_deref(), Some("en-US"));
        assert_eq!(machine_info.imei.as_deref(), device.imei());
    }

    let cert = device.scep().await.unwrap();
    assert!(setup.mdm.ca.issued_by_me(&cert));
    assert_eq!(cert.subject_common_name(), Some(device.udid()));
    assert_eq!(device.status().phase, "identity_issued");

    device.check_in_authenticate().await.unwrap();
    device.check_in_token_update().await.unwrap();
    let status = device.status();
    assert_eq!(status.phase, "enrolled");
    assert!(status.awaiting_configuration);
    assert_eq!(status.profiles, [fake_mdm::PROFILE_ID]);

    let seen = setup.mdm.seen.lock().unwrap();
    assert_eq!(seen.bad_signatures, 0, "every Mdm-Signature verified");
    let types: Vec<&str> = seen.checkins.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["Authenticate", "TokenUpdate"]);
    let auth = &seen.authenticates[0];
    assert_eq!(auth.serial_number.as_deref(), Some(device.serial()));
    assert_eq!(auth.product_name.as_deref(), Some(device.product()));
    assert_eq!(auth.imei.as_deref(), device.imei());
    assert_eq!(
        auth.model_name, None,
        "DeviceName/Model/ModelName are for Macs"
    );
    let push = &seen.pushes[device.udid()];
    assert!(push.awaiting_configuration);
    assert_eq!(push.token_hex.len(), 64);
    assert_eq!(Some(push.token_hex.clone()), device.status().push_token);
}

#[tokio::test]
async fn a_mac_enrolls_and_runs_its_first_session_without_apns() {
    let setup = Setup::new(Mode::default()).await;
    let device = setup.device(DeviceFamily::Mac, json!({}));
    assert!(uuid::Uuid::parse_str(device.udid()).is_ok());
    let report = device.enroll_and_run(&setup.sim).await.unwrap();
    assert!(report.enrolled);
    let first = report.first_poll.unwrap();
    assert!(first.commands.is_empty());

    let seen = setup.mdm.seen.lock().unwrap();
    let auth = &seen.authenticates[0];
    assert_eq!(auth.model.as_deref(), Some(device.product()));
    assert!(auth.model_name.is_some() && auth.device_name.is_some());
    assert_eq!(auth.imei, None);
    assert!(!seen.pushes[device.udid()].awaiting_configuration);
    // The first session was an Idle poll.
    assert!(seen.reports[0].is_idle());
    assert_eq!(seen.reports[0].identity.as_str(), device.udid());
}

#[tokio::test]
async fn a_device_without_a_profile_sets_up_unmanaged() {
    let setup = Setup::new(Mode::default()).await;
    let serial = setup.sim.add_devices(1, Some(DeviceFamily::IPad))[0]
        .serial_number
        .clone();
    let device = SimDevice::new(&setup.sim, &serial, device_ca()).unwrap();
    let report = device.enroll_and_run(&setup.sim).await.unwrap();
    assert_eq!(report.activation.status, "no_profile");
    assert!(!report.enrolled);
    assert_eq!(device.status().phase, "activated");
    assert!(setup.mdm.seen.lock().unwrap().machine_infos.is_empty());

    let report = setup.sim.unassign_devices(&[&serial]);
    assert_eq!(report.unassigned, std::slice::from_ref(&serial));
    assert_eq!(device.activate(&setup.sim).unwrap().status, "not_assigned");
    assert!(matches!(
        SimDevice::new(&setup.sim, "NOSUCHSERIAL", device_ca()),
        Err(DeviceError::UnknownSerial(_))
    ));
}

#[tokio::test]
async fn a_push_wakes_the_device_and_device_configured_releases_it() {
    let setup = Setup::new(Mode::default()).await.with_apns().await;
    let device = setup.device(
        DeviceFamily::IPad,
        json!({ "await_device_configured": true }),
    );
    let report = device.enroll_and_run(&setup.sim).await.unwrap();
    assert!(report.enrolled);
    assert_eq!(
        report.first_poll, None,
        "with APNs, the device waits for a push"
    );
    assert!(device.status().awaiting_configuration);

    let configured = Command::new(CommandRequest::DeviceConfigured);
    setup.mdm.enqueue(device.udid(), configured.clone());
    assert_eq!(setup.push_and_settle(&device).await, 200);

    let reports = setup.mdm.report(&configured.command_uuid);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].status, CommandStatus::Acknowledged);
    assert!(!device.status().awaiting_configuration);
    let apns = &setup.apns.as_ref().unwrap().apns;
    let wakes = apns.wakes();
    assert_eq!(wakes.len(), 1);
    assert_eq!(wakes[0].udid, device.udid());
    assert_eq!(wakes[0].result.as_ref().unwrap().commands.len(), 1);
    let pushes = apns.pushes();
    assert_eq!(pushes[0].status, 200);
    assert_eq!(pushes[0].woke.as_deref(), Some(device.udid()));
}

#[tokio::test]
async fn erase_stops_the_device_and_unregisters_its_token() {
    let setup = Setup::new(Mode::default()).await.with_apns().await;
    let device = setup.device(DeviceFamily::IPhone, json!({}));
    device.enroll_and_run(&setup.sim).await.unwrap();
    let erase = Command::new(CommandRequest::EraseDevice(Default::default()));
    setup.mdm.enqueue(device.udid(), erase.clone());
    assert_eq!(setup.push_and_settle(&device).await, 200);

    assert_eq!(
        setup.mdm.report(&erase.command_uuid)[0].status,
        CommandStatus::Acknowledged
    );
    let status = device.status();
    assert_eq!(status.phase, "erased");
    assert!(status.profiles.is_empty());
    assert!(matches!(device.poll().await, Err(DeviceError::Erased)));
    // APNs now knows the token is dead.
    assert_eq!(setup.mdm.push(device.udid()).await, 410);

    // Setup Assistant again: the device can enroll anew, with a new push token.
    let old_token = setup.mdm.seen.lock().unwrap().pushes[device.udid()]
        .token_hex
        .clone();
    let report = device.enroll_and_run(&setup.sim).await.unwrap();
    assert!(report.enrolled);
    let new_token = setup.mdm.seen.lock().unwrap().pushes[device.udid()]
        .token_hex
        .clone();
    assert_ne!(old_token, new_token);
    assert_eq!(device.status().phase, "enrolled");
}
