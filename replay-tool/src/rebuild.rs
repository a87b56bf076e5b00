//! `rebuild`: builds projections again from the first event into shadow tables and swaps them
//! in while the service keeps serving (issue [replay]). Resumable after an interruption.
//!
//! Unlike the rest of this tool it **writes**: it creates read-model tables, moves
//! checkpoints, swaps the read-model views and drops the tables it replaced. It needs the
//! write access the service has (the app role, which owns the read models), not the
//! read-only role. The event store itself is only read.
//!
//! How (see `projections/src/engine.rs`): each build of a projection version is a
//! *generation* with its own tables (`{base}_v{version}_g{generation}`) and checkpoint row.
//! For each projection chosen, `rebuild`
//!
//! 1. picks the generation: a building generation newer than the live one is an interrupted
//!    rebuild and is resumed from its checkpoint; otherwise it starts generation max+1 of the
//!    version this tool was built with;
//! 2. prepares its tables and checkpoint, then applies the store to it with the engine's own
//!    `Stepper`, one transaction per batch (read-model rows and checkpoint together, so killing
//!    it at any moment loses nothing and applies nothing twice), reading each next batch while
//!    the current one is applied;
//! 3. stops when a step finds nothing visible left and swaps the views in one transaction:
//!    until then readers get the old generation, which the service's workers keep current;
//!    afterwards they get the new one, and the service's worker follows it by itself;
//! 4. drops the tables of the retired generations of that version (`--keep-old` keeps them).
//!
//! Only `Kind::Replayable` projections: a side-effecting one would repeat its effects. It
//! rebuilds the projection versions this tool was built with, so use the `pettycash-replay`
//! of the deployed release: it refuses when another version is live and this one is either
//! older or has never run against this database (the tool is newer than the service).

use crate::{Failure, Progress, EXIT_USAGE};
use anyhow::Context;
use clap::builder::PossibleValuesParser;
use pettycash_projections::engine::{drop_retired_generations, prepare, Stepper};
use pettycash_projections::CheckpointState;
use pettycash_projections::{Kind, Projection};
use sqlx::PgPool;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("which").required(true).args(["projections", "all"])),
    after_help = "Needs write access to the database (the service's role, not the read-only one): it creates \
                  tables, moves checkpoints, swaps the read-model views and drops the replaced tables. The \
                  service keeps serving from the old tables until the swap. Run it again after an \
                  interruption: it resumes the interrupted build."
)]
pub struct RebuildArgs {
    /// A projection to rebuild (repeat for several).
    #[arg(long = "projection", value_name = "NAME", value_parser = projection_names())]
    pub projections: Vec<String>,
    /// Rebuild every replayable projection.
    #[arg(long)]
    pub all: bool,
    /// Keep the tables of the generations the rebuild retires (default: drop them).
    #[arg(long)]
    pub keep_old: bool,
    /// Events per transaction. Larger batches fold more events of one requisition together
    /// (fewer row writes); memory grows with it (each projection holds the batch it applies and
    /// the next one, read ahead: about 80 MB for `--all` at 20,000).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub batch_size: i64,
}

/// The projections a rebuild may run: the read models, never a side-effecting one (the
/// `notifications` mail would go out again); the kind is checked once more here.
fn replayable() -> Vec<Arc<dyn Projection>> {
    pettycash_projections::replayable().into_iter().filter(|p| p.kind() == Kind::Replayable).collect()
}

fn projection_names() -> PossibleValuesParser {
    PossibleValuesParser::new(replayable().iter().map(|p| p.name()).collect::<Vec<_>>())
}

fn usage(message: String) -> Failure {
    Failure { code: EXIT_USAGE, error: anyhow::anyhow!(message) }
}

