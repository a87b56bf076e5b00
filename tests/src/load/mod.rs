//! `pettycash-load`: a load generator for a running `pettycash serve`, over HTTP.
//!
//! Set-up uses the database only to register its users through the command service (as the
//! operator would); everything else goes over the API: sign-in, funds, seeded requisitions,
//! then the load. Two modes:
//!
//! - open loop (`--rate R`): requests are scheduled at fixed arrival times, R per second, and
//!   latency is measured from the *scheduled* time, so a slow server cannot hide its queue
//!   (no coordinated omission). At most `--max-in-flight` requests run at once; requests that
//!   start late (no free slot, or the generator short of CPU) are counted.
//! - closed loop (`--connections N`): N workers, each sending its next request as soon as the
//!   previous one completes; latency from the actual start.
//!
//! Every endpoint gets counts (requests, expected refusals, errors) and latency percentiles
//! from an HDR histogram with microsecond precision. Nothing here asserts a duration.

mod report;
mod setup;
mod stats;
mod workload;

pub use report::Report;
pub use workload::{Endpoint, MixKind};

use anyhow::{bail, Context};
use clap::Parser;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use workload::{Class, Mix, Workload};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "pettycash-load",
    version,
    about = "HTTP load generator for a running `pettycash serve`",
    group = clap::ArgGroup::new("mode").required(true).args(["rate", "connections"])
)]
pub struct Args {
    /// Base URL of the running server.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// The server's database, used for set-up only: registering the load's users through the
    /// command service.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// The server's SEAL_KEY (else its SECRET_KEY; else the development default): the users
    /// registered for the load are events, which must authenticate with the server's key.
    #[arg(long, env = "SEAL_KEY", hide_env_values = true)]
    pub seal_key: Option<String>,
    /// Open loop: this many requests per second, at fixed arrival times.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Closed loop: this many workers, each sending its next request when the previous one
    /// completes.
    #[arg(long)]
    pub connections: Option<usize>,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Seconds of load before the measured window, not recorded.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// The workload.
    #[arg(long, value_enum, default_value_t = MixKind::Mixed)]
    pub mix: MixKind,
    /// Open loop: most requests in flight at once.
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: usize,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Funds to open (each with the largest float the service accepts).
    #[arg(long, default_value_t = 4)]
    pub funds: usize,
    /// Staff users (they create the requisitions).
    #[arg(long, default_value_t = 8)]
    pub staff: usize,
    /// Users of each approver role the policy's chains name, and of treasury.
    #[arg(long, default_value_t = 2)]
    pub per_role: usize,
    /// Requisitions seeded in each state before the run.
    #[arg(long, default_value_t = 2)]
    pub seed_per_state: usize,
    /// Build a company of REGIONSxBRANCHESxDEPARTMENTS (e.g. `5x20x5`) over the API and route
    /// through it: staff in departments, a department head each, branch and regional managers,
    /// the company-wide roles at the company. Without it the load's users belong to no unit.
    #[arg(long)]
    pub org: Option<String>,
    /// With `--org`: users in all (most only fill the directory routing reads).
    #[arg(long, default_value_t = 2000)]
    pub org_users: usize,
    /// With `--org`: departments whose people the load signs in and acts as (spread over the
    /// branches), besides the company-wide roles and the regional managers.
    #[arg(long, default_value_t = 10)]
    pub active_departments: usize,
    /// Per-request timeout, seconds (a timeout counts as an error).
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Threads of the load generator's async runtime. One keeps its share of a machine it
    /// shares with the server and PostgreSQL small (like pgbench's client); the open loop's
    /// schedule runs on a thread of its own either way.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// The month (`YYYY-MM`) the report requests read: the cash book and spending of that
    /// month, and the transactions CSV of the twelve months ending with it (default: this
    /// month; on a generated store, a month of its history, e.g. `2025-12`).
    #[arg(long)]
    pub report_month: Option<String>,
    /// One spending-report request in this many is a year of transactions as CSV instead
    /// (0: none).
    #[arg(long, default_value_t = workload::CSV_EVERY)]
    pub csv_every: usize,
}

/// The run's shared state.
struct Load {
    workload: Workload,
    mix: Mix,
    recorder: stats::Recorder,
}

impl Load {
    /// One request: choose it, send it, record it (when in the measured window) with its
    /// latency from `from`. A panic is caught and counted as an error of its endpoint.
    async fn one(&self, from: Instant, record: bool) {
        let planned = self.workload.plan(self.mix.next());
        let endpoint = planned.endpoint();
        let class = match AssertUnwindSafe(self.workload.perform(&planned)).catch_unwind().await {
            Ok(class) => class,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                Class::Error(format!("panic: {message}"))
            }
        };
        if record {
            self.recorder.record(endpoint, from.elapsed(), class);
        }
    }
}

fn secs(s: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("{what} must be a number of seconds ≥ 0"))
}

