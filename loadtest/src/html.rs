//! `--html`: one self-contained page (no script, no external file) with the
//! figures, a histogram of each latency and deliveries per second over the
//! run, drawn as inline SVG.

use std::fmt::Write as _;
use std::time::Duration;

use crate::latency::Latencies;
use crate::record::{LatencyMs, Record};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
/// Room for the axis labels.
const MARGIN: f64 = 40.0;
const BINS: u32 = 40;

pub fn page(record: &Record, api: &Latencies, end_to_end: &Latencies) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Herald load test {}</title>\n<style>{STYLE}</style></head><body>\n",
        escape(&record.date)
    );
    let _ = writeln!(out, "<h1>Herald load test</h1>");
    let _ = writeln!(out, "<p class=\"title\">{}</p>", escape(&record.title));
    let _ = writeln!(out, "<table>");
    let mut row = |name: &str, value: String| {
        let _ = writeln!(out, "<tr><th>{name}</th><td>{}</td></tr>", escape(&value));
    };
    row("date", record.date.clone());
    row(
        "revision",
        record.revision.clone().unwrap_or_else(|| "—".to_owned()),
    );
    row("machine", record.machine.describe());
    row("command", record.command.clone());
    row(
        "verdict",
        if record.passed { "pass" } else { "FAIL" }.to_owned(),
    );
    row(
        "delivered",
        format!(
            "{} of {} (missing {}, duplicates {}, unexpected {}, send failures {})",
            record.delivered,
            record.notifications,
            record.missing,
            record.duplicates,
            record.unexpected,
            record.send_failures
        ),
    );
    row(
        "deliveries/s",
        format!(
            "{:.1} ({:.2} s from the first send to the last arrival)",
            record.deliveries_per_second, record.elapsed_seconds
        ),
    );
    row(
        "send rate",
        format!(
            "{:.1}/s over {:.2} s",
            record.send_rate, record.send_seconds
        ),
    );
    row("API latency", latencies(&record.api_latency_ms));
    row(
        "end-to-end latency",
        latencies(&record.end_to_end_latency_ms),
    );
    row(
        "schedule lag",
        format!("{:.1} ms at most", record.max_lag_ms),
    );
    for p in &record.herald_processes {
        row(
            &format!("herald {}", p.name),
            format!(
                "CPU {:.1} s, peak RSS {:.0} MiB",
                p.cpu_seconds, p.peak_rss_mib
            ),
        );
    }
    row(
        "Herald CPU per delivery",
        record
            .herald_cpu_ms_per_delivery
            .map_or("—".to_owned(), |ms| format!("{ms:.2} ms")),
    );
    row(
        "all CPU per delivery",
        record
            .all_cpu_ms_per_delivery
            .map_or("—".to_owned(), |ms| format!("{ms:.2} ms")),
    );
    for (name, seconds) in &record.other_cpu_seconds {
        row(&format!("{name} CPU"), format!("{seconds:.1} s"));
    }
    for c in &record.ceilings {
        row(
            &format!("{} alone", c.name),
            format!(
                "{:.0}/s ({} in {:.2} s{})",
                c.per_second,
                c.records,
                c.seconds,
                c.machine_busy
                    .map(|b| format!(", machine {:.0} % busy", b * 100.0))
                    .unwrap_or_default()
            ),
        );
    }
    if let Some(share) = record.share_of_slowest_ceiling {
        row(
            "share of the slowest ceiling",
            format!("{:.1} %", share * 100.0),
        );
    }
    row("Herald's records", record.herald_states.clone());
    let _ = writeln!(out, "</table>");
    let _ = writeln!(out, "<h2>End-to-end latency</h2>");
    out.push_str(&histogram(end_to_end));
    let _ = writeln!(out, "<h2>API latency</h2>");
    out.push_str(&histogram(api));
    let _ = writeln!(out, "<h2>Deliveries per second</h2>");
    out.push_str(&over_time(&record.deliveries_each_second));
    if !record.herald_metrics.is_empty() {
        let _ = writeln!(out, "<h2>Herald's counters</h2><pre>");
        for metric in &record.herald_metrics {
            let _ = writeln!(out, "{}", escape(metric));
        }
        let _ = writeln!(out, "</pre>");
    }
    out.push_str("</body></html>\n");
    out
}

const STYLE: &str = "body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}\
    th{text-align:left;padding-right:1em;vertical-align:top}td{font-family:monospace}\
    svg{background:#fafafa;border:1px solid #ddd}.title{white-space:pre-line}";

fn latencies(l: &LatencyMs) -> String {
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms, mean {:.1} ms ({} values)",
        l.p50, l.p90, l.p99, l.p999, l.max, l.mean, l.count
    )
}

