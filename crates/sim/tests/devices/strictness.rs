//! The device refuses what a device refuses.

use guardmdm_crypto::{DeviceCa, Identity};
use guardmdm_sim::{DeviceError, DeviceFamily, SimDevice};
use serde_json::json;

use crate::Setup;
use crate::fake_mdm::{self, Mode};

#[tokio::test]
async fn a_profile_signed_by_an_untrusted_key_is_refused() {
    let setup = Setup::new(Mode::default()).await;
    let stranger = Identity::generate_self_signed("Somebody Else").unwrap();
    let device = setup.device(
        DeviceFamily::IPhone,
        json!({ "anchor_certs": [fake_mdm::anchor(stranger.certificate())] }),
    );
    device.activate(&setup.sim).unwrap();
    let err = device.post_machine_info().await.unwrap_err();
    assert!(matches!(err, DeviceError::UntrustedProfile(_)), "{err}");
    assert!(err.to_string().contains("anchor_certs"), "{err}");
    assert_eq!(device.status().phase, "activated");
    assert!(matches!(
        device.scep().await,
        Err(DeviceError::OutOfOrder { .. })
    ));
}

#[tokio::test]
async fn without_anchor_certs_a_self_signed_signer_is_accepted_unverified() {
    let setup = Setup::new(Mode::default()).await;
    let device = setup.device(DeviceFamily::IPad, json!({}));
    device.activate(&setup.sim).unwrap();
    let info = device.post_machine_info().await.unwrap();
    assert!(!info.signer_trusted);
    assert_eq!(info.signer.as_ref(), Some(setup.mdm.signer.certificate()));
}

#[tokio::test]
async fn an_unsigned_profile_is_refused_when_anchors_are_given() {
    let setup = Setup::new(Mode {
        unsigned: true,
        ..Mode::default()
    })
    .await;
    let trusting = setup.device(
        DeviceFamily::IPhone,
        json!({ "anchor_certs": [fake_mdm::anchor(setup.mdm.signer.certificate())] }),
    );
    trusting.activate(&setup.sim).unwrap();
    assert!(matches!(
        trusting.post_machine_info().await,
        Err(DeviceError::UntrustedProfile(_))
    ));
    // Without anchors a device installs an unsigned profile.
    let plain = setup.device(DeviceFamily::IPhone, json!({}));
    plain.activate(&setup.sim).unwrap();
    let info = plain.post_machine_info().await.unwrap();
    assert_eq!(info.signer, None);
}

#[tokio::test]
async fn a_wrong_identity_certificate_uuid_is_refused() {
    let setup = Setup::new(Mode {
        wrong_identity_uuid: true,
        ..Mode::default()
    })
    .await;
    let device = setup.device(DeviceFamily::Mac, json!({}));
    device.activate(&setup.sim).unwrap();
    let err = device.post_machine_info().await.unwrap_err();
    assert!(matches!(err, DeviceError::InvalidProfile(_)), "{err}");
    assert!(err.to_string().contains("IdentityCertificateUUID"), "{err}");
}

#[tokio::test]
async fn a_server_that_does_not_trust_the_device_ca_refuses_it() {
    let setup = Setup::new(Mode::default()).await;
    let serial = setup.sim.add_devices(1, Some(DeviceFamily::IPhone))[0]
        .serial_number
        .clone();
    setup
        .sim
        .define_profile(
            &setup.server_uuid,
            &json!({ "profile_name": "x", "url": setup.mdm.enroll_url(), "devices": [serial] }),
        )
        .unwrap();
    // This device's identity comes from another CA than the one the server trusts.
    let other_ca = DeviceCa::generate("Unknown Devices").unwrap();
    let device = SimDevice::new(&setup.sim, &serial, &other_ca).unwrap();
    device.activate(&setup.sim).unwrap();
    let err = device.post_machine_info().await.unwrap_err();
    assert!(
        matches!(err, DeviceError::Status { status: 403, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_servers_and_wrong_content_types_are_errors() {
    let setup = Setup::new(Mode::default()).await;
    let device = setup.device(
        DeviceFamily::IPhone,
        json!({ "url": "http://127.0.0.1:9/mdm/enroll" }),
    );
    device.activate(&setup.sim).unwrap();
    assert!(matches!(
        device.post_machine_info().await,
        Err(DeviceError::Transport { .. })
    ));
    // A page that is not a profile (a login page, say).
    let device = setup.device(
        DeviceFamily::IPhone,
        json!({ "url": format!("{}/login", setup.mdm.base_url) }),
    );
    device.activate(&setup.sim).unwrap();
    let err = device.post_machine_info().await.unwrap_err();
    assert!(matches!(err, DeviceError::ContentType { .. }), "{err}");
    // A server error.
    let device = setup.device(
        DeviceFamily::IPhone,
        json!({ "url": format!("{}/scep?operation=GetCACaps", setup.mdm.base_url) }),
    );
    device.activate(&setup.sim).unwrap();
    let err = device.post_machine_info().await.unwrap_err();
    assert!(
        matches!(err, DeviceError::Status { status: 400, .. }),
        "{err}"
    );
}
