//! Sync Now and its live progress (`/settings/abm/{name}/sync`): a POST starts
//! [`guardmdm_service::SyncService::sync_now`] (or finds the run already going), and the page
//! shows the running run's progress and the recent runs. htmx polls the progress fragment
//! every second while a run is going and stops when it ends; without JavaScript the page is
//! simply refreshed.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use guardmdm_service::dep_sync::SyncRun;
use guardmdm_service::{AbmEntryView, ServiceError, SyncRunId, TokenState};
use serde::Deserialize;
use time::OffsetDateTime;

use super::abm::{EntryView, entry_href};
use super::error_page::error_page;
use super::forms::FormData;
use super::{Chrome, Page, path_segment, shown};
use super::{rfc3339, see_other, when};
use crate::AppState;

/// How many recent runs the pages show.
const RECENT_RUNS: u32 = 10;

/// One run as the pages show it.
pub(crate) struct RunView {
    pub(super) id: SyncRunId,
    pub(super) started: String,
    pub(super) started_at: String,
    pub(super) duration: String,
    pub(super) trigger: &'static str,
    pub(super) outcome: &'static str,
    pub(super) outcome_class: &'static str,
    pub(super) pages: u64,
    pub(super) fetched: u64,
    pub(super) added: u64,
    pub(super) updated: u64,
    pub(super) removed: u64,
    pub(super) error: Option<String>,
}

/// The sync state of one entry: what the progress region and the runs table show.
pub(crate) struct SyncView {
    pub(super) name: String,
    /// The sync page (and, for htmx, the progress fragment).
    pub(super) href: String,
    pub(super) devices_href: String,
    pub(super) can_sync: bool,
    /// A run is going: the progress region polls.
    pub(super) polling: bool,
    pub(super) summary: String,
    pub(super) error: Option<String>,
    pub(super) runs: Vec<RunView>,
    /// Rendered as an htmx out-of-band swap (the polled fragment).
    pub(super) oob: bool,
    /// What the newest run has done so far: a poll that saw this gets no content (nothing
    /// changed, so nothing is swapped and screen readers hear nothing new).
    pub(super) version: String,
}

/// The progress of the newest run as one string.
fn version(runs: &[SyncRun]) -> String {
    runs.first().map_or_else(
        || "none".to_string(),
        |r| {
            format!(
                "{}-{}-{}-{}-{}-{}",
                r.id, r.outcome, r.pages, r.counts.added, r.counts.modified, r.counts.removed
            )
        },
    )
}

/// `12 s`, `3 min 5 s`, `2 h 10 min`.
fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

fn outcome(outcome: &str) -> (&'static str, &'static str) {
    match outcome {
        "running" => ("Running", "pending"),
        "succeeded" => ("Succeeded", "ok"),
        "failed" => ("Failed", "bad"),
        "anomaly" => ("Stopped: Apple repeated a cursor", "bad"),
        "interrupted" => ("Interrupted (the server stopped)", "warn"),
        _ => ("Unknown", "warn"),
    }
}

fn trigger(trigger: &str) -> &'static str {
    match trigger {
        "manual" => "Sync Now",
        "scheduled" => "Every 5 minutes",
        "full_resync" => "Full resync",
        _ => "Other",
    }
}

impl RunView {
    fn new(run: &SyncRun, now: OffsetDateTime) -> Self {
        let (outcome, outcome_class) = outcome(&run.outcome);
        let end = run.finished_at.unwrap_or(now);
        let c = &run.counts;
        Self {
            id: run.id,
            started: when(run.started_at),
            started_at: rfc3339(run.started_at),
            duration: duration((end - run.started_at).whole_seconds()),
            trigger: trigger(&run.trigger),
            outcome,
            outcome_class,
            pages: run.pages,
            fetched: c.added + c.modified + c.removed,
            added: c.added,
            updated: c.modified,
            removed: c.removed,
            error: run.error.clone(),
        }
    }
}

/// One sentence on the newest run: its progress so far, or how it ended.
fn summary(runs: &[SyncRun], has_token: bool, now: OffsetDateTime) -> String {
    let Some(run) = runs.first() else {
        return if has_token {
            "No sync yet: press Sync Now, or wait for the automatic sync (every 5 minutes)."
                .to_string()
        } else {
            "No sync yet: upload the server token first.".to_string()
        };
    };
    let v = RunView::new(run, now);
    let counts = format!(
        "{} device{} fetched ({} added, {} updated, {} removed)",
        v.fetched,
        if v.fetched == 1 { "" } else { "s" },
        v.added,
        v.updated,
        v.removed
    );
    if run.outcome == "running" {
        format!(
            "Sync running (started {}): {} page{}, {counts} so far.",
            v.started,
            v.pages,
            if v.pages == 1 { "" } else { "s" }
        )
    } else {
        let mut s = format!(
            "Last sync started {}: {} after {}; {counts}.",
            v.started,
            v.outcome.to_lowercase(),
            v.duration
        );
        if let Some(e) = &run.error {
            s.push(' ');
            s.push_str(e);
        }
        s
    }
}

