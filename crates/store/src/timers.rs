//! Durable timers: "do this at time T".
//!
//! One table holds every wait Herald has: a delivery deferred by quiet
//! hours, a cap or `send_at`; a retry's backoff; a digest window; an
//! escalation check; the next page of a topic's subscribers. A timer's id
//! names its purpose (`release:<delivery>`), so scheduling the same thing
//! twice keeps one timer, at the later request's time.
//!
//! Runners lease due timers the way workers claim deliveries: a conditional
//! update with a token and an end, `FOR UPDATE SKIP LOCKED` on PostgreSQL,
//! so several runners never fire one timer at once, and a timer whose runner
//! died is fired again when its lease ends (late rather than never). A fired
//! timer is deleted only by the runner that holds it, and only if nobody
//! rescheduled it meanwhile: rescheduling clears the lease.

use std::fmt;

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::{from_millis, millis, Dialect, Store, StoreError};

/// What a timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// Decide a deferred delivery again (quiet hours, caps, `send_at`).
    Release,
    /// Hand a delivery waiting out a retry backoff back to its queue.
    Retry,
    /// Close a digest window and send the digest.
    DigestClose,
    /// Send a second channel if the first was not read.
    Escalate,
    /// Route the next page of a topic's subscribers.
    Expand,
}

impl TimerKind {
    pub const ALL: [TimerKind; 5] = [
        TimerKind::Release,
        TimerKind::Retry,
        TimerKind::DigestClose,
        TimerKind::Escalate,
        TimerKind::Expand,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::Release => "release",
            TimerKind::Retry => "retry",
            TimerKind::DigestClose => "digest_close",
            TimerKind::Escalate => "escalate",
            TimerKind::Expand => "expand",
        }
    }

    fn parse(value: &str) -> Result<Self, StoreError> {
        TimerKind::ALL
            .into_iter()
            .find(|k| k.as_str() == value)
            .ok_or_else(|| StoreError::corrupt("timer", format!("unknown kind {value:?}")))
    }
}

impl fmt::Display for TimerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A timer to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTimer {
    pub kind: TimerKind,
    /// What it is about: a delivery id, a digest id, a notification and topic.
    pub subject: String,
    pub due_at: DateTime<Utc>,
    /// Whatever else the firing needs, as JSON.
    pub payload: String,
}

impl NewTimer {
    pub fn new(kind: TimerKind, subject: impl Into<String>, due_at: DateTime<Utc>) -> Self {
        NewTimer {
            kind,
            subject: subject.into(),
            due_at,
            payload: "{}".into(),
        }
    }

    pub fn with_payload(mut self, payload: impl Into<String>) -> Self {
        self.payload = payload.into();
        self
    }

    /// One timer per kind and subject.
    pub fn id(&self) -> String {
        timer_id(self.kind, &self.subject)
    }
}

pub fn timer_id(kind: TimerKind, subject: &str) -> String {
    format!("{kind}:{subject}")
}

/// A due timer leased to one runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub id: String,
    pub kind: TimerKind,
    pub subject: String,
    pub due_at: DateTime<Utc>,
    pub payload: String,
    /// How many times it has been leased, this time included.
    pub fired: i64,
}

fn timer_from_row(row: &sqlx::any::AnyRow) -> Result<Timer, StoreError> {
    Ok(Timer {
        id: row.try_get("id")?,
        kind: TimerKind::parse(&row.try_get::<String, _>("kind")?)?,
        subject: row.try_get("subject")?,
        due_at: from_millis(row.try_get("due_at")?),
        payload: row.try_get("payload")?,
        fired: row.try_get("fired")?,
    })
}

/// What inserting a timer does to one that exists with its id.
enum OnConflict {
    /// Move it (and clear its lease).
    Move,
    /// Leave it.
    Keep,
}

/// What setting a timer that exists does when it moves it: the new time
/// and payload, and no lease (the runner that holds it must not delete it).
const MOVE: &str = "DO UPDATE SET due_at = excluded.due_at, payload = excluded.payload, \
                    lease_token = NULL, lease_until = 0";

