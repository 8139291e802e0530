//! Where a run happened: the machine's cores and memory, and the exact
//! revision of the code, so a figure can be compared with another.

use std::path::Path;
use std::process::Command;

/// The machine a run was measured on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_bytes: u64,
    /// The share of all cores busy over the measured span, 0.0 to 1.0,
    /// whoever was using them (from /proc/stat).
    pub busy: Option<f64>,
}

impl Machine {
    pub fn here(busy: Option<f64>) -> Machine {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_bytes: memory_total(&meminfo).unwrap_or(0),
            busy,
        }
    }

    /// "2 cores, 23.4 GiB, 45 % busy".
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{} cores, {:.1} GiB",
            self.cores,
            self.memory_bytes as f64 / (1024.0 * 1024.0 * 1024.0)
        );
        if let Some(busy) = self.busy {
            text.push_str(&format!(", {:.0} % busy", busy * 100.0));
        }
        text
    }
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes.
pub fn memory_total(meminfo: &str) -> Option<u64> {
    let rest = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// `git rev-parse --short HEAD` of the repository at `dir`, with `-dirty`
/// when a tracked file differs from it; `None` outside a repository.
pub fn revision(dir: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let head = git(&["rev-parse", "--short", "HEAD"])?;
    let changes = git(&["status", "--porcelain", "--untracked-files=no"])?;
    Some(if changes.is_empty() {
        head
    } else {
        format!("{head}-dirty")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_gives_the_total_memory_in_bytes() {
        let meminfo = "MemTotal:       24570008 kB\nMemFree:         1638400 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(memory_total(meminfo), Some(24_570_008 * 1024));
        assert_eq!(memory_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn a_machine_describes_its_cores_memory_and_load() {
        let machine = Machine {
            cores: 2,
            memory_bytes: 24_570_008 * 1024,
            busy: Some(0.447),
        };
        assert_eq!(machine.describe(), "2 cores, 23.4 GiB, 45 % busy");
        let idle_unknown = Machine {
            busy: None,
            ..machine
        };
        assert_eq!(idle_unknown.describe(), "2 cores, 23.4 GiB");
    }

    #[test]
    fn this_repository_has_a_short_revision() {
        let revision = revision(Path::new(env!("CARGO_MANIFEST_DIR")));
        if let Some(revision) = revision {
            let head = revision.trim_end_matches("-dirty");
            assert!(
                head.len() >= 7 && head.chars().all(|c| c.is_ascii_hexdigit()),
                "{revision}"
            );
        }
    }

    #[test]
    fn a_folder_outside_any_repository_has_no_revision() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        assert_eq!(revision(dir.path()), None);
    }
}
