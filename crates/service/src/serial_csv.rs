//! Reading an uploaded CSV of serial numbers for bulk work (`guardmdm profiles assign
//! PROFILE --csv FILE`, adding devices to a static group).
//!
//! Admins export these files from spreadsheets and asset systems, so the reader forgives
//! what those produce: a UTF-8 byte-order mark, CRLF or LF line ends, quoted cells, blank
//! lines (skipped silently), spaces around cells, lower-case serials, extra columns, and
//! `;` or tab separators (chosen from the first line when it has no comma).
//!
//! **Header.** The first non-blank row is a header when one of its cells is `serial`,
//! `serial number`, `serial_number`, `serialnumber` or `serial no` (any case; `serial no.`
//! too). The serials are then read from that column, so `asset,serial,user` works. Without a
//! header every row is data and the serial is the first cell.
//!
//! **Rows.** Each data row becomes a [`CsvRow`] with its 1-based line in the file: a
//! well-formed serial (8 to 20 ASCII letters and digits once trimmed and upper-cased), a
//! malformed cell with the reason, or a duplicate of a serial seen on an earlier line.
//! Only a problem that makes the whole file unusable is a [`CsvError`].
//!
//! **Streaming.** [`SerialCsv`] reads from any [`Read`] and hands out rows in chunks
//! ([`SerialCsv::next_chunk`]) or one by one (it is an [`Iterator`]); memory grows only with
//! the set of distinct serials seen, for duplicate detection. [`parse_all`] reads a whole
//! upload held in memory.

mod report;
mod source;

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};

use serde::Serialize;

pub use report::{CsvReport, OutcomeCounts, RowOutcome, RowReport};
use source::{Source, breaks_within};

/// Shortest well-formed serial number.
pub const MIN_SERIAL_LEN: usize = 8;
/// Longest well-formed serial number.
pub const MAX_SERIAL_LEN: usize = 20;
/// Header cells (lower case, single spaces) that name the serial column.
pub const HEADER_NAMES: &[&str] = &[
    "serial",
    "serial number",
    "serial_number",
    "serialnumber",
    "serial no",
    "serial no.",
];
/// Longest malformed cell kept in a [`RowKind::Malformed`], in characters.
const MAX_VALUE_CHARS: usize = 64;
/// How much of the file is looked at up front (file type, separator).
const PREFIX_LEN: usize = 8192;

/// One data row of the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CsvRow {
    /// The 1-based line the row starts on.
    pub line: u64,
    /// What the row holds.
    pub kind: RowKind,
}

/// What a data row holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// A well-formed serial number, upper-cased.
    Serial(String),
    /// The serial cell is unusable.
    Malformed {
        /// The cell, trimmed (cut to 64 characters; lossy when not UTF-8; empty when the
        /// row has no such cell).
        value: String,
        /// Why it is unusable.
        reason: MalformedReason,
    },
    /// A well-formed serial already seen earlier in the file.
    Duplicate {
        /// The serial, upper-cased.
        serial: String,
        /// The line it first appeared on.
        first_line: u64,
    },
}

/// Why a serial cell is unusable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MalformedReason {
    /// The cell is empty or only spaces, while other cells of the row are not.
    Empty,
    /// The cell has a character other than an ASCII letter or digit.
    BadCharacter {
        /// The first such character.
        character: char,
    },
    /// The cell is shorter than 8 or longer than 20 characters.
    WrongLength {
        /// Its length in characters.
        length: usize,
    },
    /// The row has fewer cells than the header: the serial column is missing.
    MissingColumn {
        /// The header's name for the column.
        column: String,
    },
    /// The cell is not UTF-8 text.
    InvalidUtf8,
}

impl fmt::Display for MalformedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the serial number cell is empty"),
            Self::BadCharacter { character } => write!(
                f,
                "the serial number contains {character:?}: serial numbers have only letters and digits"
            ),
            Self::WrongLength { length } => write!(
                f,
                "the serial number is {length} characters long: serial numbers have {MIN_SERIAL_LEN} to {MAX_SERIAL_LEN}"
            ),
            Self::MissingColumn { column } => {
                write!(
                    f,
                    "the row has no {column:?} column: it has fewer cells than the header"
                )
            }
            Self::InvalidUtf8 => {
                f.write_str("the serial number is not UTF-8 text: save the file as CSV UTF-8")
            }
        }
    }
}

