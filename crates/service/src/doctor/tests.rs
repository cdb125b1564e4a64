use std::path::Path;

use time::{Duration, OffsetDateTime};

use super::rules::{self, AnchorTrust};
use super::{DoctorReport, Finding, Status};
use crate::abm_entries::AbmEntryView;
use crate::health::token_health;
use crate::mdm::{ApnsProbe, PushCertificateState, PushCertificateView};
use crate::tls_status::{TlsHealth, TlsHealthState};
use guardmdm_store::{EntryId, MigrationStatus, PageCounts, SyncRun, SyncRunId};

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[test]
fn the_public_url_must_be_https_with_a_host() {
    assert_eq!(
        rules::public_url("https://mdm.example.com").unwrap(),
        "mdm.example.com"
    );
    let plain = rules::public_url("http://mdm.example.com").unwrap_err();
    assert_eq!(plain.status, Status::Blocking);
    assert!(plain.summary.contains("plain http"), "{}", plain.summary);
    assert!(plain.fix.unwrap().contains("--tls-cert"));
    assert_eq!(
        rules::public_url("not a url").unwrap_err().status,
        Status::Blocking
    );
}

#[test]
fn reachability_needs_a_2xx_from_healthz() {
    let url = "https://mdm.example.com";
    assert_eq!(rules::reachable(url, &Ok(200)).status, Status::Ok);
    let wrong = rules::reachable(url, &Ok(404));
    assert_eq!(wrong.status, Status::Blocking);
    assert!(wrong.summary.contains("404"));
    let down = rules::reachable(url, &Err("connection refused".into()));
    assert_eq!(down.status, Status::Blocking);
    assert!(down.summary.contains("connection refused"));
    assert!(down.fix.unwrap().contains("DNS"));
}

#[test]
fn trust_is_the_system_store_or_every_profiles_anchors() {
    let url = "https://mdm.example.com";
    let none = AnchorTrust::default();
    assert_eq!(rules::trust(url, Ok(()), &none).status, Status::Ok);
    let untrusted = rules::trust(url, Err("UnknownIssuer".into()), &none);
    assert_eq!(untrusted.status, Status::Blocking);
    assert!(untrusted.summary.contains("UnknownIssuer"));
    let all = AnchorTrust {
        trusted_by: vec!["phones".into()],
        ..AnchorTrust::default()
    };
    let anchored = rules::trust(url, Err("UnknownIssuer".into()), &all);
    assert_eq!(anchored.status, Status::Ok);
    assert!(anchored.summary.contains("phones"));
    let some = AnchorTrust {
        trusted_by: vec!["phones".into()],
        not_trusted_by: vec!["macs".into()],
        error: None,
    };
    let partial = rules::trust(url, Err("UnknownIssuer".into()), &some);
    assert_eq!(partial.status, Status::Warning);
    assert!(partial.fix.unwrap().contains("macs"));
}

#[test]
fn names_cover_the_host_exactly_or_by_one_wildcard_label() {
    let names = |list: &[&str]| list.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(
        rules::names("mdm.example.com", &names(&["MDM.example.com"])).status,
        Status::Ok
    );
    assert_eq!(
        rules::names("mdm.example.com", &names(&["*.example.com"])).status,
        Status::Ok
    );
    assert_eq!(
        rules::names("a.mdm.example.com", &names(&["*.example.com"])).status,
        Status::Blocking
    );
    let other = rules::names("mdm.example.com", &names(&["other.example.com"]));
    assert_eq!(other.status, Status::Blocking);
    assert!(other.summary.contains("other.example.com"));
    assert_eq!(rules::names("192.0.2.1", &[]).status, Status::Warning);
}

#[test]
fn certificate_expiry_warns_at_30_days_and_blocks_outside_validity() {
    let t = now();
    let check = |before: i64, after: i64| {
        rules::expiry(
            "x",
            "It",
            t + Duration::days(before),
            t + Duration::days(after),
            t,
        )
        .status
    };
    assert_eq!(check(-10, 90), Status::Ok);
    assert_eq!(check(-10, 31), Status::Ok);
    assert_eq!(check(-10, 30), Status::Warning);
    assert_eq!(check(-10, 1), Status::Warning);
    assert_eq!(check(-90, -1), Status::Blocking);
    assert_eq!(check(1, 90), Status::Blocking);
}

