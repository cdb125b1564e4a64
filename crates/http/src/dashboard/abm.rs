//! Settings > ABM Integration (`/settings/abm`): the ABM entries with their token health;
//! "Generate Token" (a new entry and its key pair); per entry (`/settings/abm/{name}`) the
//! public key to upload to ABM, the server token upload, settings, Sync Now and deletion.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use guardmdm_service::abm_entries::{DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, MAX_TOKEN_FILE_BYTES};
use guardmdm_service::{AbmEntryView, EntrySettings, NewEntry, ServiceError, TokenState};

use super::error_page::error_page;
use super::forms::FormData;
use super::sync::{self, SyncView};
use super::{Chrome, Page, path_segment, shown};
use super::{see_other, when};
use crate::AppState;

/// The nav entry of these pages.
const NAV: &str = "/settings/abm";

/// An entry's href.
pub(super) fn entry_href(name: &str) -> String {
    format!("/settings/abm/{}", path_segment(name))
}

/// A token state as the admin reads it.
pub(super) fn state_label(state: TokenState) -> &'static str {
    match state {
        TokenState::Pending => "Waiting for the server token",
        TokenState::Active => "Active",
        TokenState::Expiring => "Expiring soon",
        TokenState::Expired => "Expired",
        TokenState::TermsNotSigned => "Blocked: Apple's terms not accepted",
        TokenState::Rejected => "Rejected by Apple",
    }
}

/// The CSS class of a state's badge.
fn state_class(state: TokenState) -> &'static str {
    match state {
        TokenState::Active => "ok",
        TokenState::Pending => "pending",
        TokenState::Expiring => "warn",
        TokenState::Expired | TokenState::TermsNotSigned | TokenState::Rejected => "bad",
    }
}

/// An entry as the pages show it.
pub(crate) struct EntryView {
    pub(super) name: String,
    pub(super) href: String,
    pub(super) key_href: String,
    pub(super) key_file: String,
    pub(super) state: &'static str,
    pub(super) state_class: &'static str,
    pub(super) has_token: bool,
    pub(super) message: String,
    pub(super) expires: String,
    pub(super) days_left: String,
    pub(super) last_sync: String,
    pub(super) uploaded: String,
    pub(super) server: String,
    pub(super) batch_size: u32,
    pub(super) abm_url: String,
}

impl From<&AbmEntryView> for EntryView {
    fn from(e: &AbmEntryView) -> Self {
        let href = entry_href(&e.name);
        Self {
            key_href: format!("{href}/public-key"),
            key_file: format!("GuardMDM_{}.pem", e.name),
            href,
            name: e.name.clone(),
            state: state_label(e.health.state),
            state_class: state_class(e.health.state),
            has_token: e.health.state != TokenState::Pending,
            message: e.health.message.clone(),
            expires: e
                .health
                .expires_at
                .map_or_else(|| "-".to_string(), |t| t.date().to_string()),
            days_left: match e.health.days_left {
                None => "-".to_string(),
                Some(d) if d < 0 => format!("expired {} days ago", -d),
                Some(1) => "1 day".to_string(),
                Some(d) => format!("{d} days"),
            },
            last_sync: e.last_sync_at.map_or_else(|| "never".to_string(), when),
            uploaded: e.token_uploaded_at.map_or_else(|| "-".to_string(), when),
            server: e.account.as_ref().map_or_else(
                || "-".to_string(),
                |a| match &a.org_name {
                    Some(org) => format!("{} ({org})", a.server_name),
                    None => a.server_name.clone(),
                },
            ),
            batch_size: e.batch_size,
            abm_url: e.abm_url.clone().unwrap_or_default(),
        }
    }
}

/// What the "Generate Token" form was filled with.
#[derive(Default)]
pub(crate) struct CreateForm {
    name: String,
    batch_size: String,
    abm_url: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "settings_abm.html")]
struct ListPage {
    chrome: Chrome,
    entries: Vec<EntryView>,
    form: CreateForm,
    error: Option<String>,
    default_batch: u32,
    max_batch: u32,
}

/// `GET /settings/abm`.
pub(crate) async fn list(page: Page) -> Response {
    list_page(&page, CreateForm::default(), None, StatusCode::OK).await
}