/// Why a whole file cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// An Excel workbook (`.xlsx` or `.xls`) was uploaded instead of a CSV file.
    #[error(
        "the file is an Excel workbook, not a CSV file: open it in your spreadsheet app and export it as \"CSV UTF-8\""
    )]
    Spreadsheet,
    /// UTF-16 text (Excel's "Unicode Text").
    #[error("the file is UTF-16 text: save it again as \"CSV UTF-8\"")]
    Utf16,
    /// A NUL byte: this is not a text file.
    #[error(
        "the file is not text (it has a NUL byte at byte {offset}): upload a CSV file with one serial number per line"
    )]
    Binary {
        /// 0-based offset of the first NUL byte.
        offset: u64,
    },
    /// No rows at all (empty, or only blank lines).
    #[error("the file has no rows: put one serial number per line")]
    NoRows,
    /// A header row and nothing below it.
    #[error("the file has a header row ({column:?}) but no serial numbers below it")]
    HeaderOnly {
        /// The header's name for the serial column.
        column: String,
    },
    /// Reading failed.
    #[error("the file could not be read: {0}")]
    Io(String),
}

/// The header row, when the file has one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Header {
    /// The 1-based line of the header row.
    pub line: u64,
    /// The 0-based index of the serial column.
    pub column: usize,
    /// The serial column's name as written (trimmed).
    pub name: String,
}

/// Which cell holds the serial.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Column {
    /// No non-blank row read yet.
    Undecided,
    /// No header: the first cell.
    First,
    /// The header's column.
    Named(Header),
}

/// A streaming reader of serial-number CSV (see the module docs).
pub struct SerialCsv<R: Read> {
    reader: csv::Reader<Source<io::Chain<io::Cursor<Vec<u8>>, R>>>,
    record: csv::ByteRecord,
    column: Column,
    seen: HashMap<String, u64>,
    data_rows: u64,
    finished: bool,
}

impl<R: Read> fmt::Debug for SerialCsv<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerialCsv")
            .field("column", &self.column)
            .field("data_rows", &self.data_rows)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<R: Read> SerialCsv<R> {
    /// Starts reading: looks at the first 8 KiB to refuse spreadsheets, UTF-16 and binary
    /// files early, to drop a byte-order mark, and to pick the separator.
    ///
    /// # Errors
    /// [`CsvError::Spreadsheet`], [`CsvError::Utf16`], [`CsvError::Binary`] (a NUL byte in
    /// the first 8 KiB) or [`CsvError::Io`].
    pub fn new(mut input: R) -> Result<Self, CsvError> {
        let mut prefix = Vec::with_capacity(PREFIX_LEN);
        (&mut input)
            .take(PREFIX_LEN as u64)
            .read_to_end(&mut prefix)
            .map_err(|e| CsvError::Io(e.to_string()))?;
        if prefix.starts_with(b"PK\x03\x04") || prefix.starts_with(b"\xD0\xCF\x11\xE0") {
            return Err(CsvError::Spreadsheet);
        }
        if prefix.starts_with(b"\xFF\xFE") || prefix.starts_with(b"\xFE\xFF") {
            return Err(CsvError::Utf16);
        }
        let bom = if prefix.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        if let Some(i) = prefix.iter().position(|b| *b == 0) {
            return Err(CsvError::Binary { offset: i as u64 });
        }
        prefix.drain(..bom);
        let delimiter = delimiter(&prefix);
        let source = Source::new(io::Cursor::new(prefix).chain(input), bom as u64);
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(source);
        Ok(Self {
            reader,
            record: csv::ByteRecord::new(),
            column: Column::Undecided,
            seen: HashMap::new(),
            data_rows: 0,
            finished: false,
        })
    }

    /// The header row, once read; `None` before the first row or when there is none.
    pub fn header(&self) -> Option<&Header> {
        match &self.column {
            Column::Named(header) => Some(header),
            _ => None,
        }
    }

    /// The next at most `max` rows (at least one is asked for even when `max` is 0). An
    /// empty vector means the file is done.
    ///
    /// # Errors
    /// [`CsvError::NoRows`] or [`CsvError::HeaderOnly`] at the end of a file without data
    /// rows; [`CsvError::Binary`] at a NUL byte past the first 8 KiB (rows before it were
    /// already handed out: a caller should apply nothing until the whole file has been
    /// read); [`CsvError::Io`]. After an error the reader is done.
    pub fn next_chunk(&mut self, max: usize) -> Result<Vec<CsvRow>, CsvError> {
        let max = max.max(1);
        let mut rows = Vec::with_capacity(max.min(4096));
        while rows.len() < max {
            match self.next_row()? {
                Some(row) => rows.push(row),
                None => break,
            }
        }
        Ok(rows)
    }

    /// The next data row, `None` at the end.
    fn next_row(&mut self) -> Result<Option<CsvRow>, CsvError> {
        if self.finished {
            return Ok(None);
        }
        loop {
            let more = self.reader.read_byte_record(&mut self.record);
            let more = match more {
                Ok(more) => more,
                Err(e) => {
                    self.finished = true;
                    return Err(match self.reader.get_ref().nul_at {
                        Some(offset) => CsvError::Binary { offset },
                        None => CsvError::Io(e.to_string()),
                    });
                }
            };
            if !more {
                self.finished = true;
                return match (&self.column, self.data_rows) {
                    (Column::Named(h), 0) => Err(CsvError::HeaderOnly {
                        column: h.name.clone(),
                    }),
                    (_, 0) => Err(CsvError::NoRows),
                    _ => Ok(None),
                };
            }
            if self.record.iter().all(is_blank) {
                continue;
            }
            let end = self.reader.position().byte();
            let last_line = self.reader.get_mut().line_of(end.saturating_sub(1));
            let line = last_line.saturating_sub(breaks_within(&self.record));
            if self.column == Column::Undecided {
                if let Some((column, name)) = header_column(&self.record) {
                    self.column = Column::Named(Header { line, column, name });
                    continue;
                }
                self.column = Column::First;
            }
            self.data_rows += 1;
            return Ok(Some(CsvRow {
                line,
                kind: self.classify(line),
            }));
        }
    }

    /// Classifies the current record.
    fn classify(&mut self, line: u64) -> RowKind {
        let (index, column_name) = match &self.column {
            Column::Named(h) => (h.column, Some(&h.name)),
            _ => (0, None),
        };
        let Some(cell) = self.record.get(index) else {
            return RowKind::Malformed {
                value: String::new(),
                reason: MalformedReason::MissingColumn {
                    column: column_name.cloned().unwrap_or_default(),
                },
            };
        };
        let serial = match check_serial(cell) {
            Ok(serial) => serial,
            Err((value, reason)) => return RowKind::Malformed { value, reason },
        };
        match self.seen.get(&serial) {
            Some(&first_line) => RowKind::Duplicate { serial, first_line },
            None => {
                self.seen.insert(serial.clone(), line);
                RowKind::Serial(serial)
            }
        }
    }
}

