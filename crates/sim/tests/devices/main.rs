//! Simulated devices against a fake MDM server over real sockets: ADE enrollment, SCEP,
//! check-in, the command loop, APNs wake-ups, faults, and the device's strictness.

// Test helpers outside #[test] functions unwrap and panic freely: a failure is a failed test.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod apns;
mod commands;
mod enrollment;
mod fake_mdm;
mod strictness;

use std::sync::{Arc, OnceLock};

use guardmdm_crypto::{DeviceCa, TokenKeyPair};
use guardmdm_sim::{DeviceFamily, RunningApnsSim, SimConfig, SimDevice, Simulator};
use serde_json::{Value, json};

use fake_mdm::{FakeMdm, Mode};

/// One key pair for the simulated MDM server entry (generating one per test is slow).
fn key_pair() -> &'static TokenKeyPair {
    static KEY: OnceLock<TokenKeyPair> = OnceLock::new();
    KEY.get_or_init(|| guardmdm_crypto::generate_token_key_pair("GuardMDM device tests").unwrap())
}

/// One device CA for every test.
fn device_ca() -> &'static DeviceCa {
    static CA: OnceLock<DeviceCa> = OnceLock::new();
    CA.get_or_init(|| DeviceCa::generate("GuardMDM Device Tests").unwrap())
}

/// An organisation with one MDM server, a fake MDM server behind it, and optionally APNs.
struct Setup {
    sim: Simulator,
    server_uuid: String,
    mdm: Arc<FakeMdm>,
    apns: Option<RunningApnsSim>,
}

impl Setup {
    async fn new(mode: Mode) -> Self {
        let sim = Simulator::new(SimConfig {
            devices: 0,
            ..SimConfig::default()
        });
        let server = sim
            .register_server("Fake MDM", &key_pair().certificate_pem)
            .unwrap();
        let mdm = FakeMdm::start(device_ca(), mode).await;
        Self {
            sim,
            server_uuid: server.server_uuid,
            mdm,
            apns: None,
        }
    }

    async fn with_apns(mut self) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let apns = guardmdm_sim::ApnsSim::for_topic(fake_mdm::TOPIC)
            .start(listener)
            .unwrap();
        self.mdm.set_apns(&apns.base_url());
        self.apns = Some(apns);
        self
    }

    /// A purchased device of `family`, given an ADE profile pointing at the fake server with
    /// the `extra` keys (`url` can be overridden there).
    fn device(&self, family: DeviceFamily, extra: Value) -> SimDevice {
        let serial = self.sim.add_devices(1, Some(family))[0]
            .serial_number
            .clone();
        let mut profile = json!({
            "profile_name": "Fake MDM",
            "url": self.mdm.enroll_url(),
            "is_supervised": true,
            "devices": [serial],
        });
        let Value::Object(extra) = extra else {
            panic!("extra profile keys must be an object")
        };
        for (k, v) in extra {
            profile[k] = v;
        }
        let answer = self
            .sim
            .define_profile(&self.server_uuid, &profile)
            .unwrap();
        assert_eq!(answer["devices"][&serial], "SUCCESS", "{answer}");
        let device = SimDevice::new(&self.sim, &serial, device_ca()).unwrap();
        if let Some(apns) = &self.apns {
            device.attach_apns(&apns.apns);
        }
        device
    }

    /// Pushes `device` and waits for its session to end.
    async fn push_and_settle(&self, device: &SimDevice) -> u16 {
        let status = self.mdm.push(device.udid()).await;
        assert!(
            self.apns
                .as_ref()
                .unwrap()
                .apns
                .settle(std::time::Duration::from_secs(20))
                .await,
            "the woken device did not finish its session"
        );
        status
    }
}
