//! What the dashboard's forms share: the posted fields (urlencoded, or multipart when a file
//! is uploaded through htmx), field errors, the serial-number input of bulk forms (a textarea
//! or a CSV upload, carried from a dry run to its "apply" form) and the per-row report.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use guardmdm_service::serial_csv::{CsvReport, RowOutcome};
use guardmdm_service::serial_list::SerialInput;

use super::session::refused;

/// The largest CSV file the dashboard takes (about 300,000 serials).
pub(crate) const MAX_UPLOAD_BYTES: usize = 4 * 1024 * 1024;
/// The body limit of bulk routes: an upload, or its base64 carried to the "apply" form.
pub(crate) const MAX_BULK_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The fields of a posted form, urlencoded (a plain `<form>`, which works without
/// JavaScript) or `multipart/form-data` (a form with a file input, sent by htmx with the CSRF
/// token in its header, see the module doc of [`super`]). Fields keep their order (a name may
/// repeat: checkbox groups); a file input left empty counts as absent.
#[derive(Debug, Default)]
pub(crate) struct FormData {
    fields: Vec<(String, String)>,
    files: HashMap<String, Vec<u8>>,
}

/// Why a form could not be read.
enum ReadError {
    /// The body or a file is over the limit (bytes).
    TooLarge(usize),
    /// Anything else, as a message for the admin.
    Malformed(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge(limit) => write!(
                f,
                "the form is larger than this page's limit of {}",
                size(*limit)
            ),
            Self::Malformed(message) => f.write_str(message),
        }
    }
}

/// A form that could not be read: the status to answer and a message for the admin.
#[derive(Debug)]
pub(crate) struct FormError {
    /// 413 when the body is over the limit, 400 otherwise.
    pub(crate) status: StatusCode,
    /// What is wrong (names the limit when it is the size).
    pub(crate) message: String,
}

impl From<ReadError> for FormError {
    fn from(e: ReadError) -> Self {
        let status = match e {
            ReadError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ReadError::Malformed(_) => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            message: e.to_string(),
        }
    }
}

/// `4 MiB`, `16 KiB`: a limit as admins read it.
pub(crate) fn size(bytes: usize) -> String {
    if bytes >= 1024 * 1024 && bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
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
        self.text(name).map(str::to_string)
    }

    /// The value of `name` trimmed; `None` when absent or blank.
    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        Some(self.get(name).trim()).filter(|v| !v.is_empty())
    }

    /// The value of `name` as given (not trimmed); `None` when absent or blank.
    pub(crate) fn raw(&self, name: &str) -> Option<&str> {
        Some(self.get(name)).filter(|v| !v.trim().is_empty())
    }

    /// Whether a checkbox was ticked.
    pub(crate) fn checked(&self, name: &str) -> bool {
        self.fields.iter().any(|(k, _)| k == name)
    }

    /// An uploaded file's bytes; `None` when no file was chosen.
    pub(crate) fn file(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
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

    /// Reads a request body of at most `limit` bytes, urlencoded or multipart, with the
    /// status to answer when it cannot: 413 Payload Too Large when the body is over `limit`
    /// (the message names the limit), 400 when it is malformed or of another type.
    ///
    /// # Errors
    /// A [`FormError`] for the admin.
    pub(crate) async fn read(req: Request, limit: usize) -> Result<Self, FormError> {
        Self::read_body(req, limit).await.map_err(FormError::from)
    }

    /// Reads the body, `limit` bytes at most whatever its type: a `Content-Length` over the
    /// limit is refused before reading, and the body is cut off at the limit otherwise.
    /// (The dashboard's routes have axum's own default limit turned off, so this is the one
    /// limit and the one message.)
    async fn read_body(req: Request, limit: usize) -> Result<Self, ReadError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(ReadError::TooLarge(limit));
        }
        let req = req.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
        if content_type.starts_with("multipart/form-data") {
            let multipart = Multipart::from_request(req, &())
                .await
                .map_err(|e| unreadable(&e.body_text()))?;
            Self::from_multipart(multipart, limit).await
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            let bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
                .await
                .map_err(|_| ReadError::TooLarge(limit))?;
            Ok(Self {
                fields: form_urlencoded::parse(&bytes).into_owned().collect(),
                files: HashMap::new(),
            })
        } else {
            Err(ReadError::Malformed(
                "send the form from its page (urlencoded or multipart form data)".to_string(),
            ))
        }
    }

    async fn from_multipart(mut multipart: Multipart, limit: usize) -> Result<Self, ReadError> {
        let mut form = Self::default();
        let mut total = 0usize;
        let failed = |e: axum::extract::multipart::MultipartError| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ReadError::TooLarge(limit)
            } else {
                unreadable(&e.body_text())
            }
        };
        while let Some(field) = multipart.next_field().await.map_err(failed)? {
            let name = field.name().unwrap_or_default().to_string();
            let is_file = field.file_name().is_some();
            let bytes = field.bytes().await.map_err(failed)?;
            total += bytes.len();
            if total > limit {
                return Err(ReadError::TooLarge(limit));
            }
            if is_file {
                if !bytes.is_empty() {
                    form.files.insert(name, bytes.to_vec());
                }
            } else {
                let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
                    ReadError::Malformed(format!("the form field {name:?} is not UTF-8 text"))
                })?;
                form.fields.push((name, text));
            }
        }
        Ok(form)
    }
}

