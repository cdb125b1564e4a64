//! The simulator handle: the Rust API that tests, `guardmdm demo` and the portal routes use.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::net::TcpListener;

use crate::catalog::DeviceFamily;
use crate::clock::{SimClock, iso8601};
use crate::config::SimConfig;
use crate::error::SimError;
use crate::faults::{Fault, FaultState};
use crate::report::{Activation, AssignmentReport, CsvReport, DeviceInfo, ServerInfo, ServerToken};
use crate::world::{NONE, World};

/// State shared by the handle and the HTTP handlers. Lock order: world, then faults.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) world: Mutex<World>,
    pub(crate) faults: Mutex<FaultState>,
    pub(crate) clock: SimClock,
}

impl Shared {
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, FaultState> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A simulated Apple Business Manager organisation. Cheap to clone; every clone is the same
/// organisation.
#[derive(Debug, Clone)]
pub struct Simulator {
    pub(crate) shared: Arc<Shared>,
}

impl Simulator {
    /// Builds the organisation with `config.devices` generated devices (about a second per
    /// million).
    #[must_use]
    pub fn new(config: SimConfig) -> Self {
        let clock = SimClock::new(config.start_time);
        let world = World::new(config, clock.now());
        Self {
            shared: Arc::new(Shared {
                world: Mutex::new(world),
                faults: Mutex::new(FaultState::default()),
                clock,
            }),
        }
    }

    /// The HTTP routes: the DEP API at Apple's paths and the portal under `/portal`.
    pub fn router(&self) -> axum::Router {
        crate::api::router(self.clone())
    }

    /// Serves the simulator on `listener` in a background task.
    ///
    /// # Errors
    /// When the listener's address cannot be read.
    pub fn start(&self, listener: TcpListener) -> std::io::Result<RunningSimulator> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = self.router();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(RunningSimulator {
            addr,
            sim: self.clone(),
            stop: Some(stop),
            task,
        })
    }