#[test]
fn served_tls_follows_its_health() {
    let health = |state| TlsHealth {
        state,
        message: "m".into(),
    };
    assert_eq!(rules::served_tls(None).status, Status::Ok);
    assert_eq!(
        rules::served_tls(Some(&health(TlsHealthState::Active))).status,
        Status::Ok
    );
    assert_eq!(
        rules::served_tls(Some(&health(TlsHealthState::Expiring))).status,
        Status::Warning
    );
    assert_eq!(
        rules::served_tls(Some(&health(TlsHealthState::Expired))).status,
        Status::Blocking
    );
    assert_eq!(
        rules::served_tls(Some(&health(TlsHealthState::Missing))).status,
        Status::Blocking
    );
}

fn push_view(state: PushCertificateState, days_left: i64, topic: &str) -> PushCertificateView {
    PushCertificateView {
        topic: topic.into(),
        subject: "CN=x".into(),
        fingerprint: "ab".into(),
        not_after: now() + Duration::days(days_left),
        days_left,
        state,
        message: String::new(),
    }
}

#[test]
fn the_push_certificate_must_exist_be_mdm_and_be_valid() {
    const TOPIC: &str = "com.apple.mgmt.External.1";
    assert_eq!(rules::push_certificate(Ok(None)).status, Status::Blocking);
    let broken = "the private key does not belong to the push certificate".to_string();
    let err = rules::push_certificate(Err(&broken));
    assert_eq!(err.status, Status::Blocking);
    assert!(err.summary.contains("does not belong"));
    assert_eq!(
        rules::push_certificate(Ok(Some(&push_view(
            PushCertificateState::Active,
            200,
            TOPIC
        ))))
        .status,
        Status::Ok
    );
    assert_eq!(
        rules::push_certificate(Ok(Some(&push_view(
            PushCertificateState::Expiring,
            20,
            TOPIC
        ))))
        .status,
        Status::Warning
    );
    assert_eq!(
        rules::push_certificate(Ok(Some(&push_view(
            PushCertificateState::Expired,
            -2,
            TOPIC
        ))))
        .status,
        Status::Blocking
    );
    assert_eq!(
        rules::push_certificate(Ok(Some(&push_view(
            PushCertificateState::Active,
            200,
            "com.example"
        ))))
        .status,
        Status::Blocking
    );
    let tomorrow = rules::push_certificate(Ok(Some(&push_view(
        PushCertificateState::Expiring,
        1,
        TOPIC,
    ))));
    assert_eq!(tomorrow.status, Status::Warning);
    assert!(
        tomorrow.summary.contains("expires in 1 day ("),
        "{}",
        tomorrow.summary
    );
    let missing = rules::push_certificate(Ok(Some(&push_view(
        PushCertificateState::Missing,
        0,
        TOPIC,
    ))));
    assert_eq!(missing.status, Status::Blocking);
}

#[test]
fn apns_must_answer() {
    let url = "https://api.push.apple.com";
    assert_eq!(
        rules::apns(url, &ApnsProbe::Answered(405)).status,
        Status::Ok
    );
    let failed = rules::apns(url, &ApnsProbe::Failed("handshake failure".into()));
    assert_eq!(failed.status, Status::Blocking);
    assert!(failed.summary.contains("handshake failure"));
    assert_eq!(
        rules::apns(url, &ApnsProbe::NoCertificate).status,
        Status::Warning
    );
}

fn entry(expires_in_days: Option<i64>) -> AbmEntryView {
    let t = now();
    AbmEntryView {
        id: EntryId::new_v4(),
        name: "main".into(),
        health: token_health(expires_in_days.map(|d| t + Duration::days(d)), None, t),
        token_uploaded_at: None,
        batch_size: 100,
        abm_url: None,
        account: None,
        last_sync_at: None,
        created_at: t,
        updated_at: t,
    }
}

fn run(outcome: &str) -> SyncRun {
    SyncRun {
        id: SyncRunId::from_inner(1),
        entry_id: EntryId::new_v4(),
        trigger: "scheduled".into(),
        holder: "h".into(),
        started_at: now() - Duration::minutes(3),
        finished_at: Some(now() - Duration::minutes(2)),
        pages: 1,
        counts: PageCounts::default(),
        outcome: outcome.into(),
        error: (outcome == "failed").then(|| "Apple's DEP API cannot be reached".into()),
    }
}

