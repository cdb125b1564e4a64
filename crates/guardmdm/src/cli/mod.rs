//! The command line. `serve` runs the server; the admin commands (`abm`, `profiles`,
//! `groups`, `devices`, `enrollments`, `admins`, `api-tokens`, `audit`, `doctor`) call a running server's REST API at
//! `GUARDMDM_URL` with `GUARDMDM_API_TOKEN`, like `fleetctl`. Every list takes `--json`; errors go to stderr with a non-zero exit.

// The CLI's job is printing to stdout.
#![allow(clippy::print_stdout)]

mod abm;
mod abm_sim;
mod admins;
mod api_tokens;
mod audit;
mod backup;
mod client;
mod devices;
mod doctor;
mod enrollments;
mod groups;
mod mdm;
mod minimum_os;
mod profiles;
mod sync;
mod table;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

pub use client::{ApiClient, ClientArgs};

/// GuardMDM: Apple device management with zero-touch enrollment through Apple Business Manager.
#[derive(Debug, Parser)]
#[command(name = "guardmdm", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<crate::config::ServeArgs>),
    /// The whole story on this machine: simulated ABM, APNs and devices enrolling into
    /// GuardMDM on an embedded SQLite database.
    Demo(crate::demo::DemoArgs),
    /// Apple Business Manager: entries, server tokens.
    Abm {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: abm::AbmCommand,
    },
    /// The ABM simulator: Apple's DEP API and an ABM portal, for tests and demos.
    AbmSim(abm_sim::AbmSimArgs),
    /// Dashboard admins (sign-in accounts).
    Admins {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: admins::AdminsCommand,
    },
    /// API tokens for scripts and the CLI.
    ApiTokens {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: api_tokens::ApiTokenCommand,
    },
    /// Devices from Apple Business Manager.
    Devices {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: devices::DevicesCommand,
    },
    /// ADE profiles, OS defaults and device-level assignment.
    Profiles {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: profiles::ProfilesCommand,
    },
    /// The minimum OS a device must run to enroll (it is asked to update first).
    MinimumOs {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: minimum_os::MinimumOsCommand,
    },
    /// Device groups (static and smart) and the profiles they assign.
    Groups {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: groups::GroupsCommand,
    },
    /// The MDM push certificate (APNs).
    Apns {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: mdm::ApnsCommand,
    },
    /// MDM commands to enrolled devices.
    Commands {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: mdm::CommandsCommand,
    },
    /// Enrolled devices: those stuck in Setup Assistant, and releasing them.
    Enrollments {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: enrollments::EnrollmentsCommand,
    },
    /// An online copy of the SQLite database, while the server runs.
    Backup(backup::BackupArgs),
    /// Write the manual pages (guardmdm.1, guardmdm-serve.1, …) into a directory.
    #[command(hide = true)]
    Man {
        /// The directory to write them to (created if missing).
        dir: std::path::PathBuf,
    },
    /// The audit log, newest first.
    Audit {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: audit::AuditArgs,
    },
    /// Check the deployment as devices and Apple see it (public URL and its certificate,
    /// push certificate and APNs, ABM entries, clock, SCEP CA, database, disk). Exits
    /// non-zero when something blocks enrollment.
    Doctor {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: doctor::DoctorArgs,
    },
}

/// Runs a parsed command line.
///
/// # Errors
/// Whatever went wrong, worded for the person at the terminal.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => crate::server::serve(*args).await,
        Command::Demo(args) => crate::demo::run(args).await,
        Command::AbmSim(args) => abm_sim::run(args).await,
        Command::Abm { client, command } => abm::run(&ApiClient::new(&client)?, command).await,
        Command::Admins { client, command } => {
            admins::run(&ApiClient::new(&client)?, command).await
        }
        Command::ApiTokens { client, command } => {
            api_tokens::run(&ApiClient::new(&client)?, command).await
        }
        Command::Devices { client, command } => {
            devices::run(&ApiClient::new(&client)?, command).await
        }
        Command::Profiles { client, command } => {
            profiles::run(&ApiClient::new(&client)?, command).await
        }
        Command::MinimumOs { client, command } => {
            minimum_os::run(&ApiClient::new(&client)?, command).await
        }
        Command::Groups { client, command } => {
            groups::run(&ApiClient::new(&client)?, command).await
        }
        Command::Apns { client, command } => {
            mdm::run_apns(&ApiClient::new(&client)?, command).await
        }
        Command::Commands { client, command } => {
            mdm::run_commands(&ApiClient::new(&client)?, command).await
        }
        Command::Enrollments { client, command } => {
            enrollments::run(&ApiClient::new(&client)?, command).await
        }
        Command::Backup(args) => backup::run(args).await,
        Command::Man { dir } => write_manual(&dir),
        Command::Audit { client, args } => audit::run(&ApiClient::new(&client)?, args).await,
        Command::Doctor { client, args } => doctor::run(&client, args).await,
    }
}

/// `guardmdm man DIR`: one roff page per command (`guardmdm.1`, `guardmdm-serve.1`,
/// `guardmdm-abm-token-create.1`, …), from the same definitions as `--help`. Hidden commands
/// and clap's `help` subcommands stay out.
fn write_manual(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut command = Cli::command();
    command.build();
    write_pages(&command, "guardmdm", dir)
}

fn write_pages(command: &clap::Command, name: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .title(name.to_string())
        .render(&mut page)
        .context("rendering a manual page")?;
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    for sub in command.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
