//! `--results`: one Markdown table row per run, appended to a file in the
//! manner of RESULTS.md, under a header written when the file does not end
//! with this table already.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::record::{LatencyMs, Record};

const HEADER: &str = "| date | revision | machine | command | notifications | delivered | missing / duplicates / unexpected / failed | deliveries/s | send rate/s | API latency p50 / p90 / p99 / p99.9 / max (ms) | end-to-end p50 / p90 / p99 / p99.9 / max (ms) | Herald CPU | Herald CPU per delivery | peak RSS | other CPU | ceilings (alone) | verdict |";

/// Appends the run's row, and the header first when needed.
pub fn append(path: &Path, record: &Record) -> anyhow::Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let addition = addition(&existing, &row(record));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.write_all(addition.as_bytes())
        .with_context(|| format!("appending to {}", path.display()))
}

/// What to append to `existing` so it ends with `row` in this table.
fn addition(existing: &str, row: &str) -> String {
    let mut out = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        out.push('\n');
    }
    if !ends_with_our_table(existing) {
        if !existing.trim().is_empty() {
            out.push('\n');
        }
        out.push_str(HEADER);
        out.push('\n');
        out.push_str(&separator());
        out.push('\n');
    }
    out.push_str(row);
    out.push('\n');
    out
}

/// Whether the last lines of `text` are this table's header and rows.
fn ends_with_our_table(text: &str) -> bool {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let Some(header) = lines.iter().rposition(|l| l.trim() == HEADER) else {
        return false;
    };
    lines[header + 1..]
        .iter()
        .all(|l| l.trim_start().starts_with('|'))
}

/// `|---|---:|…`, numbers right-aligned.
fn separator() -> String {
    let columns = HEADER.matches('|').count() - 1;
    let mut out = String::from("|");
    for i in 0..columns {
        out.push_str(if i < 4 || i == columns - 1 {
            "---|"
        } else {
            "---:|"
        });
    }
    out
}

/// The run as one table row.
pub fn row(r: &Record) -> String {
    let herald_cpu = r
        .herald_processes
        .iter()
        .map(|p| format!("{} {:.1} s", p.name, p.cpu_seconds))
        .collect::<Vec<_>>()
        .join(", ");
    let rss = r
        .herald_processes
        .iter()
        .map(|p| format!("{} {:.0} MiB", p.name, p.peak_rss_mib))
        .collect::<Vec<_>>()
        .join(", ");
    let other = r
        .other_cpu_seconds
        .iter()
        .map(|(name, s)| format!("{name} {s:.1} s"))
        .collect::<Vec<_>>()
        .join(", ");
    let per_delivery = r
        .herald_cpu_ms_per_delivery
        .map_or("—".to_owned(), |ms| format!("{ms:.2} ms"));
    let cells = [
        r.date.clone(),
        r.revision.clone().unwrap_or_else(|| "—".to_owned()),
        r.machine.describe(),
        format!("`{}`", r.command),
        r.notifications.to_string(),
        r.delivered.to_string(),
        format!(
            "{} / {} / {} / {}",
            r.missing, r.duplicates, r.unexpected, r.send_failures
        ),
        format!("{:.1}", r.deliveries_per_second),
        format!("{:.1}", r.send_rate),
        latencies(&r.api_latency_ms),
        latencies(&r.end_to_end_latency_ms),
        format!("{herald_cpu} (total {:.1} s)", r.herald_cpu_seconds),
        per_delivery,
        rss,
        other,
        ceilings(r),
        if r.passed { "pass" } else { "FAIL" }.to_owned(),
    ];
    let cells: Vec<String> = cells.iter().map(|c| cell(c)).collect();
    format!("| {} |", cells.join(" | "))
}

/// "kafka 9000/s, postgres 3000/s; herald 12.5 % of the slowest", or "—".
fn ceilings(r: &Record) -> String {
    let Some(share) = r.share_of_slowest_ceiling else {
        return "—".to_owned();
    };
    let alone: Vec<String> = r
        .ceilings
        .iter()
        .map(crate::ceilings::Ceiling::rate)
        .collect();
    format!(
        "{}; herald {:.1} % of the slowest",
        alone.join(", "),
        share * 100.0
    )
}

fn latencies(l: &LatencyMs) -> String {
    format!(
        "{:.1} / {:.1} / {:.1} / {:.1} / {:.1}",
        l.p50, l.p90, l.p99, l.p999, l.max
    )
}