/// Runs the set-up and the load and reports. Prints progress to stderr and the table to
/// stdout, and writes the JSON when `--json` is given.
pub async fn run(args: Args) -> anyhow::Result<Report> {
    let duration = secs(args.duration, "--duration")?;
    let warmup = secs(args.warmup, "--warmup")?;
    let timeout = secs(args.timeout, "--timeout")?;
    if duration.is_zero() {
        bail!("--duration must be positive");
    }
    let concurrency = match (args.rate, args.connections) {
        (Some(rate), None) if rate > 0.0 && rate.is_finite() => args.max_in_flight.max(1),
        (None, Some(n)) if n > 0 => n,
        _ => bail!("give either --rate R (R > 0) or --connections N (N > 0)"),
    };
    let base = args.url.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .build()?;

    let started_at = chrono::Utc::now();
    let (status, _) =
        setup::health(&client, &base).await.with_context(|| format!("is the server running at {base}?"))?;
    if !status.is_success() {
        bail!("{base}/health/ answers {status}");
    }
    eprintln!("set-up: registering users, signing in, opening funds, seeding requisitions …");
    let secret = args
        .seal_key
        .clone()
        .or_else(|| std::env::var("SECRET_KEY").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| crate::DEV_SECRET_KEY.to_string());
    let opts = setup::SetupOptions {
        event_key: pettycash_domain::integrity::EventKey::derive(&secret),
        staff: args.staff,
        per_role: args.per_role,
        funds: args.funds,
        seed_per_state: args.seed_per_state,
        report_month: args
            .report_month
            .as_deref()
            .map(|m| {
                pettycash_domain::budget::Month::parse(m).map_err(|e| anyhow::anyhow!("--report-month: {e}"))
            })
            .transpose()?,
        org: args
            .org
            .as_deref()
            .map(|shape| setup::OrgShape::parse(shape, args.org_users, args.active_departments))
            .transpose()?,
    };
    let prepared = setup::prepare(client.clone(), &base, &args.database_url, &opts).await?;
    let lag = setup::wait_for_projections(&client, &base, Duration::from_secs(30)).await?;
    if lag > 0 {
        eprintln!("warning: the projections are still {lag} events behind after the set-up");
    }
    let events_at_start = setup::event_count(&prepared.pool).await?;

    let mix = Mix::new(args.mix).with_csv_every(args.csv_every);
    let steps = prepared.workload.amounts.mean_chain_length(&prepared.tiers);
    let proportions: Vec<report::Proportion> = mix
        .proportions(steps)
        .into_iter()
        .map(|(e, p)| report::Proportion { endpoint: e.label(), percent: report::round2(p) })
        .collect();
    eprintln!(
        "set-up done: {} users, {} funds, {} requisitions seeded, {events_at_start} events in the store",
        prepared.users,
        prepared.workload.funds.len(),
        prepared.seeded.values().sum::<usize>()
    );
    eprintln!(
        "mix {} (commands: create+submit, an approval per step of the chain ({steps:.2} on average), \
         pay: every other one in cash, the others by mobile money through the provider, code then payment):",
        args.mix.name()
    );
    for p in &proportions {
        eprintln!("  {:>6.2} %  {}", p.percent, p.endpoint);
    }

    let endpoints = mix.endpoints();
    let load =
        Arc::new(Load { workload: prepared.workload, mix, recorder: stats::Recorder::new(&endpoints) });
    let t0 = Instant::now();
    let record_start = t0 + warmup;
    let end = record_start + duration;
    let drain = timeout + Duration::from_secs(5);
    eprintln!("running: {} s warm-up, {} s measured …", warmup.as_secs_f64(), duration.as_secs_f64());
    let unfinished = match args.rate {
        Some(rate) => open_loop(&load, rate, t0, record_start, end, concurrency, drain).await,
        None => closed_loop(&load, concurrency, record_start, end, drain).await,
    };
    let elapsed = record_start.elapsed();

    let (health_status, health_after) = match setup::health(&client, &base).await {
        Ok((status, body)) => (Some(status), body),
        Err(e) => (None, serde_json::json!({"error": e.to_string()})),
    };
    if health_status.is_some_and(|s| !s.is_success()) {
        eprintln!("warning: /health/ answered {health_status:?} after the run");
    }
    let events_at_end = setup::event_count(&prepared.pool).await.unwrap_or(-1);

    // The callbacks of the last payments through the provider (answered at once with
    // PAYMENT_SIMULATOR_DELAY_MS=0) get a few seconds to arrive.
    let provider_payments = load.workload.settle_provider_payments(Duration::from_secs(10)).await;
    let (awaiting_approval, awaiting_payment) = load.workload.pipeline.backlog();
    let fund_count = load.workload.funds.len();
    let (by_endpoint, open) = load.recorder.take();
    let window = duration.as_secs_f64();
    let endpoint_reports: Vec<report::EndpointReport> = endpoints
        .iter()
        .filter_map(|e| by_endpoint.get(e).map(|s| report::endpoint_report(*e, s, window)))
        .collect();
    let sum = |f: fn(&stats::EndpointStats) -> u64| by_endpoint.values().map(f).sum::<u64>();
    let commands_ok: u64 = by_endpoint.iter().filter(|(e, _)| e.is_command()).map(|(_, s)| s.ok).sum();
    let requests = sum(stats::EndpointStats::requests);
    let report = Report {
        tool: "pettycash-load",
        version: env!("CARGO_PKG_VERSION"),
        started_at,
        url: base,
        mode: if args.rate.is_some() { "open" } else { "closed" },
        mix: args.mix.name(),
        rate: args.rate,
        connections: args.connections,
        max_in_flight: args.rate.map(|_| concurrency),
        duration_s: window,
        warmup_s: warmup.as_secs_f64(),
        elapsed_s: report::round2(elapsed.as_secs_f64()),
        proportions,
        total: report::Totals {
            requests,
            ok: sum(|s| s.ok),
            refusals: sum(stats::EndpointStats::refused),
            errors: sum(|s| s.errors),
            throughput_rps: report::round2(requests as f64 / window),
            commands: commands_ok,
            commands_per_s: report::round2(commands_ok as f64 / window),
            unfinished,
        },
        open_loop: args.rate.map(|_| report::open_loop_report(&open)),
        endpoints: endpoint_reports,
        setup: report::SetupReport {
            users: prepared.users,
            funds: fund_count,
            fund_float: prepared.fund_float.to_string(),
            seeded: prepared.seeded,
            policy_tiers: serde_json::to_value(&prepared.tiers).unwrap_or_default(),
            events_before_setup: prepared.events_before_setup,
            events_at_start,
            events_at_end,
        },
        pipeline_backlog: report::Backlog { awaiting_approval, awaiting_payment },
        provider_payments,
        health_after,
    };
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    prepared.pool.close().await;
    Ok(report)
}