/// Inserts a timer; returns whether a row was written.
async fn insert_timer(
    conn: &mut sqlx::AnyConnection,
    timer: &NewTimer,
    now: DateTime<Utc>,
    on_conflict: OnConflict,
) -> Result<bool, StoreError> {
    let conflict = match on_conflict {
        OnConflict::Move => MOVE,
        OnConflict::Keep => "DO NOTHING",
    };
    let sql = format!(
        "INSERT INTO timers (id, kind, subject, due_at, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) {conflict}"
    );
    let done = sqlx::query(&sql)
        .bind(timer.id())
        .bind(timer.kind.as_str())
        .bind(timer.subject.as_str())
        .bind(millis(timer.due_at))
        .bind(timer.payload.as_str())
        .bind(millis(now))
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets (or moves) a timer inside `tx`. Moving one clears its lease, so the
/// runner that holds it does not delete it when it finishes.
pub(crate) async fn schedule(
    tx: &mut crate::WriteTx,
    timer: &NewTimer,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    insert_timer(tx, timer, now, OnConflict::Move).await?;
    Ok(())
}

/// [`schedule`] for many timers, a hundred to a statement. Of two with the
/// same id, the later wins, as if they were set one after the other.
pub(crate) async fn schedule_all(
    tx: &mut crate::WriteTx,
    timers: &[&NewTimer],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    // One statement may not move the same row twice (PostgreSQL refuses).
    let mut last: Vec<(String, &NewTimer)> = Vec::with_capacity(timers.len());
    let mut at = std::collections::HashMap::with_capacity(timers.len());
    for timer in timers {
        let id = timer.id();
        match at.get(&id) {
            Some(&i) => last[i] = (id, *timer),
            None => {
                at.insert(id.clone(), last.len());
                last.push((id, *timer));
            }
        }
    }
    for chunk in last.chunks(100) {
        let sql = format!(
            "INSERT INTO timers (id, kind, subject, due_at, payload, created_at) VALUES {} \
             ON CONFLICT (id) {MOVE}",
            crate::values_rows(chunk.len(), 6)
        );
        let mut query = sqlx::query(&sql);
        for (id, timer) in chunk {
            query = query
                .bind(id.as_str())
                .bind(timer.kind.as_str())
                .bind(timer.subject.as_str())
                .bind(millis(timer.due_at))
                .bind(timer.payload.as_str())
                .bind(millis(now));
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Removes a timer inside `tx`, whoever holds it; returns whether there was one.
pub(crate) async fn cancel(
    tx: &mut crate::WriteTx,
    kind: TimerKind,
    subject: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM timers WHERE id = $1")
        .bind(timer_id(kind, subject))
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

impl Store {
    /// Sets (or moves) a timer on its own.
    pub async fn schedule_timer(
        &self,
        timer: &NewTimer,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().await?;
        schedule(&mut tx, timer, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets a timer unless one with its id exists (it may be under way).
    pub async fn schedule_timer_once(
        &self,
        timer: &NewTimer,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.db.writer().await?;
        insert_timer(&mut conn, timer, now, OnConflict::Keep).await
    }

    /// Moves a leased timer on: it fires again at `due_at` with `payload`
    /// (the next page of a topic), if `token` still holds it.
    pub async fn advance_timer(
        &self,
        id: &str,
        token: &str,
        due_at: DateTime<Utc>,
        payload: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE timers SET due_at = $3, payload = $4, lease_token = NULL, lease_until = 0, \
               fired = 0 WHERE id = $1 AND lease_token = $2",
        )
        .bind(id)
        .bind(token)
        .bind(millis(due_at))
        .bind(payload)
        .execute(&mut *self.db.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Leases up to `limit` timers due by `now`, earliest first, to `token`
    /// until `lease_until`.
    #[tracing::instrument(skip(self, token))]
    pub async fn lease_due_timers(
        &self,
        token: &str,
        limit: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Timer>, StoreError> {
        let lock = match self.db.dialect() {
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE timers SET lease_token = $1, lease_until = $2, fired = fired + 1 WHERE id IN \
               (SELECT id FROM timers WHERE due_at <= $3 AND lease_until < $3 \
                ORDER BY due_at LIMIT $4 {lock}) \
             RETURNING id, kind, subject, due_at, payload, fired"
        );
        let rows = sqlx::query(&sql)
            .bind(token)
            .bind(millis(lease_until))
            .bind(millis(now))
            .bind(limit)
            .fetch_all(&mut *self.db.writer().await?)
            .await?;
        let mut timers = rows
            .iter()
            .map(timer_from_row)
            .collect::<Result<Vec<_>, StoreError>>()?;
        timers.sort_by_key(|t| t.due_at);
        Ok(timers)
    }

    /// Deletes a fired timer, if `token` still holds it (nobody moved it).
    pub async fn complete_timer(&self, id: &str, token: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM timers WHERE id = $1 AND lease_token = $2")
            .bind(id)
            .bind(token)
            .execute(&mut *self.db.writer().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a leased timer back to fire again at `due_at` (after a failure).
    pub async fn retry_timer(
        &self,
        id: &str,
        token: &str,
        due_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE timers SET due_at = $3, lease_token = NULL, lease_until = 0 \
             WHERE id = $1 AND lease_token = $2",
        )
        .bind(id)
        .bind(token)
        .bind(millis(due_at))
        .execute(&mut *self.db.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// When the earliest timer that nobody holds is due, for a runner's sleep.
    pub async fn next_timer_due(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = sqlx::query("SELECT MIN(due_at) AS due FROM timers WHERE lease_until < $1")
            .bind(millis(now))
            .fetch_one(self.db.read())
            .await?;
        Ok(row.try_get::<Option<i64>, _>("due")?.map(from_millis))
    }

    /// A timer by kind and subject, for tests and the API.
    pub async fn get_timer(
        &self,
        kind: TimerKind,
        subject: &str,
    ) -> Result<Option<Timer>, StoreError> {
        let row = sqlx::query(
            "SELECT id, kind, subject, due_at, payload, fired FROM timers WHERE id = $1",
        )
        .bind(timer_id(kind, subject))
        .fetch_optional(self.db.read())
        .await?;
        row.as_ref().map(timer_from_row).transpose()
    }

    /// Timers waiting, for metrics.
    pub async fn timers_pending(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM timers")
            .fetch_one(self.db.read())
            .await?;
        Ok(row.try_get("n")?)
    }
}

impl Store {
    /// Ends what a timer that can never fire was holding (its template was
    /// removed, its payload is unreadable): a waiting delivery, or a
    /// digest's waiting members, becomes `failed` with the reason, rather
    /// than waiting forever. Other kinds hold nothing.
    pub async fn fail_waiting(
        &self,
        kind: TimerKind,
        subject: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let step = herald_domain::TraceStep::new(
            herald_domain::Rule::Queue,
            herald_domain::Outcome::Failed,
            now,
        )
        .because(reason.chars().take(300).collect::<String>());
        let trace = crate::deliveries::encode_trace(std::slice::from_ref(&step))?;
        let (filter, key) = match kind {
            TimerKind::Release | TimerKind::Retry => ("id = $1", subject.to_owned()),
            TimerKind::DigestClose => {
                let carrier: Option<String> =
                    sqlx::query_scalar("SELECT carrier FROM digests WHERE id = $1")
                        .bind(subject)
                        .fetch_optional(self.db.read())
                        .await?;
                let Some(carrier) = carrier else {
                    return Ok(0);
                };
                ("digest_id = $1", carrier)
            }
            TimerKind::Escalate | TimerKind::Expand => return Ok(0),
        };
        let sql = format!(
            "UPDATE deliveries SET state = 'failed', last_error = $2, not_before = NULL, \
               trace = trace || $3, updated_at = $4 WHERE {filter} AND state = 'deferred'"
        );
        let done = sqlx::query(&sql)
            .bind(key)
            .bind(reason)
            .bind(trace)
            .bind(millis(now))
            .execute(&mut *self.db.writer().await?)
            .await?;
        Ok(done.rows_affected())
    }
}
