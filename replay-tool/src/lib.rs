//! `pettycash-replay`: the auditor and ops tool (issue [replay]).
//!
//! Everything but `rebuild` is read-only and computed from the event store alone (`events`,
//! `event_seals`), never from the read models. The store is read in its commit-safe global order, `(transaction_id,
//! global_position)` (see `projections/src/engine.rs`), as a stream, so memory stays flat
//! however long the history is. `transaction_id` is only ordered by, never selected: turning
//! `xid8` into text costs more per row than everything else together.
//!
//! Exit codes: 0 ok, 1 a failure while reading (e.g. an event that does not decode) or, for
//! `verify`, a violation, 2 usage or connection error.
//!
//! `verify`: modules [`verify`] (event hashes, business rules) and [`integrity`] (the chain
//! against the seals); `export`: [`export`]; `rebuild`: [`rebuild`].

pub mod export;
pub mod integrity;
pub mod rebuild;
pub mod verify;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use futures::TryStreamExt;
use pettycash_domain::fund::FundEvent;
use pettycash_domain::report::{Json, ReportName, ReportParams, ReportScope, UnitFilter};
use pettycash_projections::reports::ReportError;
use pettycash_projections::seal::SealKey;
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Exit status for usage and connection errors.
pub const EXIT_USAGE: i32 = 2;
/// Exit status for any other failure.
pub const EXIT_FAILURE: i32 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "pettycash-replay",
    version,
    about = "Petty Cash auditor tool: answers from the event store alone"
)]
pub struct Cli {
    /// PostgreSQL URL of the event store (read-only access is enough).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every event of one requisition, fund or user, in stream order.
    History {
        /// The aggregate id (any aggregate type).
        aggregate_id: String,
        #[arg(long, value_enum, default_value_t = HistoryFormat::Text)]
        format: HistoryFormat,
    },
    /// A fund's cash book, from events alone, as it stood at an instant.
    Ledger {
        #[arg(long)]
        fund: Uuid,
        /// RFC 3339 instant, or YYYY-MM-DD (end of that day, UTC). Default: now.
        #[arg(long, value_parser = parse_as_of)]
        as_of: Option<DateTime<Utc>>,
        #[arg(long, value_enum, default_value_t = TableFormat::Csv)]
        format: TableFormat,
    },
    /// Every fund's balance at an instant.
    Balance {
        /// RFC 3339 instant, or YYYY-MM-DD (end of that day, UTC). Default: now.
        #[arg(long, value_parser = parse_as_of)]
        as_of: Option<DateTime<Utc>>,
        #[arg(long, value_enum, default_value_t = TableFormat::Csv)]
        format: TableFormat,
    },
    /// Event counts, aggregates, positions and database size.
    Stats {
        #[arg(long, value_enum, default_value_t = HistoryFormat::Text)]
        format: HistoryFormat,
    },
    /// Replays every event and checks the tamper evidence (each event's hash, the global
    /// chain against the seals and their MACs) and the business rules (balances, double
    /// payment, segregation of duties, approval chains, sequences). Exit 1 on any violation.
    /// The seal key comes from --seal-key-file, else SEAL_KEY, else SECRET_KEY; without one,
    /// seals are matched but not authenticated (the report says so).
    Verify {
        #[arg(long, value_enum, default_value_t = HistoryFormat::Text)]
        format: HistoryFormat,
        /// A file holding the secret the seals were made with (SEAL_KEY or SECRET_KEY of the
        /// service).
        #[arg(long)]
        seal_key_file: Option<std::path::PathBuf>,
        /// Where receipts are stored, as for the service: MEDIA_ROOT (default `media` under
        /// PETTYCASH_DATA_DIR) or MEDIA_S3_*. Every file the events name is read back and its
        /// SHA-256 compared.
        #[command(flatten)]
        storage: pettycash_commands::receipts::StorageArgs,
        /// As for the service: MEDIA_ROOT defaults to its `media` folder.
        #[arg(long, env = "PETTYCASH_DATA_DIR", default_value = "var")]
        data_dir: std::path::PathBuf,
    },
    /// Rebuilds projections into shadow tables from the first event and swaps them in while
    /// the service keeps serving. Needs write access. Resumes an interrupted rebuild.
    Rebuild(rebuild::RebuildArgs),
    /// Writes events as JSON Lines with their hashes, plus a manifest to compare later.
    Export(export::ExportArgs),
    /// A report computed from the events alone (not the read models), printed as the JSON of
    /// `GET /api/reports/{name}?format=json`: an auditor's check of the service's figures.
    Report(ReportArgs),
}

