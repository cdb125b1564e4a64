use std::io::{self, Read};

use super::*;

fn serial(line: u64, s: &str) -> CsvRow {
    CsvRow {
        line,
        kind: RowKind::Serial(s.into()),
    }
}

fn malformed(line: u64, value: &str, reason: MalformedReason) -> CsvRow {
    CsvRow {
        line,
        kind: RowKind::Malformed {
            value: value.into(),
            reason,
        },
    }
}

fn duplicate(line: u64, s: &str, first_line: u64) -> CsvRow {
    CsvRow {
        line,
        kind: RowKind::Duplicate {
            serial: s.into(),
            first_line,
        },
    }
}

fn header_of(text: &[u8]) -> Option<Header> {
    let mut csv = SerialCsv::new(text).unwrap();
    let _ = csv.next_chunk(1).unwrap();
    csv.header().cloned()
}

#[test]
fn a_plain_list_has_no_header_and_uses_the_first_column() {
    let rows = parse_all(b"C02XK1ABJGH5\nDMQX2LL0AB,alice\n").unwrap();
    assert_eq!(rows, [serial(1, "C02XK1ABJGH5"), serial(2, "DMQX2LL0AB")]);
    assert_eq!(header_of(b"C02XK1ABJGH5\n"), None);
}

#[test]
fn bom_crlf_quotes_spaces_and_case_are_tolerated() {
    let text = b"\xEF\xBB\xBFSerial\r\n  c02xk1abjgh5 \r\n\"DMQX2LL0AB\"\r\n\" f9fxq1gcab \"\r\n";
    let rows = parse_all(text).unwrap();
    assert_eq!(
        rows,
        [
            serial(2, "C02XK1ABJGH5"),
            serial(3, "DMQX2LL0AB"),
            serial(4, "F9FXQ1GCAB"),
        ]
    );
    let h = header_of(text).unwrap();
    assert_eq!(
        (h.line, h.column, h.name.as_str()),
        (1, 0, "Serial"),
        "the BOM is not in the name"
    );
}

#[test]
fn a_bom_before_a_serial_is_dropped_too() {
    let rows = parse_all(b"\xEF\xBB\xBFc02xk1abjgh5\n").unwrap();
    assert_eq!(rows, [serial(1, "C02XK1ABJGH5")]);
}

#[test]
fn old_mac_line_ends_work() {
    let rows = parse_all(b"serial\rC02XK1ABJGH5\rDMQX2LL0AB").unwrap();
    assert_eq!(rows, [serial(2, "C02XK1ABJGH5"), serial(3, "DMQX2LL0AB")]);
}

#[test]
fn blank_lines_are_skipped_but_keep_the_line_count() {
    let rows = parse_all(b"\n  \nA1B2C3D4E5\n\n   \n,,\n \t , \n\nF6G7H8J9K0\n\n").unwrap();
    assert_eq!(rows, [serial(3, "A1B2C3D4E5"), serial(9, "F6G7H8J9K0")]);
    let rows = parse_all(b"\r\n\r\nAAAA1111\r\n\r\n\r\nBBBB2222").unwrap();
    assert_eq!(rows, [serial(3, "AAAA1111"), serial(6, "BBBB2222")]);
}

#[test]
fn every_header_spelling_is_recognised() {
    for name in [
        "serial",
        "SERIAL",
        "Serial Number",
        "  serial   number  ",
        "serial_number",
        "SerialNumber",
        "Serial No",
        "serial no.",
    ] {
        let text = format!("{name}\nC02XK1ABJGH5\n");
        assert_eq!(
            parse_all(text.as_bytes()).unwrap(),
            [serial(2, "C02XK1ABJGH5")],
            "{name}"
        );
        assert_eq!(
            header_of(text.as_bytes()).unwrap().name,
            name.trim(),
            "{name}"
        );
    }
    // not a header: a data row whose first cell is malformed
    let rows = parse_all(b"serials\nC02XK1ABJGH5\n").unwrap();
    assert_eq!(
        rows[0],
        malformed(1, "serials", MalformedReason::WrongLength { length: 7 })
    );
}

#[test]
fn a_named_column_is_used_wherever_it_is() {
    let text = b"asset,Serial Number,user\nA-1,c02xk1abjgh5,alice\nA-2,,bob\nA-3\nA-4,DMQX2LL0AB\n";
    let rows = parse_all(text).unwrap();
    assert_eq!(
        rows,
        [
            serial(2, "C02XK1ABJGH5"),
            malformed(3, "", MalformedReason::Empty),
            malformed(
                4,
                "",
                MalformedReason::MissingColumn {
                    column: "Serial Number".into()
                }
            ),
            serial(5, "DMQX2LL0AB"),
        ]
    );
    assert_eq!(header_of(text).unwrap().column, 1);
}

