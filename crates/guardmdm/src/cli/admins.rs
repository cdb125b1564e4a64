//! `guardmdm admins …`: dashboard accounts.

use std::io::Read as _;

use anyhow::{Context, bail};
use guardmdm_service::AdminView;
use reqwest::Method;
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use super::{ApiClient, table};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AdminsCommand {
    /// Create a dashboard admin. The password (at least 12 characters) is read from standard
    /// input, so it never shows in the shell history or the process list.
    Create {
        /// Sign-in name (letters, digits, `.`, `_`, `-`).
        name: String,
        /// Read the password from standard input (its first line). Required: there is no
        /// other way to pass it.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List admins (never their passwords).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete an admin; their dashboard sessions end at once.
    Delete {
        /// Sign-in name.
        name: String,
    },
}

pub(crate) async fn run(client: &ApiClient, command: AdminsCommand) -> anyhow::Result<()> {
    match command {
        AdminsCommand::Create {
            name,
            password_stdin,
        } => {
            if !password_stdin {
                bail!(
                    "pass the password on standard input with --password-stdin, e.g. \
                     `printf '%s' \"$PASSWORD\" | guardmdm admins create {name} --password-stdin`"
                );
            }
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .context("reading the password from standard input")?;
            let password = input.lines().next().unwrap_or_default().to_string();
            let admin: AdminView = client
                .send_json(
                    Method::POST,
                    &["admins"],
                    &json!({ "name": name, "password": password }),
                )
                .await?;
            eprintln!(
                "Created admin {:?}: sign in to the dashboard at {}/signin",
                admin.name,
                client.base_url().trim_end_matches('/')
            );
        }
        AdminsCommand::List { json } => {
            let admins: Vec<AdminView> = client.get(&["admins"]).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&admins)?);
            } else {
                let time = |t: Option<time::OffsetDateTime>, none: &str| {
                    t.map_or(none.to_string(), |t| t.format(&Rfc3339).unwrap_or_default())
                };
                let rows: Vec<Vec<String>> = admins
                    .into_iter()
                    .map(|a| {
                        vec![
                            a.name,
                            time(Some(a.created_at), "-"),
                            a.created_by,
                            time(a.last_sign_in_at, "never"),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table::render(&["NAME", "CREATED", "CREATED BY", "LAST SIGN-IN"], &rows)
                );
            }
        }
        AdminsCommand::Delete { name } => {
            client.delete(&["admins", &name]).await?;
            eprintln!("Deleted admin {name:?}; their sessions have ended.");
        }
    }
    Ok(())
}