/// `report`: the report's name and the API's parameters.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// `cash-book`, `transactions`, … (`GET /api/reports/` lists them).
    pub name: String,
    /// A calendar month, YYYY-MM (UTC), instead of --from/--to.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub period: Option<String>,
    /// From (inclusive): YYYY-MM-DD (its start, UTC) or an RFC 3339 instant. Default: 30 days
    /// before --to.
    #[arg(long)]
    pub from: Option<String>,
    /// To (inclusive): YYYY-MM-DD (the whole day) or an RFC 3339 instant. Default: now.
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long)]
    pub company_id: Option<Uuid>,
    #[arg(long)]
    pub region_id: Option<Uuid>,
    #[arg(long)]
    pub branch_id: Option<Uuid>,
    #[arg(long)]
    pub department_id: Option<Uuid>,
    #[arg(long)]
    pub cost_centre_id: Option<Uuid>,
    #[arg(long)]
    pub fund_id: Option<Uuid>,
    #[arg(long, default_value_t = pettycash_domain::report::ReportParams::DEFAULT_STUCK_DAYS)]
    pub stuck_days: u32,
    #[arg(long, default_value_t = pettycash_domain::report::ReportParams::DEFAULT_LOOKBACK_DAYS)]
    pub lookback_days: u32,
    /// The generation time printed (and "today" for ages): RFC 3339. Default: now.
    #[arg(long)]
    pub now: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableFormat {
    Csv,
    Json,
}

/// `--as-of`: RFC 3339, or a date meaning the end of that day in UTC (its last microsecond,
/// PostgreSQL's resolution).
pub fn parse_as_of(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let end = NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).expect("valid time");
        return Ok(Utc.from_utc_datetime(&d.and_time(end)));
    }
    Err(format!("`{s}` is neither an RFC 3339 instant (2026-11-27T10:00:00Z) nor a date (YYYY-MM-DD)"))
}

/// An error with the exit status it should produce.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure { code: EXIT_FAILURE, error: e.into() }
    }
}

/// The seal key: from `file` (its first line), else `SEAL_KEY`, else `SECRET_KEY`.
pub fn seal_key(file: Option<&std::path::Path>) -> Result<Option<SealKey>, Failure> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| Failure {
            code: EXIT_USAGE,
            error: anyhow::Error::new(e).context(format!("cannot read the seal key file {}", path.display())),
        })?;
        let secret = text.lines().next().unwrap_or("").trim();
        if secret.is_empty() {
            return Err(Failure {
                code: EXIT_USAGE,
                error: anyhow::anyhow!("the seal key file {} is empty", path.display()),
            });
        }
        return Ok(Some(SealKey::derive(secret)));
    }
    let from_env = |name: &str| std::env::var(name).ok().filter(|s| !s.trim().is_empty());
    Ok(from_env("SEAL_KEY").or_else(|| from_env("SECRET_KEY")).map(|s| SealKey::derive(&s)))
}

/// Connects; any failure is a connection error (exit 2).
pub async fn connect(url: &str) -> Result<PgPool, Failure> {
    PgPoolOptions::new()
        // Two streams at once for `verify` (events and seals); a few for parallel rebuilds.
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        // No TLS to a loopback database unless `sslmode` asks for it, as the service does.
        .connect_with(pettycash_projections::connect::connect_options(url).map_err(|e| Failure {
            code: EXIT_USAGE,
            error: anyhow::Error::new(e).context("DATABASE_URL is not a PostgreSQL URL"),
        })?)
        .await
        .map_err(|e| Failure {
            code: EXIT_USAGE,
            error: anyhow::Error::new(e).context("cannot connect to DATABASE_URL"),
        })
}

