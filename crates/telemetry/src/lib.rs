//! Metrics: every name Herald exports is defined here, once, with its help
//! text. Labels are small, fixed sets (channel, stage, outcome…): never a
//! user id or anything else that grows with traffic.

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Records taken off a topic by a consuming stage; `result` is `ok`,
/// `poison` (dead-lettered), `retry` (a failure, tried again) or `alone`
/// (handed back by a batch to wait for something, e.g. a delivery another
/// worker holds, and handled again on its own).
pub const RECORDS_CONSUMED: &str = "herald_records_consumed_total";
/// Records sent to the DLQ, by the stage that refused them.
pub const DEAD_LETTERS: &str = "herald_dead_letters_total";
/// Deliveries finished by a worker, by channel and outcome (`sent`,
/// `failed`, `skipped`, `already_done`, `lost_claim`).
pub const DELIVERIES: &str = "herald_deliveries_total";
/// Deliveries the router suppressed, by channel and reason.
pub const SUPPRESSED: &str = "herald_suppressed_total";
/// Delivery jobs the router emitted, by channel.
pub const JOBS_ROUTED: &str = "herald_jobs_routed_total";
/// Time a provider took to answer, by channel, provider and result.
pub const PROVIDER_SECONDS: &str = "herald_provider_request_seconds";
/// Attempts that failed transiently and will be retried, by channel.
pub const RETRIES: &str = "herald_retries_total";
/// Records a consumer group has not finished, by topic (queue lag).
pub const QUEUE_BACKLOG: &str = "herald_queue_backlog";
/// Outbox rows published by the relay.
pub const OUTBOX_RELAYED: &str = "herald_outbox_relayed_total";
/// Times Redis could not be reached and Herald fell back, by use
/// (`claims`, `rate_limit`).
pub const REDIS_FALLBACKS: &str = "herald_redis_fallbacks_total";
/// HTTP requests answered, by route and status class.
pub const HTTP_REQUESTS: &str = "herald_http_requests_total";
/// Deliveries left waiting by a rule, by channel and rule (`quiet_hours`,
/// `send_at`, `frequency_cap`, `grouped`, `retry`).
pub const DEFERRED: &str = "herald_deferred_total";
/// Durable timers fired, by kind and result (`ok`, `retry`, `failed`).
pub const TIMERS_FIRED: &str = "herald_timers_fired_total";
/// How late timers fire after they are due, by kind.
pub const TIMER_LATENESS_SECONDS: &str = "herald_timer_lateness_seconds";
/// Timers waiting to fire.
pub const TIMERS_PENDING: &str = "herald_timers_pending";
/// Records a consuming stage handled together, by stage.
pub const BATCH_RECORDS: &str = "herald_batch_records";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP: Duration = Duration::from_secs(5);

/// The thread that does it, by name.
pub const UPKEEP_THREAD: &str = "herald-metrics-upkeep";

/// Set by the upkeep thread once it runs.
static UPKEEP_STARTED: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());

/// Waits up to `timeout` for the upkeep thread to be running; whether it is.
pub fn upkeep_running(timeout: Duration) -> bool {
    let (started, ran) = &UPKEEP_STARTED;
    let Ok(guard) = started.lock() else {
        return false;
    };
    ran.wait_timeout_while(guard, timeout, |started| !*started)
        .map(|(started, _)| *started)
        .unwrap_or(false)
}

/// Installs the process-wide Prometheus recorder (once) and returns the
/// handle that renders `/metrics`.
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(PROVIDER_SECONDS.to_owned()),
                    &[
                        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(TIMER_LATENESS_SECONDS.to_owned()),
                        &[
                            0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0, 120.0, 600.0,
                        ],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(BATCH_RECORDS.to_owned()),
                        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new())
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed already (a test harness);
            // then ours still renders whatever is recorded through it.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            // A histogram keeps every sample until the next render or
            // upkeep. A recorder built rather than installed gets no upkeep
            // of its own, so without this a process nobody scrapes grows by
            // 8 bytes a sample: measured, 20 million provider-latency samples
            // (an hour or two at a few thousand deliveries/s) added 322 MB
            // of RSS, and 1.6 MB with upkeep.
            let upkept = handle.clone();
            let spawned = std::thread::Builder::new()
                .name(UPKEEP_THREAD.to_owned())
                .spawn(move || {
                    let (started, ran) = &UPKEEP_STARTED;
                    if let Ok(mut started) = started.lock() {
                        *started = true;
                        ran.notify_all();
                    }
                    loop {
                        std::thread::sleep(UPKEEP);
                        upkept.run_upkeep();
                    }
                });
            if let Err(e) = spawned {
                eprintln!("herald: no metrics upkeep thread ({e}); histograms grow until scraped");
            }
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(
        RECORDS_CONSUMED,
        "Records taken off a topic, by stage and result"
    );
    describe_counter!(DEAD_LETTERS, "Records sent to the DLQ, by stage");
    describe_counter!(
        DELIVERIES,
        "Deliveries finished by workers, by channel and outcome"
    );
    describe_counter!(
        SUPPRESSED,
        "Deliveries suppressed by the router, by channel and reason"
    );
    describe_counter!(
        JOBS_ROUTED,
        "Delivery jobs emitted by the router, by channel"
    );
    describe_histogram!(
        PROVIDER_SECONDS,
        Unit::Seconds,
        "Provider call latency, by channel, provider and result"
    );
    describe_counter!(
        RETRIES,
        "Transient failures that will be retried, by channel"
    );
    describe_gauge!(
        QUEUE_BACKLOG,
        "Records not yet finished by the consuming group, by topic"
    );
    describe_counter!(OUTBOX_RELAYED, "Outbox rows published");
    describe_counter!(
        REDIS_FALLBACKS,
        "Times Redis was unreachable and Herald fell back, by use"
    );
    describe_counter!(HTTP_REQUESTS, "HTTP requests, by route and status class");
    describe_counter!(
        DEFERRED,
        "Deliveries left waiting by a rule, by channel and rule"
    );
    describe_counter!(TIMERS_FIRED, "Durable timers fired, by kind and result");
    describe_histogram!(
        TIMER_LATENESS_SECONDS,
        Unit::Seconds,
        "How long after its due time a timer fired, by kind"
    );
    describe_gauge!(TIMERS_PENDING, "Durable timers waiting to fire");
    describe_histogram!(
        BATCH_RECORDS,
        Unit::Count,
        "Records a consuming stage handled together, by stage"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Histograms stay bounded in a process nobody scrapes only if
    /// something runs the recorder's upkeep.
    #[test]
    fn the_recorder_comes_with_its_upkeep_thread() {
        let handle = prometheus();
        metrics::histogram!(PROVIDER_SECONDS, "channel" => "email").record(0.002);
        handle.run_upkeep();
        assert!(handle
            .render()
            .contains("herald_provider_request_seconds_count"));
        assert!(upkeep_running(Duration::from_secs(10)));
        let threads = std::fs::read_dir("/proc/self/task").expect("Linux /proc");
        let names: Vec<String> = threads
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_owned())
            .collect();
        // `comm` holds the first 15 bytes of a thread's name.
        assert!(
            names
                .iter()
                .any(|n| UPKEEP_THREAD.starts_with(n.as_str()) && n.len() == 15),
            "no upkeep thread among {names:?}"
        );
    }
}
