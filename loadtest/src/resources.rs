//! What each Herald process used while the run measured: CPU seconds and
//! peak resident memory, sampled from /proc while the processes live, so a
//! worker killed mid-run still counts up to its last sample.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cpu;

/// How often the processes are read.
const EVERY: Duration = Duration::from_millis(250);

/// The Herald processes started so far, by name and pid; shared by a
/// `Launcher` and its clones, and read by the sampler.
#[derive(Debug, Clone, Default)]
pub struct Started(Arc<Mutex<Vec<(String, u32)>>>);

impl Started {
    pub fn add(&self, name: &str, pid: u32) {
        self.0
            .lock()
            .expect("no sampler panics holding it")
            .push((name.to_owned(), pid));
    }

    fn all(&self) -> Vec<(String, u32)> {
        self.0.lock().expect("no sampler panics holding it").clone()
    }
}

/// One process's use over the measured span.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    pub name: String,
    /// User + system time since sampling began (whole, for a process
    /// started after that).
    pub cpu: Duration,
    /// The highest resident set size seen: VmHWM, the kernel's own peak.
    pub peak_rss_bytes: u64,
}

/// Memory figures of `/proc/<pid>/status`, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
}

/// Reads `VmRSS` and `VmHWM` (given in kB) from a status file's text.
pub fn parse_status(status: &str) -> Memory {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kib| kib * 1024)
    };
    Memory {
        rss: field("VmRSS:"),
        hwm: field("VmHWM:"),
    }
}

fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(parse_status(&status))
}

/// What is known of one pid.
#[derive(Debug)]
struct Tracked {
    name: String,
    baseline: Duration,
    last_cpu: Duration,
    peak: u64,
}

/// Reads every started process every `EVERY` until stopped.
pub struct Sampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<BTreeMap<u32, Tracked>>,
}

impl Sampler {
    /// Starts sampling; CPU counts from now for the processes already running.
    pub fn start(started: Started) -> Sampler {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut tracked = BTreeMap::new();
            let mut first = true;
            loop {
                sample(&started, &mut tracked, first);
                first = false;
                tokio::select! {
                    _ = tokio::time::sleep(EVERY) => {}
                    _ = stopped.changed() => break,
                }
            }
            sample(&started, &mut tracked, false);
            tracked
        });
        Sampler { stop, task }
    }

    /// One last sample, then each process's use, in the order started.
    pub async fn finish(self) -> Vec<Usage> {
        let _ = self.stop.send(true);
        let tracked = self.task.await.unwrap_or_default();
        let mut usage: Vec<(u32, Usage)> = tracked
            .into_iter()
            .map(|(pid, t)| {
                (
                    pid,
                    Usage {
                        name: t.name,
                        cpu: t.last_cpu.saturating_sub(t.baseline),
                        peak_rss_bytes: t.peak,
                    },
                )
            })
            .collect();
        usage.sort_by_key(|(pid, _)| *pid);
        usage.into_iter().map(|(_, u)| u).collect()
    }
}

fn sample(started: &Started, tracked: &mut BTreeMap<u32, Tracked>, first: bool) {
    for (name, pid) in started.all() {
        // A process that is gone keeps its last reading.
        let Some(cpu_time) = cpu::process_time(pid) else {
            continue;
        };
        let peak = memory(pid).map_or(0, |m| m.hwm.max(m.rss));
        let entry = tracked.entry(pid).or_insert_with(|| Tracked {
            name,
            baseline: if first { cpu_time } else { Duration::ZERO },
            last_cpu: cpu_time,
            peak,
        });
        entry.last_cpu = entry.last_cpu.max(cpu_time);
        entry.peak = entry.peak.max(peak);
    }
}

/// Total CPU of the processes.
pub fn total_cpu(usage: &[Usage]) -> Duration {
    usage.iter().map(|u| u.cpu).sum()
}

/// CPU seconds spent per delivery, or `None` with nothing delivered.
pub fn per_delivery(cpu: Duration, delivered: usize) -> Option<Duration> {
    (delivered > 0).then(|| cpu.div_f64(delivered as f64))
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of a real `/proc/<pid>/status` (Linux 6.1).
    const STATUS: &str = "Name:\therald\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\n\
        VmPeak:\t 1234560 kB\nVmSize:\t 1200000 kB\nVmLck:\t       0 kB\nVmPin:\t       0 kB\n\
        VmHWM:\t   98304 kB\nVmRSS:\t   81920 kB\nRssAnon:\t   60000 kB\nThreads:\t9\n";

    #[test]
    fn a_status_file_gives_its_resident_and_peak_resident_memory_in_bytes() {
        assert_eq!(
            parse_status(STATUS),
            Memory {
                rss: 81920 * 1024,
                hwm: 98304 * 1024
            }
        );
    }

    #[test]
    fn a_kernel_thread_without_memory_lines_reads_as_zero() {
        let status = "Name:\tkthreadd\nState:\tS (sleeping)\nThreads:\t1\n";
        assert_eq!(parse_status(status), Memory::default());
    }

    #[test]
    fn this_process_has_a_peak_at_least_its_resident_size() {
        let m = memory(std::process::id()).expect("Linux has /proc");
        assert!(m.rss > 0 && m.hwm >= m.rss, "{m:?}");
    }

    /// A busy child, sampled, then killed before the sampler stops: its
    /// CPU and memory up to its last sample still count.
    #[tokio::test]
    async fn a_process_killed_mid_run_keeps_what_it_used() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("sh runs");
        let started = Started::default();
        started.add("spinner", child.id());
        let sampler = Sampler::start(started);
        tokio::time::sleep(Duration::from_millis(800)).await;
        child.kill().expect("the child is ours");
        child.wait().expect("the child is reaped");
        let usage = sampler.finish().await;
        assert_eq!(usage.len(), 1);
        assert_eq!(usage[0].name, "spinner");
        assert!(usage[0].cpu > Duration::ZERO, "{usage:?}");
        assert!(usage[0].peak_rss_bytes > 0, "{usage:?}");
    }

    #[test]
    fn cpu_per_delivery_divides_and_is_absent_without_deliveries() {
        assert_eq!(
            per_delivery(Duration::from_secs(30), 20_000),
            Some(Duration::from_micros(1500))
        );
        assert_eq!(per_delivery(Duration::from_secs(30), 0), None);
    }
}
