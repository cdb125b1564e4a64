#![doc = include_str!("../README.md")]

mod api;
pub mod apns;
pub mod catalog;
pub mod clock;
mod config;
pub mod csv;
pub mod cursor;
pub mod device;
mod error;
pub mod faults;
pub mod oauth;
mod portal_client;
pub mod profile;
mod render;
mod report;
pub mod rng;
mod sim;
mod world;

pub use apns::{ApnsSim, PushRecord, RunningApnsSim, Wake};
pub use catalog::DeviceFamily;
pub use config::{OrgConfig, SimConfig};
pub use device::{
    AdeProfile, CommandRun, DeviceError, DeviceStatus, EnrollmentInfo, EnrollmentReport,
    InstalledProfile, PollSummary, SimDevice, SimDeviceOptions,
};
pub use error::SimError;
pub use faults::Fault;
pub use portal_client::{DownloadedToken, PortalBody, PortalClient, PortalError};
pub use report::{Activation, AssignmentReport, CsvReport, DeviceInfo, ServerInfo, ServerToken};
pub use sim::{RunningSimulator, Simulator};
