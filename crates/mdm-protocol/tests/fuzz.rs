//! Fuzz harnesses for every parser of this crate that the network reaches: check-in messages,
//! command-channel reports, MachineInfo, the `x-apple-aspen-deviceinfo` header, and command
//! uploads. Each mutates the real-shaped messages of `testdata/` (as XML and as binary
//! property lists) with `guardmdm-fuzz` and checks that no input panics, that bad input is
//! refused as bad input, and that what parses also serializes again where the server does so.
//!
//! The `*_smoke` tests run a few hundred cases in the normal test run; the ignored ones run
//! `GUARDMDM_FUZZ_CASES` (default 100,000) cases:
//! `cargo test --release -p guardmdm-mdm-protocol --test fuzz -- --ignored --nocapture`.

// Test code: failures are panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use guardmdm_fuzz::{Mutator, Verdict};
use guardmdm_mdm_protocol::{
    CheckinMessage, ProtocolError, command_from_upload, decode_device_info_header, parse_checkin,
    parse_command, parse_machine_info, parse_report,
};

const FULL_CASES: u64 = 100_000;

/// Tokens of XML and binary property lists: tags to nest and repeat, entities, markers.
const PLIST_TOKENS: &[&str] = &[
    "<array>",
    "</array>",
    "<dict>",
    "</dict>",
    "<key>",
    "</key>",
    "<string>",
    "</string>",
    "<data>",
    "</data>",
    "<integer>",
    "</integer>",
    "<real>",
    "</real>",
    "<date>2026-12-07T12:00:00Z</date>",
    "<date>99999-99-99T99:99:99Z</date>",
    "<true/>",
    "<false/>",
    "<array/>",
    "<dict/>",
    "<string/>",
    "<data>AAAA</data>",
    "<data>====</data>",
    "<integer>-9223372036854775809</integer>",
    "<integer>18446744073709551616</integer>",
    "<real>nan</real>",
    "<real>1e400</real>",
    "<key>UDID</key>",
    "<key>MessageType</key>",
    "<key>Status</key>",
    "<key>CommandUUID</key>",
    "<key>Command</key>",
    "<key>RequestType</key>",
    "<key>ErrorChain</key>",
    "<key>Token</key>",
    "<key>EnrollmentID</key>",
    "<string>Authenticate</string>",
    "<string>TokenUpdate</string>",
    "<string>Acknowledged</string>",
    "<string>Error</string>",
    "&amp;",
    "&lt;",
    "&#0;",
    "&#x110000;",
    "&#55296;",
    "&undefined;",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?xml version=\"1.0\"?>",
    "<!DOCTYPE plist [<!ENTITY a \"aaaaaaaaaa\">]>",
    "<plist version=\"1.0\">",
    "</plist>",
    "bplist00",
    "\u{feff}",
    "\u{fffd}",
    "\0",
    "\x5f\x10\x7f",
    "\x0f",
    "\x4f\x13\x7f\x7f\x7f\x7f\x7f\x7f\x7f",
    "\x6f\x10\x40",
    "\x33\x7f\x70\x00\x00\x00\x00\x00\x00",
];

fn testdata(dir: &str) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(dir);
    let mut names: Vec<_> = std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// The XML seeds and each re-encoded as a binary property list.
fn plist_seeds(dirs: &[&str]) -> Mutator {
    let mut seeds = Vec::new();
    for dir in dirs {
        for xml in testdata(dir) {
            let value = plist::Value::from_reader(Cursor::new(&xml)).unwrap();
            let mut binary = Vec::new();
            value.to_writer_binary(&mut binary).unwrap();
            seeds.push(xml);
            seeds.push(binary);
        }
    }
    Mutator::new(seeds).with_tokens(PLIST_TOKENS)
}

fn checkin(bytes: &[u8]) -> Verdict {
    match parse_checkin(bytes) {
        Ok(message) => {
            let _ = (message.message_type(), message.identity().as_str());
            if let CheckinMessage::TokenUpdate(update) = &message {
                let _ = (update.token_hex(), update.is_user_channel());
            }
            let _ = format!("{message:?}");
            Verdict::Accepted
        }
        Err(e) => refused(&e),
    }
}