    /// Simulated time now.
    #[must_use]
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.shared.clock.now())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Moves simulated time forward: sessions idle out, sync cursors expire after seven
    /// days, tokens after a year.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(crate::config::secs(by));
    }

    fn now_secs(&self) -> i64 {
        self.shared.clock.now()
    }

    fn server_idx(world: &World, uuid: &str) -> Result<u32, SimError> {
        world
            .server_by_uuid(uuid)
            .ok_or_else(|| SimError::UnknownServer(uuid.to_string()))
    }

    /// Registers an MDM server by uploading its public-key certificate (PEM). The first
    /// server registered adopts the start-up devices when
    /// [`SimConfig::adopt_seed_devices`] is set.
    ///
    /// # Errors
    /// A duplicate or empty name, or a PEM that is not a usable certificate.
    pub fn register_server(
        &self,
        name: &str,
        certificate_pem: &str,
    ) -> Result<ServerInfo, SimError> {
        let mut world = self.shared.world();
        let idx = world.register_server(name, certificate_pem, self.now_secs())?;
        world
            .server_info(idx)
            .ok_or_else(|| SimError::UnknownServer(name.to_string()))
    }

    /// Replaces a server's public key; later tokens are encrypted to the new one.
    ///
    /// # Errors
    /// An unknown server or an unusable certificate.
    pub fn set_public_key(&self, server_uuid: &str, certificate_pem: &str) -> Result<(), SimError> {
        let mut world = self.shared.world();
        let idx = Self::server_idx(&world, server_uuid)?;
        world.set_public_key(idx, certificate_pem)
    }

    /// Turns "Allow this MDM server to release devices" on or off (`POST /devices/disown`).
    ///
    /// # Errors
    /// An unknown server.
    pub fn set_allow_release(&self, server_uuid: &str, allow: bool) -> Result<(), SimError> {
        let mut world = self.shared.world();
        let idx = Self::server_idx(&world, server_uuid)?;
        world.set_allow_release(idx, allow)
    }

    /// Downloads a new server token; the previous token of this server stops working.
    /// `admin_id` is the Apple Account shown by `/account` (the org admin when `None`).
    ///
    /// # Errors
    /// An unknown server, or an encryption failure.
    pub fn download_token(
        &self,
        server_uuid: &str,
        admin_id: Option<&str>,
    ) -> Result<ServerToken, SimError> {
        let mut world = self.shared.world();
        let idx = Self::server_idx(&world, server_uuid)?;
        world.issue_token(idx, self.now_secs(), admin_id)
    }

    /// Makes a server the default for new devices of `family` (any family when `None`);
    /// `server_uuid: None` clears that default.
    ///
    /// # Errors
    /// An unknown server.
    pub fn set_default_server(
        &self,
        family: Option<DeviceFamily>,
        server_uuid: Option<&str>,
    ) -> Result<(), SimError> {
        let mut world = self.shared.world();
        let idx = server_uuid
            .map(|u| Self::server_idx(&world, u))
            .transpose()?;
        world.set_default(family, idx);
        Ok(())
    }

    /// Every MDM server.
    #[must_use]
    pub fn servers(&self) -> Vec<ServerInfo> {
        let world = self.shared.world();
        (0..u32::try_from(world.servers.len()).unwrap_or(0))
            .filter_map(|i| world.server_info(i))
            .collect()
    }

    /// One MDM server.
    ///
    /// # Errors
    /// An unknown server.
    pub fn server(&self, server_uuid: &str) -> Result<ServerInfo, SimError> {
        let world = self.shared.world();
        let idx = Self::server_idx(&world, server_uuid)?;
        world
            .server_info(idx)
            .ok_or_else(|| SimError::UnknownServer(server_uuid.to_string()))
    }

    /// Adds `count` new devices (purchases), of `family` or a realistic mix. Automatic
    /// assignment sends each to the default server for its family, or the org-wide default.
    #[must_use]
    pub fn add_devices(&self, count: usize, family: Option<DeviceFamily>) -> Vec<DeviceInfo> {
        let mut world = self.shared.world();
        let added = world.purchase(count, family, self.now_secs());
        added
            .into_iter()
            .filter_map(|d| world.device_info(d))
            .collect()
    }

    /// A device of the organisation (`None` when unknown or disowned).
    #[must_use]
    pub fn device(&self, serial: &str) -> Option<DeviceInfo> {
        let world = self.shared.world();
        world.find(serial).and_then(|d| world.device_info(d))
    }

    /// Devices assigned to a server (oldest change first), or unassigned devices when
    /// `server_uuid` is `None`; `offset` and `limit` page through them.
    ///
    /// # Errors
    /// An unknown server.
    pub fn devices(
        &self,
        server_uuid: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<DeviceInfo>, SimError> {
        let world = self.shared.world();
        let list: Vec<u32> = match server_uuid {
            Some(uuid) => {
                let idx = Self::server_idx(&world, uuid)?;
                world.server(idx).map_or_else(Vec::new, |s| {
                    s.live.values().skip(offset).take(limit).copied().collect()
                })
            }
            None => (0..u32::try_from(world.devices.len()).unwrap_or(0))
                .filter(|&i| {
                    world
                        .device(i)
                        .is_some_and(|d| d.server == NONE && !d.disowned)
                })
                .skip(offset)
                .take(limit)
                .collect(),
        };
        Ok(list
            .into_iter()
            .filter_map(|d| world.device_info(d))
            .collect())
    }

    /// Manual assignment in the portal: moves `serials` to a server.
    ///
    /// # Errors
    /// An unknown server (unknown serials are reported, not errors).
    pub fn assign_devices<S: AsRef<str>>(
        &self,
        server_uuid: &str,
        serials: &[S],
    ) -> Result<AssignmentReport, SimError> {
        let mut world = self.shared.world();
        let idx = Self::server_idx(&world, server_uuid)?;
        let list: Vec<String> = serials.iter().map(|s| s.as_ref().to_string()).collect();
        Ok(world.assign_serials(idx, &list, self.now_secs()))
    }

    /// Takes `serials` off their MDM servers.
    #[must_use]
    pub fn unassign_devices<S: AsRef<str>>(&self, serials: &[S]) -> AssignmentReport {
        let list: Vec<String> = serials.iter().map(|s| s.as_ref().to_string()).collect();
        self.shared.world().unassign_serials(&list, self.now_secs())
    }

    /// The serial-number CSV upload: assigns every serial in `csv` to a server.
    ///
    /// # Errors
    /// An unknown server.
    pub fn assign_csv(&self, server_uuid: &str, csv: &str) -> Result<CsvReport, SimError> {
        let parsed = crate::csv::parse_serial_csv(csv);
        let assignment = self.assign_devices(server_uuid, &parsed.serials)?;
        Ok(CsvReport {
            assignment,
            invalid_rows: parsed.invalid,
            duplicates: parsed.duplicates,
            header: parsed.header,
        })
    }

    /// What Apple hands the device at first boot; a delivered profile becomes `pushed`.
    ///
    /// # Errors
    /// [`SimError::UnknownDevice`] for a serial not in the organisation.
    pub fn activate(&self, serial: &str) -> Result<Activation, SimError> {
        self.shared.world().activate(serial, self.now_secs())
    }

    /// Defines an ADE profile for a server, as its `POST /profile` would (§3.6, protocol
    /// version 10): the same validation, a new `profile_uuid`, and assignment of the
    /// profile's optional `devices`. Returns the DEP answer (`profile_uuid`, and `devices`
    /// with a status per serial).
    ///
    /// # Errors
    /// An unknown server, or [`SimError::Invalid`] with Apple's code for an invalid profile.
    pub fn define_profile(&self, server_uuid: &str, profile: &Value) -> Result<Value, SimError> {
        let mut world = self.shared.world();
        let server = Self::server_idx(&world, server_uuid)?;
        let caller = crate::world::Caller {
            server,
            version: 10,
        };
        let mut faults = self.shared.faults();
        world
            .define_profile(caller, profile, self.now_secs(), &mut faults)
            .map_err(|(_, code)| SimError::Invalid(code.to_string()))
    }

    /// What a simulated device needs to know about itself: its catalogue model and the
    /// identifiers its DEP record shows.
    pub(crate) fn hardware(&self, serial: &str) -> Option<Catalogued> {
        let world = self.shared.world();
        let idx = world.find(serial)?;
        let dev = world.device(idx)?;
        let model = crate::catalog::model(dev.model);
        Some(Catalogued {
            serial: dev.serial.as_str().to_string(),
            model,
            capacity: model
                .capacities
                .get(usize::from(dev.capacity))
                .copied()
                .unwrap_or("64GB"),
            radio: crate::render::radio_ids(idx, model),
        })
    }

    /// Injects a fault into the DEP API.
    ///
    /// # Errors
    /// A fault whose values are out of range.
    pub fn inject_fault(&self, fault: Fault) -> Result<(), SimError> {
        match fault {
            Fault::ExpireSessions => self.expire_sessions(),
            Fault::ExpireCursors => self.expire_cursors(),
            _ => {}
        }
        self.shared.faults().arm(fault).map_err(SimError::Invalid)
    }

    /// Removes every armed fault.
    pub fn clear_faults(&self) {
        self.shared.faults().clear();
    }

    /// The armed faults.
    #[must_use]
    pub fn faults(&self) -> Vec<Fault> {
        self.shared.faults().list()
    }

    /// Ends every session: the next API call gets 401 `UNAUTHORIZED`.
    pub fn expire_sessions(&self) {
        self.shared.world().sessions.clear();
    }

    /// Expires every cursor issued so far: sync answers `EXPIRED_CURSOR`.
    pub fn expire_cursors(&self) {
        let mut world = self.shared.world();
        world.cursor_generation = world.cursor_generation.wrapping_add(1);
    }

    /// The organisation at a glance, as `GET /portal/org` shows it.
    #[must_use]
    pub fn summary(&self) -> Value {
        let servers = self.servers();
        let world = self.shared.world();
        let org = &world.config.org;
        let unassigned = world
            .devices
            .iter()
            .filter(|d| d.server == NONE && !d.disowned)
            .count();
        json!({
            "org_name": org.name, "org_id": world.org_id, "org_email": org.email,
            "org_phone": org.phone, "org_address": org.address, "org_type": org.org_type,
            "admin_id": org.admin_id, "now": iso8601(self.now_secs()),
            "devices": world.devices.iter().filter(|d| !d.disowned).count(),
            "unassigned_devices": unassigned, "servers": servers,
        })
    }
}

/// A device of the organisation, as [`Simulator::hardware`] describes it.
pub(crate) struct Catalogued {
    pub(crate) serial: String,
    pub(crate) model: &'static crate::catalog::Model,
    pub(crate) capacity: &'static str,
    pub(crate) radio: crate::render::RadioIds,
}

/// A simulator serving HTTP, from [`Simulator::start`].
#[derive(Debug)]
pub struct RunningSimulator {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The organisation it serves.
    pub sim: Simulator,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningSimulator {
    /// `http://ADDR`: the DEP API base URL (point GuardMDM's `--abm-url` here); the portal is
    /// under `/portal`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and waits for open connections to finish.
    ///
    /// # Errors
    /// The server's I/O error, if it failed.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}
