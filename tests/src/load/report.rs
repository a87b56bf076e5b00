//! The report: JSON (`--json FILE`) and a table on stdout.

use super::stats::{EndpointStats, OpenLoopCounts};
use super::workload::Endpoint;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub url: String,
    /// `open` (`--rate`) or `closed` (`--connections`).
    pub mode: &'static str,
    pub mix: &'static str,
    pub rate: Option<f64>,
    pub connections: Option<usize>,
    pub max_in_flight: Option<usize>,
    /// The measured window (after the warm-up).
    pub duration_s: f64,
    pub warmup_s: f64,
    /// From the start of the measured window until its last request completed.
    pub elapsed_s: f64,
    /// Each endpoint's expected share of requests, in percent.
    pub proportions: Vec<Proportion>,
    pub total: Totals,
    /// Open loop only: how far starts trailed the schedule.
    pub open_loop: Option<OpenLoop>,
    pub endpoints: Vec<EndpointReport>,
    pub setup: SetupReport,
    /// Requisitions the load created that were still waiting (approval, payment) at the end.
    pub pipeline_backlog: Backlog,
    /// Mobile-money payments the load started through the provider, by their status once the
    /// callbacks had a chance to arrive (`succeeded`: the requisition is paid).
    pub provider_payments: std::collections::BTreeMap<String, u64>,
    /// The server's `GET /health/` after the run (projection lag).
    pub health_after: Value,
}

#[derive(Debug, Serialize)]
pub struct Proportion {
    pub endpoint: &'static str,
    pub percent: f64,
}

#[derive(Debug, Serialize)]
pub struct Totals {
    pub requests: u64,
    pub ok: u64,
    pub refusals: u64,
    pub errors: u64,
    /// Completed requests of the window per second of the window.
    pub throughput_rps: f64,
    pub commands: u64,
    /// Successful commands per second.
    pub commands_per_s: f64,
    /// Requests still running when the run was stopped (not in the counts).
    pub unfinished: u64,
}

