//! Helpers shared by the unit tests.

use std::io::Cursor;

use plist::Value;

/// A fixture from `testdata/`.
macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/", $path)).as_slice()
    };
}
pub(crate) use fixture;

/// Re-encodes a property list (XML) as a binary property list.
pub(crate) fn to_binary(xml: &[u8]) -> Vec<u8> {
    let value = Value::from_reader(Cursor::new(xml)).unwrap();
    let mut out = Vec::new();
    value.to_writer_binary(&mut out).unwrap();
    assert!(out.starts_with(b"bplist00"));
    out
}

/// An XML property list whose top-level dictionary holds `body` (raw XML of keys and values).
pub(crate) fn xml_dict(body: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>{body}</dict></plist>"
    )
    .into_bytes()
}

/// Parses any property list back into a dictionary (for checking what this crate wrote).
pub(crate) fn read_back(bytes: &[u8]) -> plist::Dictionary {
    Value::from_reader(Cursor::new(bytes))
        .unwrap()
        .into_dictionary()
        .unwrap()
}

/// A top-level dictionary holding `levels` nested arrays under key `a`.
pub(crate) fn nested_arrays(levels: usize) -> Vec<u8> {
    xml_dict(&format!(
        "<key>a</key>{}{}",
        "<array>".repeat(levels),
        "</array>".repeat(levels)
    ))
}

/// A tiny binary property list whose containers share children: object `i` is an array of two
/// references to object `i + 1`, so the root expands to `2^levels` leaves.
pub(crate) fn binary_bomb(levels: u8) -> Vec<u8> {
    let mut out = b"bplist00".to_vec();
    let mut offsets = Vec::new();
    for i in 0..levels {
        offsets.push(out.len());
        out.extend_from_slice(&[0xA2, i + 1, i + 1]);
    }
    offsets.push(out.len());
    out.extend_from_slice(&[0x10, 0x00]);
    let table = out.len();
    for offset in &offsets {
        out.push(u8::try_from(*offset).unwrap());
    }
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&[1, 1]); // offset size, reference size
    out.extend_from_slice(&(offsets.len() as u64).to_be_bytes());
    out.extend_from_slice(&0u64.to_be_bytes()); // root object
    out.extend_from_slice(&(table as u64).to_be_bytes());
    out
}
