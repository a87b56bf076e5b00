//! Per-endpoint counts and latency histograms (microseconds, 3 significant digits).

use super::workload::{Class, Endpoint};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Error messages kept per endpoint for the report.
pub const ERROR_SAMPLES: usize = 5;

/// A histogram of microseconds from 1 µs to one hour.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

pub struct EndpointStats {
    pub latency: Histogram<u64>,
    pub ok: u64,
    pub refusals: BTreeMap<String, u64>,
    pub errors: u64,
    pub error_samples: Vec<String>,
}

impl EndpointStats {
    fn new() -> Self {
        EndpointStats {
            latency: histogram(),
            ok: 0,
            refusals: BTreeMap::new(),
            errors: 0,
            error_samples: Vec::new(),
        }
    }

    pub fn refused(&self) -> u64 {
        self.refusals.values().sum()
    }

    pub fn requests(&self) -> u64 {
        self.ok + self.refused() + self.errors
    }
}

/// What the run recorded (requests in the measured window only).
pub struct Recorder {
    endpoints: Mutex<BTreeMap<Endpoint, EndpointStats>>,
    open: Mutex<OpenLoopCounts>,
}

/// Open loop: how far actual starts trailed the schedule.
pub struct OpenLoopCounts {
    /// Requests scheduled in the measured window.
    pub scheduled: u64,
    /// Scheduled requests that found every in-flight slot taken and waited for one.
    pub slot_waits: u64,
    /// Scheduled requests that started [`LATE`] or more after their scheduled time, for any
    /// reason (no free slot, or the generator itself short of CPU).
    pub late_starts: u64,
    /// Actual start minus scheduled start, microseconds.
    pub start_delay: Histogram<u64>,
}

/// A start this far behind schedule counts as late.
pub const LATE: Duration = Duration::from_millis(5);

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl Recorder {
    pub fn new(endpoints: &[Endpoint]) -> Self {
        let map = endpoints.iter().map(|e| (*e, EndpointStats::new())).collect();
        Recorder {
            endpoints: Mutex::new(map),
            open: Mutex::new(OpenLoopCounts {
                scheduled: 0,
                slot_waits: 0,
                late_starts: 0,
                start_delay: histogram(),
            }),
        }
    }

    pub fn record(&self, endpoint: Endpoint, latency: Duration, class: Class) {
        let mut map = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let stats = map.entry(endpoint).or_insert_with(EndpointStats::new);
        stats.latency.saturating_record(micros(latency));
        match class {
            Class::Ok => stats.ok += 1,
            Class::Refused(code) => *stats.refusals.entry(code).or_default() += 1,
            Class::Error(message) => {
                stats.errors += 1;
                if stats.error_samples.len() < ERROR_SAMPLES {
                    stats.error_samples.push(message);
                }
            }
        }
    }

    /// An open-loop request of the measured window started `delay` after its scheduled time.
    pub fn started(&self, delay: Duration, waited_for_slot: bool) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.scheduled += 1;
        open.slot_waits += u64::from(waited_for_slot);
        open.late_starts += u64::from(delay >= LATE);
        open.start_delay.saturating_record(micros(delay));
    }

    /// What was recorded so far (requests that are still running add nothing later that
    /// the report reads).
    pub fn take(&self) -> (BTreeMap<Endpoint, EndpointStats>, OpenLoopCounts) {
        let endpoints = std::mem::take(&mut *self.endpoints.lock().unwrap_or_else(|p| p.into_inner()));
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = OpenLoopCounts { scheduled: 0, slot_waits: 0, late_starts: 0, start_delay: histogram() };
        (endpoints, std::mem::replace(&mut *open, fresh))
    }
}