#[derive(Debug, Serialize)]
pub struct OpenLoop {
    pub scheduled: u64,
    pub slot_waits: u64,
    pub late_starts: u64,
    pub late_threshold_ms: f64,
    pub start_delay_p50_ms: f64,
    pub start_delay_p99_ms: f64,
    pub start_delay_max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct EndpointReport {
    pub endpoint: &'static str,
    pub requests: u64,
    pub ok: u64,
    /// Expected business refusals (409), by error code.
    pub refusals: u64,
    pub refusal_codes: BTreeMap<String, u64>,
    /// Unexpected: other non-2xx, transport errors, timeouts, panics.
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub throughput_rps: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct SetupReport {
    pub users: usize,
    pub funds: usize,
    pub fund_float: String,
    pub seeded: BTreeMap<&'static str, usize>,
    pub policy_tiers: Value,
    pub events_before_setup: i64,
    pub events_at_start: i64,
    pub events_at_end: i64,
}

#[derive(Debug, Serialize)]
pub struct Backlog {
    pub awaiting_approval: usize,
    pub awaiting_payment: usize,
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        ms(h.value_at_quantile(q))
    }
}

pub fn endpoint_report(endpoint: Endpoint, s: &EndpointStats, window_s: f64) -> EndpointReport {
    let h = &s.latency;
    EndpointReport {
        endpoint: endpoint.label(),
        requests: s.requests(),
        ok: s.ok,
        refusals: s.refused(),
        refusal_codes: s.refusals.clone(),
        errors: s.errors,
        error_samples: s.error_samples.clone(),
        throughput_rps: round2(s.requests() as f64 / window_s),
        mean_ms: if h.is_empty() { 0.0 } else { (h.mean()).round() / 1000.0 },
        p50_ms: quantile_ms(h, 0.50),
        p95_ms: quantile_ms(h, 0.95),
        p99_ms: quantile_ms(h, 0.99),
        max_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
    }
}

pub fn open_loop_report(o: &OpenLoopCounts) -> OpenLoop {
    OpenLoop {
        scheduled: o.scheduled,
        slot_waits: o.slot_waits,
        late_starts: o.late_starts,
        late_threshold_ms: super::stats::LATE.as_secs_f64() * 1000.0,
        start_delay_p50_ms: quantile_ms(&o.start_delay, 0.50),
        start_delay_p99_ms: quantile_ms(&o.start_delay, 0.99),
        start_delay_max_ms: if o.start_delay.is_empty() { 0.0 } else { ms(o.start_delay.max()) },
    }
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Report {
    /// The report as a table (what stdout shows).
    pub fn table(&self) -> String {
        let mut out = String::new();
        let params = match self.mode {
            "open" => format!(
                "open loop, {} req/s, max {} in flight",
                self.rate.unwrap_or_default(),
                self.max_in_flight.unwrap_or_default()
            ),
            _ => format!("closed loop, {} connections", self.connections.unwrap_or_default()),
        };
        let _ = writeln!(
            out,
            "\n{} against {}: {params}, mix {}, {} s measured after {} s warm-up ({:.1} s until the last response)",
            self.tool, self.url, self.mix, self.duration_s, self.warmup_s, self.elapsed_s
        );
        let width = self.endpoints.iter().map(|e| e.endpoint.len()).max().unwrap_or(10).max(10);
        let _ = writeln!(
            out,
            "{:<width$} {:>8} {:>7} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9}",
            "endpoint", "requests", "refused", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        let _ = writeln!(out, "{}", "-".repeat(width + 76));
        for e in &self.endpoints {
            let _ = writeln!(
                out,
                "{:<width$} {:>8} {:>7} {:>7} {:>8.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                e.endpoint,
                e.requests,
                e.refusals,
                e.errors,
                e.throughput_rps,
                e.p50_ms,
                e.p95_ms,
                e.p99_ms,
                e.max_ms
            );
        }
        let _ = writeln!(out, "{}", "-".repeat(width + 76));
        let t = &self.total;
        let _ = writeln!(
            out,
            "{:<width$} {:>8} {:>7} {:>7} {:>8.1}   commands: {} ok, {:.1}/s",
            "total", t.requests, t.refusals, t.errors, t.throughput_rps, t.commands, t.commands_per_s
        );
        if t.unfinished > 0 {
            let _ = writeln!(out, "unfinished when stopped: {}", t.unfinished);
        }
        if let Some(o) = &self.open_loop {
            let _ = writeln!(
                out,
                "schedule: {} scheduled, {} started ≥ {} ms late ({} waited for an in-flight slot); start delay p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                o.scheduled,
                o.late_starts,
                o.late_threshold_ms,
                o.slot_waits,
                o.start_delay_p50_ms,
                o.start_delay_p99_ms,
                o.start_delay_max_ms
            );
        }
        for e in &self.endpoints {
            if !e.refusal_codes.is_empty() {
                let _ = writeln!(out, "refused {}: {:?}", e.endpoint, e.refusal_codes);
            }
            for sample in &e.error_samples {
                let _ = writeln!(out, "error {}: {sample}", e.endpoint);
            }
        }
        let s = &self.setup;
        let _ = writeln!(
            out,
            "events: {} before set-up, {} at start, {} at end; pipeline backlog: {} awaiting approval, {} awaiting payment",
            s.events_before_setup,
            s.events_at_start,
            s.events_at_end,
            self.pipeline_backlog.awaiting_approval,
            self.pipeline_backlog.awaiting_payment
        );
        if !self.provider_payments.is_empty() {
            let counts: Vec<String> =
                self.provider_payments.iter().map(|(s, n)| format!("{n} {s}")).collect();
            let _ = writeln!(
                out,
                "mobile-money payments started by the load, after the callbacks: {}",
                counts.join(", ")
            );
        }
        let _ = writeln!(out, "health after the run: {}", health_summary(&self.health_after));
        out
    }
}

/// `status`, and each projection's state and lag.
pub fn health_summary(health: &Value) -> String {
    let mut s = format!("status {}", health["status"].as_str().unwrap_or("?"));
    if let Some(ps) = health["projections"].as_array() {
        for p in ps {
            let _ = write!(
                s,
                ", {} v{} {} lag {}",
                p["name"].as_str().unwrap_or("?"),
                p["version"],
                p["state"].as_str().unwrap_or("?"),
                p["lag_events"]
            );
        }
    }
    s
}