fn unreadable(detail: &str) -> ReadError {
    ReadError::Malformed(format!("the form could not be read: {detail}"))
}

fn too_large() -> Response {
    refused(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!(
            "The upload is too large: the dashboard takes CSV files up to {} and forms up to {}; split the file, or use `guardmdm profiles assign --csv` / `guardmdm groups add --csv`.",
            size(MAX_UPLOAD_BYTES),
            size(MAX_BULK_BODY_BYTES)
        ),
    )
}

/// The extractor of the profile, group and OS-default forms: a body up to
/// [`MAX_BULK_BODY_BYTES`] (a CSV carried to its "apply" form), files up to
/// [`MAX_UPLOAD_BYTES`]; larger ones are 413 naming the limits.
impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = Response;

    async fn from_request(req: Request, _: &S) -> Result<Self, Response> {
        let form = Self::read_body(req, MAX_BULK_BODY_BYTES)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge(_) => too_large(),
                ReadError::Malformed(message) => {
                    let mut chars = message.chars();
                    let sentence = chars.next().map_or_else(String::new, |first| {
                        first.to_uppercase().chain(chars).collect::<String>()
                    });
                    refused(StatusCode::BAD_REQUEST, &format!("{sentence}."))
                }
            })?;
        if form.files.values().any(|f| f.len() > MAX_UPLOAD_BYTES) {
            return Err(too_large());
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
    /// The SHA-256 of the input (the file's bytes, or the pasted text), hex: an input too
    /// large to carry in the page is chosen again, and checked against it.
    pub(crate) digest: String,
    /// The input's size in bytes.
    pub(crate) size: usize,
}

