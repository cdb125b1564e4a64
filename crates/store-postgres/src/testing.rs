//! Test support: a fresh, empty database per test on a shared server.

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use std::str::FromStr;

/// Creates a new uniquely named database on the server of `admin_url` and returns a URL for
/// it. The database is left behind for inspection; test servers are disposable.
///
/// # Errors
/// When the server cannot be reached or refuses `CREATE DATABASE`.
pub async fn fresh_database(admin_url: &str) -> Result<String, sqlx::Error> {
    let options = PgConnectOptions::from_str(admin_url)?;
    let mut conn = PgConnection::connect_with(&options).await?;
    let name = format!("guardmdm_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let mut url = url_without_database(admin_url);
    url.push('/');
    url.push_str(&name);
    if let Some((_, query)) = admin_url.split_once('?') {
        url.push('?');
        url.push_str(query);
    }
    Ok(url)
}

fn url_without_database(url: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    match base[scheme_end..].find('/') {
        Some(slash) => base[..scheme_end + slash].to_string(),
        None => base.to_string(),
    }
}
