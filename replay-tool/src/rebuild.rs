//! `rebuild`: placeholder, being written (issue [replay]).

use crate::Failure;
use sqlx::PgPool;
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct RebuildArgs {
    /// Projection names to rebuild.
    #[arg(long = "projection")]
    pub projections: Vec<String>,
    /// Rebuild every replayable projection.
    #[arg(long)]
    pub all: bool,
}

pub async fn rebuild(_pool: &PgPool, _args: RebuildArgs, _out: &mut dyn Write) -> Result<(), Failure> {
    Err(Failure::from(anyhow::anyhow!("rebuild is not implemented yet")))
}
