//! The figures of a run and the summary block that prints them.

use std::fmt::Write as _;
use std::time::Duration;

use crate::arrivals::Arrivals;
use crate::ceilings::{self, Ceiling};
use crate::latency::{Latencies, Summary};
use crate::machine::Machine;
use crate::record::{self, ProcessFigures, Record};
use crate::resources::{self, Usage};
use crate::send::Sent;

/// What the run measured.
#[derive(Debug)]
pub struct Figures {
    pub notifications: usize,
    pub delivered: usize,
    pub missing: usize,
    pub duplicates: usize,
    pub duplicated_deliveries: usize,
    pub unexpected: usize,
    pub send_failures: usize,
    /// First send to last first-arrival.
    pub elapsed: Duration,
    pub deliveries_per_second: f64,
    /// Notifications Herald acknowledged per second, while sending.
    pub send_rate: f64,
    pub send_time: Duration,
    /// Due instant to Herald's answer, per accepted send.
    pub api_latency: Latencies,
    /// Due instant to the first arrival at the SMTP stand-in, per delivery.
    pub end_to_end: Latencies,
    /// The load generator's worst lag behind its schedule.
    pub max_lag: Duration,
    /// First arrivals in each second after the first send.
    pub deliveries_each_second: Vec<u64>,
}

impl Figures {
    pub fn measure(sent: &Sent, arrivals: &Arrivals) -> Figures {
        let mut end_to_end = Latencies::default();
        for (id, arrived) in &arrivals.first {
            if let Some(due) = sent.expected.get(id) {
                end_to_end.record(arrived.saturating_duration_since(*due));
            }
        }
        let last_arrival = arrivals.first.values().max().copied();
        let elapsed = last_arrival
            .map(|last| last.saturating_duration_since(sent.started))
            .unwrap_or_default();
        let delivered = arrivals.first.len();
        let send_time = sent.finished.saturating_duration_since(sent.started);
        Figures {
            notifications: sent.expected.len() + sent.failed,
            delivered,
            missing: arrivals.missing(&sent.expected).count(),
            duplicates: arrivals.duplicates(),
            duplicated_deliveries: arrivals.repeated.len(),
            unexpected: arrivals.unexpected,
            send_failures: sent.failed,
            elapsed,
            deliveries_per_second: per_second(delivered, elapsed),
            send_rate: per_second(sent.expected.len(), send_time),
            send_time,
            api_latency: sent.api_latency.clone(),
            end_to_end,
            max_lag: sent.max_lag,
            deliveries_each_second: record::each_second(
                arrivals
                    .first
                    .values()
                    .map(|at| at.saturating_duration_since(sent.started)),
            ),
        }
    }
}

fn per_second(n: usize, over: Duration) -> f64 {
    if over.is_zero() {
        0.0
    } else {
        n as f64 / over.as_secs_f64()
    }
}

/// The context a figure needs to be read correctly.
pub struct Context {
    pub title: String,
    pub command: String,
    /// Sent on a schedule (`--rate`), so latencies count from each slot.
    pub paced: bool,
    /// What the backends alone did (`--ceilings`).
    pub ceilings: Vec<Ceiling>,
    /// CPU time of the load test and the backends over the measured span.
    pub cpu: Vec<(String, Duration)>,
    /// Each Herald process's CPU time over the measured span and peak RSS.
    pub usage: Vec<Usage>,
    /// The share of the machine's cores that were busy.
    pub machine_busy: Option<f64>,
    pub cores: usize,
    pub killed: Option<String>,
    pub metrics: Vec<String>,
    /// Herald's delivery states at the end (warm-up included).
    pub states: String,
}

/// Every figure, with where and when it was measured.
pub fn record(
    figures: &Figures,
    context: &Context,
    machine: Machine,
    revision: Option<String>,
    passed: bool,
) -> Record {
    let f = figures;
    let herald_cpu = resources::total_cpu(&context.usage);
    let all_cpu = herald_cpu + context.cpu.iter().map(|(_, t)| *t).sum::<Duration>();
    Record {
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        revision,
        machine,
        command: context.command.clone(),
        title: context.title.clone(),
        passed,
        notifications: f.notifications,
        delivered: f.delivered,
        missing: f.missing,
        duplicates: f.duplicates,
        unexpected: f.unexpected,
        send_failures: f.send_failures,
        deliveries_per_second: f.deliveries_per_second,
        elapsed_seconds: f.elapsed.as_secs_f64(),
        send_rate: f.send_rate,
        send_seconds: f.send_time.as_secs_f64(),
        api_latency_ms: f.api_latency.summary().into(),
        end_to_end_latency_ms: f.end_to_end.summary().into(),
        max_lag_ms: record::ms(f.max_lag),
        herald_processes: context.usage.iter().map(ProcessFigures::from).collect(),
        herald_cpu_seconds: herald_cpu.as_secs_f64(),
        herald_cpu_ms_per_delivery: resources::per_delivery(herald_cpu, f.delivered)
            .map(record::ms),
        other_cpu_seconds: context
            .cpu
            .iter()
            .map(|(name, t)| (name.clone(), t.as_secs_f64()))
            .collect(),
        all_cpu_ms_per_delivery: resources::per_delivery(all_cpu, f.delivered).map(record::ms),
        deliveries_each_second: f.deliveries_each_second.clone(),
        herald_states: context.states.clone(),
        herald_metrics: context.metrics.clone(),
        ceilings: context.ceilings.clone(),
        share_of_slowest_ceiling: ceilings::share_of_slowest(
            &context.ceilings,
            f.deliveries_per_second,
        )
        .map(|(_, share)| share),
    }
}