/// Bars of equal width from 0 to the p99.9; the last bar holds the rest
/// up to the max. Lines mark p50 and p99.
pub fn histogram(latencies: &Latencies) -> String {
    let summary = latencies.summary();
    let top = summary.p999.max(Duration::from_micros(BINS.into()));
    let width = top / BINS;
    let counts: Vec<u64> = (0..BINS)
        .map(|i| {
            let to = if i + 1 == BINS {
                summary.max + Duration::from_micros(1)
            } else {
                width * (i + 1)
            };
            latencies.count_between(width * i, to)
        })
        .collect();
    let highest = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let plot_w = WIDTH - 2.0 * MARGIN;
    let plot_h = HEIGHT - 2.0 * MARGIN;
    let bar_w = plot_w / f64::from(BINS);
    let mut svg = open_svg();
    for (i, count) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
        let h = *count as f64 / highest * plot_h;
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#4a7ab5\"><title>{count}</title></rect>",
            MARGIN + i as f64 * bar_w,
            MARGIN + plot_h - h,
            (bar_w - 1.0).max(1.0),
        );
    }
    let x_of = |d: Duration| MARGIN + (d.as_secs_f64() / top.as_secs_f64()).min(1.0) * plot_w;
    for (name, at) in [("p50", summary.p50), ("p99", summary.p99)] {
        let x = x_of(at);
        // A label near the right edge is written leftwards from its line.
        let (label_x, anchor) = if x > WIDTH * 0.7 {
            (x - 3.0, "end")
        } else {
            (x + 3.0, "start")
        };
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{MARGIN}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#c33\" stroke-dasharray=\"4 3\"/>\
             <text x=\"{label_x:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#c33\" text-anchor=\"{anchor}\">{name} {:.1} ms</text>",
            MARGIN + plot_h,
            MARGIN - 4.0,
            at.as_secs_f64() * 1000.0
        );
    }
    axes(
        &mut svg,
        "0 ms",
        &format!("{:.1} ms (p99.9; the last bar holds the rest)", ms(top)),
        &format!("{} deliveries at most per bar", highest as u64),
    );
    svg.push_str("</svg>\n");
    svg
}

/// One bar per second of the run.
pub fn over_time(per_second: &[u64]) -> String {
    let highest = per_second.iter().copied().max().unwrap_or(0).max(1) as f64;
    let plot_w = WIDTH - 2.0 * MARGIN;
    let plot_h = HEIGHT - 2.0 * MARGIN;
    let bar_w = plot_w / per_second.len().max(1) as f64;
    let mut svg = open_svg();
    for (i, count) in per_second.iter().enumerate().filter(|(_, c)| **c > 0) {
        let h = *count as f64 / highest * plot_h;
        let _ = write!(
            svg,
            "<rect x=\"{:.2}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{h:.1}\" fill=\"#5a9e6f\"><title>second {i}: {count}</title></rect>",
            MARGIN + i as f64 * bar_w,
            MARGIN + plot_h - h,
            bar_w.max(0.5),
        );
    }
    axes(
        &mut svg,
        "0 s",
        &format!("{} s after the first send", per_second.len()),
        &format!("{} deliveries/s at most", highest as u64),
    );
    svg.push_str("</svg>\n");
    svg
}

fn open_svg() -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\">"
    )
}

fn axes(svg: &mut String, left: &str, right: &str, top: &str) {
    let bottom = HEIGHT - MARGIN;
    let _ = write!(
        svg,
        "<line x1=\"{MARGIN}\" y1=\"{bottom}\" x2=\"{:.1}\" y2=\"{bottom}\" stroke=\"#333\"/>\
         <line x1=\"{MARGIN}\" y1=\"{MARGIN}\" x2=\"{MARGIN}\" y2=\"{bottom}\" stroke=\"#333\"/>\
         <text x=\"{MARGIN}\" y=\"{:.1}\" font-size=\"11\">{}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>\
         <text x=\"{MARGIN}\" y=\"{:.1}\" font-size=\"11\">{}</text>",
        WIDTH - MARGIN,
        bottom + 15.0,
        escape(left),
        WIDTH - MARGIN,
        bottom + 15.0,
        escape(right),
        MARGIN - 20.0,
        escape(top),
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_has_a_bar_per_occupied_bin_and_marks_p50_and_p99() {
        let mut latencies = Latencies::default();
        for ms in [10, 10, 10, 20, 400] {
            latencies.record(Duration::from_millis(ms));
        }
        let svg = histogram(&latencies);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // 10 ms and 20 ms fall in bins of their own; 400 ms is the p99.9,
        // in the last bin.
        assert_eq!(svg.matches("<rect").count(), 3, "{svg}");
        assert!(svg.contains("<title>3</title>"));
        assert!(svg.contains(">p50 10.0 ms<"), "{svg}");
        assert!(svg.contains(">p99 400."), "{svg}");
    }

    #[test]
    fn an_empty_histogram_is_an_empty_plot() {
        let svg = histogram(&Latencies::default());
        assert_eq!(svg.matches("<rect").count(), 0);
        assert!(svg.contains("</svg>"));
    }

    #[test]
    fn deliveries_over_time_draw_one_bar_per_busy_second_scaled_to_the_busiest() {
        let svg = over_time(&[100, 0, 300, 150]);
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("second 2: 300"));
        // The busiest second fills the plot's height.
        let plot_h = HEIGHT - 2.0 * MARGIN;
        assert!(svg.contains(&format!("height=\"{plot_h:.1}\"")), "{svg}");
        assert!(svg.contains("300 deliveries/s at most"));
    }

    #[test]
    fn text_in_the_page_is_escaped() {
        assert_eq!(
            escape("--herald-env 'A=<b>&\"'"),
            "--herald-env 'A=&lt;b&gt;&amp;&quot;'"
        );
    }
}
