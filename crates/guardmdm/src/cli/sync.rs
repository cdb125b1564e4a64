//! `guardmdm abm sync NAME [--wait] [--full]` and `guardmdm abm syncs NAME`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use guardmdm_service::SyncStart;
use guardmdm_service::dep_sync::SyncRun;
use reqwest::Method;
use time::format_description::well_known::Rfc3339;

use super::{ApiClient, table};

/// How often `--wait` asks for progress.
const POLL: Duration = Duration::from_millis(500);

pub(crate) async fn sync_now(
    client: &ApiClient,
    name: &str,
    wait: bool,
    full: bool,
) -> anyhow::Result<()> {
    let start: SyncStart = client
        .send_json_query(
            Method::POST,
            &["abm", "entries", name, "syncs"],
            &[("full", full)],
        )
        .await?;
    let verb = if start.started {
        "Started"
    } else {
        "Already running:"
    };
    eprintln!(
        "{verb} sync #{} of {name:?} ({}).",
        start.run.id, start.run.trigger
    );
    if !wait {
        return Ok(());
    }
    let id = start.run.id.to_string();
    let tty = std::io::stderr().is_terminal();
    let mut last = String::new();
    let run = loop {
        // The server ends a run whose instance stopped renewing its lease (killed, crashed):
        // following it ends with that run's `interrupted` outcome, not forever.
        let run: SyncRun = client
            .get(&["abm", "entries", name, "syncs", &id])
            .await
            .with_context(|| format!("following sync #{id} of {name:?}"))?;
        let line = progress(&run);
        if line != last {
            if tty {
                eprint!("\r\x1b[2K{line}");
                let _ = std::io::stderr().flush();
            } else {
                eprintln!("{line}");
            }
            last = line;
        }
        if run.outcome != "running" {
            break run;
        }
        tokio::time::sleep(POLL).await;
    };
    if tty {
        eprintln!();
    }
    match run.outcome.as_str() {
        "succeeded" => {
            println!("Sync #{} of {name:?} succeeded: {}.", run.id, counts(&run));
            Ok(())
        }
        "interrupted" => bail!(
            "sync #{} of {name:?} stopped before it finished ({}): {}. Start a new one with `guardmdm abm sync {name}`.",
            run.id,
            counts(&run),
            run.error
                .as_deref()
                .unwrap_or("no details")
                .trim_end_matches('.')
        ),
        outcome => bail!(
            "sync #{} of {name:?} {outcome}: {}",
            run.id,
            run.error.as_deref().unwrap_or("no details")
        ),
    }
}

fn counts(run: &SyncRun) -> String {
    format!(
        "{} page{}, {} added, {} modified, {} removed",
        run.pages,
        if run.pages == 1 { "" } else { "s" },
        run.counts.added,
        run.counts.modified,
        run.counts.removed
    )
}

fn progress(run: &SyncRun) -> String {
    let seen = run.counts.added + run.counts.modified + run.counts.removed;
    let spinner = ["|", "/", "-", "\\"][usize::try_from(run.pages % 4).unwrap_or(0)];
    let mark = if run.outcome == "running" {
        spinner
    } else {
        "✓"
    };
    format!("[{mark}] {seen} device records — {}", counts(run))
}

pub(crate) async fn list_runs(
    client: &ApiClient,
    name: &str,
    limit: u32,
    json: bool,
) -> anyhow::Result<()> {
    let runs: Vec<SyncRun> = client
        .get_query(&["abm", "entries", name, "syncs"], &[("limit", limit)])
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(());
    }
    if runs.is_empty() {
        println!("No syncs of {name:?} yet: guardmdm abm sync {name}");
        return Ok(());
    }
    let time = |t: Option<time::OffsetDateTime>| {
        t.map_or("-".to_string(), |t| t.format(&Rfc3339).unwrap_or_default())
    };
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.trigger.clone(),
                time(Some(r.started_at)),
                time(r.finished_at),
                r.outcome.clone(),
                r.pages.to_string(),
                r.counts.added.to_string(),
                r.counts.modified.to_string(),
                r.counts.removed.to_string(),
                r.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "ID", "TRIGGER", "STARTED", "FINISHED", "OUTCOME", "PAGES", "ADDED", "MODIFIED",
                "REMOVED", "ERROR"
            ],
            &rows
        )
    );
    Ok(())
}
