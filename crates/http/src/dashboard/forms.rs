//! What the dashboard's forms share: the posted fields (urlencoded, or multipart when a file
//! is uploaded through htmx), field errors, the serial-number input of bulk forms (a textarea
//! or a CSV upload, carried from a dry run to its "apply" form) and the per-row report.

use std::collections::HashMap;

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use guardmdm_service::serial_csv::{CsvReport, RowOutcome};
use guardmdm_service::serial_list::SerialInput;

use super::session::refused;

/// The largest CSV file the dashboard takes (about 300,000 serials).
pub(crate) const MAX_UPLOAD_BYTES: usize = 4 * 1024 * 1024;
/// The body limit of bulk routes: an upload, or its base64 carried to the "apply" form.
pub(crate) const MAX_BULK_BODY_BYTES: usize = 8 * 1024 * 1024;

/// An uploaded file.
pub(crate) struct Upload {
    pub(crate) bytes: Vec<u8>,
}

/// The fields of a posted form, in order (a name may repeat: checkbox groups).
#[derive(Default)]
pub(crate) struct FormData {
    fields: Vec<(String, String)>,
    files: HashMap<String, Upload>,
}

impl FormData {
    /// The first value of `name`, or `""`.
    pub(crate) fn get(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of `name` trimmed, `None` when blank.
    pub(crate) fn opt(&self, name: &str) -> Option<String> {
        let v = self.get(name).trim();
        (!v.is_empty()).then(|| v.to_string())
    }

    /// A non-empty uploaded file `name`.
    pub(crate) fn file(&self, name: &str) -> Option<&Upload> {
        self.files.get(name).filter(|f| !f.bytes.is_empty())
    }

    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self {
            fields: pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            files: HashMap::new(),
        }
    }
}

fn too_large() -> Response {
    refused(
        StatusCode::PAYLOAD_TOO_LARGE,
        "The upload is too large: the dashboard takes CSV files up to 4 MB; split the file, or use `guardmdm profiles assign --csv` / `guardmdm groups add --csv`.",
    )
}

impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let is_multipart = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        if !is_multipart {
            let bytes = axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|_| too_large())?;
            return Ok(Self {
                fields: form_urlencoded::parse(&bytes).into_owned().collect(),
                files: HashMap::new(),
            });
        }
        let mut multipart = Multipart::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let mut form = Self::default();
        let bad = |e: axum::extract::multipart::MultipartError| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                refused(
                    StatusCode::BAD_REQUEST,
                    &format!("The form could not be read: {}", e.body_text()),
                )
            }
        };
        while let Some(field) = multipart.next_field().await.map_err(bad)? {
            let name = field.name().unwrap_or_default().to_string();
            let is_file = field.file_name().is_some();
            let bytes = field.bytes().await.map_err(bad)?;
            if is_file {
                if bytes.len() > MAX_UPLOAD_BYTES {
                    return Err(too_large());
                }
                form.files.insert(
                    name,
                    Upload {
                        bytes: bytes.to_vec(),
                    },
                );
            } else {
                form.fields
                    .push((name, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
        Ok(form)
    }
}

/// The serial numbers of a bulk form and how to send them again from the "apply" form.
#[derive(Debug)]
pub(crate) struct BulkInput {
    pub(crate) input: SerialInput,
    /// The pasted serials (kept for the apply form).
    pub(crate) serials_text: String,
    /// An uploaded CSV, base64 (kept for the apply form).
    pub(crate) upload_b64: String,
}

/// Serials typed or pasted in a textarea: separated by white space, commas or semicolons.
pub(crate) fn split_serials(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The serials of a bulk form: an uploaded file `csv` first, else a CSV carried from a dry
/// run (`upload_b64`), else the textarea `serials`.
///
/// # Errors
/// A message for the admin when nothing was given or the carried file is damaged.
pub(crate) fn bulk_input(form: &FormData) -> Result<BulkInput, String> {
    let engine = base64::engine::general_purpose::STANDARD;
    if let Some(file) = form.file("csv") {
        return Ok(BulkInput {
            input: SerialInput::Csv(file.bytes.clone()),
            serials_text: String::new(),
            upload_b64: engine.encode(&file.bytes),
        });
    }
    if let Some(carried) = form.opt("upload_b64") {
        let bytes = engine.decode(carried.as_bytes()).map_err(|_| {
            "the uploaded file could not be carried over from the dry run: upload it again"
                .to_string()
        })?;
        return Ok(BulkInput {
            input: SerialInput::Csv(bytes),
            serials_text: String::new(),
            upload_b64: carried,
        });
    }
    let text = form.get("serials");
    let serials = split_serials(text);
    if serials.is_empty() && !form.get("csv").is_empty() {
        // Without JavaScript the browser sends the file's name, not the file.
        return Err(
            "the file was not sent: uploads need JavaScript in this browser; paste the serial numbers instead"
                .to_string(),
        );
    }
    if serials.is_empty() {
        return Err(
            "give serial numbers: type or paste them (one per line), or choose a CSV file"
                .to_string(),
        );
    }
    Ok(BulkInput {
        input: SerialInput::Serials(serials),
        serials_text: text.to_string(),
        upload_b64: String::new(),
    })
}

/// Whether a bulk form asks for a dry run (the default) rather than applying.
pub(crate) fn is_dry_run(form: &FormData) -> bool {
    form.get("mode") != "apply"
}

/// One row of a report, for the template.
pub(crate) struct ReportRow {
    pub(crate) line: u64,
    pub(crate) serial: String,
    pub(crate) outcome: &'static str,
    pub(crate) class: &'static str,
    pub(crate) detail: String,
}

/// A bulk operation's per-row report, for the template, with the input to apply it.
pub(crate) struct ReportView {
    pub(crate) dry_run: bool,
    pub(crate) summary: String,
    pub(crate) rows: Vec<ReportRow>,
    pub(crate) applicable: u64,
    pub(crate) serials_text: String,
    pub(crate) upload_b64: String,
}

fn outcome_label(o: RowOutcome) -> (&'static str, &'static str) {
    match o {
        RowOutcome::Applied => ("applied", "ok"),
        RowOutcome::UnknownSerial => ("unknown serial", "warn"),
        RowOutcome::NotInAbm => ("not in ABM", "warn"),
        RowOutcome::DuplicateRow => ("duplicate row", "muted"),
        RowOutcome::Malformed => ("malformed", "bad"),
    }
}

impl ReportView {
    pub(crate) fn new(report: CsvReport, input: BulkInput) -> Self {
        let c = report.counts;
        let verb = if report.dry_run {
            "would be applied"
        } else {
            "applied"
        };
        let summary = format!(
            "{} row{}: {} {verb}, {} unknown serial{}, {} not in ABM, {} duplicate{}, {} malformed.",
            c.total(),
            if c.total() == 1 { "" } else { "s" },
            c.applied,
            c.unknown_serial,
            if c.unknown_serial == 1 { "" } else { "s" },
            c.not_in_abm,
            c.duplicate_row,
            if c.duplicate_row == 1 { "" } else { "s" },
            c.malformed,
        );
        Self {
            dry_run: report.dry_run,
            summary,
            applicable: c.applied,
            rows: report
                .rows
                .into_iter()
                .map(|r| {
                    let (outcome, class) = outcome_label(r.outcome);
                    ReportRow {
                        line: r.line,
                        serial: r.serial.unwrap_or_else(|| "(empty)".to_string()),
                        outcome,
                        class,
                        detail: r.detail.unwrap_or_default(),
                    }
                })
                .collect(),
            serials_text: input.serials_text,
            upload_b64: input.upload_b64,
        }
    }
}

/// A choice of what a bulk form does (a radio button).
pub(crate) struct BulkAction {
    pub(crate) value: &'static str,
    pub(crate) label: String,
    pub(crate) checked: bool,
}

/// A bulk form (serials by textarea or CSV, dry run then apply) with its last report.
pub(crate) struct BulkForm {
    /// Where it posts.
    pub(crate) url: String,
    /// The heading of its panel.
    pub(crate) heading: String,
    /// What it can do; empty when it does one thing.
    pub(crate) actions: Vec<BulkAction>,
    /// The chosen action (`action` field) carried to the apply form.
    pub(crate) action: String,
    pub(crate) report: Option<ReportView>,
    pub(crate) error: Option<String>,
}

impl BulkForm {
    pub(crate) fn new(url: String, heading: String) -> Self {
        Self {
            url,
            heading,
            actions: Vec::new(),
            action: String::new(),
            report: None,
            error: None,
        }
    }

    /// Adds a choice; the first is chosen unless `action` names another.
    pub(crate) fn with_actions(
        mut self,
        choices: Vec<(&'static str, String)>,
        action: &str,
    ) -> Self {
        let chosen = if choices.iter().any(|(v, _)| *v == action) {
            action.to_string()
        } else {
            choices
                .first()
                .map(|(v, _)| (*v).to_string())
                .unwrap_or_default()
        };
        self.actions = choices
            .into_iter()
            .map(|(value, label)| BulkAction {
                value,
                checked: value == chosen,
                label,
            })
            .collect();
        self.action = chosen;
        self
    }
}

/// A field's error, for the template.
#[derive(Clone)]
pub(crate) struct FieldMessage {
    /// The form field (a spec key, without `[n]`).
    pub(crate) field: String,
    pub(crate) message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textarea_serials_split_on_spaces_commas_and_lines() {
        assert_eq!(
            split_serials(" C02AAA111222,\r\nc02bbb333444; X\n\n"),
            ["C02AAA111222", "c02bbb333444", "X"]
        );
        assert!(split_serials(" \n ").is_empty());
    }

    #[test]
    fn bulk_input_prefers_the_file_then_the_carried_file_then_the_text() {
        let form = FormData::from_pairs(&[("serials", "A1B2C3D4E5")]);
        let got = bulk_input(&form).unwrap();
        assert_eq!(got.input, SerialInput::Serials(vec!["A1B2C3D4E5".into()]));
        assert_eq!(got.serials_text, "A1B2C3D4E5");
        let form = FormData::from_pairs(&[("serials", "X"), ("upload_b64", "c2VyaWFsCg==")]);
        assert_eq!(
            bulk_input(&form).unwrap().input,
            SerialInput::Csv(b"serial\n".to_vec())
        );
        let form = FormData::from_pairs(&[("upload_b64", "!!")]);
        assert!(bulk_input(&form).unwrap_err().contains("upload it again"));
        let form = FormData::from_pairs(&[("serials", "  ")]);
        assert!(
            bulk_input(&form)
                .unwrap_err()
                .contains("give serial numbers")
        );
        assert!(is_dry_run(&FormData::from_pairs(&[])));
        assert!(!is_dry_run(&FormData::from_pairs(&[("mode", "apply")])));
    }
}
