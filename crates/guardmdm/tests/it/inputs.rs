//! Admin inputs whose cost could grow faster than their size, over a real socket on every
//! backend: deeply nested profile specs are refused before parsing (REST API and dashboard),
//! oversized bodies answer 413 naming the limit (dashboard forms and the REST API), and a
//! large CSV upload's report page stays small while its CSV download has every row.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::collections::BTreeMap;

use common::TestApp;
use common::web::{PASSWORD, Page, WebClient, create_admin};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A 200 KB YAML profile nested 100,001 levels deep (`[[[…]]]`).
fn nested_yaml() -> String {
    format!(
        "name: deep\nskip_setup_items: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    )
}

async fn api_post(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let resp = app
        .admin(Method::POST, path)
        .header("content-type", content_type)
        .body(body)
        .timeout(std::time::Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn deeply_nested_profile_specs_are_refused_before_parsing() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;

        // REST API, YAML and JSON: 400 with the depth and the bound; nothing stored.
        let (status, body) = api_post(
            &app,
            "/api/v1/profiles",
            "application/yaml",
            nested_yaml().into_bytes(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message
                .contains("YAML line 2: lists and maps are nested 100001 levels deep; at most 32"),
            "{message}"
        );
        let json = format!(
            "{{\"name\": \"deep\", \"skip_setup_items\": {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let (status, body) = api_post(
            &app,
            "/api/v1/profiles",
            "application/json",
            json.into_bytes(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("nested 100001 levels deep; at most 32"),
            "{body}"
        );
        let (status, list) = app.json(Method::GET, "/api/v1/profiles", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list, Value::Array(Vec::new()));

        // The dashboard's YAML editor and the form's initial-commands field.
        create_admin(&app, "alice", PASSWORD).await;
        let web = WebClient::signed_in(&app, "alice").await;
        let csrf = web.get("/profiles/new").await.csrf();
        let yaml = nested_yaml();
        let page = web
            .post(
                "/profiles/new/yaml",
                &[("spec", yaml.as_str())],
                Some(&csrf),
            )
            .await;
        assert!(page.status.is_client_error(), "{}", page.status);
        assert!(page.body.contains("nested 100001 levels deep; at most 32"));
        let commands = format!(
            "- request_type: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let page = web
            .post(
                "/profiles/new",
                &[("name", "deep"), ("initial_commands", commands.as_str())],
                Some(&csrf),
            )
            .await;
        assert!(page.status.is_client_error(), "{}", page.status);
        assert!(page.body.contains("nested 100002 levels deep; at most 32"));
        let (_, list) = app.json(Method::GET, "/api/v1/profiles", None).await;
        assert_eq!(list, Value::Array(Vec::new()));
        app.stop().await;
    }
}

#[tokio::test]
async fn oversized_bodies_answer_413_naming_the_limit() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        create_admin(&app, "alice", PASSWORD).await;
        let web = WebClient::signed_in(&app, "alice").await;
        let csrf = web.get("/groups/new").await.csrf();
        let page = web
            .post(
                "/groups/new",
                &[("name", "loaners"), ("kind", "static"), ("priority", "")],
                Some(&csrf),
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);

        // A CSV over 4 MiB in a body under 8 MiB: the file's limit.
        let csv = vec![b'A'; 5 * 1024 * 1024];
        let page = web
            .post_multipart(
                "/groups/loaners/members",
                &[("mode", "dry_run")],
                &[("csv", "big.csv", &csv)],
                Some(&csrf),
            )
            .await;
        assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", page.body);
        assert!(page.body.contains("CSV files up to 4 MiB"), "{}", page.body);
        // A body over 8 MiB: the form's limit (multipart was answered 400 before).
        let csv = vec![b'A'; 9 * 1024 * 1024];
        for path in [
            "/groups/loaners/members",
            "/profiles/new/yaml",
            "/groups/new",
        ] {
            let page = web
                .post_multipart(
                    path,
                    &[("mode", "dry_run")],
                    &[("csv", "big.csv", &csv)],
                    Some(&csrf),
                )
                .await;
            assert_eq!(
                page.status,
                StatusCode::PAYLOAD_TOO_LARGE,
                "{path}: {}",
                page.body
            );
            assert!(
                page.body.contains("forms up to 8 MiB"),
                "{path}: {}",
                page.body
            );
        }
        // The same as a urlencoded form.
        let text = "A".repeat(9 * 1024 * 1024);
        let page = web
            .post(
                "/profiles/new/yaml",
                &[("spec", text.as_str())],
                Some(&csrf),
            )
            .await;
        assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", page.body);
        assert!(page.body.contains("forms up to 8 MiB"), "{}", page.body);
        // An ABM server token over its page's limit.
        let entry = app.create_entry("main").await;
        assert_eq!(entry["name"], "main", "{entry}");
        let token = vec![b'A'; 100 * 1024];
        let page = web
            .post_multipart(
                "/settings/abm/main/token",
                &[],
                &[("token_file", "main_smime.p7m", &token)],
                Some(&csrf),
            )
            .await;
        assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", page.body);
        assert!(page.body.contains("limit of 80 KiB"), "{}", page.body);
        // The entry's settings and Sync Now forms (16 KiB): answered 400 before.
        let filler = vec![b'A'; 20 * 1024];
        for path in ["/settings/abm/main/settings", "/settings/abm/main/sync"] {
            let page = web
                .post_multipart(path, &[], &[("filler", "filler.txt", &filler)], Some(&csrf))
                .await;
            assert_eq!(
                page.status,
                StatusCode::PAYLOAD_TOO_LARGE,
                "{path}: {}",
                page.body
            );
            assert!(
                page.body.contains("limit of 16 KiB"),
                "{path}: {}",
                page.body
            );
        }

        // The REST API: a profile body over 1 MiB.
        let (status, body) = api_post(
            &app,
            "/api/v1/profiles",
            "application/yaml",
            vec![b'#'; 1024 * 1024 + 1],
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert_eq!(body["error"], "payload_too_large", "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("limit of 1024 KiB"),
            "{body}"
        );
        app.stop().await;
    }
}

/// The value of hidden input `name` in a page (the first one).
fn hidden(page: &Page, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.body.find(&marker).unwrap_or_else(|| panic!("{name}")) + marker.len();
    let end = start + page.body[start..].find('"').unwrap();
    page.body[start..end].to_string()
}

/// Outcome counts of a CSV report (its `outcome` column).
fn csv_counts(csv: &str) -> (usize, BTreeMap<String, usize>) {
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["line", "serial", "outcome", "detail"]
    );
    let mut counts = BTreeMap::new();
    let mut rows = 0;
    for record in reader.records() {
        let record = record.unwrap();
        *counts.entry(record[2].to_string()).or_insert(0) += 1;
        rows += 1;
    }
    (rows, counts)
}

#[tokio::test]
async fn a_large_csv_report_page_stays_small_and_downloads_in_full() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        app.connect_abm("main").await;
        let devices = app.abm.sim.add_devices(12, None);
        let run = app.sync("main", false).await;
        assert_eq!(run["outcome"], "succeeded", "{run}");
        create_admin(&app, "alice", PASSWORD).await;
        let web = WebClient::signed_in(&app, "alice").await;
        let csrf = web.get("/groups/new").await.csrf();
        let page = web
            .post(
                "/groups/new",
                &[("name", "big"), ("kind", "static"), ("priority", "")],
                Some(&csrf),
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);

        // 100,000 rows, about 3.5 MB: the 12 devices, each once more as a duplicate,
        // 1,000 malformed rows, and unknown serials for the rest.
        let mut csv = String::from("asset,serial,notes\r\n");
        let mut rows = 0;
        for d in &devices {
            csv.push_str(&format!("A{rows:06},{},first copy xx\r\n", d.serial_number));
            rows += 1;
            csv.push_str(&format!(
                "A{rows:06},{},second copy x\r\n",
                d.serial_number.to_lowercase()
            ));
            rows += 1;
        }
        for i in 0..1_000 {
            csv.push_str(&format!("A{rows:06},bad-{i:07},a typo in it\r\n"));
            rows += 1;
        }
        while rows < 100_000 {
            csv.push_str(&format!("A{rows:06},ZZ{rows:010},not ours yet\r\n"));
            rows += 1;
        }
        assert!(
            csv.len() > 3_000_000 && csv.len() < 4 * 1024 * 1024,
            "{}",
            csv.len()
        );
        let unknown = 100_000 - 24 - 1_000;

        let dry = web
            .post_multipart(
                "/groups/big/members",
                &[("mode", "dry_run")],
                &[("csv", "big.csv", csv.as_bytes())],
                Some(&csrf),
            )
            .await;
        assert_eq!(
            dry.status,
            StatusCode::OK,
            "{}",
            &dry.body[..dry.body.len().min(2000)]
        );
        assert!(
            dry.body.len() < 100_000,
            "the page is {} bytes",
            dry.body.len()
        );
        for needle in [
            format!(
                "100000 rows: 12 would be applied, {unknown} unknown serials, 0 not in ABM, 12 duplicates, 1000 malformed."
            ),
            "<strong data-outcome=\"applied\">12</strong>".to_string(),
            format!("<strong data-outcome=\"unknown_serial\">{unknown}</strong>"),
            "<strong data-outcome=\"duplicate_row\">12</strong>".to_string(),
            "<strong data-outcome=\"malformed\">1000</strong>".to_string(),
            format!("The first 100 of {} rows not applied", 100_000 - 12),
            "Apply to 12 devices".to_string(),
            "id=\"again-form\"".to_string(),
        ] {
            assert!(dry.body.contains(&needle), "{needle:?} not in the page");
        }
        assert_eq!(dry.body.matches("<tr class=\"outcome-").count(), 100);
        assert!(
            !dry.body.contains("name=\"upload_b64\""),
            "the file is not carried"
        );
        let digest = hidden(&dry, "expect_sha256");
        assert_eq!(digest.len(), 64);

        // The full report: every row, as CSV.
        let resp = reqwest::Client::new()
            .post(format!("{}/groups/big/members?report=csv", web.base))
            .header("content-type", "multipart/form-data; boundary=XyZ")
            .header("origin", &web.base)
            .header("x-csrf-token", &csrf)
            .header(
                "cookie",
                format!("guardmdm_session={}", web.session.as_deref().unwrap()),
            )
            .body(multipart(
                &[("expect_sha256", &digest)],
                Some(csv.as_bytes()),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
        assert_eq!(
            resp.headers()["content-disposition"],
            "attachment; filename=\"group-big-report.csv\""
        );
        let report = resp.text().await.unwrap();
        let (total, counts) = csv_counts(&report);
        assert_eq!(total, 100_000);
        assert_eq!(counts["applied"], 12);
        assert_eq!(counts["unknown_serial"], unknown);
        assert_eq!(counts["duplicate_row"], 12);
        assert_eq!(counts["malformed"], 1_000);
        let (_, g) = app.json(Method::GET, "/api/v1/groups/big", None).await;
        assert_eq!(g["member_count"], 0, "the download is a dry run");
        // An unknown format is refused.
        let page = web
            .post_multipart(
                "/groups/big/members?report=xml",
                &[],
                &[("csv", "big.csv", csv.as_bytes())],
                Some(&csrf),
            )
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(page.body.contains("unknown report format"));

        // Applying takes the file chosen again, only if it is the one the dry run read.
        let other = csv.replace("not ours yet", "not ours now");
        let page = web
            .post_multipart(
                "/groups/big/members",
                &[("expect_sha256", &digest), ("mode", "apply")],
                &[("csv", "big.csv", other.as_bytes())],
                Some(&csrf),
            )
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(page.body.contains("not the input the dry run checked"));
        let (_, g) = app.json(Method::GET, "/api/v1/groups/big", None).await;
        assert_eq!(g["member_count"], 0);
        let page = web
            .post_multipart(
                "/groups/big/members",
                &[("expect_sha256", &digest), ("mode", "apply")],
                &[("csv", "big.csv", csv.as_bytes())],
                Some(&csrf),
            )
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body.len() < 100_000,
            "the page is {} bytes",
            page.body.len()
        );
        assert!(page.body.contains("<h3>Done</h3>"));
        let (_, g) = app.json(Method::GET, "/api/v1/groups/big", None).await;
        assert_eq!(g["member_count"], 12);

        // A small input is carried in the page, and its report downloads through a plain
        // form (the CSRF token in the body), as a browser without JavaScript sends it.
        let csrf_p = web.get("/profiles/new").await.csrf();
        let created = web
            .post("/profiles/new", &[("name", "loaner")], Some(&csrf_p))
            .await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
        let serials = format!("{}\nNOPE00000001\n", devices[0].serial_number);
        let dry = web
            .post(
                "/profiles/loaner/assign",
                &[
                    ("action", "assign"),
                    ("serials", serials.as_str()),
                    ("mode", "dry_run"),
                ],
                Some(&csrf),
            )
            .await;
        assert_eq!(dry.status, StatusCode::OK, "{}", dry.body);
        assert!(
            dry.body
                .contains("action=\"/profiles/loaner/assign?report=csv\"")
        );
        let carried = hidden(&dry, "serials");
        assert!(!carried.is_empty());
        let resp = reqwest::Client::new()
            .post(format!("{}/profiles/loaner/assign?report=csv", web.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", &web.base)
            .header(
                "cookie",
                format!("guardmdm_session={}", web.session.as_deref().unwrap()),
            )
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs([
                        ("csrf_token", csrf.as_str()),
                        ("action", "assign"),
                        ("serials", serials.as_str()),
                        ("upload_b64", ""),
                    ])
                    .finish(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["content-disposition"],
            "attachment; filename=\"profile-loaner-assign-report.csv\""
        );
        let (total, counts) = csv_counts(&resp.text().await.unwrap());
        assert_eq!(total, 2);
        assert_eq!((counts["applied"], counts["unknown_serial"]), (1, 1));
        let (_, p) = app.json(Method::GET, "/api/v1/profiles/loaner", None).await;
        assert_eq!(p["used_by"]["devices"], 0, "the download is a dry run");
        app.stop().await;
    }
}

/// A multipart body (boundary `XyZ`) with text fields and an optional `csv` file.
fn multipart(fields: &[(&str, &str)], file: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    if let Some(bytes) = file {
        body.extend_from_slice(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"csv\"; filename=\"big.csv\"\r\nContent-Type: text/csv\r\n\r\n",
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--XyZ--\r\n");
    body
}
