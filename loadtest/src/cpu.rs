//! Where the CPU went: per process, and for the whole machine, read from
//! Linux's /proc. A load test on a small shared machine is only readable
//! next to how busy the machine was.

use std::time::Duration;

/// Linux reports CPU time in clock ticks; `getconf CLK_TCK` is 100 on every
/// mainstream architecture.
const TICKS_PER_SECOND: u64 = 100;

/// User + system CPU time of a process so far; `None` off Linux or once it is gone.
pub fn process_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it are plain.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(ticks(utime + stime))
}

/// The machine's CPU counters at one instant.
#[derive(Debug, Clone, Copy)]
pub struct MachineSnapshot {
    busy: u64,
    total: u64,
}

impl MachineSnapshot {
    pub fn now() -> Option<MachineSnapshot> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let values: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest is inside user).
        let total: u64 = values.iter().take(8).sum();
        let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
        Some(MachineSnapshot {
            busy: total - idle,
            total,
        })
    }

    /// The share of all cores that was busy since `earlier`, 0.0 to 1.0.
    pub fn busy_since(&self, earlier: &MachineSnapshot) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        self.busy.saturating_sub(earlier.busy) as f64 / total as f64
    }
}

fn ticks(n: u64) -> Duration {
    Duration::from_millis(n * 1000 / TICKS_PER_SECOND)
}

/// CPU time of the other processes that matter to the figures (PostgreSQL,
/// Redis, the Kafka broker), by command name, summed over their processes.
pub fn by_command(names: &[&str]) -> Vec<(String, Duration)> {
    let mut sums: Vec<(String, Duration)> = names
        .iter()
        .map(|n| ((*n).to_owned(), Duration::ZERO))
        .collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        let comm = comm.trim();
        if let Some(slot) = sums.iter_mut().find(|(n, _)| comm.starts_with(n.as_str())) {
            slot.1 += process_time(pid).unwrap_or_default();
        }
    }
    sums
}

/// CPU time so far of this process (the load generator and the SMTP
/// stand-in) and of the backends; Herald's own processes are sampled by
/// `resources::Sampler`, which also counts a worker killed mid-run.
pub fn readings() -> Vec<(String, Duration)> {
    let mut times = Vec::new();
    if let Some(own) = process_time(std::process::id()) {
        times.push(("loadtest+smtp".to_owned(), own));
    }
    times.extend(by_command(&["postgres", "redis-server", "tansu"]));
    times
}

/// CPU spent between two readings.
pub fn spent(
    before: &[(String, Duration)],
    after: &[(String, Duration)],
) -> Vec<(String, Duration)> {
    after
        .iter()
        .map(|(name, t)| {
            let earlier = before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(Duration::ZERO, |(_, t)| *t);
            (name.clone(), t.saturating_sub(earlier))
        })
        .filter(|(_, t)| !t.is_zero())
        .collect()
}