#[test]
fn quoted_cells_may_hold_commas_and_line_breaks() {
    let text = b"serial,note\nC02XK1ABJGH5,\"line one\nline two, more\"\n\"DMQX2LL0AB\",\"say \"\"hi\"\"\"\n";
    let rows = parse_all(text).unwrap();
    assert_eq!(rows, [serial(2, "C02XK1ABJGH5"), serial(4, "DMQX2LL0AB")]);
    let text = b"serial,note\r\nAAAA1111,\"a\r\nb\r\nc\"\r\n\r\nBBBB2222,\"x\ry\"\r\nCCCC3333\r\n";
    let rows = parse_all(text).unwrap();
    assert_eq!(
        rows,
        [
            serial(2, "AAAA1111"),
            serial(6, "BBBB2222"),
            serial(8, "CCCC3333")
        ]
    );
}

#[test]
fn semicolon_and_tab_separated_files_work() {
    let rows = parse_all(b"asset;serial;user\nA1;c02xk1abjgh5;alice\n").unwrap();
    assert_eq!(rows, [serial(2, "C02XK1ABJGH5")]);
    let rows = parse_all(b"asset\tserial\nA1\tDMQX2LL0AB\n").unwrap();
    assert_eq!(rows, [serial(2, "DMQX2LL0AB")]);
    assert_eq!(delimiter(b"\n\na,b;c\n"), b',');
    assert_eq!(delimiter(b"abcdefgh\n"), b',');
}

#[test]
fn duplicates_point_at_the_first_line() {
    let rows = parse_all(b"AAAA1111\naaaa1111\nBBBB2222\n AAAA1111 \nbbbb2222\n").unwrap();
    assert_eq!(
        rows,
        [
            serial(1, "AAAA1111"),
            duplicate(2, "AAAA1111", 1),
            serial(3, "BBBB2222"),
            duplicate(4, "AAAA1111", 1),
            duplicate(5, "BBBB2222", 3),
        ]
    );
}

#[test]
fn malformed_cells_say_why() {
    let long = "A".repeat(21);
    let mut bytes = b"serial,user\nABC-12345,a\nABC123,b\n".to_vec();
    bytes.extend(format!("{long},c\n").as_bytes());
    bytes.extend("C02XK1ABJGH5é,d\n".as_bytes());
    bytes.extend(b"C02\xFFXK1AB,e\n");
    let rows = parse_all(&bytes).unwrap();
    assert_eq!(
        rows,
        [
            malformed(
                2,
                "ABC-12345",
                MalformedReason::BadCharacter { character: '-' }
            ),
            malformed(3, "ABC123", MalformedReason::WrongLength { length: 6 }),
            malformed(4, &long, MalformedReason::WrongLength { length: 21 }),
            malformed(
                5,
                "C02XK1ABJGH5é",
                MalformedReason::BadCharacter { character: 'é' }
            ),
            malformed(6, "C02\u{FFFD}XK1AB", MalformedReason::InvalidUtf8),
        ]
    );
    let eight = parse_all(b"ABCD1234\nABCDEFGHIJKLMNOPQRST\n").unwrap();
    assert_eq!(
        eight,
        [serial(1, "ABCD1234"), serial(2, "ABCDEFGHIJKLMNOPQRST")]
    );
}

#[test]
fn a_long_malformed_cell_is_cut() {
    let text = format!("{}\n", "x-".repeat(100));
    let rows = parse_all(text.as_bytes()).unwrap();
    let RowKind::Malformed { value, .. } = &rows[0].kind else {
        panic!("{rows:?}")
    };
    assert_eq!(value.chars().count(), 65);
    assert!(value.ends_with('…'));
}

