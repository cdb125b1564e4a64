//! The per-row report of a bulk CSV operation, returned to the admin (CLI table, REST JSON).
//!
//! Parsing decides two outcomes by itself: [`RowOutcome::Malformed`] and
//! [`RowOutcome::DuplicateRow`] ([`CsvRow::report`]). The other three need the device list,
//! so the service fills them in after looking each well-formed serial up: `applied` when the
//! operation was (or, in a dry run, would be) done for it, `unknown_serial` when GuardMDM
//! has never seen the serial, `not_in_abm` when GuardMDM knows it but Apple Business Manager
//! no longer lists it for this server (released, unassigned, disowned; `docs/protocol.md` §9.10).
//! It then builds the [`CsvReport`], which counts.

use serde::{Deserialize, Serialize};

use super::{CsvRow, RowKind};

/// What happened to one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowOutcome {
    /// Done for this serial (in a dry run: would be done).
    Applied,
    /// GuardMDM has never seen this serial.
    UnknownSerial,
    /// GuardMDM knows the serial, but ABM no longer lists it for this server.
    NotInAbm,
    /// The serial already appeared on an earlier line; this row was ignored.
    DuplicateRow,
    /// The serial cell is unusable; `detail` says why.
    Malformed,
}

impl RowOutcome {
    /// The outcome as written in reports: `applied`, `unknown_serial`, `not_in_abm`,
    /// `duplicate_row`, `malformed` (as in the REST API's JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::UnknownSerial => "unknown_serial",
            Self::NotInAbm => "not_in_abm",
            Self::DuplicateRow => "duplicate_row",
            Self::Malformed => "malformed",
        }
    }

    /// Every outcome, in the order reports list them.
    pub const ALL: [Self; 5] = [
        Self::Applied,
        Self::UnknownSerial,
        Self::NotInAbm,
        Self::DuplicateRow,
        Self::Malformed,
    ];
}

/// One row of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowReport {
    /// The row's 1-based line in the file.
    pub line: u64,
    /// The serial (upper-cased), or the malformed cell as found; `None` when the cell was
    /// empty or missing.
    pub serial: Option<String>,
    /// What happened.
    pub outcome: RowOutcome,
    /// Why, when there is more to say (a malformed row's reason, a duplicate's first line).
    pub detail: Option<String>,
}

impl CsvRow {
    /// The report row parsing alone decides: `Some` for malformed and duplicate rows,
    /// `None` for a well-formed serial, whose outcome the service decides.
    pub fn report(&self) -> Option<RowReport> {
        match &self.kind {
            RowKind::Serial(_) => None,
            RowKind::Malformed { value, reason } => Some(RowReport {
                line: self.line,
                serial: (!value.is_empty()).then(|| value.clone()),
                outcome: RowOutcome::Malformed,
                detail: Some(reason.to_string()),
            }),
            RowKind::Duplicate { serial, first_line } => Some(RowReport {
                line: self.line,
                serial: Some(serial.clone()),
                outcome: RowOutcome::DuplicateRow,
                detail: Some(format!("the same serial number is on line {first_line}")),
            }),
        }
    }
}

/// How many rows ended in each outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeCounts {
    /// [`RowOutcome::Applied`] rows.
    pub applied: u64,
    /// [`RowOutcome::UnknownSerial`] rows.
    pub unknown_serial: u64,
    /// [`RowOutcome::NotInAbm`] rows.
    pub not_in_abm: u64,
    /// [`RowOutcome::DuplicateRow`] rows.
    pub duplicate_row: u64,
    /// [`RowOutcome::Malformed`] rows.
    pub malformed: u64,
}

impl OutcomeCounts {
    /// Counts one more row with `outcome`.
    pub fn add(&mut self, outcome: RowOutcome) {
        *self.slot(outcome) += 1;
    }

    /// The count for `outcome`.
    pub fn get(&self, outcome: RowOutcome) -> u64 {
        match outcome {
            RowOutcome::Applied => self.applied,
            RowOutcome::UnknownSerial => self.unknown_serial,
            RowOutcome::NotInAbm => self.not_in_abm,
            RowOutcome::DuplicateRow => self.duplicate_row,
            RowOutcome::Malformed => self.malformed,
        }
    }

