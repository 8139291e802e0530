//! Herald's own counters at the end of a run, summed over its processes:
//! retries, lost claims and dead letters explain figures that look wrong.

use std::collections::BTreeMap;

/// The series worth printing next to the figures.
const WATCHED: &[&str] = &[
    "herald_deliveries_total",
    "herald_retries_total",
    "herald_dead_letters_total",
    "herald_records_consumed_total",
    "herald_redis_fallbacks_total",
    "herald_outbox_relayed_total",
];

/// `name{labels} value` for each watched series, summed over `bases`.
/// A process that does not answer is skipped: these are hints, not figures.
pub async fn scrape(client: &reqwest::Client, bases: &[String]) -> Vec<String> {
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    for base in bases {
        let Ok(answer) = client.get(format!("{base}/metrics")).send().await else {
            continue;
        };
        let Ok(text) = answer.text().await else {
            continue;
        };
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let name = series.split('{').next().unwrap_or(series);
            if !WATCHED.contains(&name) {
                continue;
            }
            if let Ok(value) = value.parse::<f64>() {
                *sums.entry(series.to_owned()).or_default() += value;
            }
        }
    }
    sums.into_iter()
        .map(|(series, value)| format!("{series} {value}"))
        .collect()
}
