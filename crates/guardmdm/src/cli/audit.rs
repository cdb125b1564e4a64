//! `guardmdm audit`: who changed what.

use guardmdm_store::AuditEvent;
use time::format_description::well_known::Rfc3339;

use super::{ApiClient, table};

#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    /// How many events (newest first, at most 500).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Only events older than this event id (to page back).
    #[arg(long)]
    before: Option<i64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(client: &ApiClient, args: AuditArgs) -> anyhow::Result<()> {
    let mut query = vec![("limit", args.limit.to_string())];
    if let Some(before) = args.before {
        query.push(("before", before.to_string()));
    }
    let events: Vec<AuditEvent> = client.get_query(&["audit"], &query).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = events
        .into_iter()
        .map(|e| {
            vec![
                e.id.to_string(),
                e.at.format(&Rfc3339).unwrap_or_default(),
                e.actor,
                e.action,
                e.target,
                e.details.to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &["ID", "TIME", "ACTOR", "ACTION", "TARGET", "DETAILS"],
            &rows
        )
    );
    Ok(())
}
