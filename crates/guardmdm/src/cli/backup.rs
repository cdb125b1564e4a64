//! `guardmdm backup FILE`: an online copy of the SQLite database while the server runs.

use std::path::PathBuf;

use anyhow::{Context, bail};

/// Flags of `guardmdm backup`.
#[derive(Debug, clap::Args)]
pub(crate) struct BackupArgs {
    /// The new file to write the copy to (it must not exist).
    file: PathBuf,
    /// The server's data dir (holding guardmdm.db), as given to `guardmdm serve`.
    #[arg(long, env = "GUARDMDM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The server's database URL, as given to `guardmdm serve` (`sqlite://PATH`).
    #[arg(long, env = "GUARDMDM_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

pub(crate) async fn run(args: BackupArgs) -> anyhow::Result<()> {
    let data_dir = args
        .data_dir
        .unwrap_or_else(crate::config::default_data_dir);
    let database = match args.database_url.as_deref() {
        None => data_dir.join("guardmdm.db"),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => bail!(
            "the database is PostgreSQL: back it up with pg_dump (see the README's Production chapter); guardmdm backup copies SQLite databases"
        ),
        Some(url) => {
            let path = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .context("--database-url must be sqlite://PATH")?;
            PathBuf::from(path.split('?').next().unwrap_or(path))
        }
    };
    let report = guardmdm_store_sqlite::backup::backup(&database, &args.file)
        .await
        .with_context(|| format!("backing up {}", database.display()))?;
    println!(
        "Wrote {} ({}, schema version {}).",
        report.path.display(),
        bytesize::ByteSize::b(report.bytes),
        report.schema_version
    );
    println!(
        "Keep {} safe as well, but apart from this copy: the secrets in the database are sealed with it, and a restore needs both.",
        data_dir.join("secret.key").display()
    );
    Ok(())
}