/// Serials typed or pasted in a textarea: separated by white space, commas or semicolons.
pub(crate) fn split_serials(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The serials of a bulk form: an uploaded file `csv` first, else a CSV carried from a dry
/// run (`upload_b64`), else the textarea `serials`. When the form carries `expect_sha256`
/// (an input chosen again after a dry run), the input must be the one the dry run read.
///
/// # Errors
/// A message for the admin when nothing was given, the carried file is damaged, or the
/// input is not the one the dry run read.
pub(crate) fn bulk_input(form: &FormData) -> Result<BulkInput, String> {
    let input = read_bulk_input(form)?;
    match form.text("expect_sha256") {
        Some(expected) if !expected.eq_ignore_ascii_case(&input.digest) => Err(
            "this is not the input the dry run checked (its contents differ): run the dry run again with it"
                .to_string(),
        ),
        _ => Ok(input),
    }
}

fn read_bulk_input(form: &FormData) -> Result<BulkInput, String> {
    let engine = base64::engine::general_purpose::STANDARD;
    if let Some(file) = form.file("csv") {
        return Ok(BulkInput {
            input: SerialInput::Csv(file.to_vec()),
            serials_text: String::new(),
            upload_b64: engine.encode(file),
            digest: sha256_hex(file),
            size: file.len(),
        });
    }
    if let Some(carried) = form.opt("upload_b64") {
        let bytes = engine.decode(carried.as_bytes()).map_err(|_| {
            "the uploaded file could not be carried over from the dry run: upload it again"
                .to_string()
        })?;
        return Ok(BulkInput {
            digest: sha256_hex(&bytes),
            size: bytes.len(),
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
        digest: sha256_hex(text.as_bytes()),
        size: text.len(),
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    guardmdm_crypto::digest::sha256_hex(bytes)
}

/// Whether a bulk form asks for a dry run (the default) rather than applying.
pub(crate) fn is_dry_run(form: &FormData) -> bool {
    form.get("mode") != "apply"
}

/// Rows shown on a report page: the first problem rows (not applied); the CSV download has
/// every row. 100 rows keep the page near 20 KB whatever the input.
pub(crate) const MAX_SHOWN_ROWS: usize = 100;
/// The largest input a report page carries to its "apply" and "download" forms (base64 in
/// a hidden field, a third larger): 32 KiB, about 2,500 serials. A larger input is chosen
/// again and checked against the dry run's SHA-256, so the page stays small.
pub(crate) const MAX_CARRIED_BYTES: usize = 32 * 1024;

/// One row of a report, for the template.
pub(crate) struct ReportRow {
    pub(crate) line: u64,
    pub(crate) serial: String,
    pub(crate) outcome: &'static str,
    pub(crate) class: &'static str,
    pub(crate) detail: String,
}

/// The count of one outcome, for the template.
pub(crate) struct OutcomeCount {
    /// `applied`, `unknown_serial`, … (as in the CSV and the REST API).
    pub(crate) key: &'static str,
    pub(crate) label: &'static str,
    pub(crate) class: &'static str,
    pub(crate) count: u64,
}

/// A bulk operation's report, for the template: the counts, the first problem rows, and the
/// input to apply it or download the whole report.
pub(crate) struct ReportView {
    pub(crate) dry_run: bool,
    pub(crate) summary: String,
    pub(crate) counts: Vec<OutcomeCount>,
    /// The first [`MAX_SHOWN_ROWS`] rows that were not applied.
    pub(crate) rows: Vec<ReportRow>,
    /// Rows not applied, in all.
    pub(crate) problems: u64,
    /// Rows not applied that are not shown.
    pub(crate) hidden: u64,
    pub(crate) applicable: u64,
    /// Whether the input is carried in the page (else it is chosen again).
    pub(crate) carried: bool,
    /// Whether the input was a file (else pasted serials).
    pub(crate) is_file: bool,
    pub(crate) serials_text: String,
    pub(crate) upload_b64: String,
    pub(crate) digest: String,
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
        let counts = RowOutcome::ALL
            .into_iter()
            .map(|o| {
                let (label, class) = outcome_label(o);
                OutcomeCount {
                    key: o.as_str(),
                    label,
                    class,
                    count: c.get(o),
                }
            })
            .collect();
        let problems = c.total() - c.applied;
        let rows: Vec<ReportRow> = report
            .rows
            .into_iter()
            .filter(|r| r.outcome != RowOutcome::Applied)
            .take(MAX_SHOWN_ROWS)
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
            .collect();
        let carried = input.size <= MAX_CARRIED_BYTES;
        Self {
            dry_run: report.dry_run,
            summary,
            counts,
            hidden: problems.saturating_sub(rows.len() as u64),
            rows,
            problems,
            applicable: c.applied,
            carried,
            is_file: matches!(input.input, SerialInput::Csv(_)),
            serials_text: if carried {
                input.serials_text
            } else {
                String::new()
            },
            upload_b64: if carried {
                input.upload_b64
            } else {
                String::new()
            },
            digest: input.digest,
        }
    }
}

/// The query of a bulk form's route: `?report=csv` answers the whole per-row report of a dry
/// run of the posted input as a CSV download instead of the page.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ReportQuery {
    #[serde(default)]
    report: String,
}

impl ReportQuery {
    /// Whether the CSV download is asked for.
    ///
    /// # Errors
    /// A message when `report` names another format.
    pub(crate) fn wants_csv(&self) -> Result<bool, String> {
        match self.report.as_str() {
            "" => Ok(false),
            "csv" => Ok(true),
            other => Err(format!(
                "unknown report format {other:?}: the report downloads as `?report=csv`"
            )),
        }
    }
}

/// The whole report as a CSV download named `file_stem-report.csv`.
pub(crate) fn csv_download(file_stem: &str, report: &CsvReport) -> Response {
    use axum::response::IntoResponse as _;
    let stem: String = file_stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!("attachment; filename=\"{stem}-report.csv\"");
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        report.to_csv(),
    )
        .into_response()
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

#[cfg(test)]
mod report_tests {
    use super::*;
    use guardmdm_service::serial_csv::RowReport;

    fn input(size: usize) -> BulkInput {
        BulkInput {
            input: SerialInput::Csv(vec![b'A'; size]),
            serials_text: String::new(),
            upload_b64: "QQ==".to_string(),
            digest: "ab".repeat(32),
            size,
        }
    }

    fn report(applied: u64, unknown: u64) -> CsvReport {
        let rows = (1..=applied + unknown)
            .map(|line| RowReport {
                line,
                serial: Some(format!("S{line:011}")),
                outcome: if line <= applied {
                    RowOutcome::Applied
                } else {
                    RowOutcome::UnknownSerial
                },
                detail: None,
            })
            .collect();
        CsvReport::new(rows, true)
    }

    #[test]
    fn a_report_lists_the_first_rows_not_applied_and_counts_every_outcome() {
        let view = ReportView::new(report(3, 250), input(10));
        assert_eq!(view.rows.len(), MAX_SHOWN_ROWS);
        assert_eq!(view.rows[0].line, 4, "applied rows are counted, not listed");
        assert_eq!((view.problems, view.hidden, view.applicable), (250, 150, 3));
        let counts: Vec<(&str, u64)> = view.counts.iter().map(|c| (c.key, c.count)).collect();
        assert_eq!(
            counts,
            [
                ("applied", 3),
                ("unknown_serial", 250),
                ("not_in_abm", 0),
                ("duplicate_row", 0),
                ("malformed", 0)
            ]
        );
        assert!(view.carried);
        assert_eq!(view.upload_b64, "QQ==");
        let small = ReportView::new(report(2, 1), input(MAX_CARRIED_BYTES));
        assert_eq!((small.rows.len(), small.hidden), (1, 0));
        assert!(small.carried);
        let big = ReportView::new(report(2, 1), input(MAX_CARRIED_BYTES + 1));
        assert!(!big.carried && big.is_file);
        assert_eq!(big.upload_b64, "", "a large input is not carried");
    }

    #[test]
    fn an_input_chosen_again_must_be_the_one_the_dry_run_read() {
        let text = "C02AAA111222";
        let digest = guardmdm_crypto::digest::sha256_hex(text.as_bytes());
        let form = FormData::from_pairs(&[("serials", text), ("expect_sha256", &digest)]);
        assert_eq!(bulk_input(&form).unwrap().digest, digest);
        let form = FormData::from_pairs(&[("serials", "C02AAA111223"), ("expect_sha256", &digest)]);
        assert!(
            bulk_input(&form)
                .unwrap_err()
                .contains("not the input the dry run checked")
        );
        assert!(ReportQuery::default().wants_csv() == Ok(false));
        let q = ReportQuery {
            report: "csv".into(),
        };
        assert_eq!(q.wants_csv(), Ok(true));
        let q = ReportQuery {
            report: "pdf".into(),
        };
        assert!(q.wants_csv().unwrap_err().contains("?report=csv"));
        assert_eq!(size(8 * 1024 * 1024), "8 MiB");
        assert_eq!(size(80 * 1024), "80 KiB");
    }
}

#[cfg(test)]
mod read_tests {
    use super::*;
    use axum::body::Body;

    fn request(content_type: &str, body: &'static str) -> Request {
        Request::builder()
            .method("POST")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    }

    #[tokio::test]
    async fn reads_urlencoded_fields() {
        let form = FormData::read(
            request(
                "application/x-www-form-urlencoded",
                "name=+main+&empty=&confirm=on",
            ),
            1024,
        )
        .await
        .unwrap();
        assert_eq!(form.text("name"), Some("main"));
        assert_eq!(form.raw("name"), Some(" main "));
        assert_eq!(form.text("empty"), None);
        assert!(form.checked("confirm"));
        assert!(!form.checked("other"));
    }

    #[tokio::test]
    async fn reads_multipart_fields_and_files_and_skips_empty_files() {
        let body = "--X\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nInstallProfile\r\n\
                    --X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mobileconfig\"\r\n\
                    Content-Type: application/octet-stream\r\n\r\n<plist/>\r\n\
                    --X\r\nContent-Disposition: form-data; name=\"none\"; filename=\"\"\r\n\r\n\r\n--X--\r\n";
        let form = FormData::read(request("multipart/form-data; boundary=X", body), 1024)
            .await
            .unwrap();
        assert_eq!(form.text("kind"), Some("InstallProfile"));
        assert_eq!(form.file("file"), Some(&b"<plist/>"[..]));
        assert_eq!(form.file("none"), None);
    }

    #[tokio::test]
    async fn refuses_large_and_unknown_bodies() {
        let err = FormData::read(
            request("application/x-www-form-urlencoded", "a=0123456789"),
            4,
        )
        .await
        .unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            err.message
                .contains("larger than this page's limit of 1 KiB"),
            "{}",
            err.message
        );
        let err = FormData::read(request("application/json", "{}"), 1024)
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(
            err.message.contains("urlencoded or multipart"),
            "{}",
            err.message
        );
    }
}
