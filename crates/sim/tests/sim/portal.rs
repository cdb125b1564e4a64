//! The portal REST API: servers, tokens, defaults, purchases, manual and CSV assignment,
//! activation, clock.

use guardmdm_sim::SimConfig;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::common::{decrypt, http, key_pair, spawn};

#[tokio::test]
async fn servers_and_tokens_over_http() {
    let running = spawn(SimConfig::default()).await;
    let portal = format!("{}/portal", running.base_url());
    let http = http();
    let pem = key_pair().certificate_pem.clone();
    let created = http
        .post(format!("{portal}/servers?name=Main%20MDM"))
        .body(pem.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let server: Value = created.json().await.unwrap();
    let uuid = server["server_uuid"].as_str().unwrap().to_string();
    assert!(server["consumer_key"].as_str().unwrap().starts_with("CK_"));
    let dup = http
        .post(format!("{portal}/servers?name=main%20mdm"))
        .body(pem)
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), 409);
    let bad = http
        .post(format!("{portal}/servers?name=Other"))
        .body("not a pem")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["error"], "INVALID");

    let token = http
        .post(format!("{portal}/servers/{uuid}/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    let disposition = token.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"Main MDM_Token_"),
        "{disposition}"
    );
    assert!(disposition.ends_with("Z_smime.p7m\""), "{disposition}");
    let tokens = decrypt(&token.bytes().await.unwrap());
    let expiry = tokens.access_token_expiry - running.sim.now();
    assert!((expiry.whole_days() - 365).abs() <= 1);
    let info: Value = http
        .get(format!("{portal}/servers/{uuid}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(info["token_expiry"].is_string());
    let patched: Value = http
        .patch(format!("{portal}/servers/{uuid}"))
        .body(r#"{"allow_release": true}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched["allow_release"], true);
    let missing = http
        .get(format!("{portal}/servers/NOPE"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn default_servers_csv_and_manual_assignment() {
    let config = SimConfig {
        devices: 6,
        adopt_seed_devices: false,
        ..SimConfig::default()
    };
    let running = spawn(config).await;
    let portal = format!("{}/portal", running.base_url());
    let http = http();
    let pem = &key_pair().certificate_pem;
    let macs = running
        .sim
        .register_server("Macs", pem)
        .unwrap()
        .server_uuid;
    let rest = running
        .sim
        .register_server("Rest", pem)
        .unwrap()
        .server_uuid;
    let org: Value = http
        .get(format!("{portal}/org"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(org["unassigned_devices"], 6, "no adoption when turned off");

    let set = |family: &str, uuid: &str| {
        http.put(format!("{portal}/default-server"))
            .body(json!({"device_family": family, "server_uuid": uuid}).to_string())
            .send()
    };
    assert_eq!(set("macOS", &macs).await.unwrap().status(), 200);
    assert_eq!(set("any", &rest).await.unwrap().status(), 200);
    let bought: Value = http
        .post(format!("{portal}/devices"))
        .body(r#"{"count": 2, "device_family": "Mac"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        bought
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["server_name"] == "Macs" && d["os"] == "OSX")
    );
    let phones = running
        .sim
        .add_devices(3, Some(guardmdm_sim::DeviceFamily::IPhone));
    assert!(
        phones
            .iter()
            .all(|d| d.server_uuid.as_deref() == Some(rest.as_str()))
    );

    let unassigned: Vec<String> = running
        .sim
        .devices(None, 0, 100)
        .unwrap()
        .into_iter()
        .map(|d| d.serial_number)
        .collect();
    assert_eq!(unassigned.len(), 6);
    let csv = format!(
        "\u{feff}Serial Number\r\n{}\r\n\r\n  {}  \r\n{}\r\nUNKNOWN123\r\nnot a serial\r\n{}\r\n",
        unassigned[0].to_lowercase(),
        unassigned[1],
        phones[0].serial_number,
        unassigned[0]
    );
    let report: Value = http
        .post(format!("{portal}/assign-csv?server_uuid={macs}"))
        .body(csv)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["assigned"], json!([unassigned[0], unassigned[1]]));
    assert_eq!(report["moved"], json!([phones[0].serial_number]));
    assert_eq!(report["unknown"], json!(["UNKNOWN123"]));
    assert_eq!(report["invalid_rows"][0]["value"], "not a serial");
    assert_eq!(report["duplicates"], json!([unassigned[0]]));
    assert_eq!(report["header"], "Serial Number");

    let manual: Value = http
        .post(format!("{portal}/assign"))
        .body(json!({"server_uuid": rest, "serials": [unassigned[2]]}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(manual["assigned"], json!([unassigned[2]]));
    let off: Value = http
        .post(format!("{portal}/unassign"))
        .body(json!({"serials": [unassigned[2], unassigned[3]]}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(off["unassigned"], json!([unassigned[2]]));
    assert_eq!(off["unchanged"], json!([unassigned[3]]));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn activation_answers() {
    let (running, mut dep) = crate::common::setup(2).await;
    let portal = format!("{}/portal", running.base_url());
    let http = http();
    let serials: Vec<String> = running
        .sim
        .devices(Some(&dep.server.server_uuid), 0, 10)
        .unwrap()
        .into_iter()
        .map(|d| d.serial_number)
        .collect();
    let get = |serial: String| http.get(format!("{portal}/activation/{serial}")).send();
    let none: Value = get(serials[0].clone()).await.unwrap().json().await.unwrap();
    assert_eq!(none["status"], "no_profile");
    let _ = running.sim.unassign_devices(&[&serials[1]]);
    let free: Value = get(serials[1].clone()).await.unwrap().json().await.unwrap();
    assert_eq!(free["status"], "not_assigned");
    assert_eq!(get("NOPE0000".into()).await.unwrap().status(), 404);
    let profile = dep
        .post(
            "/profile",
            json!({"profile_name": "P", "url": "http://127.0.0.1:8080/mdm/enroll", "devices": [serials[0]]}),
        )
        .await
        .json();
    let ready: Value = get(serials[0].to_lowercase())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "profile");
    assert_eq!(ready["profile"]["url"], "http://127.0.0.1:8080/mdm/enroll");
    assert_eq!(ready["profile"]["profile_uuid"], profile["profile_uuid"]);
    assert_eq!(
        running.sim.device(&serials[0]).unwrap().profile_status,
        "pushed"
    );

    let before = running.sim.now();
    let clock: Value = http
        .post(format!("{portal}/clock/advance"))
        .body(r#"{"seconds": 86400}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(clock["now"].is_string());
    assert!((running.sim.now() - before).whole_hours() >= 24);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn the_portal_client_drives_a_running_simulator() {
    use guardmdm_sim::{PortalBody, PortalClient, PortalError};
    let running = spawn(SimConfig {
        devices: 4,
        ..SimConfig::default()
    })
    .await;
    let portal = PortalClient::new(&running.base_url()).unwrap();
    let pem = key_pair().certificate_pem.clone().into_bytes();
    let query = [("name", "Via Client".to_string())];
    let server = portal
        .call(
            reqwest::Method::POST,
            "servers",
            &query,
            PortalBody::Bytes(pem),
        )
        .await
        .unwrap();
    assert_eq!(server["devices"], 4);
    let uuid = server["server_uuid"].as_str().unwrap();
    let token = portal.download_token(uuid).await.unwrap();
    assert!(token.file_name.starts_with("Via Client_Token_"));
    assert!(
        decrypt(&token.contents)
            .consumer_key
            .expose_secret()
            .starts_with("CK_")
    );
    let err = portal.get("servers/NOPE").await.unwrap_err();
    assert!(
        matches!(err, PortalError::Refused { status: 404, .. }),
        "{err}"
    );
    assert!(PortalClient::new("not a url").is_err());
    running.stop().await.unwrap();
    let gone = portal.get("org").await.unwrap_err();
    assert!(matches!(gone, PortalError::Unreachable { .. }), "{gone}");
}

/// Every answer's `Date` is the simulated time, as Apple's is Apple's: moving the clock moves
/// it (what a client comparing clocks sees).
#[tokio::test]
async fn answers_carry_the_simulated_time_in_date() {
    let running = spawn(SimConfig::default()).await;
    let http = http();
    let date = |response: &reqwest::Response| {
        let value = response.headers()[reqwest::header::DATE].to_str().unwrap();
        let at = httpdate::parse_http_date(value).unwrap();
        i64::try_from(at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap()
    };
    let before = http.get(running.base_url()).send().await.unwrap();
    assert!((date(&before) - running.sim.now().unix_timestamp()).abs() <= 1);
    running
        .sim
        .advance_clock(std::time::Duration::from_secs(3600));
    let session = http
        .get(format!("{}/session", running.base_url()))
        .send()
        .await
        .unwrap();
    let real = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((date(&session) - real - 3600).abs() <= 2, "{session:?}");
}
