//! `guardmdm doctor`: the server's checks of the deployment (`GET /api/v1/doctor`) as a
//! table or JSON. Exits non-zero when a finding blocks enrollment, including not reaching
//! the server or the server refusing the token.

use std::time::Duration;

use anyhow::bail;
use guardmdm_service::doctor::{DoctorReport, Finding, Status};
use reqwest::StatusCode;
use time::OffsetDateTime;

use super::{ClientArgs, table};

#[derive(Debug, clap::Args)]
pub(crate) struct DoctorArgs {
    /// Print the report as JSON (for automation); the exit status is the same.
    #[arg(long)]
    json: bool,
}

/// How long the server may take for all its checks (each network check is bounded on
/// its side).
const REPORT_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) async fn run(client: &ClientArgs, args: DoctorArgs) -> anyhow::Result<()> {
    let report = match fetch(client).await {
        Ok(report) => report,
        Err(finding) => DoctorReport::new(OffsetDateTime::now_utc(), vec![*finding]),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    if report.blocks_enrollment() {
        bail!(
            "{} finding(s) block enrollment; fix them and run guardmdm doctor again",
            report.blocking
        );
    }
    Ok(())
}

/// The server's report, or the blocking finding that there is none.
async fn fetch(client: &ClientArgs) -> Result<DoctorReport, Box<Finding>> {
    const CHECK: &str = "server";
    let server = client.url.trim_end_matches('/');
    let blocking = |summary: String, fix: &str| Box::new(Finding::blocking(CHECK, summary, fix));
    let Some(token) = client
        .api_token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Err(blocking(
            "No API token to ask GuardMDM with.".to_string(),
            "Set GUARDMDM_API_TOKEN (or pass --api-token) to an API token or the server's admin token (the file admin-token in its data dir).",
        ));
    };
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(REPORT_TIMEOUT)
        .user_agent(concat!("guardmdm-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| blocking(format!("Cannot build an HTTP client: {e}."), "Report this."))?;
    let url = format!("{server}/api/v1/doctor");
    let response = http
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| {
            let why = format!("{:#}", anyhow::Error::new(e.without_url()));
            blocking(
                format!("Cannot reach GuardMDM at {server}: {why}."),
                "Check that guardmdm serve runs and that GUARDMDM_URL (or --url) is its address.",
            )
        })?;
    match response.status() {
        StatusCode::OK => response.json().await.map_err(|e| {
            blocking(
                format!("{server} answered something that is not a GuardMDM report: {e}."),
                "Check that GUARDMDM_URL (or --url) is GuardMDM's address, and that the CLI and the server are the same version.",
            )
        }),
        StatusCode::UNAUTHORIZED => Err(blocking(
            format!("GuardMDM at {server} refused the API token (HTTP 401)."),
            "Set GUARDMDM_API_TOKEN to a valid API token (guardmdm api-tokens create) or the server's admin token.",
        )),
        status => Err(blocking(
            format!(
                "GuardMDM at {server} answered HTTP {}: {}",
                status.as_u16(),
                response.text().await.unwrap_or_default()
            ),
            "See the server log.",
        )),
    }
}

/// The findings as a table (each fix on the line below its finding) and a verdict.
fn render(report: &DoctorReport) -> String {
    let mut rows = Vec::new();
    for finding in &report.findings {
        let status = match finding.status {
            Status::Ok => "ok",
            Status::Warning => "WARNING",
            Status::Blocking => "BLOCKING",
        };
        rows.push(vec![
            status.to_string(),
            finding.check.clone(),
            finding.summary.clone(),
        ]);
        if let Some(fix) = &finding.fix {
            rows.push(vec![String::new(), String::new(), format!("-> {fix}")]);
        }
    }
    let mut out = table::render(&["STATUS", "CHECK", "FINDING"], &rows);
    out.push('\n');
    if report.blocks_enrollment() {
        out.push_str(&format!(
            "{} blocking, {} warning(s): devices cannot enroll until the blocking findings are fixed.\n",
            report.blocking, report.warnings
        ));
    } else {
        out.push_str(&format!(
            "Nothing blocks enrollment ({} warning(s)).\n",
            report.warnings
        ));
    }
    out
}
