//! The `Device` record on the wire (`docs/protocol.md` §4), gated by `X-Server-Protocol-Version`
//! (§2.3): `device_family` and `os` from version 2, `iPadOS` from 7, and the version-10
//! fields (`is_replacement_device`, `imei`, `eid`, MAC addresses) from 10. Optional values
//! are omitted rather than sent empty.

use serde::Serialize;

use crate::catalog::{self, DeviceFamily};
use crate::clock::iso8601;
use crate::rng::mix;
use crate::world::{DeviceState, NONE, OpType, World};

/// One device as Apple serialises it.
#[derive(Debug, Serialize)]
pub(crate) struct DeviceJson<'a> {
    serial_number: &'a str,
    model: &'static str,
    description: String,
    color: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_family: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    os: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_assigned_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_assigned_date: Option<String>,
    profile_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_uuid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_assign_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_push_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    op_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    op_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_replacement_device: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    imei: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    eid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wifi_mac_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bluetooth_mac_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ethernet_mac_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) response_status: Option<&'static str>,
}

/// Renders device `idx` in `state` (its current state for fetch and details, the event's
/// snapshot for sync), with `op` for sync records.
pub(crate) fn device<'a>(
    world: &'a World,
    idx: u32,
    state: &DeviceState,
    op: Option<(OpType, i64)>,
    version: u32,
) -> Option<DeviceJson<'a>> {
    let dev = world.device(idx)?;
    let model = catalog::model(dev.model);
    let family = model.family;
    let assigned = state.assigned_at != 0;
    let v10 = version >= 10;
    let h = mix(u64::from(idx) ^ 0xA5A5_0000_0000);
    Some(DeviceJson {
        serial_number: dev.serial.as_str(),
        model: model.name,
        description: catalog::description(model, dev.color, dev.capacity),
        color: catalog::color_name(model, dev.color),
        device_family: (version >= 2).then(|| family.as_str()),
        os: (version >= 2).then(|| family.os(version)),
        device_assigned_by: assigned.then(|| world.person(state.assigned_by)),
        device_assigned_date: assigned.then(|| iso8601(state.assigned_at)),
        profile_status: state.status.as_str(),
        profile_uuid: (state.profile != NONE)
            .then(|| world.profile(state.profile).map(|p| p.uuid.as_str()))
            .flatten(),
        profile_assign_time: (state.profile_assign_time != 0)
            .then(|| iso8601(state.profile_assign_time)),
        profile_push_time: (state.profile_push_time != 0).then(|| iso8601(state.profile_push_time)),
        op_type: op.map(|(o, _)| o.as_str()),
        op_date: op.map(|(_, at)| iso8601(at)),
        is_replacement_device: v10.then_some(false),
        imei: (v10 && model.cellular).then(|| vec![imei(h)]),
        eid: (v10 && model.cellular).then(|| eid(h)),
        wifi_mac_address: v10.then(|| mac(h, 0)),
        bluetooth_mac_address: v10.then(|| mac(h, 1)),
        ethernet_mac_address: (v10 && matches!(family, DeviceFamily::Mac | DeviceFamily::AppleTv))
            .then(|| mac(h, 2)),
        response_status: None,
    })
}

/// The radio identifiers of device `idx` as its DEP record shows them (version 10), for the
/// simulated device itself to report the same values.
pub(crate) struct RadioIds {
    pub(crate) imei: Option<String>,
    pub(crate) wifi_mac: String,
    pub(crate) bluetooth_mac: String,
    pub(crate) ethernet_mac: Option<String>,
}

pub(crate) fn radio_ids(idx: u32, model: &catalog::Model) -> RadioIds {
    let h = mix(u64::from(idx) ^ 0xA5A5_0000_0000);
    RadioIds {
        imei: model.cellular.then(|| imei(h)),
        wifi_mac: mac(h, 0),
        bluetooth_mac: mac(h, 1),
        ethernet_mac: matches!(model.family, DeviceFamily::Mac | DeviceFamily::AppleTv)
            .then(|| mac(h, 2)),
    }
}

/// A 15-digit IMEI with a valid Luhn check digit.
fn imei(h: u64) -> String {
    let body = format!("35{:012}", h % 1_000_000_000_000);
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// A 32-digit eSIM EID.
fn eid(h: u64) -> String {
    format!("8904903200{:022}", u128::from(mix(h)) % 10_u128.pow(22))
}

/// A MAC address in Apple's lower-case colon form.
fn mac(h: u64, which: u64) -> String {
    let b = mix(h.wrapping_add(which)).to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0] & 0xfc,
        b[1],
        b[2],
        b[3],
        b[4],
        b[5]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imei_has_a_luhn_check_digit() {
        let i = imei(42);
        assert_eq!(i.len(), 15);
        let sum: u32 = i
            .bytes()
            .rev()
            .enumerate()
            .map(|(n, b)| {
                let d = u32::from(b - b'0');
                if n % 2 == 1 {
                    let x = d * 2;
                    if x > 9 { x - 9 } else { x }
                } else {
                    d
                }
            })
            .sum();
        assert_eq!(sum % 10, 0);
    }

    #[test]
    fn eid_and_mac_shapes() {
        assert_eq!(eid(1).len(), 32);
        assert_eq!(mac(1, 0).len(), 17);
        assert_ne!(mac(1, 0), mac(1, 1));
    }
}
