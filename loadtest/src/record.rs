//! Every figure of a run in one value: what `--json` writes, and what the
//! RESULTS row and the HTML report are made from.

use std::time::Duration;

use serde::Serialize;

use crate::ceilings::Ceiling;
use crate::latency::Summary;
use crate::machine::Machine;
use crate::resources::{self, Usage};

#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// When the run ended, UTC, RFC 3339.
    pub date: String,
    /// `git rev-parse --short HEAD`, `-dirty` with changed tracked files.
    pub revision: Option<String>,
    pub machine: Machine,
    pub command: String,
    /// The run's settings, in words.
    pub title: String,
    pub passed: bool,
    pub notifications: usize,
    pub delivered: usize,
    pub missing: usize,
    /// Extra copies beyond the first, over all deliveries.
    pub duplicates: usize,
    pub unexpected: usize,
    pub send_failures: usize,
    pub deliveries_per_second: f64,
    /// First send to last first arrival.
    pub elapsed_seconds: f64,
    pub send_rate: f64,
    pub send_seconds: f64,
    pub api_latency_ms: LatencyMs,
    pub end_to_end_latency_ms: LatencyMs,
    /// The load generator's worst lag behind its schedule (paced runs).
    pub max_lag_ms: f64,
    /// Each Herald process: CPU over the measured span and peak RSS.
    pub herald_processes: Vec<ProcessFigures>,
    pub herald_cpu_seconds: f64,
    /// Herald's CPU per delivered e-mail.
    pub herald_cpu_ms_per_delivery: Option<f64>,
    /// The load test itself and the backends, by command name.
    pub other_cpu_seconds: Vec<(String, f64)>,
    /// Herald, the load test and the backends together, per delivery.
    pub all_cpu_ms_per_delivery: Option<f64>,
    /// First arrivals in each second after the first send.
    pub deliveries_each_second: Vec<u64>,
    pub herald_states: String,
    pub herald_metrics: Vec<String>,
    /// What the backends alone did with as many records (`--ceilings`).
    pub ceilings: Vec<Ceiling>,
    /// Herald's deliveries/s ÷ the slowest ceiling's records/s.
    pub share_of_slowest_ceiling: Option<f64>,
}

/// A latency summary in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyMs {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl From<Summary> for LatencyMs {
    fn from(s: Summary) -> LatencyMs {
        LatencyMs {
            count: s.count,
            p50: ms(s.p50),
            p90: ms(s.p90),
            p99: ms(s.p99),
            p999: ms(s.p999),
            max: ms(s.max),
            mean: ms(s.mean),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessFigures {
    pub name: String,
    pub cpu_seconds: f64,
    pub peak_rss_mib: f64,
}

impl From<&Usage> for ProcessFigures {
    fn from(u: &Usage) -> ProcessFigures {
        ProcessFigures {
            name: u.name.clone(),
            cpu_seconds: u.cpu.as_secs_f64(),
            peak_rss_mib: resources::mib(u.peak_rss_bytes),
        }
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// How many of `offsets` (from the first send) fall in each whole second.
pub fn each_second(offsets: impl Iterator<Item = Duration>) -> Vec<u64> {
    let mut counts: Vec<u64> = Vec::new();
    for offset in offsets {
        let second = usize::try_from(offset.as_secs()).unwrap_or(usize::MAX);
        if second >= counts.len() {
            counts.resize(second + 1, 0);
        }
        counts[second] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_counted_in_the_second_they_fall_in() {
        let offsets = [0, 300, 999, 1000, 2500, 2600, 2999].map(Duration::from_millis);
        assert_eq!(each_second(offsets.into_iter()), vec![3, 1, 3]);
        assert_eq!(each_second(std::iter::empty()), Vec::<u64>::new());
        assert_eq!(
            each_second([Duration::from_millis(2100)].into_iter()),
            vec![0, 0, 1]
        );
    }
}
