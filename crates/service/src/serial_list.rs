//! Serial numbers for bulk work, from a list or an uploaded CSV: checked, looked up in ABM,
//! and reported row by row (`applied`, `unknown_serial`, `not_in_abm`, `duplicate_row`,
//! `malformed`). Nothing is applied here: the caller writes the applicable serials in one
//! transaction after the whole input was read, so a file that turns out unusable halfway
//! changes nothing.

use std::collections::HashMap;

use guardmdm_store::{AssignmentConfigStore, SerialPresence};

use crate::ServiceError;
pub use crate::serial_csv::CsvReport;
use crate::serial_csv::{CsvRow, RowKind, RowOutcome, RowReport, SerialCsv, check_serial};

/// Rows looked up per store call.
const LOOKUP_CHUNK: usize = 5000;

/// Where serials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialInput {
    /// A list (`--serial S …`, or JSON `{"serials": [...]}`); row `n` is the `n`th serial.
    Serials(Vec<String>),
    /// A CSV file's bytes.
    Csv(Vec<u8>),
}

/// One serial, normalized (trimmed, upper case).
///
/// # Errors
/// Why it is malformed.
pub fn normalize(serial: &str) -> Result<String, String> {
    check_serial(serial.as_bytes()).map_err(|(value, reason)| format!("{value:?}: {reason}"))
}

/// Every serial normalized, duplicates dropped.
///
/// # Errors
/// [`ServiceError::Invalid`] naming the first malformed one.
pub fn normalize_all(serials: &[String]) -> Result<Vec<String>, ServiceError> {
    let mut out: Vec<String> = Vec::with_capacity(serials.len());
    let mut seen = std::collections::HashSet::new();
    for s in serials {
        let n = normalize(s).map_err(ServiceError::Invalid)?;
        if seen.insert(n.clone()) {
            out.push(n);
        }
    }
    Ok(out)
}

/// Reads every row, looks the well-formed serials up, and returns the report with the
/// serials to apply (those in ABM), in input order.
///
/// # Errors
/// [`ServiceError::Invalid`] for an empty list or a CSV that cannot be read at all.
pub async fn check<S: ?Sized + AssignmentConfigStore>(
    store: &S,
    input: SerialInput,
    dry_run: bool,
) -> Result<(CsvReport, Vec<String>), ServiceError> {
    let mut reports = Vec::new();
    let mut apply = Vec::new();
    match input {
        SerialInput::Serials(list) => {
            if list.is_empty() {
                return Err(ServiceError::Invalid("no serial numbers given".to_string()));
            }
            let mut seen: HashMap<String, u64> = HashMap::new();
            let rows: Vec<CsvRow> = list
                .iter()
                .zip(1_u64..)
                .map(|(s, line)| CsvRow {
                    line,
                    kind: match check_serial(s.as_bytes()) {
                        Err((value, reason)) => RowKind::Malformed { value, reason },
                        Ok(serial) => match seen.get(&serial) {
                            Some(&first_line) => RowKind::Duplicate { serial, first_line },
                            None => {
                                seen.insert(serial.clone(), line);
                                RowKind::Serial(serial)
                            }
                        },
                    },
                })
                .collect();
            for chunk in rows.chunks(LOOKUP_CHUNK) {
                look_up(store, chunk, &mut reports, &mut apply).await?;
            }
        }
        SerialInput::Csv(bytes) => {
            let mut csv = SerialCsv::new(bytes.as_slice())
                .map_err(|e| ServiceError::Invalid(format!("the CSV cannot be used: {e}")))?;
            loop {
                let chunk = csv
                    .next_chunk(LOOKUP_CHUNK)
                    .map_err(|e| ServiceError::Invalid(format!("the CSV cannot be used: {e}")))?;
                if chunk.is_empty() {
                    break;
                }
                look_up(store, &chunk, &mut reports, &mut apply).await?;
            }
        }
    }
    Ok((CsvReport::new(reports, dry_run), apply))
}

async fn look_up<S: ?Sized + AssignmentConfigStore>(
    store: &S,
    rows: &[CsvRow],
    reports: &mut Vec<RowReport>,
    apply: &mut Vec<String>,
) -> Result<(), ServiceError> {
    let serials: Vec<String> = rows
        .iter()
        .filter_map(|r| match &r.kind {
            RowKind::Serial(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    let presence = store.serial_presence(&serials).await?;
    if presence.len() != serials.len() {
        return Err(ServiceError::Internal(format!(
            "the store answered {} presences for {} serials",
            presence.len(),
            serials.len()
        )));
    }
    let mut presence = presence.into_iter();
    for row in rows {
        if let Some(report) = row.report() {
            reports.push(report);
            continue;
        }
        let RowKind::Serial(serial) = &row.kind else {
            continue;
        };
        let (outcome, detail) = match presence.next() {
            Some(SerialPresence::InAbm) => {
                apply.push(serial.clone());
                (RowOutcome::Applied, None)
            }
            Some(SerialPresence::Removed) => (
                RowOutcome::NotInAbm,
                Some("GuardMDM knows this serial, but Apple Business Manager no longer assigns it to this MDM server".to_string()),
            ),
            _ => (
                RowOutcome::UnknownSerial,
                Some("no ABM sync has reported this serial: check it, assign the device to this MDM server in Apple Business Manager, then sync".to_string()),
            ),
        };
        reports.push(RowReport {
            line: row.line,
            serial: Some(serial.clone()),
            outcome,
            detail,
        });
    }
    Ok(())
}
