//! The figures of a run and the summary block that prints them.

use std::fmt::Write as _;
use std::time::Duration;

use crate::arrivals::Arrivals;
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
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Figures {
    pub fn measure(sent: &Sent, arrivals: &Arrivals) -> Figures {
        let mut latencies: Vec<Duration> = arrivals
            .first
            .iter()
            .filter_map(|(id, arrived)| {
                let sent_at = sent.expected.get(id)?;
                Some(arrived.saturating_duration_since(*sent_at))
            })
            .collect();
        latencies.sort_unstable();
        let last_arrival = arrivals.first.values().max().copied();
        let elapsed = last_arrival
            .map(|last| last.saturating_duration_since(sent.started))
            .unwrap_or_default();
        let delivered = arrivals.first.len();
        let send_time = sent.finished.saturating_duration_since(sent.started);
        let mean = if latencies.is_empty() {
            Duration::ZERO
        } else {
            latencies.iter().sum::<Duration>() / latencies.len() as u32
        };
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
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
            max: latencies.last().copied().unwrap_or_default(),
            mean,
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

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The context a figure needs to be read correctly.
pub struct Context {
    pub title: String,
    pub command: String,
    /// CPU time per process over the measured span, and the machine's load.
    pub cpu: Vec<(String, Duration)>,
    pub machine_busy: Option<f64>,
    pub cores: usize,
    pub killed: Option<String>,
    pub metrics: Vec<String>,
    /// Herald's delivery states at the end (warm-up included).
    pub states: String,
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
        "end-to-end latency   p50 {}   p99 {}   max {}   mean {}",
        ms(f.p50),
        ms(f.p99),
        ms(f.max),
        ms(f.mean)
    );
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
    if !context.cpu.is_empty() {
        let cpu: Vec<String> = context
            .cpu
            .iter()
            .map(|(name, t)| format!("{name} {:.1}s", t.as_secs_f64()))
            .collect();
        let _ = writeln!(out, "CPU time           {}", cpu.join(", "));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&values, 1.0), Duration::from_millis(100));
        assert_eq!(
            percentile(&[Duration::from_millis(7)], 0.99),
            Duration::from_millis(7)
        );
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
