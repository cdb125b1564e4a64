//! The portal's serial-number CSV upload (the seed's third device-assignment method): one
//! serial number per row, as a pure function.
//!
//! Tolerated: a UTF-8 byte-order mark, CRLF or LF line ends, blank lines, spaces around
//! values, quotes, lower case (serials are upper-cased), extra columns (only the first is
//! read; `,`, `;` and tab separate columns) and one header row (a first row whose first value
//! mentions "serial" or is not shaped like a serial). Rows that are not shaped like a serial
//! number (8 to 14 letters and digits) are reported as invalid with their line number;
//! repeated serials are reported once as duplicates.

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
    for (i, line) in text.lines().enumerate() {
        let value = first_field(line);
        if value.is_empty() {
            continue;
        }
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
            _ => out.invalid.push(InvalidRow { line: i + 1, value }),
        }
    }
    out
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

/// The first column of a CSV line, trimmed and unquoted.
fn first_field(line: &str) -> String {
    let line = line.trim();
    let field = if let Some(rest) = line.strip_prefix('"') {
        rest.split('"').next().unwrap_or_default()
    } else {
        line.split([',', ';', '\t']).next().unwrap_or_default()
    };
    field.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_messy_upload() {
        let text = "\u{feff}Serial Number,Note\r\n\r\n  c02xk1jhjg5j , laptop\r\n\"F17ABCDE1234\"\r\n\
                    bad row!\r\nC02XK1JHJG5J\r\nHWPQ4Y7XVX;x\r\n\t\r\n";
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
    fn serial_shape() {
        assert_eq!(normalize_serial(" abcd1234 ").as_deref(), Some("ABCD1234"));
        assert_eq!(normalize_serial("short"), None);
        assert_eq!(normalize_serial("ABCDEFGHIJKLMNO"), None);
        assert_eq!(normalize_serial("ABCD-1234"), None);
    }
}