    /// All rows counted.
    pub fn total(&self) -> u64 {
        self.applied + self.unknown_serial + self.not_in_abm + self.duplicate_row + self.malformed
    }

    fn slot(&mut self, outcome: RowOutcome) -> &mut u64 {
        match outcome {
            RowOutcome::Applied => &mut self.applied,
            RowOutcome::UnknownSerial => &mut self.unknown_serial,
            RowOutcome::NotInAbm => &mut self.not_in_abm,
            RowOutcome::DuplicateRow => &mut self.duplicate_row,
            RowOutcome::Malformed => &mut self.malformed,
        }
    }
}

/// The report of one bulk CSV operation (see the module docs for who fills in what).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvReport {
    /// Every data row, in file order.
    pub rows: Vec<RowReport>,
    /// Rows per outcome.
    pub counts: OutcomeCounts,
    /// `true` when nothing was changed: `applied` then means "would be applied".
    pub dry_run: bool,
}

impl CsvReport {
    /// Builds the report: sorts `rows` by line (stable, so the service may add them in any
    /// order) and counts the outcomes.
    pub fn new(mut rows: Vec<RowReport>, dry_run: bool) -> Self {
        rows.sort_by_key(|r| r.line);
        let mut counts = OutcomeCounts::default();
        for row in &rows {
            counts.add(row.outcome);
        }
        Self {
            rows,
            counts,
            dry_run,
        }
    }
}

impl CsvReport {
    /// The report as CSV, for a spreadsheet: a header `line,serial,outcome,detail`, then one
    /// record per row in file order (an empty serial cell stays empty). A cell a spreadsheet
    /// would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return,
    /// which only a malformed serial can) is written with a leading `'`.
    pub fn to_csv(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.rows.len() * 32 + 32);
        out.extend_from_slice(b"line,serial,outcome,detail\r\n");
        for row in &self.rows {
            out.extend_from_slice(row.line.to_string().as_bytes());
            out.push(b',');
            push_cell(&mut out, row.serial.as_deref().unwrap_or_default());
            out.push(b',');
            out.extend_from_slice(row.outcome.as_str().as_bytes());
            out.push(b',');
            push_cell(&mut out, row.detail.as_deref().unwrap_or_default());
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

/// One CSV cell (RFC 4180 quoting), defused against formula injection.
fn push_cell(out: &mut Vec<u8>, value: &str) {
    let defuse = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = defuse || value.contains([',', '"', '\n', '\r']);
    if quote {
        out.push(b'"');
    }
    if defuse {
        out.push(b'\'');
    }
    for b in value.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    if quote {
        out.push(b'"');
    }
}

#[cfg(test)]
mod csv_tests {
    use super::*;

    #[test]
    fn the_csv_has_every_row_quoted_and_defused() {
        let rows = vec![
            RowReport {
                line: 3,
                serial: Some("=HYPERLINK(\"x\",1)".into()),
                outcome: RowOutcome::Malformed,
                detail: Some(
                    "the serial number contains \"=\", a character serials never have".into(),
                ),
            },
            RowReport {
                line: 2,
                serial: Some("C02AAA111222".into()),
                outcome: RowOutcome::Applied,
                detail: None,
            },
            RowReport {
                line: 4,
                serial: None,
                outcome: RowOutcome::Malformed,
                detail: Some("empty".into()),
            },
        ];
        let csv = CsvReport::new(rows, true).to_csv();
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "line,serial,outcome,detail\r\n\
             2,C02AAA111222,applied,\r\n\
             3,\"'=HYPERLINK(\"\"x\"\",1)\",malformed,\"the serial number contains \"\"=\"\", a character serials never have\"\r\n\
             4,,malformed,empty\r\n"
        );
        let back: Vec<csv::StringRecord> =
            csv::Reader::from_reader(CsvReport::new(Vec::new(), true).to_csv().as_slice())
                .records()
                .collect::<Result<_, _>>()
                .unwrap();
        assert!(back.is_empty());
        let names: Vec<&str> = RowOutcome::ALL.iter().map(|o| o.as_str()).collect();
        for (o, name) in RowOutcome::ALL.iter().zip(&names) {
            assert_eq!(serde_json::to_value(o).unwrap(), *name);
        }
    }
}
