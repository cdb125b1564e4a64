//! `guardmdm api-tokens …`: named API tokens.

use guardmdm_service::ApiKeyView;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use super::{ApiClient, table};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ApiTokenCommand {
    /// Create a token; it is printed once, on standard output.
    Create {
        /// Token name.
        name: String,
    },
    /// List tokens (never their values).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token; it stops working at once.
    Revoke {
        /// Token name.
        name: String,
    },
}

#[derive(Deserialize)]
struct Created {
    name: String,
    token: String,
}

pub(crate) async fn run(client: &ApiClient, command: ApiTokenCommand) -> anyhow::Result<()> {
    match command {
        ApiTokenCommand::Create { name } => {
            let created: Created = client
                .send_json(Method::POST, &["api-tokens"], &json!({ "name": name }))
                .await?;
            eprintln!(
                "Created API token {:?}. It is shown only now:",
                created.name
            );
            println!("{}", created.token);
        }
        ApiTokenCommand::List { json } => {
            let keys: Vec<ApiKeyView> = client.get(&["api-tokens"]).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                let time = |t: Option<time::OffsetDateTime>, none: &str| {
                    t.map_or(none.to_string(), |t| t.format(&Rfc3339).unwrap_or_default())
                };
                let rows: Vec<Vec<String>> = keys
                    .into_iter()
                    .map(|k| {
                        vec![
                            k.name,
                            time(Some(k.created_at), "-"),
                            k.created_by,
                            time(k.last_used_at, "never"),
                            time(k.revoked_at, "-"),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table::render(
                        &["NAME", "CREATED", "CREATED BY", "LAST USED", "REVOKED"],
                        &rows
                    )
                );
            }
        }
        ApiTokenCommand::Revoke { name } => {
            client.delete(&["api-tokens", &name]).await?;
            eprintln!("Revoked API token {name:?}.");
        }
    }
    Ok(())
}
