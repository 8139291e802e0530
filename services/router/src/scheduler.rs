//! The scheduler: fires durable timers when they fall due.
//!
//! One step ([`Scheduler::fire_due`]) leases a batch of due timers and fires
//! them, a few at a time; a thin loop ([`Scheduler::run`]) repeats it,
//! sleeping until the next timer is due (or a poll interval, since another
//! process may have set an earlier one), or until poked. Every router runs
//! one; leases make each timer fire once however many run, and a timer
//! whose runner died fires when its lease ends. After downtime, everything
//! overdue fires at once: late, never lost.
//!
//! A timer whose handling fails on our side (database, bus) is given back
//! with a backoff; one that can never work (a poison payload) is logged and
//! dropped.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use herald_bus::Bus;
use herald_domain::{Clock, DeliveryId};
use herald_store::{Store, Timer, TimerKind};
use herald_templates::TemplateStore;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::expand::expand_page;
use crate::fire::Escalated;
use crate::judge::Judge;
use crate::RouteError;

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Timers leased at once.
    pub batch: i64,
    /// Timers fired at once.
    pub concurrency: usize,
    /// How long a leased timer is kept from other runners.
    pub lease: Duration,
    /// The longest an idle runner sleeps before looking again.
    pub poll_interval: Duration,
    /// A name for this process in lease tokens.
    pub runner_id: String,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            batch: 64,
            concurrency: 8,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(500),
            runner_id: format!("scheduler-{}", std::process::id()),
        }
    }
}

pub struct Scheduler {
    judge: Judge,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    config: SchedulerConfig,
}

/// What one timer's firing came to.
enum Fired {
    /// Done: delete the timer.
    Done,
    /// Fire again at this time, with this payload (a topic's next page, an
    /// escalation whose first channel has not gone out).
    Again(DateTime<Utc>, Option<String>),
}

impl Scheduler {
    pub fn new(
        store: Store,
        bus: Arc<dyn Bus>,
        templates: TemplateStore,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
        config: SchedulerConfig,
    ) -> Self {
        Scheduler {
            judge: Judge {
                store,
                bus,
                templates,
            },
            clock,
            wake,
            config,
        }
    }

    /// Fires the timers due now. Returns how many it leased.
    pub async fn fire_due(&self) -> Result<usize, RouteError> {
        let now = self.clock.now();
        let token = format!(
            "{}:{}",
            self.config.runner_id,
            uuid::Uuid::new_v4().simple()
        );
        let lease = chrono::Duration::from_std(self.config.lease).unwrap_or_default();
        let timers = self
            .judge
            .store
            .lease_due_timers(&token, self.config.batch, now, now + lease)
            .await?;
        let leased = timers.len();
        futures::stream::iter(timers)
            .for_each_concurrent(self.config.concurrency, |timer| {
                let token = token.clone();
                async move { self.settle(timer, &token).await }
            })
            .await;
        Ok(leased)
    }

    /// Fires one timer and records how it went.
    async fn settle(&self, timer: Timer, token: &str) {
        let now = self.clock.now();
        let lateness = (now - timer.due_at).to_std().unwrap_or_default();
        metrics::histogram!(herald_telemetry::TIMER_LATENESS_SECONDS, "kind" => timer.kind.as_str())
            .record(lateness.as_secs_f64());
        let store = &self.judge.store;
        let (result, settled) = match self.fire(&timer, now).await {
            Ok(Fired::Done) => ("ok", store.complete_timer(&timer.id, token).await),
            Ok(Fired::Again(at, payload)) => {
                let payload = payload.unwrap_or_else(|| timer.payload.clone());
                (
                    "ok",
                    store.advance_timer(&timer.id, token, at, &payload).await,
                )
            }
            Err(RouteError::Poison(reason)) => {
                tracing::error!(timer = %timer.id, %reason, "timer cannot be fired; what it held fails");
                // Nothing waits forever on a timer that can never work.
                match store
                    .fail_waiting(timer.kind, &timer.subject, &reason, now)
                    .await
                {
                    Ok(_) => ("failed", store.complete_timer(&timer.id, token).await),
                    Err(e) => ("retry", Err(e)),
                }
            }
            Err(e) => {
                let wait = backoff(timer.fired);
                tracing::warn!(timer = %timer.id, error = %e, retry_in = ?wait, "timer failed; will fire again");
                let at = now + chrono::Duration::from_std(wait).unwrap_or_default();
                ("retry", store.retry_timer(&timer.id, token, at).await)
            }
        };
        metrics::counter!(herald_telemetry::TIMERS_FIRED, "kind" => timer.kind.as_str(), "result" => result)
            .increment(1);
        if let Err(e) = settled {
            // The lease runs out and the timer fires again; every handler
            // tolerates that.
            tracing::warn!(timer = %timer.id, error = %e, "cannot settle a fired timer");
        }
    }

    async fn fire(&self, timer: &Timer, now: DateTime<Utc>) -> Result<Fired, RouteError> {
        let delivery = || {
            DeliveryId::parse(&timer.subject)
                .map_err(|e| RouteError::Poison(format!("timer {}: {e}", timer.id)))
        };
        match timer.kind {
            TimerKind::Release => {
                self.judge.release(delivery()?, now).await?;
            }
            TimerKind::Retry => self.judge.requeue(delivery()?, now).await?,
            TimerKind::DigestClose => {
                self.judge.close_digest(delivery()?, now).await?;
            }
            TimerKind::Escalate => {
                if let Escalated::Later(at) = self.judge.escalate(delivery()?, now).await? {
                    return Ok(Fired::Again(at, None));
                }
            }
            TimerKind::Expand => {
                let expanded = expand_page(&self.judge, timer, now).await?;
                tracing::debug!(timer = %timer.id, routed = ?expanded.routed, "topic page routed");
                // A finished expansion stays as a tombstone that never falls
                // due, so the same event handled again does not start over.
                let (at, cursor) = match expanded.next {
                    Some(next) => (now, next),
                    None => (never(), expanded.done),
                };
                return Ok(Fired::Again(at, Some(cursor.payload()?)));
            }
        }
        Ok(Fired::Done)
    }

    /// Fires timers until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failures = 0u32;
        loop {
            let woken = self.wake.clone();
            let notified = woken.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = match self.fire_due().await {
                Ok(n) if n as i64 >= self.config.batch => {
                    failures = 0;
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    self.until_next().await
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, failures, "scheduler pass failed; will retry");
                    self.config.poll_interval * failures.clamp(1, 20)
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = notified => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// How long to sleep: until the next timer is due, at most a poll interval.
    async fn until_next(&self) -> Duration {
        let now = self.clock.now();
        match self.judge.store.next_timer_due(now).await {
            Ok(Some(due)) => (due - now)
                .to_std()
                .unwrap_or_default()
                .min(self.config.poll_interval),
            _ => self.config.poll_interval,
        }
    }
}

/// A due time no timer reaches: 9999-12-31.
fn never() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(253_402_214_400, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Waits before firing a failed timer again: 1 s, 2 s, 4 s… up to 5 minutes.
fn backoff(fired: i64) -> Duration {
    let exponent = u32::try_from(fired.clamp(1, 20) - 1).unwrap_or(0);
    Duration::from_secs(1u64 << exponent).min(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_timers_back_off_exponentially_up_to_five_minutes() {
        let table = [
            (1, 1),
            (2, 2),
            (3, 4),
            (9, 256),
            (10, 300),
            (60, 300),
            (0, 1),
        ];
        for (fired, secs) in table {
            assert_eq!(backoff(fired), Duration::from_secs(secs), "{fired}");
        }
    }
}