#[test]
fn unusable_files_are_refused_with_a_reason() {
    assert_eq!(parse_all(b""), Err(CsvError::NoRows));
    assert_eq!(
        parse_all(b"\xEF\xBB\xBF\r\n \r\n,,\r\n"),
        Err(CsvError::NoRows)
    );
    assert_eq!(
        parse_all(b"Serial Number\n\n"),
        Err(CsvError::HeaderOnly {
            column: "Serial Number".into()
        })
    );
    assert_eq!(
        parse_all(b"C02XK1\0ABJGH5\n"),
        Err(CsvError::Binary { offset: 6 })
    );
    assert_eq!(
        parse_all(b"PK\x03\x04\x14\0\x06\0"),
        Err(CsvError::Spreadsheet)
    );
    assert_eq!(
        parse_all(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1"),
        Err(CsvError::Spreadsheet)
    );
    assert_eq!(parse_all(b"\xFF\xFEs\0e\0"), Err(CsvError::Utf16));
    for e in [
        CsvError::NoRows,
        CsvError::Spreadsheet,
        CsvError::Utf16,
        CsvError::Binary { offset: 6 },
    ] {
        assert!(e.to_string().starts_with("the file "), "{e}");
    }
}

#[test]
fn a_nul_byte_late_in_the_file_stops_the_stream() {
    let mut text = "serial\n".to_owned();
    for i in 0..1000 {
        text.push_str(&format!("SN{i:08}\n"));
    }
    let nul_at = text.len() as u64 + 3;
    text.push_str("SN0\0");
    let mut csv = SerialCsv::new(text.as_bytes()).unwrap();
    let mut rows = 0;
    let err = loop {
        match csv.next_chunk(100) {
            Ok(chunk) => rows += chunk.len(),
            Err(e) => break e,
        }
    };
    assert_eq!(err, CsvError::Binary { offset: nul_at });
    assert!(rows > 0, "rows before the NUL came out first");
    assert_eq!(csv.next_chunk(100), Ok(vec![]), "done after an error");
}

#[test]
fn rows_come_in_chunks_and_one_by_one() {
    let text = b"serial\nAAAA1111\nBBBB2222\nCCCC3333\nDDDD4444\nEEEE5555\n";
    let mut csv = SerialCsv::new(&text[..]).unwrap();
    let sizes: Vec<usize> = std::iter::from_fn(|| {
        let chunk = csv.next_chunk(2).unwrap();
        (!chunk.is_empty()).then_some(chunk.len())
    })
    .collect();
    assert_eq!(sizes, [2, 2, 1]);

    let mut csv = SerialCsv::new(&text[..]).unwrap();
    assert_eq!(csv.next_chunk(0).unwrap().len(), 1, "0 asks for one row");
    let rest: Vec<CsvRow> = csv.by_ref().map(Result::unwrap).collect();
    assert_eq!(rest.len(), 4);
    assert!(csv.next().is_none());
}

#[test]
fn a_hundred_thousand_rows_stream_through() {
    const N: u64 = 100_000;
    let mut text = String::from("asset,serial,user\r\n");
    for i in 0..N {
        // every 1000th row repeats an earlier serial
        let n = if i % 1000 == 999 { i - 1 } else { i };
        text.push_str(&format!("A{i},\"sn{n:010}\",user{i}\r\n"));
    }
    let start = std::time::Instant::now();
    // a reader that returns at most 1000 bytes per call, as a network body would
    let reader = Trickle(text.as_bytes());
    let mut csv = SerialCsv::new(reader).unwrap();
    let (mut serials, mut duplicates, mut last_line) = (0u64, 0u64, 0u64);
    loop {
        let chunk = csv.next_chunk(10_000).unwrap();
        if chunk.is_empty() {
            break;
        }
        for row in chunk {
            assert!(row.line > last_line);
            last_line = row.line;
            match row.kind {
                RowKind::Serial(s) => {
                    assert!(s.starts_with("SN"));
                    serials += 1;
                }
                RowKind::Duplicate { .. } => duplicates += 1,
                RowKind::Malformed { .. } => panic!("{row:?}"),
            }
        }
    }
    assert_eq!((serials, duplicates), (N - N / 1000, N / 1000));
    assert_eq!(last_line, N + 1);
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
}

/// Hands out at most 1000 bytes per read.
struct Trickle<'a>(&'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(1000).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

// ---- the report ----

#[test]
fn parsing_decides_malformed_and_duplicate_rows_only() {
    assert_eq!(serial(1, "AAAA1111").report(), None);
    let dup = duplicate(4, "AAAA1111", 1).report().unwrap();
    assert_eq!(dup.outcome, RowOutcome::DuplicateRow);
    assert_eq!(dup.serial.as_deref(), Some("AAAA1111"));
    assert_eq!(
        dup.detail.as_deref(),
        Some("the same serial number is on line 1")
    );
    let bad = malformed(3, "ABC", MalformedReason::WrongLength { length: 3 })
        .report()
        .unwrap();
    assert_eq!(bad.outcome, RowOutcome::Malformed);
    assert_eq!(bad.serial.as_deref(), Some("ABC"));
    assert!(bad.detail.unwrap().contains("3 characters long"));
    let empty = malformed(5, "", MalformedReason::Empty).report().unwrap();
    assert_eq!(empty.serial, None);
}

#[test]
fn the_report_sorts_and_counts() {
    let row = |line, outcome| RowReport {
        line,
        serial: Some(format!("SERIAL{line:04}")),
        outcome,
        detail: None,
    };
    let report = CsvReport::new(
        vec![
            row(5, RowOutcome::NotInAbm),
            row(2, RowOutcome::Applied),
            row(4, RowOutcome::UnknownSerial),
            row(3, RowOutcome::Applied),
            row(6, RowOutcome::DuplicateRow),
            row(7, RowOutcome::Malformed),
        ],
        true,
    );
    let lines: Vec<u64> = report.rows.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 3, 4, 5, 6, 7]);
    assert_eq!(
        report.counts,
        OutcomeCounts {
            applied: 2,
            unknown_serial: 1,
            not_in_abm: 1,
            duplicate_row: 1,
            malformed: 1,
        }
    );
    assert_eq!(report.counts.total(), 6);
    assert_eq!(report.counts.get(RowOutcome::Applied), 2);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["counts"]["not_in_abm"], 1);
    assert_eq!(json["rows"][2]["outcome"], "unknown_serial");
    for (outcome, name) in [
        (RowOutcome::Applied, "applied"),
        (RowOutcome::UnknownSerial, "unknown_serial"),
        (RowOutcome::NotInAbm, "not_in_abm"),
        (RowOutcome::DuplicateRow, "duplicate_row"),
        (RowOutcome::Malformed, "malformed"),
    ] {
        assert_eq!(serde_json::to_value(outcome).unwrap(), name);
    }
}