pub fn summary(figures: &Figures, context: &Context) -> String {
    let f = figures;
    let mut out = String::new();
    let line = "=".repeat(72);
    let _ = writeln!(out, "{line}");
    let _ = writeln!(out, "{}", context.title);
    let _ = writeln!(out, "command: {}", context.command);
    let _ = writeln!(out, "{line}");
    let _ = writeln!(
        out,
        "notifications      {:>10}   (send failures: {})",
        f.notifications, f.send_failures
    );
    let _ = writeln!(
        out,
        "delivered once     {:>10}   missing: {}   duplicates: {} extra copies of {} deliveries   unexpected: {}",
        f.delivered, f.missing, f.duplicates, f.duplicated_deliveries, f.unexpected
    );
    let _ = writeln!(
        out,
        "deliveries/s       {:>10.1}   ({} in {:.2} s, first send to last arrival)",
        f.deliveries_per_second,
        f.delivered,
        f.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "send rate          {:>10.1}/s ({:.2} s to hand over every notification)",
        f.send_rate,
        f.send_time.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "API latency        {}",
        percentiles(&f.api_latency.summary())
    );
    let _ = writeln!(
        out,
        "end-to-end latency {}",
        percentiles(&f.end_to_end.summary())
    );
    if context.paced {
        let _ = writeln!(
            out,
            "                   (both from each send's slot in the schedule; the load generator lagged it by {} at most)",
            ms(f.max_lag)
        );
    } else {
        let _ = writeln!(
            out,
            "                   (both from the moment each send left)"
        );
    }
    if let Some((slowest, share)) =
        ceilings::share_of_slowest(&context.ceilings, f.deliveries_per_second)
    {
        let alone: Vec<String> = context.ceilings.iter().map(Ceiling::rate).collect();
        let _ = writeln!(
            out,
            "ceilings           {} alone; herald's deliveries/s are {:.1} % of the slowest ({})",
            alone.join(", "),
            share * 100.0,
            slowest.name
        );
    }
    if let Some(killed) = &context.killed {
        let _ = writeln!(out, "kill -9             {killed}");
    }
    if let Some(busy) = context.machine_busy {
        let _ = writeln!(
            out,
            "machine CPU        {:>9.0}%   of {} cores busy over the run (shared machine)",
            busy * 100.0,
            context.cores
        );
    }
    if !context.usage.is_empty() {
        let herald: Vec<String> = context
            .usage
            .iter()
            .map(|u| {
                format!(
                    "{}: CPU {:.1}s, peak RSS {:.0} MiB",
                    u.name,
                    u.cpu.as_secs_f64(),
                    resources::mib(u.peak_rss_bytes)
                )
            })
            .collect();
        let _ = writeln!(out, "herald processes   {}", herald.join("; "));
    }
    if !context.cpu.is_empty() {
        let cpu: Vec<String> = context
            .cpu
            .iter()
            .map(|(name, t)| format!("{name} {:.1}s", t.as_secs_f64()))
            .collect();
        let _ = writeln!(out, "other CPU time     {}", cpu.join(", "));
    }
    let herald_cpu = resources::total_cpu(&context.usage);
    let all_cpu = herald_cpu + context.cpu.iter().map(|(_, t)| *t).sum::<Duration>();
    if let (Some(herald), Some(all)) = (
        resources::per_delivery(herald_cpu, f.delivered),
        resources::per_delivery(all_cpu, f.delivered),
    ) {
        let _ = writeln!(
            out,
            "CPU per delivery   herald {}   everything above {}   (herald {:.1}s in all)",
            ms(herald),
            ms(all),
            herald_cpu.as_secs_f64()
        );
    }
    let _ = writeln!(out, "herald's records   {}", context.states);
    for metric in &context.metrics {
        let _ = writeln!(out, "metric             {metric}");
    }
    let _ = writeln!(out, "{line}");
    out
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn percentiles(s: &Summary) -> String {
    format!(
        "p50 {}   p90 {}   p99 {}   p99.9 {}   max {}   mean {}",
        ms(s.p50),
        ms(s.p90),
        ms(s.p99),
        ms(s.p999),
        ms(s.max),
        ms(s.mean)
    )
}