/// The projections `args` names, in the order given, each once.
fn chosen(args: &RebuildArgs) -> Result<Vec<Arc<dyn Projection>>, Failure> {
    let known = replayable();
    let names = || known.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ");
    match (args.all, args.projections.is_empty()) {
        (true, true) => return Ok(known),
        (true, false) => return Err(usage("give either --projection NAME ... or --all, not both".into())),
        (false, true) => {
            return Err(usage(format!("give --projection NAME (one of: {}) or --all", names())));
        }
        (false, false) => {}
    }
    let mut out: Vec<Arc<dyn Projection>> = Vec::new();
    for name in &args.projections {
        let p = known.iter().find(|p| p.name() == name).ok_or_else(|| {
            usage(format!("unknown projection `{name}`; the replayable ones are: {}", names()))
        })?;
        if !out.iter().any(|o| o.name() == p.name()) {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Rebuilds the chosen projections side by side (each in its own transactions, on its own
/// connection: they share nothing but the events they read), then prints what each did.
pub async fn rebuild(pool: &PgPool, args: RebuildArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let builds = chosen(&args)?.into_iter().map(|p| {
        let args = &args;
        async move {
            let mut report = Vec::new();
            let result = rebuild_one(pool, p, args, &mut report).await;
            (report, result)
        }
    });
    let mut failure = None;
    for (report, result) in futures::future::join_all(builds).await {
        out.write_all(&report)?;
        if let Err(e) = result {
            failure.get_or_insert(e);
        }
    }
    out.flush()?;
    failure.map_or(Ok(()), Err)
}

/// One checkpoint row of the version being rebuilt.
#[derive(sqlx::FromRow)]
struct Build {
    generation: i32,
    state: CheckpointState,
    last_position: i64,
    events_applied: i64,
}

async fn rebuild_one(
    pool: &PgPool,
    base: Arc<dyn Projection>,
    args: &RebuildArgs,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let (name, version) = (base.name(), base.version());
    let builds: Vec<Build> = sqlx::query_as(
        "SELECT generation, state, last_position, events_applied FROM projection_checkpoints
         WHERE name = $1 AND version = $2 ORDER BY generation",
    )
    .bind(name)
    .bind(version)
    .fetch_all(pool)
    .await?;
    // Another version live: a newer one means this tool is older than the deployed release; an
    // older one with no trace of this version means this tool is newer than the running
    // service, and swapping the views to tables that service does not know would stop its
    // read models. A build of this version already under way (a deploy in progress) is fine.
    let other_live: Option<i32> = sqlx::query_scalar(
        "SELECT version FROM projection_checkpoints WHERE name = $1 AND version <> $2 AND state = $3",
    )
    .bind(name)
    .bind(version)
    .bind(CheckpointState::Live)
    .fetch_optional(pool)
    .await?;
    if let Some(live) = other_live.filter(|live| *live > version || builds.is_empty()) {
        return Err(Failure::from(anyhow::anyhow!(
            "{name}: version {live} is live and this pettycash-replay builds version {version}; \
             use the pettycash-replay of the release that is deployed"
        )));
    }
    let live = builds.iter().find(|b| b.state == CheckpointState::Live).map(|b| b.generation);
    let serving = live.map_or("none live yet".to_string(), |g| format!("serving from generation {g}"));
    let interrupted = builds
        .iter()
        .filter(|b| b.state == CheckpointState::Building && Some(b.generation) > live)
        .max_by_key(|b| b.generation);
    let generation = match interrupted {
        Some(b) => {
            writeln!(
                out,
                "{name} v{version}: resuming generation {} from position {} ({} events applied so far; {serving})",
                b.generation, b.last_position, b.events_applied
            )?;
            b.generation
        }
        None => {
            let generation = builds.iter().map(|b| b.generation + 1).max().unwrap_or(0);
            writeln!(out, "{name} v{version}: building generation {generation} ({serving})")?;
            generation
        }
    };
    out.flush()?;
    let p = base.at_generation(generation);
    let state = prepare(pool, p.as_ref()).await?;
    if state == CheckpointState::Retired {
        return Err(Failure::from(anyhow::anyhow!(
            "{name} v{version} generation {generation} is retired (a newer build went live meanwhile)"
        )));
    }

    // For the progress bar only: an estimate from positions (counting the events would read
    // the whole store once more before starting).
    let remaining: i64 = sqlx::query_scalar(
        "SELECT greatest(coalesce((SELECT max(global_position) FROM events), 0) - c.last_position, 0)
         FROM projection_checkpoints c WHERE c.name = $1 AND c.version = $2 AND c.generation = $3",
    )
    .bind(name)
    .bind(version)
    .bind(generation)
    .fetch_one(pool)
    .await?;
    let started = Instant::now();
    let mut progress = Progress::new(name, remaining.max(0) as u64);
    let mut applied = 0u64;
    let mut live_now = state == CheckpointState::Live;
    let mut stepper = Stepper::new(pool, p.as_ref(), args.batch_size, args.batch_size);
    while !live_now {
        let outcome =
            stepper.step().await.with_context(|| format!("{name} v{version} generation {generation}"))?;
        for _ in 0..outcome.applied {
            progress.inc();
        }
        applied += outcome.applied;
        if outcome.retired {
            progress.finish();
            return Err(Failure::from(anyhow::anyhow!(
                "{name} v{version} generation {generation} was retired while building: a newer build went live"
            )));
        }
        live_now = outcome.live;
        if !live_now && outcome.applied == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();

    let retired = if args.keep_old { Vec::new() } else { drop_retired_generations(pool, p.as_ref()).await? };
    writeln!(
        out,
        "{name} v{version}: generation {generation} is live; {applied} events applied in {seconds:.1} s ({:.0} events/s)",
        applied as f64 / seconds.max(1e-9)
    )?;
    if args.keep_old {
        writeln!(out, "{name} v{version}: kept the tables of retired generations (--keep-old)")?;
    } else if !retired.is_empty() {
        writeln!(out, "{name} v{version}: dropped {}", retired.join(", "))?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(projections: &[&str], all: bool) -> RebuildArgs {
        RebuildArgs {
            projections: projections.iter().map(|s| s.to_string()).collect(),
            all,
            keep_old: false,
            batch_size: 1000,
        }
    }

    fn names(args: &RebuildArgs) -> Result<Vec<&'static str>, i32> {
        chosen(args).map(|c| c.iter().map(|p| p.name()).collect()).map_err(|f| f.code)
    }

    #[test]
    fn exactly_one_of_projection_or_all_and_only_known_names() {
        assert_eq!(names(&args(&[], true)), Ok(vec!["requisitions", "cash", "budgets", "report_facts"]));
        assert_eq!(names(&args(&["cash", "requisitions", "cash"], false)), Ok(vec!["cash", "requisitions"]));
        assert_eq!(names(&args(&[], false)), Err(EXIT_USAGE));
        assert_eq!(names(&args(&["cash"], true)), Err(EXIT_USAGE));
        assert_eq!(names(&args(&["cash", "nope"], false)), Err(EXIT_USAGE));
        let message = format!("{:#}", chosen(&args(&["nope"], false)).err().unwrap().error);
        assert!(message.contains("requisitions, cash, budgets, report_facts"), "{message}");
    }
}