async fn list_page(
    page: &Page,
    form: CreateForm,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let entries = match page.abm_entries() {
        Ok(e) => e,
        Err(e) => return error_page(page, e),
    };
    let view = ListPage {
        chrome: page.chrome(NAV),
        entries: entries.iter().map(EntryView::from).collect(),
        form,
        error,
        default_batch: DEFAULT_BATCH_SIZE,
        max_batch: MAX_BATCH_SIZE,
    };
    (status, view).into_response()
}

/// A batch size field: blank is `None`.
fn batch_size(text: Option<&str>) -> Result<Option<u32>, ServiceError> {
    text.map(|t| {
        t.parse::<u32>().map_err(|_| {
            ServiceError::Invalid(format!(
                "batch size {t:?} is not a whole number: Apple pages hold 1 to {MAX_BATCH_SIZE} devices"
            ))
        })
    })
    .transpose()
}

/// `POST /settings/abm`: Generate Token, a new entry with its key pair.
pub(crate) async fn create(State(state): State<AppState>, page: Page, req: Request) -> Response {
    let form = match FormData::read(req, 16 * 1024).await {
        Ok(f) => f,
        Err(e) => return list_page(&page, CreateForm::default(), Some(e.message), e.status).await,
    };
    let entered = CreateForm {
        name: form.text("name").unwrap_or_default().to_string(),
        batch_size: form.text("batch_size").unwrap_or_default().to_string(),
        abm_url: form.text("abm_url").unwrap_or_default().to_string(),
    };
    let result = match batch_size(form.text("batch_size")) {
        Ok(batch_size) => {
            let new = NewEntry {
                name: entered.name.clone(),
                batch_size,
                abm_url: form.text("abm_url").map(str::to_string),
            };
            state
                .services
                .abm_entries
                .create(&page.session.actor(), new)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(view) => see_other(&entry_href(&view.name), "abm_created"),
        Err(e) => {
            let (status, message) = shown(&e);
            list_page(&page, entered, Some(message), status).await
        }
    }
}

/// Errors shown next to the entry page's forms.
#[derive(Default)]
pub(crate) struct EntryErrors {
    token: Option<String>,
    settings: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "abm_entry.html")]
struct EntryPage {
    chrome: Chrome,
    entry: EntryView,
    errors: EntryErrors,
    sync: SyncView,
    max_batch: u32,
    max_token_kib: usize,
}

/// `GET /settings/abm/{name}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
) -> Response {
    entry_page(&state, &page, &name, EntryErrors::default(), StatusCode::OK).await
}

async fn entry_page(
    state: &AppState,
    page: &Page,
    name: &str,
    errors: EntryErrors,
    status: StatusCode,
) -> Response {
    let entry = match state.services.abm_entries.get(name).await {
        Ok(e) => e,
        Err(e) => return error_page(page, e),
    };
    let sync = match sync::view(state, &entry, false).await {
        Ok(s) => s,
        Err(e) => return error_page(page, e),
    };
    let view = EntryPage {
        chrome: page.chrome(NAV),
        entry: EntryView::from(&entry),
        errors,
        sync,
        max_batch: MAX_BATCH_SIZE,
        max_token_kib: MAX_TOKEN_FILE_BYTES / 1024,
    };
    (status, view).into_response()
}

/// `GET /settings/abm/{name}/public-key`: the PEM to upload to ABM.
pub(crate) async fn public_key(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
) -> Response {
    match state.services.abm_entries.public_key(&name).await {
        Ok(pem) => {
            let disposition = format!("attachment; filename=\"GuardMDM_{name}.pem\"");
            let mut r = pem.into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-pem-file"),
            );
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        Err(e) => error_page(&page, e),
    }
}

/// `POST /settings/abm/{name}/token`: the server token, as a `.p7m` file (multipart, sent
/// by htmx) or pasted into the text area (urlencoded, works without JavaScript).
pub(crate) async fn upload_token(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let fail = |message: String| EntryErrors {
        token: Some(message),
        ..EntryErrors::default()
    };
    let form = match FormData::read(req, MAX_TOKEN_FILE_BYTES + 16 * 1024).await {
        Ok(f) => f,
        Err(e) => return entry_page(&state, &page, &name, fail(e.message), e.status).await,
    };
    let file = match (form.file("token_file"), form.raw("token_text")) {
        (Some(file), _) => file.to_vec(),
        (None, Some(text)) => text.as_bytes().to_vec(),
        (None, None) => {
            let errors = fail(
                "Choose the server token file (ending in .p7m) that Apple Business Manager \
                 downloaded, or paste its contents."
                    .to_string(),
            );
            let status = StatusCode::BAD_REQUEST;
            return entry_page(&state, &page, &name, errors, status).await;
        }
    };
    let force = form.checked("force");
    match state
        .services
        .abm_entries
        .upload_server_token(&page.session.actor(), &name, &file, force)
        .await
    {
        Ok(_) => see_other(&entry_href(&name), "token_uploaded"),
        Err(e) => {
            let (status, message) = shown(&e);
            entry_page(&state, &page, &name, fail(message), status).await
        }
    }
}

