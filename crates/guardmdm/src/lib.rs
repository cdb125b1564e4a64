//! The `guardmdm` binary's library half: configuration, wiring of the server, and the admin
//! CLI that talks to a running server over the REST API. `main.rs` only parses and dispatches.

pub mod acme;
pub mod cli;
pub mod config;
pub mod demo;
pub mod edge;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod tls_files;