/// The sync view of an entry.
pub(super) async fn view(
    state: &AppState,
    entry: &AbmEntryView,
    oob: bool,
) -> Result<SyncView, ServiceError> {
    let runs = state.services.sync.runs(&entry.name, RECENT_RUNS).await?;
    let now = OffsetDateTime::now_utc();
    let has_token = entry.health.state != TokenState::Pending;
    Ok(SyncView {
        href: format!("{}/sync", entry_href(&entry.name)),
        devices_href: format!("/devices?entry={}", path_segment(&entry.name)),
        name: entry.name.clone(),
        can_sync: has_token,
        polling: runs.first().is_some_and(|r| r.outcome == "running"),
        summary: summary(&runs, has_token, now),
        error: None,
        version: version(&runs),
        runs: runs.iter().map(|r| RunView::new(r, now)).collect(),
        oob,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "abm_sync.html")]
struct SyncPage {
    chrome: Chrome,
    entry: EntryView,
    sync: SyncView,
}

#[derive(Template, WebTemplate)]
#[template(path = "sync_fragment.html")]
struct SyncFragment {
    sync: SyncView,
}

/// Whether htmx asks for the fragment (a poll), not for a page (a boosted link).
fn wants_fragment(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request") && !headers.contains_key("hx-boosted")
}

/// What a poll has seen.
#[derive(Deserialize)]
pub(crate) struct PollQuery {
    seen: Option<String>,
}

/// `GET /settings/abm/{name}/sync`: the sync page, or for an htmx poll its fragment (no
/// content when nothing changed since the poll's `seen`).
pub(crate) async fn show(
    State(state): State<AppState>,
    page: Page,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(poll): Query<PollQuery>,
) -> Response {
    let fragment = wants_fragment(&headers);
    if fragment && let Some(seen) = &poll.seen {
        match state.services.sync.runs(&name, 1).await {
            Ok(runs) if version(&runs) == *seen => return StatusCode::NO_CONTENT.into_response(),
            Ok(_) => {}
            Err(e) => return error_page(&page, e),
        }
    }
    sync_page(&state, &page, &name, None, StatusCode::OK, fragment).await
}

async fn sync_page(
    state: &AppState,
    page: &Page,
    name: &str,
    error: Option<String>,
    status: StatusCode,
    fragment: bool,
) -> Response {
    let entry = match state.services.abm_entries.get(name).await {
        Ok(e) => e,
        Err(e) => return error_page(page, e),
    };
    let mut sync = match view(state, &entry, fragment).await {
        Ok(s) => s,
        Err(e) => return error_page(page, e),
    };
    sync.error = error;
    if fragment {
        return (status, SyncFragment { sync }).into_response();
    }
    let view = SyncPage {
        chrome: page.chrome("/settings/abm"),
        entry: EntryView::from(&entry),
        sync,
    };
    (status, view).into_response()
}

/// `POST /settings/abm/{name}/sync`: Sync Now (`full` ticked: a full resync). A run already
/// going is shown as that run, not as an error.
pub(crate) async fn start(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let full = match FormData::read(req, 16 * 1024).await {
        Ok(form) => form.checked("full"),
        Err(e) => {
            return sync_page(&state, &page, &name, Some(e.message), e.status, false).await;
        }
    };
    let here = format!("{}/sync", entry_href(&name));
    match state
        .services
        .sync
        .sync_now(&page.session.actor(), &name, full)
        .await
    {
        Ok(start) if start.started => see_other(&here, "sync_started"),
        Ok(_) => see_other(&here, "sync_running"),
        Err(e @ ServiceError::NotFound(_)) => error_page(&page, e),
        Err(e) => {
            let (status, message) = shown(&e);
            sync_page(&state, &page, &name, Some(message), status, false).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardmdm_service::dep_sync::PageCounts;

    fn run(outcome: &str, finished: bool) -> SyncRun {
        let started = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        SyncRun {
            id: SyncRunId::from_inner(7),
            entry_id: guardmdm_service::EntryId::from_inner(uuid::Uuid::nil()),
            trigger: "manual".to_string(),
            holder: "instance-1".to_string(),
            started_at: started,
            finished_at: finished.then(|| started + time::Duration::seconds(75)),
            pages: 3,
            counts: PageCounts {
                added: 250,
                modified: 40,
                removed: 10,
            },
            outcome: outcome.to_string(),
            error: (outcome == "failed").then(|| "Apple answered 503.".to_string()),
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(0), "0 s");
        assert_eq!(duration(75), "1 min 15 s");
        assert_eq!(duration(7260), "2 h 1 min");
        assert_eq!(duration(-3), "0 s");
    }

    #[test]
    fn the_summary_tells_progress_or_the_end() {
        let started = run("running", false).started_at;
        let now = started + time::Duration::seconds(12);
        let s = summary(&[run("running", false)], true, now);
        assert!(s.starts_with("Sync running (started 2024-"), "{s}");
        assert!(
            s.ends_with("3 pages, 300 devices fetched (250 added, 40 updated, 10 removed) so far."),
            "{s}"
        );
        let s = summary(&[run("failed", true)], true, now);
        assert!(
            s.contains("failed after 1 min 15 s") && s.ends_with("Apple answered 503."),
            "{s}"
        );
        assert!(summary(&[], false, now).contains("upload the server token first"));
        assert!(summary(&[], true, now).contains("press Sync Now"));
    }

    #[test]
    fn the_version_changes_with_progress() {
        let a = run("running", false);
        let mut b = a.clone();
        b.pages += 1;
        assert_ne!(version(std::slice::from_ref(&a)), version(&[b]));
        assert_eq!(version(std::slice::from_ref(&a)), version(&[a]));
        assert_eq!(version(&[]), "none");
    }

    #[test]
    fn only_a_poll_gets_the_fragment() {
        let mut h = HeaderMap::new();
        assert!(!wants_fragment(&h));
        h.insert("hx-request", "true".parse().unwrap());
        assert!(wants_fragment(&h));
        h.insert("hx-boosted", "true".parse().unwrap());
        assert!(!wants_fragment(&h));
    }
}