/// `POST /settings/abm/{name}/settings`: batch size and the per-entry ABM URL.
pub(crate) async fn update_settings(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let form = match FormData::read(req, 16 * 1024).await {
        Ok(form) => form,
        Err(e) => {
            let errors = EntryErrors {
                settings: Some(e.message),
                ..EntryErrors::default()
            };
            return entry_page(&state, &page, &name, errors, e.status).await;
        }
    };
    let result = match batch_size(form.text("batch_size")) {
        Ok(batch_size) => {
            let settings = EntrySettings {
                batch_size,
                abm_url: Some(form.text("abm_url").map(str::to_string)),
            };
            state
                .services
                .abm_entries
                .update_settings(&page.session.actor(), &name, settings)
                .await
                .map(|_| ())
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => see_other(&entry_href(&name), "settings_saved"),
        Err(e) => {
            let (status, message) = shown(&e);
            let errors = EntryErrors {
                settings: Some(message),
                ..EntryErrors::default()
            };
            entry_page(&state, &page, &name, errors, status).await
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "abm_delete.html")]
struct DeletePage {
    chrome: Chrome,
    entry: EntryView,
    error: Option<String>,
}

/// `GET /settings/abm/{name}/delete`: the confirmation step.
pub(crate) async fn confirm_delete(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
) -> Response {
    delete_page(&state, &page, &name, None, StatusCode::OK).await
}

async fn delete_page(
    state: &AppState,
    page: &Page,
    name: &str,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    match state.services.abm_entries.get(name).await {
        Ok(entry) => (
            status,
            DeletePage {
                chrome: page.chrome(NAV),
                entry: EntryView::from(&entry),
                error,
            },
        )
            .into_response(),
        Err(e) => error_page(page, e),
    }
}

/// `POST /settings/abm/{name}/delete`: deletes once the admin typed the entry's name.
pub(crate) async fn delete(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let typed = match FormData::read(req, 16 * 1024).await {
        Ok(form) => form.text("confirm_name").unwrap_or_default().to_string(),
        Err(e) => return delete_page(&state, &page, &name, Some(e.message), e.status).await,
    };
    if typed != name {
        let message =
            format!("To delete, type the entry's name exactly ({name}); nothing was deleted.");
        return delete_page(&state, &page, &name, Some(message), StatusCode::BAD_REQUEST).await;
    }
    match state
        .services
        .abm_entries
        .delete(&page.session.actor(), &name)
        .await
    {
        Ok(()) => see_other(NAV, "abm_deleted"),
        Err(e) => {
            let (status, message) = shown(&e);
            delete_page(&state, &page, &name, Some(message), status).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes_are_parsed_or_named() {
        assert_eq!(batch_size(None).unwrap(), None);
        assert_eq!(batch_size(Some("250")).unwrap(), Some(250));
        let e = batch_size(Some("lots")).unwrap_err().to_string();
        assert!(e.contains("\"lots\"") && e.contains("1 to 1000"), "{e}");
    }

    #[test]
    fn each_state_reads_differently_and_only_a_working_token_is_green() {
        let all = [
            TokenState::Pending,
            TokenState::Active,
            TokenState::Expiring,
            TokenState::Expired,
            TokenState::TermsNotSigned,
            TokenState::Rejected,
        ];
        let labels: std::collections::HashSet<_> = all.iter().map(|&s| state_label(s)).collect();
        assert_eq!(labels.len(), all.len(), "two states share a label");
        for s in all {
            assert_eq!(state_class(s) == "ok", s == TokenState::Active, "{s:?}");
        }
        // A token that stops syncing is red; one that soon will is amber.
        for s in [
            TokenState::Expired,
            TokenState::TermsNotSigned,
            TokenState::Rejected,
        ] {
            assert_eq!(state_class(s), "bad", "{s:?}");
        }
        assert_eq!(state_class(TokenState::Expiring), "warn");
    }
}
