//! The portal's serial-number CSV upload (the third way ABM assigns devices to a server,
//! after one by one and by order number): one serial number per row, as a pure function.
//!
//! Tolerated: a UTF-8 byte-order mark, CRLF or LF line ends, blank lines, spaces around
//! values, quoted values, lower case (serials are upper-cased), extra columns (only the first
//! is read; the separator is `,`, or `;` or tab when the first line has no comma) and one
//! header row (a first row whose first value mentions "serial" or is not shaped like a
//! serial). Rows that are not shaped like a serial number (8 to 14 letters and digits) are
//! reported as invalid with their line number; repeated serials are reported once as
//! duplicates.

/// A row that is not a serial number.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InvalidRow {
    /// 1-based line number in the upload.
    pub line: usize,
    /// The value as found (first column, trimmed).
    pub value: String,
}

/// The parsed upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SerialCsv {
    /// Serial numbers in upload order, upper-case, without duplicates.
    pub serials: Vec<String>,
    /// Serials that appeared more than once (each listed once).
    pub duplicates: Vec<String>,
    /// Rows that are not serial numbers.
    pub invalid: Vec<InvalidRow>,
    /// The header row's first value, when one was skipped.
    pub header: Option<String>,
}

/// Parses an uploaded serial-number CSV.
#[must_use]
pub fn parse_serial_csv(text: &str) -> SerialCsv {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = SerialCsv::default();
    let mut seen = std::collections::HashSet::new();
    let mut first = true;
    let mut rows = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(::csv::Trim::All)
        .delimiter(separator(text))
        .from_reader(text.as_bytes());
    let mut record = ::csv::StringRecord::new();
    let (mut counted, mut lines_before) = (0, 0);
    // Until the end, or a row the reader cannot take (an unclosed quote runs to the end):
    // what was read so far stands.
    while let Ok(true) = rows.read_record(&mut record) {
        let value = record.get(0).unwrap_or_default().to_string();
        if value.is_empty() {
            continue;
        }
        // The reader's own line count leaves out blank lines: count line ends up to where
        // the record starts instead.
        let start = record
            .position()
            .map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX))
            .min(text.len());
        // It may point at the line end of the row before (the `\n` of a `\r\n`).
        let start = start
            + text.as_bytes()[start..]
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
        lines_before += text.as_bytes()[counted..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        counted = start;
        let line = lines_before + 1;
        let is_first = std::mem::replace(&mut first, false);
        match normalize_serial(&value) {
            Some(serial) if !(is_first && mentions_serial(&value)) => {
                if seen.insert(serial.clone()) {
                    out.serials.push(serial);
                } else if !out.duplicates.contains(&serial) {
                    out.duplicates.push(serial);
                }
            }
            _ if is_first => out.header = Some(value),
            _ => out.invalid.push(InvalidRow { line, value }),
        }
    }
    out
}

/// The column separator: `,`, else `;` or tab when the first line has one of them.
fn separator(text: &str) -> u8 {
    let first = text.lines().next().unwrap_or_default();
    if first.contains(',') {
        b','
    } else if first.contains(';') {
        b';'
    } else if first.contains('\t') {
        b'\t'
    } else {
        b','
    }
}

/// A serial number in canonical form (trimmed, upper-case), or `None` when `text` is not 8 to
/// 14 ASCII letters and digits.
#[must_use]
pub fn normalize_serial(text: &str) -> Option<String> {
    let s = text.trim();
    ((8..=14).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| s.to_ascii_uppercase())
}

fn mentions_serial(value: &str) -> bool {
    value.to_ascii_lowercase().contains("serial")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_messy_upload() {
        let text = "\u{feff}Serial Number,Note\r\n\r\n  c02xk1jhjg5j , laptop\r\n\"F17ABCDE1234\"\r\n\
                    bad row!\r\nC02XK1JHJG5J\r\nHWPQ4Y7XVX,x\r\n\t\r\n";
        let csv = parse_serial_csv(text);
        assert_eq!(csv.header.as_deref(), Some("Serial Number"));
        assert_eq!(
            csv.serials,
            vec!["C02XK1JHJG5J", "F17ABCDE1234", "HWPQ4Y7XVX"]
        );
        assert_eq!(csv.duplicates, vec!["C02XK1JHJG5J"]);
        assert_eq!(
            csv.invalid,
            vec![InvalidRow {
                line: 5,
                value: "bad row!".into()
            }]
        );
    }

    #[test]
    fn a_header_shaped_like_a_serial_is_still_a_header() {
        let csv = parse_serial_csv("SerialNumber\nHWPQ4Y7XVX\n");
        assert_eq!(csv.header.as_deref(), Some("SerialNumber"));
        assert_eq!(csv.serials, vec!["HWPQ4Y7XVX"]);
    }

    #[test]
    fn no_header_and_no_trailing_newline() {
        let csv = parse_serial_csv("HWPQ4Y7XVX\nK2WQ4K7J3X");
        assert_eq!(csv.header, None);
        assert_eq!(csv.serials.len(), 2);
        assert!(parse_serial_csv("").serials.is_empty());
    }

    #[test]
    fn semicolons_and_tabs_separate_when_the_first_line_has_no_comma() {
        let csv = parse_serial_csv("serial;note\nHWPQ4Y7XVX;a, b\n");
        assert_eq!(csv.serials, vec!["HWPQ4Y7XVX"]);
        let csv = parse_serial_csv("HWPQ4Y7XVX\tx\nK2WQ4K7J3X\ty\n");
        assert_eq!(csv.serials, vec!["HWPQ4Y7XVX", "K2WQ4K7J3X"]);
    }

    #[test]
    fn a_quoted_value_may_hold_the_separator_and_line_numbers_count_its_lines() {
        let csv = parse_serial_csv("\"HWPQ4Y7XVX\",\"a,\nb\"\nnot-a-serial\n");
        assert_eq!(csv.serials, vec!["HWPQ4Y7XVX"]);
        assert_eq!(
            csv.invalid,
            vec![InvalidRow {
                line: 3,
                value: "not-a-serial".into()
            }]
        );
    }

    #[test]
    fn serial_shape() {
        assert_eq!(normalize_serial(" abcd1234 ").as_deref(), Some("ABCD1234"));
        assert_eq!(normalize_serial("short"), None);
        assert_eq!(normalize_serial("ABCDEFGHIJKLMNO"), None);
        assert_eq!(normalize_serial("ABCD-1234"), None);
    }
}
