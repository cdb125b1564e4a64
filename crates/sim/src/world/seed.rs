//! Building the organisation at start-up: deterministic devices from the seed.

use std::collections::HashMap;

use super::{Device, DeviceState, NONE, Serial, World};
use crate::catalog::{self, DeviceFamily};
use crate::config::SimConfig;
use crate::rng::SplitMix64;

/// Start-up devices are spread over the three years before the start time.
const HISTORY_SECS: i64 = 3 * 365 * 86_400;

impl World {
    /// A new organisation with `config.devices` unassigned devices, as of `now`.
    pub(crate) fn new(config: SimConfig, now: i64) -> Self {
        let mut rng = SplitMix64::new(config.seed);
        let org_id = format!("{}", 1_000_000 + rng.below(9_000_000));
        let people = vec!["-1".to_string(), config.org.admin_id.clone()];
        let mut cursor_key = uuid::Uuid::new_v4().as_bytes().to_vec();
        cursor_key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        let count = config.devices;
        let mut world = Self {
            config,
            org_id,
            devices: Vec::with_capacity(count),
            by_serial: HashMap::with_capacity(count),
            servers: Vec::new(),
            profiles: Vec::new(),
            by_profile_uuid: HashMap::new(),
            people,
            defaults: [NONE; 6],
            rng,
            cursor_key,
            cursor_generation: 0,
            sessions: super::Sessions::default(),
            assign_attempts: HashMap::new(),
        };
        let step = (HISTORY_SECS / i64::try_from(count.max(1)).unwrap_or(1)).max(1);
        let mut when = now - HISTORY_SECS;
        for _ in 0..count {
            when =
                (when + 1 + world.rng.below(u64::try_from(2 * step).unwrap_or(1)) as i64).min(now);
            world.add_device(None, when);
        }
        world
    }

    /// Adds one new device of `family` (a random family when `None`), purchased at `when`,
    /// unassigned. Returns its index.
    pub(crate) fn add_device(&mut self, family: Option<DeviceFamily>, when: i64) -> u32 {
        let family = family.unwrap_or_else(|| catalog::pick_family(&mut self.rng));
        let (model, color, capacity) = catalog::pick_model(&mut self.rng, family);
        let serial = loop {
            let text = catalog::generate_serial(&mut self.rng, catalog::model(model));
            if let Some(s) = Serial::parse(&text)
                && !self.by_serial.contains_key(&s)
            {
                break s;
            }
        };
        let idx = u32::try_from(self.devices.len()).unwrap_or(NONE);
        self.devices.push(Device {
            serial,
            model,
            color,
            capacity,
            disowned: false,
            purchased: when,
            server: NONE,
            live_in: NONE,
            seq: 0,
            state: DeviceState::UNASSIGNED,
        });
        self.by_serial.insert(serial, idx);
        idx
    }
}