/// Open loop: the i-th request is due at `t0 + i / rate`; it waits for a free in-flight slot
/// if all are taken, and its latency counts from when it was due. The schedule runs on its own
/// thread with the OS's sleep (tens of microseconds late, where the runtime's timer rounds
/// up to the next millisecond) and hands each request to the runtime. Returns how many
/// measured requests had not completed `drain` after the end.
async fn open_loop(
    load: &Arc<Load>,
    rate: f64,
    t0: Instant,
    record_start: Instant,
    end: Instant,
    max_in_flight: usize,
    drain: Duration,
) -> u64 {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let done = Arc::new(AtomicU64::new(0));
    let runtime = tokio::runtime::Handle::current();
    let scheduler = {
        let (load, slots, done) = (load.clone(), slots.clone(), done.clone());
        std::thread::Builder::new().name("load-schedule".into()).spawn(move || {
            let mut measured = 0u64;
            for i in 0u64.. {
                let due = t0 + Duration::from_secs_f64(i as f64 / rate);
                if due >= end {
                    break;
                }
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let (permit, waited) = match slots.clone().try_acquire_owned() {
                    Ok(permit) => (permit, false),
                    Err(_) => match runtime.block_on(slots.clone().acquire_owned()) {
                        Ok(permit) => (permit, true),
                        Err(_) => break,
                    },
                };
                let record = due >= record_start;
                if record {
                    measured += 1;
                    load.recorder.started(due.elapsed(), waited);
                }
                let (load, done) = (load.clone(), done.clone());
                runtime.spawn(async move {
                    load.one(due, record).await;
                    if record {
                        done.fetch_add(1, AtomicOrdering::Relaxed);
                    }
                    drop(permit);
                });
            }
            measured
        })
    };
    let measured = match scheduler {
        Ok(thread) => tokio::task::spawn_blocking(move || thread.join().unwrap_or(0)).await.unwrap_or(0),
        Err(e) => {
            eprintln!("cannot start the schedule thread: {e}");
            0
        }
    };
    let _ = tokio::time::timeout(drain, slots.acquire_many(max_in_flight as u32)).await;
    measured.saturating_sub(done.load(AtomicOrdering::Relaxed))
}

/// Closed loop: `workers` tasks, each sending its next request as soon as the previous one
/// completes, until `end`. Returns how many workers had not finished `drain` after the end.
async fn closed_loop(
    load: &Arc<Load>,
    workers: usize,
    record_start: Instant,
    end: Instant,
    drain: Duration,
) -> u64 {
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let load = load.clone();
            tokio::spawn(async move {
                loop {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    load.one(now, now >= record_start).await;
                }
            })
        })
        .collect();
    let deadline = tokio::time::Instant::from_std(end + drain);
    let mut unfinished = 0;
    for handle in handles {
        if tokio::time::timeout_at(deadline, handle).await.is_err() {
            unfinished += 1;
        }
    }
    unfinished
}
