//! GuardMDM's integration tests, one module per area, linked into one test binary (38
//! binaries took longer to link than to run). Each test starts real servers, simulators and
//! clients over real sockets; `common` is the harness. Run one area with a filter, e.g.
//! `cargo test -p guardmdm --test it enrollment::`.

mod common;

mod abm_sim;
mod abm_tokens;
mod acme;
mod admins_cli;
mod api_auth;
mod api_tokens;
mod apns_certificate;
mod assignment;
mod backup;
mod browser;
mod browser_abm;
mod browser_apns;
mod browser_health;
mod browser_profiles;
mod browser_setup_assistant;
mod browser_tls;
mod cli;
mod dashboard;
mod dashboard_abm;
mod dashboard_profiles;
mod demo;
mod device_hostile;
mod doctor;
mod edge;
mod enrollment;
mod foreign_clients;
mod fuzz_http;
mod inputs;
mod minimum_os;
mod push;
mod serve;
mod setup_assistant;
mod signin_limits;
mod sync;
mod sync_crash;
mod third_party_device;
mod tls;
mod upgrade;
