//! Wall-clock rules: quiet hours and digest schedules.
//!
//! People say "not between 22:00 and 07:00" or "every Monday at 08:00" in
//! their own time zone, and they mean the clock on their wall, which jumps
//! twice a year. Herald runs in UTC, so every rule here takes the user's IANA
//! zone and turns local dates and times into UTC instants before comparing
//! anything; naive local times are never compared across a DST change.
//!
//! # Quiet hours
//!
//! A [`QuietWindow`] is the half-open interval `[start, end)`: a message at
//! exactly `start` is held, one at exactly `end` goes out. If `end` is not
//! after `start` as a time of day, the window wraps past midnight and ends on
//! the next local day. `days` names the local day a window *starts* on, so a
//! Friday 22:00–07:00 window holds messages until Saturday 07:00; no `days`
//! means every day. A user may keep up to 14 windows ([`QuietHours`]); when
//! one window ends inside another (overlapping or back-to-back windows), the
//! quiet period lasts until the first instant outside all of them.
//!
//! # Local time to instant
//!
//! Twice a year a local time is either skipped or repeated. Both cases are
//! resolved the same way: a local time means **the first moment the wall
//! clock reads that time**, or, if it never does, the first moment it reads a
//! later one.
//!
//! * A time in a spring-forward gap (02:30 on 2026-03-08 in
//!   America/Los_Angeles) maps to the instant the gap ends, the transition
//!   itself (03:00 PDT, 10:00Z). A window ending in the gap ends when the
//!   clocks jump; a window starting in it starts then; a window lying wholly
//!   inside the gap is empty that night; a digest due in the gap is sent at
//!   the jump rather than skipped.
//! * A time that occurs twice (01:30 on 2026-11-01 in America/Los_Angeles)
//!   maps to its first occurrence (01:30 PDT, 08:30Z). Quiet hours ending at
//!   an ambiguous time therefore end on the first pass and are not
//!   resumed on the second; a digest fires once, never twice on one night.
//!
//! # Digests
//!
//! A [`DigestSchedule`] fires daily, or weekly on one day, at a local time;
//! [`DigestSchedule::next_after`] gives the first firing strictly after an
//! instant, so a scheduler that fired at `t` asks for `next_after(t)`.

use std::fmt;

use chrono::{
    DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::DomainError;

mod digest;
mod quiet;

pub use digest::{DigestSchedule, Every};
pub use quiet::{QuietHours, QuietWindow};

/// A time of day, `HH:MM`, from `00:00` to `23:59`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$", example = "22:00")]
pub struct LocalTime(NaiveTime);

impl LocalTime {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        hh_mm(value.as_bytes()).map(LocalTime).ok_or_else(|| {
            DomainError::invalid(
                "time of day",
                value,
                "must be HH:MM from 00:00 to 23:59, e.g. 22:00",
            )
        })
    }

    /// For times chosen in code; `None` unless `hour < 24` and `minute < 60`.
    pub fn new(hour: u32, minute: u32) -> Option<Self> {
        NaiveTime::from_hms_opt(hour, minute, 0).map(LocalTime)
    }

    pub fn naive(self) -> NaiveTime {
        self.0
    }
}

fn hh_mm(bytes: &[u8]) -> Option<NaiveTime> {
    let digit = |b: u8| b.is_ascii_digit().then(|| u32::from(b - b'0'));
    let &[h1, h0, b':', m1, m0] = bytes else {
        return None;
    };
    let hour = digit(h1)? * 10 + digit(h0)?;
    let minute = digit(m1)? * 10 + digit(m0)?;
    NaiveTime::from_hms_opt(hour, minute, 0)
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0.hour(), self.0.minute())
    }
}

impl TryFrom<String> for LocalTime {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        LocalTime::parse(&value)
    }
}

impl From<LocalTime> for String {
    fn from(value: LocalTime) -> String {
        value.to_string()
    }
}

/// A day of the week, written `mon` … `sun`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    pub fn weekday(self) -> Weekday {
        match self {
            Day::Mon => Weekday::Mon,
            Day::Tue => Weekday::Tue,
            Day::Wed => Weekday::Wed,
            Day::Thu => Weekday::Thu,
            Day::Fri => Weekday::Fri,
            Day::Sat => Weekday::Sat,
            Day::Sun => Weekday::Sun,
        }
    }

    pub fn from_weekday(weekday: Weekday) -> Day {
        match weekday {
            Weekday::Mon => Day::Mon,
            Weekday::Tue => Day::Tue,
            Weekday::Wed => Day::Wed,
            Weekday::Thu => Day::Thu,
            Weekday::Fri => Day::Fri,
            Weekday::Sat => Day::Sat,
            Weekday::Sun => Day::Sun,
        }
    }
}

/// The first moment the wall clock in `tz` reads `time` on `date`, or, for a
/// time skipped by a spring-forward gap, the instant the gap ends.
fn instant(tz: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let wall = date.and_time(time);
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => t.to_utc(),
        LocalResult::Ambiguous(a, b) => a.to_utc().min(b.to_utc()),
        LocalResult::None => gap_end(tz, wall),
    }
}

/// The first instant whose wall clock reads later than `wall`, which lies in
/// a gap: that is the transition that opened the gap.
fn gap_end(tz: Tz, wall: NaiveDateTime) -> DateTime<Utc> {
    let past_wall = |secs: i64| {
        DateTime::from_timestamp(secs, 0).is_none_or(|t| t.with_timezone(&tz).naive_local() > wall)
    };
    // No offset reaches a day, so the wall clock reads earlier than `wall`
    // a day before it read as UTC, and later a day after. Transitions fall on
    // whole seconds, so bisecting seconds finds the exact instant.
    let naive_secs = wall.and_utc().timestamp();
    let (mut before, mut after) = (naive_secs - 86_400, naive_secs + 86_400);
    while after - before > 1 {
        let mid = before + (after - before) / 2;
        if past_wall(mid) {
            after = mid;
        } else {
            before = mid;
        }
    }
    DateTime::from_timestamp(after, 0).unwrap_or_else(|| wall.and_utc())
}

#[cfg(test)]
mod tests;