fn report(bytes: &[u8]) -> Verdict {
    match parse_report(bytes) {
        Ok(report) => {
            let _ = (
                report.is_idle(),
                report.is_user_channel(),
                report.status.as_str(),
            );
            let _ = format!("{report:?}");
            // The server stores the body and shows it again as XML.
            let mut out = Vec::new();
            if let Err(e) = plist::Value::Dictionary(report.raw).to_writer_xml(&mut out) {
                return Verdict::Broken(format!("an accepted report does not serialize: {e}"));
            }
            Verdict::Accepted
        }
        Err(e) => refused(&e),
    }
}

fn machine_info(bytes: &[u8]) -> Verdict {
    match parse_machine_info(bytes) {
        Ok(info) => {
            let _ = format!("{info:?}");
            Verdict::Accepted
        }
        Err(e) => refused(&e),
    }
}

fn command_upload(bytes: &[u8]) -> Verdict {
    let _ = parse_command(bytes).map(|c| c.to_xml());
    match command_from_upload(bytes) {
        // The server serializes an accepted upload into the queue; failing there is a 500.
        Ok(command) => match command.to_xml() {
            Ok(xml) => match parse_command(&xml) {
                Ok(_) => Verdict::Accepted,
                Err(e) => Verdict::Broken(format!("an accepted upload does not read back: {e}")),
            },
            Err(e) => Verdict::Broken(format!("an accepted upload does not serialize: {e}")),
        },
        Err(e) => refused(&e),
    }
}

fn aspen_header(bytes: &[u8]) -> Verdict {
    // Header values are visible ASCII; the mutations still try any text.
    let text = String::from_utf8_lossy(bytes);
    match decode_device_info_header(&text) {
        Ok(_) => Verdict::Accepted,
        Err(e) => refused(&e),
    }
}

/// Bad input must be refused as bad input (a 400), never as the server's own failure.
fn refused(e: &ProtocolError) -> Verdict {
    let _ = e.to_string();
    if e.is_bad_input() {
        Verdict::Refused
    } else {
        Verdict::Broken(format!("bad input reported as an internal error: {e}"))
    }
}

fn aspen_seeds() -> Mutator {
    let mut seeds = Vec::new();
    for blob in testdata("machine_info") {
        seeds.push(STANDARD.encode(&blob).into_bytes());
        seeds.push(URL_SAFE_NO_PAD.encode(&blob).into_bytes());
        // Folded, as a long header value may be.
        let folded: Vec<u8> = STANDARD
            .encode(&blob)
            .into_bytes()
            .chunks(64)
            .flat_map(|c| c.iter().copied().chain(*b"\r\n "))
            .collect();
        seeds.push(folded);
    }
    Mutator::new(seeds).with_tokens(["=", "==", "-", "_", "+", "/", " ", "\t", "%2B", "\u{e9}"])
}

guardmdm_fuzz::harness!(
    checkin_smoke,
    checkin_full,
    "mdm-protocol parse_checkin",
    plist_seeds(&["checkin"]),
    checkin,
    FULL_CASES
);
guardmdm_fuzz::harness!(
    report_smoke,
    report_full,
    "mdm-protocol parse_report",
    plist_seeds(&["report"]),
    report,
    FULL_CASES
);
guardmdm_fuzz::harness!(
    machine_info_smoke,
    machine_info_full,
    "mdm-protocol parse_machine_info",
    plist_seeds(&["machine_info"]),
    machine_info,
    FULL_CASES
);
guardmdm_fuzz::harness!(
    command_upload_smoke,
    command_upload_full,
    "mdm-protocol command_from_upload",
    plist_seeds(&["command", "report"]),
    command_upload,
    FULL_CASES
);
guardmdm_fuzz::harness!(
    aspen_header_smoke,
    aspen_header_full,
    "mdm-protocol decode_device_info_header",
    aspen_seeds(),
    aspen_header,
    FULL_CASES
);
