//! `export`: placeholder, being written (issue [replay]).

use crate::Failure;
use sqlx::PgPool;
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub out: std::path::PathBuf,
}

pub async fn export(_pool: &PgPool, _args: ExportArgs, _out: &mut dyn Write) -> Result<(), Failure> {
    Err(Failure::from(anyhow::anyhow!("export is not implemented yet")))
}