/// Runs a parsed command, writing results to `out`.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), Failure> {
    let pool = connect(&cli.database_url).await?;
    let result = match cli.command {
        Command::History { aggregate_id, format } => history(&pool, &aggregate_id, format, out).await,
        Command::Ledger { fund, as_of, format } => {
            ledger(&pool, fund, as_of.unwrap_or_else(Utc::now), format, out).await
        }
        Command::Balance { as_of, format } => {
            balance(&pool, as_of.unwrap_or_else(Utc::now), format, out).await
        }
        Command::Stats { format } => stats(&pool, format, out).await,
        Command::Verify { format, seal_key_file, storage, data_dir } => {
            match (seal_key(seal_key_file.as_deref()), receipt_store(storage, &data_dir)) {
                (Ok(key), Ok(store)) => verify::verify(&pool, key.as_ref(), Some(&store), format, out).await,
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        Command::Rebuild(args) => rebuild::rebuild(&pool, args, out).await,
        Command::Export(args) => export::export(&pool, args, out).await,
        Command::Report(args) => report(&pool, args, out).await,
    };
    pool.close().await;
    result?;
    out.flush()?;
    Ok(())
}

/// The receipt store `verify` reads (a usage error when it cannot be opened).
fn receipt_store(
    storage: pettycash_commands::receipts::StorageArgs,
    data_dir: &std::path::Path,
) -> Result<pettycash_commands::receipts::ReceiptStore, Failure> {
    pettycash_commands::receipts::ReceiptStore::open_to_read(&storage.resolve(data_dir))
        .map_err(|error| Failure { code: EXIT_USAGE, error })
}

// ---------------------------------------------------------------------------------------------
// Reading events

/// One stored event, as the projection engine reads it (decoded through the domain's
/// upcasters), and with its stored hash.
pub use pettycash_projections::event::{EventRow, HashedRow};
use pettycash_projections::reader::{self, Filter, Selection};

// ---------------------------------------------------------------------------------------------
// Progress

/// A progress bar on a terminal, a plain line every ~2 s otherwise.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    label: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    pub fn new(label: &'static str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            // One display for all bars: `rebuild` runs several at once.
            static BARS: std::sync::OnceLock<indicatif::MultiProgress> = std::sync::OnceLock::new();
            let bar = BARS.get_or_init(indicatif::MultiProgress::new).add(indicatif::ProgressBar::new(total));
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} events ({per_sec}, ETA {eta})",
                )
                .expect("valid template"),
            );
            bar.set_message(label);
            bar
        });
        let now = Instant::now();
        Progress { bar, label, total, done: 0, started: now, last_line: now }
    }

    pub fn inc(&mut self) {
        self.done += 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
        } else if self.last_line.elapsed() >= Duration::from_secs(2) {
            self.last_line = Instant::now();
            let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            let eta = if rate > 0.0 { self.total.saturating_sub(self.done) as f64 / rate } else { 0.0 };
            eprintln!(
                "{}: {}/{} events ({:.0} events/s, ETA {:.0} s)",
                self.label, self.done, self.total, rate, eta
            );
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// history

/// Where an event stands and what it is: the opening fields of every line `export` and
/// `history` write, in one order.
#[derive(Debug, Serialize)]
pub(crate) struct EventHeader<'a> {
    pub position: i64,
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: i64,
    pub event_type: &'a str,
    pub event_version: &'a str,
    pub recorded_at: DateTime<Utc>,
}

impl<'a> From<&'a EventRow> for EventHeader<'a> {
    fn from(e: &'a EventRow) -> Self {
        Self {
            position: e.global_position,
            aggregate_type: &e.aggregate_type,
            aggregate_id: &e.aggregate_id,
            sequence: e.sequence,
            event_type: &e.event_type,
            event_version: &e.event_version,
            recorded_at: e.recorded_at,
        }
    }
}

#[derive(Debug, Serialize)]
struct HistoryLine<'a> {
    #[serde(flatten)]
    event: EventHeader<'a>,
    actor_id: Option<String>,
    request_id: Option<String>,
    payload: &'a serde_json::value::RawValue,
}