/// A cell's text: one line, its pipes escaped.
fn cell(text: &str) -> String {
    text.replace('\n', " ").replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ceilings::Ceiling;
    use crate::machine::Machine;
    use crate::record::ProcessFigures;

    fn record() -> Record {
        let latency = LatencyMs {
            count: 10_000,
            p50: 46.9,
            p90: 60.25,
            p99: 71.5,
            p999: 90.0,
            max: 120.0,
            mean: 48.0,
        };
        Record {
            date: "2026-11-30T16:17:00Z".to_owned(),
            revision: Some("3a1608e-dirty".to_owned()),
            machine: Machine {
                cores: 2,
                memory_bytes: 24_570_008 * 1024,
                busy: Some(0.42),
            },
            command: "loadtest --mode embedded --rate 300 --herald-env 'HERALD_X=a|b'".to_owned(),
            title: "embedded".to_owned(),
            passed: true,
            notifications: 10_000,
            delivered: 10_000,
            missing: 0,
            duplicates: 0,
            unexpected: 0,
            send_failures: 0,
            deliveries_per_second: 299.64,
            elapsed_seconds: 33.4,
            send_rate: 300.0,
            send_seconds: 33.3,
            api_latency_ms: LatencyMs {
                p50: 2.0,
                ..latency
            },
            end_to_end_latency_ms: latency,
            max_lag_ms: 1.0,
            herald_processes: vec![ProcessFigures {
                name: "serve".to_owned(),
                cpu_seconds: 28.04,
                peak_rss_mib: 61.4,
            }],
            herald_cpu_seconds: 28.04,
            herald_cpu_ms_per_delivery: Some(2.804),
            other_cpu_seconds: vec![("loadtest+smtp".to_owned(), 4.0)],
            all_cpu_ms_per_delivery: Some(3.2),
            deliveries_each_second: vec![300; 33],
            herald_states: "sent 10100".to_owned(),
            herald_metrics: Vec::new(),
            ceilings: vec![Ceiling {
                name: "sqlite".to_owned(),
                records: 10_000,
                seconds: 4.0,
                per_second: 2500.0,
                machine_busy: Some(0.9),
            }],
            share_of_slowest_ceiling: Some(0.119856),
        }
    }

    #[test]
    fn a_run_is_one_row_with_every_figure_and_its_pipes_escaped() {
        assert_eq!(
            row(&record()),
            "| 2026-11-30T16:17:00Z | 3a1608e-dirty | 2 cores, 23.4 GiB, 42 % busy \
             | `loadtest --mode embedded --rate 300 --herald-env 'HERALD_X=a\\|b'` \
             | 10000 | 10000 | 0 / 0 / 0 / 0 | 299.6 | 300.0 \
             | 2.0 / 60.2 / 71.5 / 90.0 / 120.0 | 46.9 / 60.2 / 71.5 / 90.0 / 120.0 \
             | serve 28.0 s (total 28.0 s) | 2.80 ms | serve 61 MiB | loadtest+smtp 4.0 s \
             | sqlite 2500/s (machine 90 % busy); herald 12.0 % of the slowest | pass |"
        );
    }

    #[test]
    fn the_row_has_as_many_cells_as_the_header() {
        let cells = |line: &str| line.replace("\\|", "").matches('|').count();
        assert_eq!(cells(&row(&record())), cells(HEADER));
        assert_eq!(cells(&separator()), cells(HEADER));
    }

    #[test]
    fn a_new_file_gets_the_header_then_the_row() {
        assert_eq!(
            addition("", "| r |"),
            format!("{HEADER}\n{}\n| r |\n", separator())
        );
    }

    #[test]
    fn a_file_ending_with_this_table_gets_only_the_row() {
        let existing = format!("# Results\n\n{HEADER}\n{}\n| a |\n", separator());
        assert_eq!(addition(&existing, "| b |"), "| b |\n");
    }

    #[test]
    fn a_file_ending_with_prose_or_another_table_gets_a_new_table() {
        let prose = format!("{HEADER}\n{}\n| a |\n\nSome words.", separator());
        assert_eq!(
            addition(&prose, "| b |"),
            format!("\n\n{HEADER}\n{}\n| b |\n", separator())
        );
        let other = "| run | deliveries/s |\n|---|---:|\n| x | 1 |\n";
        assert_eq!(
            addition(other, "| b |"),
            format!("\n{HEADER}\n{}\n| b |\n", separator())
        );
    }
}