impl<R: Read> Iterator for SerialCsv<R> {
    type Item = Result<CsvRow, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row().transpose()
    }
}

/// Reads a whole upload held in memory.
///
/// # Errors
/// As [`SerialCsv::new`] and [`SerialCsv::next_chunk`].
pub fn parse_all(bytes: &[u8]) -> Result<Vec<CsvRow>, CsvError> {
    SerialCsv::new(bytes)?.collect()
}

/// Checks and normalizes one serial cell: trimmed, upper-cased, 8 to 20 ASCII letters and
/// digits.
///
/// # Errors
/// The cell as found (shortened) and why it is malformed.
pub fn check_serial(cell: &[u8]) -> Result<String, (String, MalformedReason)> {
    let Ok(text) = std::str::from_utf8(cell) else {
        let lossy = String::from_utf8_lossy(cell);
        return Err((shorten(lossy.trim()), MalformedReason::InvalidUtf8));
    };
    let text = text.trim();
    let reason = if text.is_empty() {
        MalformedReason::Empty
    } else if let Some(character) = text.chars().find(|c| !c.is_ascii_alphanumeric()) {
        MalformedReason::BadCharacter { character }
    } else if !(MIN_SERIAL_LEN..=MAX_SERIAL_LEN).contains(&text.len()) {
        MalformedReason::WrongLength { length: text.len() }
    } else {
        return Ok(text.to_ascii_uppercase());
    };
    Err((shorten(text), reason))
}

/// At most [`MAX_VALUE_CHARS`] characters, with `…` when cut.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_VALUE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Empty or white space only (a cell that is not UTF-8 is not blank).
fn is_blank(cell: &[u8]) -> bool {
    std::str::from_utf8(cell).is_ok_and(|s| s.trim().is_empty())
}

/// The serial column of a header row, when `record` is one.
fn header_column(record: &csv::ByteRecord) -> Option<(usize, String)> {
    record.iter().enumerate().find_map(|(i, cell)| {
        let name = std::str::from_utf8(cell).ok()?.trim();
        let key = name
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        HEADER_NAMES
            .contains(&key.as_str())
            .then(|| (i, name.to_owned()))
    })
}

/// `,` unless the first non-blank line has no comma but a `;` or a tab.
fn delimiter(prefix: &[u8]) -> u8 {
    let first = prefix
        .split(|b| *b == b'\n')
        .find(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
        .unwrap_or_default();
    let count = |d: u8| first.iter().filter(|b| **b == d).count();
    if count(b',') > 0 {
        b','
    } else if count(b';') > 0 {
        b';'
    } else if count(b'\t') > 0 {
        b'\t'
    } else {
        b','
    }
}

#[cfg(test)]
mod tests;