/// Every event with this aggregate id (any aggregate type), in stream order.
pub async fn history(
    pool: &PgPool,
    id: &str,
    format: HistoryFormat,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let read = reader::in_order(&Selection::events(), Filter::Aggregate { id: id.to_string() });
    let mut rows = read.fetch::<EventRow>(pool);
    let mut n = 0u64;
    while let Some(e) = rows.try_next().await? {
        n += 1;
        let line = HistoryLine {
            event: EventHeader::from(&e),
            actor_id: e.meta("actor_id"),
            request_id: e.meta("request_id"),
            payload: &e.payload.to_raw()?,
        };
        match format {
            HistoryFormat::Json => writeln!(out, "{}", serde_json::to_string(&line)?)?,
            HistoryFormat::Text => writeln!(
                out,
                "{} #{} {} {}/{} {} v{} actor={} request={} {}",
                line.event.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                line.event.position,
                line.event.aggregate_type,
                line.event.sequence,
                line.event.aggregate_id,
                line.event.event_type,
                line.event.event_version,
                line.actor_id.as_deref().unwrap_or("-"),
                line.request_id.as_deref().unwrap_or("-"),
                line.payload
            )?,
        }
    }
    if n == 0 {
        return Err(Failure::from(anyhow::anyhow!("no events for aggregate id `{id}`")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// ledger

pub use pettycash_projections::ledger::{fold, for_each_ledger, ledger_movements, FundState, Movement};

/// The columns of `ledger --format csv`, in order.
pub const LEDGER_CSV_HEADER: &str =
    "position,at,kind,amount,balance_after,requisition_id,payment_id,reference,\
     reserved,reserved_after,available_after,source_id,reconciled_reference,reconciled_at";
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_line(fields: &[String]) -> String {
    fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",")
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_default()
}

pub async fn ledger(
    pool: &PgPool,
    fund: Uuid,
    as_of: DateTime<Utc>,
    format: TableFormat,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    if format == TableFormat::Csv {
        writeln!(out, "{LEDGER_CSV_HEADER}")?;
    }
    let (n, _) = for_each_ledger(pool, fund, as_of, |m| {
        match format {
            TableFormat::Json => writeln!(out, "{}", serde_json::to_string(&m)?)?,
            TableFormat::Csv => writeln!(
                out,
                "{}",
                csv_line(&[
                    m.position.to_string(),
                    m.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    m.kind.as_str().to_string(),
                    m.amount.to_string(),
                    m.balance_after.to_string(),
                    opt(&m.requisition_id),
                    opt(&m.payment_id),
                    opt(&m.reference),
                    m.reserved.to_string(),
                    m.reserved_after.to_string(),
                    m.available_after.to_string(),
                    opt(&m.source_id),
                    opt(&m.reconciled_reference),
                    m.reconciled_at
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                        .unwrap_or_default(),
                ])
            )?,
        }
        Ok(())
    })
    .await?;
    if n == 0 {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM events WHERE aggregate_type = 'fund' AND aggregate_id = $1)",
        )
        .bind(fund.to_string())
        .fetch_one(pool)
        .await?;
        if !exists {
            return Err(Failure::from(anyhow::anyhow!("no fund {fund} in the event store")));
        }
        eprintln!("note: fund {fund} was not open yet at {}", as_of.to_rfc3339());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// balance

/// Every fund as it stood at `as_of`, streamed from the fund events in global order.
pub async fn balances(pool: &PgPool, as_of: DateTime<Utc>) -> Result<Vec<FundState>, Failure> {
    let read = reader::in_order(&Selection::events(), Filter::Funds { as_of });
    let total = read.count(pool).await?;
    let mut progress = Progress::new("balance", total.max(0) as u64);
    let mut rows = read.fetch::<EventRow>(pool);
    let mut funds = BTreeMap::new();
    while let Some(e) = rows.try_next().await? {
        let event: FundEvent = e.decode()?;
        if event.moves_cash() {
            fold(&mut funds, &e, event)?;
        }
        progress.inc();
    }
    progress.finish();
    Ok(funds.into_values().collect())
}

pub async fn balance(
    pool: &PgPool,
    as_of: DateTime<Utc>,
    format: TableFormat,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let funds = balances(pool, as_of).await?;
    if format == TableFormat::Csv {
        writeln!(out, "id,name,currency,float,balance")?;
    }
    for f in funds {
        match format {
            TableFormat::Json => writeln!(out, "{}", serde_json::to_string(&f)?)?,
            TableFormat::Csv => writeln!(
                out,
                "{}",
                csv_line(&[f.id.to_string(), f.name, f.currency, f.float.to_string(), f.balance.to_string()])
            )?,
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// stats

#[derive(Debug, Serialize)]
pub struct Stats {
    pub total_events: i64,
    /// aggregate_type → event_type → count.
    pub events: BTreeMap<String, BTreeMap<String, i64>>,
    /// aggregate_type → number of aggregates.
    pub aggregates: BTreeMap<String, i64>,
    pub first_position: Option<i64>,
    pub last_position: Option<i64>,
    pub first_at: Option<DateTime<Utc>>,
    pub last_at: Option<DateTime<Utc>>,
    pub database_size: String,
}

/// First and last position and time.
type Span = (Option<i64>, Option<i64>, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

pub async fn collect_stats(pool: &PgPool) -> Result<Stats, Failure> {
    // The counts are a few aggregate queries (each scans the table inside PostgreSQL), so there
    // is no per-row progress: a spinner on a terminal, one line otherwise.
    let spinner = if std::io::stderr().is_terminal() {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_message("stats: counting events");
        s.enable_steady_tick(Duration::from_millis(120));
        Some(s)
    } else {
        eprintln!("stats: counting events");
        None
    };
    let counts: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT aggregate_type, event_type, count(*) FROM events GROUP BY 1, 2 ORDER BY 1, 2")
            .fetch_all(pool)
            .await?;
    let mut events: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let mut total_events = 0;
    for (t, e, n) in counts {
        total_events += n;
        events.entry(t).or_default().insert(e, n);
    }
    let aggregates: Vec<(String, i64)> = sqlx::query_as(
        "SELECT aggregate_type, count(DISTINCT aggregate_id) FROM events GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    let (first_position, last_position, first_at, last_at): Span = sqlx::query_as(
        "SELECT min(global_position), max(global_position), min(recorded_at), max(recorded_at) FROM events",
    )
    .fetch_one(pool)
    .await?;
    let database_size: String =
        sqlx::query_scalar("SELECT pg_size_pretty(pg_database_size(current_database()))")
            .fetch_one(pool)
            .await?;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    Ok(Stats {
        total_events,
        events,
        aggregates: aggregates.into_iter().collect(),
        first_position,
        last_position,
        first_at,
        last_at,
        database_size,
    })
}

pub async fn stats(pool: &PgPool, format: HistoryFormat, out: &mut dyn Write) -> Result<(), Failure> {
    let s = collect_stats(pool).await?;
    if format == HistoryFormat::Json {
        writeln!(out, "{}", serde_json::to_string(&s)?)?;
        return Ok(());
    }
    writeln!(out, "events: {}", s.total_events)?;
    for (t, by_type) in &s.events {
        writeln!(out, "  {t}: {} aggregates", s.aggregates.get(t).copied().unwrap_or(0))?;
        for (e, n) in by_type {
            writeln!(out, "    {e}: {n}")?;
        }
    }
    let pos = |p: Option<i64>| p.map_or("-".to_string(), |p| p.to_string());
    let at = |t: Option<DateTime<Utc>>| t.map_or("-".to_string(), |t| t.to_rfc3339());
    writeln!(out, "first: position {} at {}", pos(s.first_position), at(s.first_at))?;
    writeln!(out, "last: position {} at {}", pos(s.last_position), at(s.last_at))?;
    writeln!(out, "database size: {}", s.database_size)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// report

/// A date (`YYYY-MM-DD`: its first instant and the next day's) or an RFC 3339 instant (itself
/// and the next microsecond): the API's reading of `from` and `to`.
fn report_instant(field: &str, s: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), Failure> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let start = Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN));
        return Ok((start, start + chrono::Duration::days(1)));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        let t = t.with_timezone(&Utc);
        return Ok((t, t + chrono::Duration::microseconds(1)));
    }
    Err(Failure {
        code: EXIT_USAGE,
        error: anyhow::anyhow!("--{field}: `{s}` is neither a date (YYYY-MM-DD) nor an RFC 3339 instant"),
    })
}

/// The report's parameters as the API reads them from the same values.
pub fn report_params(args: &ReportArgs, now: DateTime<Utc>) -> Result<ReportParams, Failure> {
    let usage = |message: String| Failure { code: EXIT_USAGE, error: anyhow::anyhow!(message) };
    let (from, to) = if let Some(p) = &args.period {
        ReportParams::month(p).ok_or_else(|| usage(format!("--period: `{p}` is not a month, YYYY-MM")))?
    } else {
        let to =
            args.to.as_deref().map(|s| report_instant("to", s)).transpose()?.map_or(now, |(_, next)| next);
        let from = match args.from.as_deref() {
            Some(s) => report_instant("from", s)?.0,
            None => to - chrono::Duration::days(ReportParams::DEFAULT_DAYS),
        };
        (from, to)
    };
    if to <= from {
        return Err(usage("--to is before --from".into()));
    }
    Ok(ReportParams {
        from,
        to,
        units: UnitFilter {
            company_id: args.company_id,
            region_id: args.region_id,
            branch_id: args.branch_id,
            department_id: args.department_id,
            cost_centre_id: args.cost_centre_id,
            fund_id: args.fund_id,
        },
        stuck_days: args.stuck_days,
        lookback_days: args.lookback_days,
    })
}

/// `report`: computed by `pettycash_projections::reports::replay` as an auditor of the
/// company `--company-id` (of no company without it) sees it, printed as JSON.
pub async fn report(pool: &PgPool, args: ReportArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let usage = |message: String| Failure { code: EXIT_USAGE, error: anyhow::anyhow!(message) };
    let name: ReportName = args.name.parse().map_err(|_| {
        let names: Vec<&str> = ReportName::ALL.iter().map(|n| n.as_str()).collect();
        usage(format!("no report `{}`: one of {}", args.name, names.join(", ")))
    })?;
    let now = args.now.unwrap_or_else(Utc::now);
    let params = report_params(&args, now)?;
    let auditor = pettycash_domain::Actor::new(Uuid::nil(), [pettycash_domain::role::Role::Auditor]);
    let mut scope = ReportScope::of(&auditor, name)
        .ok_or_else(|| anyhow::anyhow!("an auditor may not run the {name} report"))?;
    scope.company = args.company_id;
    let report = pettycash_projections::reports::replay(name, pool, &scope, &params, now).await.map_err(
        |e| match e {
            ReportError::Invalid { .. } | ReportError::NotFound { .. } => usage(e.to_string()),
            other => Failure::from(anyhow::Error::new(other)),
        },
    )?;
    serde_json::to_writer_pretty(&mut *out, &Json(&report))?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_accepts_rfc3339_and_dates() {
        assert_eq!(parse_as_of("2026-11-27T10:00:00Z").unwrap().to_rfc3339(), "2026-11-27T10:00:00+00:00");
        assert_eq!(
            parse_as_of("2026-11-27T12:00:00+02:00").unwrap().to_rfc3339(),
            "2026-11-27T10:00:00+00:00"
        );
        assert_eq!(
            parse_as_of("2026-11-27").unwrap().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "2026-11-27T23:59:59.999999Z"
        );
        assert!(parse_as_of("yesterday").is_err());
        assert!(parse_as_of("2026-13-01").is_err());
    }

    #[test]
    fn csv_quotes_when_needed() {
        assert_eq!(
            csv_line(&["a".into(), "b,c".into(), "say \"hi\"".into()]),
            "a,\"b,c\",\"say \"\"hi\"\"\""
        );
    }
}