#[test]
fn abm_entries_block_on_unusable_tokens_and_warn_on_syncs() {
    let t = now();
    assert_eq!(rules::no_abm_entries().status, Status::Blocking);
    assert_eq!(
        rules::abm_entry(&entry(None), None, t).status,
        Status::Blocking
    );
    assert_eq!(
        rules::abm_entry(&entry(Some(-1)), None, t).status,
        Status::Blocking
    );
    assert_eq!(
        rules::abm_entry(&entry(Some(10)), Some(&run("succeeded")), t).status,
        Status::Warning
    );
    let never = rules::abm_entry(&entry(Some(300)), None, t);
    assert_eq!(never.status, Status::Warning);
    assert!(never.fix.unwrap().contains("guardmdm abm sync main"));
    let failed = rules::abm_entry(&entry(Some(300)), Some(&run("failed")), t);
    assert_eq!(failed.status, Status::Warning);
    assert!(
        failed.summary.contains("cannot be reached"),
        "{}",
        failed.summary
    );
    assert_eq!(
        rules::abm_entry(&entry(Some(300)), Some(&run("succeeded")), t).status,
        Status::Ok
    );
}

#[test]
fn clock_skew_warns_above_30_seconds_and_blocks_above_5_minutes() {
    let url = "https://mdmenrollment.apple.com";
    assert_eq!(rules::clock(url, Ok(0)).status, Status::Ok);
    assert_eq!(rules::clock(url, Ok(-30)).status, Status::Ok);
    assert_eq!(rules::clock(url, Ok(31)).status, Status::Warning);
    assert_eq!(rules::clock(url, Ok(-300)).status, Status::Warning);
    let far = rules::clock(url, Ok(-301));
    assert_eq!(far.status, Status::Blocking);
    assert!(far.summary.contains("301 s ahead of"), "{}", far.summary);
    assert!(far.summary.contains("OAuth"));
    assert!(rules::clock(url, Ok(600)).summary.contains("600 s behind"));
    let unreachable = "connection refused".to_string();
    assert_eq!(rules::clock(url, Err(&unreachable)).status, Status::Warning);
}

#[test]
fn the_scep_ca_must_be_valid_and_outlive_what_it_issues() {
    let t = now();
    let ca = |before: i64, after: i64| {
        rules::scep_ca(
            Ok((t + Duration::days(before), t + Duration::days(after))),
            t,
        )
        .status
    };
    assert_eq!(ca(-1, 3650), Status::Ok);
    assert_eq!(ca(-1, 100), Status::Warning);
    assert_eq!(ca(-3650, -1), Status::Blocking);
    assert_eq!(ca(2, 3650), Status::Blocking);
    assert_eq!(
        rules::scep_ca(Err("cannot open".into()), t).status,
        Status::Blocking
    );
}

#[test]
fn the_database_must_answer_with_exactly_this_binarys_migrations() {
    assert_eq!(rules::database("sqlite", Ok(())).status, Status::Ok);
    assert_eq!(
        rules::database("postgres", Err("refused".into())).status,
        Status::Blocking
    );
    let status = |applied: &[i64], failed: &[i64]| MigrationStatus {
        known: vec![1, 2, 3],
        applied: applied.to_vec(),
        failed: failed.to_vec(),
    };
    assert_eq!(
        rules::migrations(Ok(status(&[1, 2, 3], &[]))).status,
        Status::Ok
    );
    let missing = rules::migrations(Ok(status(&[1, 2], &[])));
    assert_eq!(missing.status, Status::Blocking);
    assert!(missing.summary.contains('3'));
    let unknown = rules::migrations(Ok(status(&[1, 2, 3, 4], &[])));
    assert_eq!(unknown.status, Status::Blocking);
    assert!(unknown.summary.contains("newer"));
    assert_eq!(
        rules::migrations(Ok(status(&[1, 2], &[3]))).status,
        Status::Blocking
    );
}

#[test]
fn disk_space_warns_under_1_gib_or_10_percent_and_blocks_under_100_mib() {
    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;
    let dir = Path::new("/var/lib/guardmdm");
    let disk = |free, total| rules::disk(dir, Ok((free, total))).status;
    assert_eq!(disk(50 * GIB, 100 * GIB), Status::Ok);
    assert_eq!(disk(5 * GIB, 100 * GIB), Status::Warning);
    assert_eq!(disk(900 * MIB, 2 * GIB), Status::Warning);
    assert_eq!(disk(99 * MIB, 100 * GIB), Status::Blocking);
    assert_eq!(
        rules::disk(dir, Err("no such directory".into())).status,
        Status::Warning
    );
}

#[test]
fn a_report_blocks_only_on_blocking_findings() {
    let t = now();
    let report = DoctorReport::new(
        t,
        vec![
            Finding::ok("a", "fine"),
            Finding::warning("b", "meh", "do x"),
        ],
    );
    assert_eq!((report.blocking, report.warnings), (0, 1));
    assert!(!report.blocks_enrollment());
    let report = DoctorReport::new(t, vec![Finding::blocking("c", "bad", "do y")]);
    assert!(report.blocks_enrollment());
}
