//! The per-row report of a bulk CSV operation, returned to the admin (CLI table, REST JSON).
//!
//! Parsing decides two outcomes by itself: [`RowOutcome::Malformed`] and
//! [`RowOutcome::DuplicateRow`] ([`CsvRow::report`]). The other three need the device list,
//! so the service fills them in after looking each well-formed serial up: `applied` when the
//! operation was (or, in a dry run, would be) done for it, `unknown_serial` when GuardMDM
//! has never seen the serial, `not_in_abm` when GuardMDM knows it but Apple Business Manager
//! no longer lists it for this server (released, unassigned, disowned; `dep-api.md` §9.10).
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
