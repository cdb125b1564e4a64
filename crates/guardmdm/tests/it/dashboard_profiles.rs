//! The dashboard's profile, OS default and group pages over a real socket, without a
//! browser, on every backend: the profile form (every key round-trips into the stored spec,
//! errors per field and nothing written, versions and stale edits, the YAML editor, delete
//! refused while in use), OS defaults changing what devices resolve to, groups with rules,
//! CSV uploads with a dry run and their per-row report, device-level assignment, CSRF.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::time::Duration;

use common::TestApp;
use common::web::{PASSWORD, Page, WebClient, create_admin};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A tiny DER SEQUENCE, base64: passes the certificate check.
const DER: &str = "MAMCAQU=";

async fn api(app: &TestApp, path: &str) -> Value {
    let (status, body) = app.json(Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// Posts a multipart form (an htmx upload: the CSRF token in the header).
async fn post_multipart(
    web: &WebClient,
    path: &str,
    fields: &[(&str, &str)],
    file: Option<(&str, &[u8])>,
    csrf: Option<&str>,
) -> Page {
    let boundary = "----guardmdm-test-boundary-7d1f";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some((name, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"serials.csv\"\r\nContent-Type: text/csv\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", web.base))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header("origin", &web.base)
        .header("hx-request", "true")
        .header(
            "cookie",
            format!("guardmdm_session={}", web.session.as_deref().unwrap()),
        )
        .body(body);
    if let Some(t) = csrf {
        req = req.header("x-csrf-token", t);
    }
    let resp = req.send().await.unwrap();
    Page {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

/// The value of hidden input `name` in a page (the first one).
fn hidden(page: &Page, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.body.find(&marker).unwrap_or_else(|| panic!("{name}")) + marker.len();
    let end = start + page.body[start..].find('"').unwrap();
    page.body[start..end]
        .replace("&#43;", "+")
        .replace("&#x2b;", "+")
        .replace("&#61;", "=")
        .replace("&#x3d;", "=")
        .replace("&#47;", "/")
        .replace("&#x2f;", "/")
}

fn assert_contains(page: &Page, needles: &[&str]) {
    for n in needles {
        assert!(page.body.contains(n), "{n:?} not in:\n{}", page.body);
    }
}

/// The form fields of a complete profile: every key of a spec.
fn full_form(csrf: &str, name: &str) -> Vec<(String, String)> {
    let mut f: Vec<(String, String)> = [
        ("csrf_token", csrf),
        ("name", name),
        ("profile_name", "Corporate iPhones"),
        ("enrollment_type", "automated"),
        ("url", "https://mdm.example.com/mdm/enroll"),
        ("configuration_web_url", "https://sso.example.com/enroll"),
        ("is_supervised", "true"),
        ("is_mandatory", "true"),
        ("is_mdm_removable", "false"),
        ("await_device_configured", "true"),
        ("auto_advance_setup", "false"),
        ("allow_pairing", "false"),
        ("is_multi_user", "false"),
        ("department", "IT"),
        ("support_phone_number", "+1 555 0100"),
        ("support_email_address", "it@example.com"),
        ("org_magic", "org-magic-1"),
        ("language", "en"),
        ("region", "US"),
        ("anchor_certs", DER),
        ("supervising_host_certs", &format!("{DER}\r\n\r\n{DER}")),
        ("skip_order", ""),
        ("skip_setup_items", "AppleID"),
        ("skip_setup_items", "Biometric"),
        ("skip_other", "Futuristic"),
        (
            "initial_commands",
            "- request_type: DeviceInformation\n  queries: [UDID, OSVersion]\n- request_type: RemoveProfile\n  identifier: com.example.wifi\n",
        ),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    .collect();
    f.push(("skip_setup_items".into(), "FileVault".into()));
    f
}

fn pairs(f: &[(String, String)]) -> Vec<(&str, &str)> {
    f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn set(f: &mut [(String, String)], key: &str, value: &str) {
    for (k, v) in f.iter_mut() {
        if k == key {
            *v = value.to_string();
        }
    }
}

#[tokio::test]
async fn profiles_through_the_form_the_yaml_editor_and_their_versions() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        create_admin(&app, "alice", PASSWORD).await;
        let web = WebClient::signed_in(&app, "alice").await;

        let list = web.get("/profiles").await;
        assert_eq!(list.status, StatusCode::OK);
        assert_contains(
            &list,
            &[
                "<h1>ADE profiles</h1>",
                "id=\"no-profiles\"",
                "href=\"/profiles\" aria-current=\"page\"",
                "href=\"/os-defaults\"",
                "href=\"/groups\"",
            ],
        );
        let form = web.get("/profiles/new").await;
        assert_eq!(form.status, StatusCode::OK);
        assert_contains(
            &form,
            &[
                "<legend>macOS</legend>",
                "id=\"skip-macos-FileVault\" name=\"skip_setup_items\" value=\"FileVault\"",
                "id=\"skip-ios-Siri\"",
                "<label for=\"f-support_email_address\">",
                "Not set (default: yes)",
                "name=\"initial_commands\"",
                "name=\"anchor_certs\"",
                "name=\"supervising_host_certs\"",
            ],
        );
        let csrf = form.csrf();

        // Without the CSRF token: refused, nothing written.
        let mut fields = full_form(&csrf, "corp");
        let no_token: Vec<(&str, &str)> = pairs(&fields)
            .into_iter()
            .filter(|(k, _)| *k != "csrf_token")
            .collect();
        let refused = web.post("/profiles/new", &no_token, None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);

        // Invalid input: every field's error next to it, the first one focused, nothing
        // written, the admin's input kept.
        let mut bad = fields.clone();
        set(&mut bad, "profile_name", &"x".repeat(126));
        set(&mut bad, "support_email_address", "it at example");
        set(&mut bad, "language", "EN");
        set(&mut bad, "is_supervised", "false");
        set(&mut bad, "anchor_certs", "-----BEGIN CERTIFICATE-----");
        set(
            &mut bad,
            "initial_commands",
            "- request_type: EraseDevice\n",
        );
        let page = web.post("/profiles/new", &pairs(&bad), None).await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.body
        );
        for field in [
            "profile_name",
            "support_email_address",
            "language",
            "is_mdm_removable",
            "anchor_certs",
            "initial_commands",
        ] {
            assert_contains(
                &page,
                &[
                    &format!("<p class=\"field-error\" id=\"e-{field}\">"),
                    &format!("<a href=\"#f-{field}\">"),
                ],
            );
        }
        assert_contains(
            &page,
            &[
                "aria-invalid=\"true\"",
                "6 problems to fix",
                "value=\"it at example\"",
                "would stop the device in the middle of its setup",
            ],
        );
        assert_eq!(page.body.matches(" autofocus").count(), 1);
        assert!(page.body.contains(
            "aria-describedby=\"h-profile_name e-profile_name\" aria-invalid=\"true\" autofocus"
        ));
        // An unreadable command list is reported together with the other errors.
        set(&mut bad, "initial_commands", "- request_type: [");
        let page = web.post("/profiles/new", &pairs(&bad), None).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_contains(&page, &["id=\"e-initial_commands\"", "id=\"e-language\""]);
        let (_, stored) = app.json(Method::GET, "/api/v1/profiles", None).await;
        assert_eq!(stored, json!([]), "nothing written");

        // A complete profile: every field round-trips into the stored spec.
        let created = web.post("/profiles/new", &pairs(&fields), None).await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
        assert_eq!(created.location(), "/profiles/corp");
        assert!(
            created
                .set_cookies()
                .iter()
                .any(|c| c.starts_with("guardmdm_flash=profile_created;")),
            "a message for the next page"
        );
        let p = api(&app, "/api/v1/profiles/corp").await;
        assert_eq!(
            p["spec"],
            json!({
                "name": "corp",
                "profile_name": "Corporate iPhones",
                "enrollment_type": "automated",
                "url": "https://mdm.example.com/mdm/enroll",
                "configuration_web_url": "https://sso.example.com/enroll",
                "is_supervised": true,
                "is_mandatory": true,
                "is_mdm_removable": false,
                "await_device_configured": true,
                "auto_advance_setup": false,
                "allow_pairing": false,
                "is_multi_user": false,
                "department": "IT",
                "support_phone_number": "+1 555 0100",
                "support_email_address": "it@example.com",
                "org_magic": "org-magic-1",
                "language": "en",
                "region": "US",
                "anchor_certs": [DER],
                "supervising_host_certs": [DER, DER],
                "skip_setup_items": ["AppleID", "Biometric", "FileVault", "Futuristic"],
                "initial_commands": [
                    {"request_type": "DeviceInformation", "queries": ["UDID", "OSVersion"]},
                    {"request_type": "RemoveProfile", "identifier": "com.example.wifi"}
                ]
            })
        );
        assert_eq!(p["version"], 1);
        // Its page: the warnings of the save, where it is used, what Apple receives.
        let show = web.get("/profiles/corp").await;
        assert_eq!(show.status, StatusCode::OK);
        assert_contains(
            &show,
            &[
                "<h1>Profile corp</h1>",
                "id=\"warnings\"",
                "&#34;Futuristic&#34; is not a known skip key",
                "Not used",
                "&#34;profile_name&#34;: &#34;Corporate iPhones&#34;",
            ],
        );
        // The edit form shows the stored values and the version it edits.
        let edit = web.get("/profiles/corp/edit").await;
        assert_contains(
            &edit,
            &[
                "name=\"expected_version\" value=\"1\"",
                "id=\"f-name\" name=\"name\" type=\"text\" value=\"corp\" autocomplete=\"off\" spellcheck=\"false\" readonly",
                "value=\"FileVault\" checked",
                "name=\"skip_order\" value=\"AppleID Biometric FileVault Futuristic\"",
                "<option value=\"false\" selected>No</option>",
            ],
        );
        // Saving it unchanged writes no version.
        set(
            &mut fields,
            "skip_order",
            "AppleID Biometric FileVault Futuristic",
        );
        // Every ticked box of the page, as a browser sends them (a pane several OSes share
        // has a box in each).
        let mut same: Vec<(String, String)> = fields
            .iter()
            .filter(|(k, _)| k != "skip_setup_items")
            .cloned()
            .collect();
        let ticked: Vec<String> = edit
            .body
            .split("name=\"skip_setup_items\" value=\"")
            .skip(1)
            .filter_map(|s| {
                let (key, rest) = s.split_once('"')?;
                rest.starts_with(" checked").then(|| key.to_string())
            })
            .collect();
        assert!(ticked.len() > 3, "{ticked:?}");
        same.extend(
            ticked
                .into_iter()
                .map(|k| ("skip_setup_items".to_string(), k)),
        );
        same.push(("expected_version".into(), "1".into()));
        let page = web.post("/profiles/corp/edit", &pairs(&same), None).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(api(&app, "/api/v1/profiles/corp").await["version"], 1);
        // An edit makes version 2; the same edit from a stale page is refused.
        set(&mut same, "department", "Field IT");
        let page = web.post("/profiles/corp/edit", &pairs(&same), None).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let p = api(&app, "/api/v1/profiles/corp").await;
        assert_eq!(p["version"], 2);
        assert_eq!(p["spec"]["department"], "Field IT");
        set(&mut same, "department", "Someone else's");
        let stale = web.post("/profiles/corp/edit", &pairs(&same), None).await;
        assert_eq!(stale.status, StatusCode::CONFLICT);
        assert_contains(
            &stale,
            &[
                "someone else changed it; reload and retry",
                "value=\"Someone else&#39;s\"",
            ],
        );
        assert_eq!(api(&app, "/api/v1/profiles/corp").await["version"], 2);

        // The YAML editor: the spec as YAML; a typo named; a save makes version 3.
        let yaml = web.get("/profiles/corp/yaml").await;
        assert_contains(
            &yaml,
            &["name: corp", "name=\"expected_version\" value=\"2\""],
        );
        let typo = web
            .post(
                "/profiles/corp/yaml",
                &[
                    ("csrf_token", &csrf),
                    ("expected_version", "2"),
                    ("spec", "name: corp\ndepartmnt: IT\n"),
                ],
                None,
            )
            .await;
        assert_eq!(typo.status, StatusCode::BAD_REQUEST);
        assert_contains(
            &typo,
            &["unknown key `departmnt`: did you mean `department`?"],
        );
        let invalid = web
            .post(
                "/profiles/corp/yaml",
                &[
                    ("csrf_token", &csrf),
                    ("expected_version", "2"),
                    ("spec", "name: corp\nregion: US\n"),
                ],
                None,
            )
            .await;
        assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_contains(&invalid, &["region: `region` needs a `language`"]);
        let saved = web
            .post(
                "/profiles/corp/yaml",
                &[
                    ("csrf_token", &csrf),
                    ("expected_version", "2"),
                    ("spec", "{\"name\": \"corp\", \"department\": \"IT\"}"),
                ],
                None,
            )
            .await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
        assert_eq!(
            api(&app, "/api/v1/profiles/corp").await["spec"],
            json!({"name": "corp", "department": "IT"})
        );
        let created = web
            .post(
                "/profiles/new/yaml",
                &[("csrf_token", &csrf), ("spec", "name: spare\n")],
                None,
            )
            .await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
        let versions = web.get("/profiles/corp/versions").await;
        assert_eq!(versions.status, StatusCode::OK);
        assert_contains(
            &versions,
            &[
                "Version 3 (current)",
                "Version 2",
                "Version 1",
                "department: Field IT",
                "Written by admin:alice",
            ],
        );
        let list = web.get("/profiles").await;
        assert_contains(
            &list,
            &[
                "<a href=\"/profiles/corp\">corp</a>",
                "<a href=\"/profiles/spare\">spare</a>",
            ],
        );

        // Delete: refused while it is the iOS default, done once it is not.
        let set_default = web
            .post(
                "/os-defaults/ios",
                &[("csrf_token", &csrf), ("profile", "corp")],
                None,
            )
            .await;
        assert_eq!(set_default.status, StatusCode::SEE_OTHER);
        let confirm = web.get("/profiles/corp/delete").await;
        assert_contains(&confirm, &["is in use, so it cannot be deleted yet"]);
        let refused = web
            .post("/profiles/corp/delete", &[("csrf_token", &csrf)], None)
            .await;
        assert_eq!(refused.status, StatusCode::CONFLICT);
        assert_contains(
            &refused,
            &[
                "Not deleted:",
                "ios default",
                "assign another profile there first",
            ],
        );
        web.post(
            "/os-defaults/ios",
            &[("csrf_token", &csrf), ("profile", "")],
            None,
        )
        .await;
        let deleted = web
            .post("/profiles/corp/delete", &[("csrf_token", &csrf)], None)
            .await;
        assert_eq!(deleted.status, StatusCode::SEE_OTHER);
        assert_eq!(deleted.location(), "/profiles");
        let (status, _) = app.json(Method::GET, "/api/v1/profiles/corp", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            web.get("/profiles/corp").await.status,
            StatusCode::NOT_FOUND
        );
        app.stop().await;
    }
}

/// The profile column of the iOS rows of the devices page.
async fn ios_profiles(web: &WebClient) -> Vec<String> {
    let page = web.get("/devices?os=iOS&limit=200").await;
    page.body
        .split("<td data-label=\"Profile\">")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn os_defaults_groups_and_csv_uploads() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        app.connect_abm("main").await;
        let devices = app.abm.sim.add_devices(12, None);
        let run = app.sync("main", false).await;
        assert_eq!(run["outcome"], "succeeded", "{run}");
        create_admin(&app, "alice", PASSWORD).await;
        let web = WebClient::signed_in(&app, "alice").await;
        let csrf = web.get("/profiles/new").await.csrf();
        for name in ["phones", "loaner"] {
            let page = web
                .post(
                    "/profiles/new",
                    &[
                        ("csrf_token", &csrf),
                        ("name", name),
                        ("skip_setup_items", "Siri"),
                    ],
                    None,
                )
                .await;
            assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        }

        // OS defaults: a row per OS; iPadOS falls back to iOS; setting the iOS default
        // changes what iPhones resolve to after the pass.
        let defaults = web.get("/os-defaults").await;
        assert_eq!(defaults.status, StatusCode::OK);
        for os in ["ios", "ipados", "macos", "tvos", "visionos"] {
            assert!(
                defaults
                    .body
                    .contains(&format!("action=\"/os-defaults/{os}\"")),
                "{os}"
            );
        }
        let saved = web
            .post(
                "/os-defaults/ios",
                &[("csrf_token", &csrf), ("profile", "phones")],
                None,
            )
            .await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER);
        assert!(saved.set_cookies()[0].starts_with("guardmdm_flash=default_saved;"));
        let defaults = web.get("/os-defaults").await;
        assert_contains(
            &defaults,
            &[
                "<option value=\"phones\" selected>phones</option>",
                "No iPadOS default: iPads use the iOS default, phones.",
            ],
        );
        let bad = web
            .post(
                "/os-defaults/android",
                &[("csrf_token", &csrf), ("profile", "phones")],
                None,
            )
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);

        // The minimum OS at enrollment, per OS, on the same page: saved, refused with the
        // reason next to what was typed, cleared.
        assert!(
            defaults
                .body
                .contains("action=\"/os-defaults/macos/minimum\""),
            "{}",
            defaults.body
        );
        let saved = web
            .post(
                "/os-defaults/ios/minimum",
                &[("csrf_token", &csrf), ("minimum", "17.5")],
                None,
            )
            .await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER);
        assert!(saved.set_cookies()[0].starts_with("guardmdm_flash=minimum_saved;"));
        let (_, minimums) = app.json(Method::GET, "/api/v1/minimum-os", None).await;
        assert_eq!(minimums[0]["os"], "ios", "{minimums}");
        assert_eq!(minimums[0]["minimum"], "17.5", "{minimums}");
        let refused = web
            .post(
                "/os-defaults/macos/minimum",
                &[("csrf_token", &csrf), ("minimum", "fourteen")],
                None,
            )
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_contains(
            &refused,
            &[
                "value=\"fourteen\"",
                "aria-invalid=\"true\"",
                "value=\"17.5\"",
            ],
        );
        let cleared = web
            .post(
                "/os-defaults/ios/minimum",
                &[("csrf_token", &csrf), ("minimum", "")],
                None,
            )
            .await;
        assert_eq!(cleared.status, StatusCode::SEE_OTHER);
        let (_, minimums) = app.json(Method::GET, "/api/v1/minimum-os", None).await;
        assert!(minimums[0]["minimum"].is_null(), "{minimums}");

        let iphones = devices.iter().filter(|d| d.os == "iOS").count();
        assert!(iphones > 0);
        let mut resolved = Vec::new();
        for _ in 0..100 {
            resolved = ios_profiles(&web).await;
            if resolved.len() == iphones && resolved.iter().all(|p| p == "phones") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            resolved.len() == iphones && resolved.iter().all(|p| p == "phones"),
            "{resolved:?}"
        );

        // Smart groups: the rule in lines, errors on the rule's input, edits.
        let page = web
            .post(
                "/groups/new",
                &[
                    ("csrf_token", &csrf),
                    ("name", "ipads"),
                    ("kind", "smart"),
                    ("rule", "os=ipados\nmodel whatever"),
                    ("priority", "10"),
                    ("profile", "loaner"),
                ],
                None,
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_contains(
            &page,
            &[
                "rule line 2:",
                "id=\"f-rule\" name=\"rule\" rows=\"4\" class=\"mono\" spellcheck=\"false\" aria-describedby=\"h-rule form-error\" aria-invalid=\"true\" autofocus",
                "os=ipados\nmodel whatever",
            ],
        );
        let page = web
            .post(
                "/groups/new",
                &[
                    ("csrf_token", &csrf),
                    ("name", "ipads"),
                    ("kind", "smart"),
                    ("rule", "os=ipados\nmodel~iPad"),
                    ("priority", "ten"),
                    ("profile", "loaner"),
                ],
                None,
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_contains(&page, &["priority &#34;ten&#34; is not a whole number"]);
        let page = web
            .post(
                "/groups/new",
                &[
                    ("csrf_token", &csrf),
                    ("name", "ipads"),
                    ("kind", "smart"),
                    ("rule", "os=ipados\nmodel~iPad"),
                    ("priority", "10"),
                    ("profile", "loaner"),
                ],
                None,
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let g = api(&app, "/api/v1/groups/ipads").await;
        assert_eq!(g["rule_text"], "os=ipados and model~iPad");
        assert_eq!(g["priority"], 10);
        assert_eq!(g["profile"], "loaner");
        let edit = web.get("/groups/ipads/edit").await;
        assert_contains(&edit, &["os=ipados\nmodel~iPad</textarea>"]);
        let page = web
            .post(
                "/groups/ipads/edit",
                &[
                    ("csrf_token", &csrf),
                    ("rule", "os=ipados and color=Silver|Space Gray"),
                    ("priority", "5"),
                    ("profile", ""),
                ],
                None,
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let g = api(&app, "/api/v1/groups/ipads").await;
        assert_eq!(g["rule_text"], "os=ipados and color=Silver|Space Gray");
        assert_eq!(g["priority"], 5);
        assert_eq!(g["profile"], Value::Null);

        // A static group; a CSV upload with a dry run reports every row and writes nothing.
        let page = web
            .post(
                "/groups/new",
                &[
                    ("csrf_token", &csrf),
                    ("name", "loaners"),
                    ("kind", "static"),
                    ("priority", ""),
                    ("profile", "loaner"),
                ],
                None,
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let groups = web.get("/groups").await;
        assert_contains(
            &groups,
            &[
                "<a href=\"/groups/ipads\">ipads</a>",
                "<code>os=ipados and color=Silver|Space Gray</code>",
                "<a href=\"/groups/loaners\">loaners</a>",
            ],
        );
        let (a, b) = (&devices[0].serial_number, &devices[1].serial_number);
        let csv = format!(
            "asset,serial\r\nA1,{a}\r\nA2,{}\r\nA3,ZZZZ00000001\r\nA4,{a}\r\nA5,bad-serial!\r\n",
            b.to_lowercase()
        );
        let no_token = post_multipart(
            &web,
            "/groups/loaners/members",
            &[],
            Some(("csv", csv.as_bytes())),
            None,
        )
        .await;
        assert_eq!(no_token.status, StatusCode::FORBIDDEN);
        let dry = post_multipart(
            &web,
            "/groups/loaners/members",
            &[("mode", "dry_run")],
            Some(("csv", csv.as_bytes())),
            Some(&csrf),
        )
        .await;
        assert_eq!(dry.status, StatusCode::OK, "{}", dry.body);
        assert_contains(
            &dry,
            &[
                "Dry run: nothing was changed",
                "5 rows: 2 would be applied, 1 unknown serial, 0 not in ABM, 1 duplicate, 1 malformed.",
                // Counts per outcome; the rows listed are those not applied.
                "<strong data-outcome=\"applied\">2</strong>",
                "<strong data-outcome=\"unknown_serial\">1</strong>",
                "Every row not applied.",
                "<td data-label=\"Row\">4</td><td data-label=\"Serial\" class=\"serial\">ZZZZ00000001</td><td data-label=\"Outcome\"><span class=\"status status-warn\">unknown serial</span>",
                "duplicate row</span></td><td data-label=\"Detail\">the same serial number is on line 2",
                "malformed</span></td><td data-label=\"Detail\">the serial number contains",
                "Apply to 2 devices",
            ],
        );
        // Line 2 was applied: not listed (its duplicate on line 5 is).
        assert!(!dry.body.contains("<td data-label=\"Row\">2</td>"));
        assert_eq!(api(&app, "/api/v1/groups/loaners").await["member_count"], 0);
        // Apply: the file is carried by the dry run's form.
        let carried = hidden(&dry, "upload_b64");
        assert!(!carried.is_empty());
        let applied = web
            .post(
                "/groups/loaners/members",
                &[
                    ("csrf_token", &csrf),
                    ("action", ""),
                    ("serials", ""),
                    ("upload_b64", &carried),
                    ("mode", "apply"),
                ],
                None,
            )
            .await;
        assert_eq!(applied.status, StatusCode::OK, "{}", applied.body);
        assert_contains(
            &applied,
            &["<h3>Done</h3>", "2 applied", "id=\"member-count\">2<"],
        );
        assert_eq!(api(&app, "/api/v1/groups/loaners").await["member_count"], 2);
        let group = web.get("/groups/loaners").await;
        assert_contains(&group, &[&format!("name=\"member\" value=\"{a}\"")]);
        // A file that cannot be used at all is one clear message.
        let xlsx = post_multipart(
            &web,
            "/groups/loaners/members",
            &[("mode", "dry_run")],
            Some(("csv", b"PK\x03\x04rest-of-a-zip")),
            Some(&csrf),
        )
        .await;
        assert_eq!(xlsx.status, StatusCode::BAD_REQUEST);
        assert_contains(&xlsx, &["id=\"bulk-error\"", "Excel workbook"]);
        // Remove a member by ticking it.
        let removed = web
            .post(
                "/groups/loaners/members/remove",
                &[("csrf_token", &csrf), ("member", a), ("serials", "")],
                None,
            )
            .await;
        assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
        assert_eq!(api(&app, "/api/v1/groups/loaners").await["member_count"], 1);
        let none = web
            .post(
                "/groups/loaners/members/remove",
                &[("csrf_token", &csrf), ("serials", a)],
                None,
            )
            .await;
        assert_eq!(none.status, StatusCode::BAD_REQUEST);
        assert_contains(&none, &["none of these serial numbers is a member"]);

        // Device-level assignment from the profile's page: typed serials, dry run, apply,
        // then clear.
        let c = &devices[2].serial_number;
        let dry = web
            .post(
                "/profiles/loaner/assign",
                &[
                    ("csrf_token", &csrf),
                    ("action", "assign"),
                    ("serials", &format!("{c}\nNOPE0000001")),
                    ("mode", "dry_run"),
                ],
                None,
            )
            .await;
        assert_eq!(dry.status, StatusCode::OK, "{}", dry.body);
        assert_contains(
            &dry,
            &[
                "2 rows: 1 would be applied, 1 unknown serial",
                "Apply to 1 device<",
            ],
        );
        assert_eq!(
            api(&app, "/api/v1/profiles/loaner").await["used_by"]["devices"],
            0
        );
        let applied = web
            .post(
                "/profiles/loaner/assign",
                &[
                    ("csrf_token", &csrf),
                    ("action", "assign"),
                    ("serials", &hidden(&dry, "serials")),
                    ("upload_b64", ""),
                    ("mode", "apply"),
                ],
                None,
            )
            .await;
        assert_eq!(applied.status, StatusCode::OK, "{}", applied.body);
        assert_contains(&applied, &["id=\"explicit-count\">1 device explicitly"]);
        assert_eq!(
            api(&app, "/api/v1/profiles/loaner").await["used_by"]["devices"],
            1
        );
        let cleared = post_multipart(
            &web,
            "/profiles/loaner/assign",
            &[("action", "unassign"), ("mode", "apply")],
            Some(("csv", format!("{c}\n").as_bytes())),
            Some(&csrf),
        )
        .await;
        assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.body);
        assert_eq!(
            api(&app, "/api/v1/profiles/loaner").await["used_by"]["devices"],
            0
        );
        let empty = web
            .post(
                "/profiles/loaner/assign",
                &[
                    ("csrf_token", &csrf),
                    ("serials", " "),
                    ("csv", "serials.csv"),
                ],
                None,
            )
            .await;
        assert_eq!(empty.status, StatusCode::BAD_REQUEST);
        assert_contains(&empty, &["uploads need JavaScript"]);

        // Delete a group after confirming.
        let confirm = web.get("/groups/ipads/delete").await;
        assert_contains(&confirm, &["Delete the smart group ipads?"]);
        let deleted = web
            .post("/groups/ipads/delete", &[("csrf_token", &csrf)], None)
            .await;
        assert_eq!(deleted.status, StatusCode::SEE_OTHER);
        let (status, _) = app.json(Method::GET, "/api/v1/groups/ipads", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        app.stop().await;
    }
}
