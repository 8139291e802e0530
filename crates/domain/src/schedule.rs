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
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc,
    Weekday,
};
use chrono_tz::Tz;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::DomainError;

/// How many windows a user may keep: two for each day of the week, say a
/// night and a midday break.
pub const MAX_QUIET_WINDOWS: usize = 14;

/// Chained windows are followed this many times at most, so windows that
/// cover the whole week cannot loop forever.
const MAX_HOPS: usize = 32;

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

/// One stretch of quiet in the user's time zone, from `start` up to but not
/// including `end`. `start` and `end` must differ and `days` may not repeat.
//
// Deserialization enforces both; code building a window with `start == end`
// gets a 24-hour window from the wrap rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, try_from = "RawQuietWindow")]
#[schema(example = json!({"start": "22:00", "end": "07:00", "days": ["fri", "sat"]}))]
pub struct QuietWindow {
    pub start: LocalTime,
    /// Not after `start` means the window ends on the next day.
    pub end: LocalTime,
    /// The local days the window starts on, each at most once; absent or
    /// empty means every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = days_schema)]
    pub days: Vec<Day>,
}

/// `days`: distinct days, so at most seven.
fn days_schema() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(Ref::from_schema_name(Day::name()))
        .unique_items(true)
        .max_items(Some(7))
        .description(Some(
            "The local days the window starts on, each at most once; absent or empty means every day.",
        ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuietWindow {
    start: LocalTime,
    end: LocalTime,
    #[serde(default)]
    days: Vec<Day>,
}

impl TryFrom<RawQuietWindow> for QuietWindow {
    type Error = &'static str;
    fn try_from(raw: RawQuietWindow) -> Result<Self, Self::Error> {
        if raw.start == raw.end {
            return Err("quiet hours start and end must differ");
        }
        if raw
            .days
            .iter()
            .enumerate()
            .any(|(i, d)| raw.days[..i].contains(d))
        {
            return Err("quiet hours days must not repeat");
        }
        Ok(QuietWindow {
            start: raw.start,
            end: raw.end,
            days: raw.days,
        })
    }
}

impl QuietWindow {
    /// The instants of this window's occurrence that starts on local `date`,
    /// if it runs that day.
    fn starting_on(&self, tz: Tz, date: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let listed = self.days.is_empty() || self.days.contains(&Day::from_weekday(date.weekday()));
        if !listed {
            return None;
        }
        let end_date = if self.end <= self.start {
            date.succ_opt()?
        } else {
            date
        };
        Some((
            instant(tz, date, self.start.0),
            instant(tz, end_date, self.end.0),
        ))
    }
}

/// A user's quiet hours: none, one window or up to [`MAX_QUIET_WINDOWS`].
///
/// In JSON, one window is written as the object and several as an array; an
/// empty array means no quiet hours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuietHours(Vec<QuietWindow>);

impl QuietHours {
    pub fn new(windows: Vec<QuietWindow>) -> Result<Self, DomainError> {
        if windows.len() > MAX_QUIET_WINDOWS {
            let count = format!("{} windows", windows.len());
            return Err(DomainError::invalid(
                "quiet hours",
                &count,
                "may have at most 14 windows",
            ));
        }
        Ok(QuietHours(windows))
    }

    pub fn windows(&self) -> &[QuietWindow] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `None` if `at` is outside every window; otherwise when the quiet period
    /// holding `at` ends, following windows that overlap or abut it.
    pub fn quiet_until(&self, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut until = self.end_of_windows_holding(tz, at)?;
        for _ in 0..MAX_HOPS {
            match self.end_of_windows_holding(tz, until) {
                Some(later) => until = later,
                None => break,
            }
        }
        Some(until)
    }

    /// The latest end among the windows containing `at`. Windows are shorter
    /// than a day on the wall clock, so only those starting on `at`'s local
    /// date or the day before can contain it.
    fn end_of_windows_holding(&self, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = at.with_timezone(&tz).date_naive();
        let days = [today.pred_opt(), Some(today)];
        self.0
            .iter()
            .flat_map(|w| days.into_iter().flatten().map(move |d| (w, d)))
            .filter_map(|(w, d)| w.starting_on(tz, d))
            .filter(|&(start, end)| start <= at && at < end)
            .map(|(_, end)| end)
            .max()
    }
}

impl Serialize for QuietHours {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(serializer),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for QuietHours {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WindowOrList)
    }
}

/// Reads either form directly rather than via `#[serde(untagged)]`, so a
/// bad window reports its own error instead of "did not match any variant".
struct WindowOrList;

impl<'de> Visitor<'de> for WindowOrList {
    type Value = QuietHours;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a quiet hours window such as {\"start\": \"22:00\", \"end\": \"07:00\"} or a list of up to 14")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<QuietHours, A::Error> {
        let window = QuietWindow::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(QuietHours(vec![window]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<QuietHours, A::Error> {
        let mut windows = Vec::new();
        while let Some(window) = seq.next_element::<QuietWindow>()? {
            if windows.len() == MAX_QUIET_WINDOWS {
                return Err(de::Error::custom("quiet hours may have at most 14 windows"));
            }
            windows.push(window);
        }
        Ok(QuietHours(windows))
    }
}

impl PartialSchema for QuietHours {
    fn schema() -> RefOr<Schema> {
        let window = || Ref::from_schema_name(QuietWindow::name());
        OneOfBuilder::new()
            .item(window())
            .item(
                ArrayBuilder::new()
                    .items(window())
                    .max_items(Some(MAX_QUIET_WINDOWS)),
            )
            .description(Some(
                "One quiet window, or a list of up to 14 (an empty list means none).",
            ))
            .into()
    }
}

impl ToSchema for QuietHours {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((QuietWindow::name().into_owned(), QuietWindow::schema()));
        <QuietWindow as ToSchema>::schemas(schemas);
        // `days` is described by hand (`days_schema`), so its items are named here.
        schemas.push((Day::name().into_owned(), Day::schema()));
    }
}

/// How often a digest goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Every {
    Daily,
    Weekly,
}

/// When a category's digest goes out, in the user's time zone: daily at
/// `at`, or weekly on `day` at `at`.
//
// Private fields, built by `daily` and `weekly`, so a weekly schedule always
// has its day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawDigestSchedule")]
pub struct DigestSchedule {
    every: Every,
    /// Required when `every` is `weekly`; refused when it is `daily`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    day: Option<Day>,
    at: LocalTime,
}

/// The two shapes, one per `every`: a daily schedule has no `day` (or a
/// null one), a weekly schedule must have one.
impl PartialSchema for DigestSchedule {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
        let every = |every: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([every]))
        };
        let shape = |every_value: &str, day: RefOr<Schema>| {
            ObjectBuilder::new()
                .property("every", every(every_value))
                .required("every")
                .property("day", day)
                .property("at", Ref::from_schema_name(LocalTime::name()))
                .required("at")
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        let daily = shape("daily", ObjectBuilder::new().schema_type(Type::Null).into());
        let weekly = shape("weekly", Ref::from_schema_name(Day::name()).into()).required("day");
        OneOfBuilder::new()
            .item(daily)
            .item(weekly)
            .description(Some(
                "When a category's digest goes out, in the user's time zone: daily at `at`, \
                 or weekly on `day` at `at`.",
            ))
            .examples([
                serde_json::json!({"every": "daily", "at": "08:00"}),
                serde_json::json!({"every": "weekly", "day": "mon", "at": "08:00"}),
            ])
            .into()
    }
}

impl ToSchema for DigestSchedule {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((LocalTime::name().into_owned(), LocalTime::schema()));
        schemas.push((Day::name().into_owned(), Day::schema()));
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDigestSchedule {
    every: Every,
    #[serde(default)]
    day: Option<Day>,
    at: LocalTime,
}

impl TryFrom<RawDigestSchedule> for DigestSchedule {
    type Error = &'static str;
    fn try_from(raw: RawDigestSchedule) -> Result<Self, Self::Error> {
        match (raw.every, raw.day) {
            (Every::Daily, None) => Ok(DigestSchedule::daily(raw.at)),
            (Every::Weekly, Some(day)) => Ok(DigestSchedule::weekly(day, raw.at)),
            (Every::Daily, Some(_)) => Err("a daily digest takes no day"),
            (Every::Weekly, None) => Err("a weekly digest needs a day, e.g. \"day\": \"mon\""),
        }
    }
}

impl DigestSchedule {
    pub fn daily(at: LocalTime) -> Self {
        DigestSchedule {
            every: Every::Daily,
            day: None,
            at,
        }
    }

    pub fn weekly(day: Day, at: LocalTime) -> Self {
        DigestSchedule {
            every: Every::Weekly,
            day: Some(day),
            at,
        }
    }

    pub fn every(&self) -> Every {
        self.every
    }

    /// `Some` exactly when the schedule is weekly.
    pub fn day(&self) -> Option<Day> {
        self.day
    }

    pub fn at(&self) -> LocalTime {
        self.at
    }

    /// The first instant strictly after `after` at which the digest is due.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> DateTime<Utc> {
        let fires_on = |date: NaiveDate| self.day.is_none_or(|day| day.weekday() == date.weekday());
        // Starting a day early costs one comparison and spares reasoning about
        // a firing whose local date is before `after`'s; nine more days always
        // include a weekly firing past the one `after` may sit on.
        let today = after.with_timezone(&tz).date_naive();
        let mut date = today.pred_opt().unwrap_or(today);
        for _ in 0..10 {
            if fires_on(date) {
                let due = instant(tz, date, self.at.0);
                if due > after {
                    return due;
                }
            }
            let Some(next) = date.succ_opt() else { break };
            date = next;
        }
        // Reached only at the end of chrono's calendar.
        DateTime::<Utc>::MAX_UTC
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
mod tests {
    use super::*;
    use chrono_tz::America::Los_Angeles as LA;
    use chrono_tz::Asia::{Kathmandu, Kolkata, Tokyo};
    use chrono_tz::Australia::Adelaide;
    use chrono_tz::Europe::{London, Paris};
    use chrono_tz::Pacific::Apia;
    use chrono_tz::UTC;
    use serde_json::json;

    fn utc(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
    }

    fn time(text: &str) -> LocalTime {
        LocalTime::parse(text).unwrap()
    }

    fn quiet(json: &str) -> QuietHours {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    fn digest(json: &str) -> DigestSchedule {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    /// Rows of (at, when the quiet period holding `at` ends, or None).
    fn check_quiet(windows: &str, tz: Tz, rows: &[(&str, Option<&str>)]) {
        let hours = quiet(windows);
        for &(at, until) in rows {
            let got = hours.quiet_until(tz, utc(at));
            assert_eq!(got, until.map(utc), "{windows} in {tz} at {at}");
        }
    }

    /// Rows of (after, the next firing).
    fn check_next(schedule: &str, tz: Tz, rows: &[(&str, &str)]) {
        let schedule = digest(schedule);
        for &(after, next) in rows {
            let got = schedule.next_after(tz, utc(after));
            assert_eq!(got, utc(next), "{schedule:?} in {tz} after {after}");
        }
    }

    fn refused<T: serde::de::DeserializeOwned + fmt::Debug>(rows: &[(&str, &str)]) {
        for &(json, reason) in rows {
            match serde_json::from_str::<T>(json) {
                Err(e) => assert!(e.to_string().contains(reason), "{json}: {e}"),
                Ok(v) => panic!("{json} was accepted as {v:?}"),
            }
        }
    }

    const NIGHT: &str = r#"{"start":"22:00","end":"07:00"}"#;
    const LUNCH: &str = r#"{"start":"13:00","end":"14:00"}"#;
    const DAILY_8: &str = r#"{"every":"daily","at":"08:00"}"#;
    const MONDAY_8: &str = r#"{"every":"weekly","day":"mon","at":"08:00"}"#;

    #[test]
    fn a_time_of_day_is_two_digit_hours_and_minutes_from_00_00_to_23_59() {
        for hour in 0..100 {
            for minute in 0..100 {
                let text = format!("{hour:02}:{minute:02}");
                let parsed = LocalTime::parse(&text);
                assert_eq!(parsed.is_ok(), hour < 24 && minute < 60, "{text}");
                if let Ok(t) = parsed {
                    assert_eq!(t.to_string(), text);
                    let naive = NaiveTime::from_hms_opt(hour, minute, 0);
                    assert_eq!(Some(t.naive()), naive);
                    assert_eq!(LocalTime::new(hour, minute), Some(t));
                }
            }
        }
        let bad = [
            "",
            "7:00",
            "07:0",
            "0700",
            "07-00",
            "07:00:00",
            " 07:00",
            "07:00 ",
            "24:00",
            "07:60",
            "-1:00",
            "+7:00",
            "07:5a",
            "０７:００",
        ];
        for text in bad {
            match LocalTime::parse(text) {
                Err(DomainError::Invalid { kind, .. }) => assert_eq!(kind, "time of day"),
                other => panic!("{text:?} gave {other:?}"),
            }
        }
        assert_eq!(LocalTime::new(24, 0), None);
    }

    #[test]
    fn a_time_of_day_is_a_json_string() {
        let t: LocalTime = serde_json::from_str(r#""07:05""#).unwrap();
        assert_eq!(t, time("07:05"));
        assert_eq!(serde_json::to_string(&t).unwrap(), r#""07:05""#);
        refused::<LocalTime>(&[(r#""24:00""#, "HH:MM"), ("705", "invalid type")]);
    }

    #[test]
    fn days_are_three_lower_case_letters_and_map_to_chrono_weekdays() {
        let table = [
            (Day::Mon, "mon", Weekday::Mon),
            (Day::Tue, "tue", Weekday::Tue),
            (Day::Wed, "wed", Weekday::Wed),
            (Day::Thu, "thu", Weekday::Thu),
            (Day::Fri, "fri", Weekday::Fri),
            (Day::Sat, "sat", Weekday::Sat),
            (Day::Sun, "sun", Weekday::Sun),
        ];
        for (day, name, weekday) in table {
            assert_eq!(serde_json::to_value(day).unwrap(), json!(name));
            assert_eq!(serde_json::from_value::<Day>(json!(name)).unwrap(), day);
            assert_eq!(day.weekday(), weekday);
            assert_eq!(Day::from_weekday(weekday), day);
        }
        refused::<Day>(&[
            (r#""Mon""#, "unknown variant"),
            (r#""monday""#, "unknown variant"),
            (r#""""#, "unknown variant"),
        ]);
    }

    #[test]
    fn a_window_holds_from_its_start_inclusive_to_its_end_exclusive() {
        check_quiet(
            LUNCH,
            UTC,
            &[
                ("2026-01-15T12:59:00Z", None),
                ("2026-01-15T12:59:59Z", None),
                ("2026-01-15T13:00:00Z", Some("2026-01-15T14:00:00Z")),
                ("2026-01-15T13:59:00Z", Some("2026-01-15T14:00:00Z")),
                ("2026-01-15T13:59:59Z", Some("2026-01-15T14:00:00Z")),
                ("2026-01-15T14:00:00Z", None),
            ],
        );
        check_quiet(
            NIGHT,
            UTC,
            &[
                ("2026-01-15T21:59:00Z", None),
                ("2026-01-15T22:00:00Z", Some("2026-01-16T07:00:00Z")),
                ("2026-01-16T06:59:00Z", Some("2026-01-16T07:00:00Z")),
                ("2026-01-16T07:00:00Z", None),
            ],
        );
        // The same edges an hour off UTC: Paris is +01:00 in winter.
        check_quiet(
            NIGHT,
            Paris,
            &[
                ("2026-01-15T20:59:00Z", None),
                ("2026-01-15T21:00:00Z", Some("2026-01-16T06:00:00Z")),
                ("2026-01-16T05:59:00Z", Some("2026-01-16T06:00:00Z")),
                ("2026-01-16T06:00:00Z", None),
            ],
        );
    }

    #[test]
    fn a_window_ending_before_it_starts_wraps_past_midnight() {
        check_quiet(
            NIGHT,
            UTC,
            &[
                ("2026-01-15T23:30:00Z", Some("2026-01-16T07:00:00Z")),
                ("2026-01-16T00:00:00Z", Some("2026-01-16T07:00:00Z")),
                ("2026-01-16T03:00:00Z", Some("2026-01-16T07:00:00Z")),
                ("2026-01-16T12:00:00Z", None),
            ],
        );
        check_quiet(
            LUNCH,
            UTC,
            &[
                ("2026-01-15T23:30:00Z", None),
                ("2026-01-16T03:00:00Z", None),
            ],
        );
        // 23:59 to 00:00 is one minute, not a day.
        check_quiet(
            r#"{"start":"23:59","end":"00:00"}"#,
            UTC,
            &[
                ("2026-01-15T23:58:00Z", None),
                ("2026-01-15T23:59:30Z", Some("2026-01-16T00:00:00Z")),
                ("2026-01-16T00:00:00Z", None),
            ],
        );
        check_quiet(
            r#"{"start":"00:00","end":"23:59"}"#,
            UTC,
            &[
                ("2026-01-15T00:00:00Z", Some("2026-01-15T23:59:00Z")),
                ("2026-01-15T23:59:00Z", None),
            ],
        );
    }

    #[test]
    fn a_window_ending_in_a_spring_forward_gap_ends_when_the_clocks_jump() {
        let ends_0230 = r#"{"start":"22:00","end":"02:30"}"#;
        // LA, 2026-03-08: 02:00 PST becomes 03:00 PDT at 10:00Z. The night
        // before is an ordinary one, ending 02:30 PST.
        check_quiet(
            ends_0230,
            LA,
            &[
                ("2026-03-07T10:29:00Z", Some("2026-03-07T10:30:00Z")),
                ("2026-03-08T05:59:00Z", None),
                ("2026-03-08T06:00:00Z", Some("2026-03-08T10:00:00Z")),
                ("2026-03-08T09:59:00Z", Some("2026-03-08T10:00:00Z")),
                ("2026-03-08T10:00:00Z", None),
            ],
        );
        // Adelaide, 2026-10-04: 02:00 ACST (+09:30) becomes 03:00 ACDT
        // (+10:30) at 16:30Z the day before.
        check_quiet(
            ends_0230,
            Adelaide,
            &[
                ("2026-10-03T12:30:00Z", Some("2026-10-03T16:30:00Z")),
                ("2026-10-03T16:29:00Z", Some("2026-10-03T16:30:00Z")),
                ("2026-10-03T16:30:00Z", None),
            ],
        );
        // London, 2026-03-29: 01:00 GMT becomes 02:00 BST at 01:00Z.
        check_quiet(
            r#"{"start":"22:00","end":"01:30"}"#,
            London,
            &[
                ("2026-03-28T22:00:00Z", Some("2026-03-29T01:00:00Z")),
                ("2026-03-29T00:59:00Z", Some("2026-03-29T01:00:00Z")),
                ("2026-03-29T01:00:00Z", None),
            ],
        );
    }

    #[test]
    fn a_window_ending_at_a_repeated_time_ends_at_its_first_occurrence() {
        let ends_0130 = r#"{"start":"00:00","end":"01:30"}"#;
        // LA, 2026-11-01: 02:00 PDT becomes 01:00 PST at 09:00Z, so 01:30 is
        // 08:30Z (PDT) and again 09:30Z (PST). On the second pass the wall
        // clock is inside 00:00-01:30 again, but the window is not resumed.
        check_quiet(
            ends_0130,
            LA,
            &[
                ("2026-11-01T07:00:00Z", Some("2026-11-01T08:30:00Z")),
                ("2026-11-01T08:29:00Z", Some("2026-11-01T08:30:00Z")),
                ("2026-11-01T08:30:00Z", None),
                ("2026-11-01T09:10:00Z", None),
                ("2026-11-01T09:30:00Z", None),
            ],
        );
        // London, 2026-10-25: 02:00 BST becomes 01:00 GMT at 01:00Z.
        check_quiet(
            ends_0130,
            London,
            &[
                ("2026-10-24T23:00:00Z", Some("2026-10-25T00:30:00Z")),
                ("2026-10-25T00:30:00Z", None),
                ("2026-10-25T01:15:00Z", None),
            ],
        );
        // Adelaide, 2026-04-05: 03:00 ACDT becomes 02:00 ACST at 16:30Z the
        // day before, so 02:30 is 16:00Z and again 17:00Z.
        check_quiet(
            r#"{"start":"00:00","end":"02:30"}"#,
            Adelaide,
            &[
                ("2026-04-04T13:30:00Z", Some("2026-04-04T16:00:00Z")),
                ("2026-04-04T15:59:00Z", Some("2026-04-04T16:00:00Z")),
                ("2026-04-04T16:00:00Z", None),
                ("2026-04-04T16:45:00Z", None),
            ],
        );
    }

    #[test]
    fn an_overnight_window_ends_at_seven_on_the_new_offset_after_a_dst_change() {
        check_quiet(
            NIGHT,
            LA,
            &[
                // Spring: 22:00 PST (06:00Z) to 07:00 PDT (14:00Z), an hour
                // earlier in UTC than the night before.
                ("2026-03-07T14:59:00Z", Some("2026-03-07T15:00:00Z")),
                ("2026-03-08T06:00:00Z", Some("2026-03-08T14:00:00Z")),
                ("2026-03-08T12:00:00Z", Some("2026-03-08T14:00:00Z")),
                ("2026-03-08T14:00:00Z", None),
                // Fall: 22:00 PDT (05:00Z) to 07:00 PST (15:00Z), an hour later
                // in UTC than the night before.
                ("2026-10-31T13:59:00Z", Some("2026-10-31T14:00:00Z")),
                ("2026-11-01T05:00:00Z", Some("2026-11-01T15:00:00Z")),
                ("2026-11-01T14:30:00Z", Some("2026-11-01T15:00:00Z")),
                ("2026-11-01T15:00:00Z", None),
            ],
        );
        check_quiet(
            NIGHT,
            London,
            &[
                ("2026-03-28T22:00:00Z", Some("2026-03-29T06:00:00Z")),
                ("2026-03-29T05:00:00Z", Some("2026-03-29T06:00:00Z")),
                ("2026-03-29T06:00:00Z", None),
                ("2026-10-24T21:00:00Z", Some("2026-10-25T07:00:00Z")),
                ("2026-10-25T06:30:00Z", Some("2026-10-25T07:00:00Z")),
                ("2026-10-25T07:00:00Z", None),
            ],
        );
        check_quiet(
            NIGHT,
            Adelaide,
            &[
                // Autumn: 22:00 ACDT (11:30Z) to 07:00 ACST (21:30Z).
                ("2026-04-04T11:30:00Z", Some("2026-04-04T21:30:00Z")),
                ("2026-04-04T21:00:00Z", Some("2026-04-04T21:30:00Z")),
                ("2026-04-04T21:30:00Z", None),
                // Spring: 22:00 ACST (12:30Z) to 07:00 ACDT (20:30Z).
                ("2026-10-03T12:30:00Z", Some("2026-10-03T20:30:00Z")),
                ("2026-10-03T20:00:00Z", Some("2026-10-03T20:30:00Z")),
                ("2026-10-03T20:30:00Z", None),
            ],
        );
    }

    #[test]
    fn a_window_starting_in_a_spring_forward_gap_starts_when_the_clocks_jump() {
        let starts_0230 = r#"{"start":"02:30","end":"06:00"}"#;
        check_quiet(
            starts_0230,
            LA,
            &[
                ("2026-03-08T09:59:00Z", None),
                ("2026-03-08T10:00:00Z", Some("2026-03-08T13:00:00Z")),
            ],
        );
        check_quiet(
            starts_0230,
            Adelaide,
            &[
                ("2026-10-03T16:29:00Z", None),
                ("2026-10-03T16:30:00Z", Some("2026-10-03T19:30:00Z")),
            ],
        );
        check_quiet(
            r#"{"start":"01:30","end":"06:00"}"#,
            London,
            &[
                ("2026-03-29T00:59:00Z", None),
                ("2026-03-29T01:00:00Z", Some("2026-03-29T05:00:00Z")),
            ],
        );
        // A window the wall clock skips entirely is empty that night, and an
        // ordinary one the night before.
        check_quiet(
            r#"{"start":"02:10","end":"02:50"}"#,
            LA,
            &[
                ("2026-03-07T10:10:00Z", Some("2026-03-07T10:50:00Z")),
                ("2026-03-08T09:59:00Z", None),
                ("2026-03-08T10:00:00Z", None),
            ],
        );
    }

    #[test]
    fn zones_with_fractional_offsets_give_exact_instants() {
        check_quiet(
            NIGHT,
            Tokyo,
            &[
                ("2026-06-01T12:59:00Z", None),
                ("2026-06-01T13:00:00Z", Some("2026-06-01T22:00:00Z")),
                ("2026-06-01T22:00:00Z", None),
            ],
        );
        check_quiet(
            NIGHT,
            Kolkata,
            &[
                ("2026-06-01T16:29:00Z", None),
                ("2026-06-01T16:30:00Z", Some("2026-06-02T01:30:00Z")),
                ("2026-06-02T01:30:00Z", None),
            ],
        );
        check_quiet(
            NIGHT,
            Kathmandu,
            &[
                ("2026-06-01T16:14:00Z", None),
                ("2026-06-01T16:15:00Z", Some("2026-06-02T01:15:00Z")),
                ("2026-06-02T01:15:00Z", None),
            ],
        );
        // Adelaide is +09:30 in its winter and +10:30 in its summer.
        check_quiet(
            NIGHT,
            Adelaide,
            &[
                ("2026-06-01T12:29:00Z", None),
                ("2026-06-01T12:30:00Z", Some("2026-06-01T21:30:00Z")),
                ("2026-01-15T11:29:00Z", None),
                ("2026-01-15T11:30:00Z", Some("2026-01-15T20:30:00Z")),
                ("2026-01-15T20:30:00Z", None),
            ],
        );
    }

    #[test]
    fn days_name_the_local_day_a_window_starts_on() {
        let friday_night = r#"{"start":"22:00","end":"07:00","days":["fri"]}"#;
        // 2026-01-16 is a Friday. Saturday is not listed, but Friday's
        // window runs into it.
        check_quiet(
            friday_night,
            UTC,
            &[
                ("2026-01-15T23:00:00Z", None),
                ("2026-01-16T03:00:00Z", None),
                ("2026-01-16T22:00:00Z", Some("2026-01-17T07:00:00Z")),
                ("2026-01-17T03:00:00Z", Some("2026-01-17T07:00:00Z")),
                ("2026-01-17T07:00:00Z", None),
                ("2026-01-17T23:00:00Z", None),
                ("2026-01-18T03:00:00Z", None),
            ],
        );
        // The day is the user's, not UTC's: Friday 21:30Z is 22:30 in Paris,
        // Friday 23:30Z is Saturday morning in Tokyo.
        check_quiet(
            friday_night,
            Paris,
            &[
                ("2026-01-16T20:59:00Z", None),
                ("2026-01-16T21:30:00Z", Some("2026-01-17T06:00:00Z")),
            ],
        );
        let saturday_morning = r#"{"start":"08:00","end":"09:00","days":["sat"]}"#;
        check_quiet(
            saturday_morning,
            Tokyo,
            &[
                ("2026-01-16T23:30:00Z", Some("2026-01-17T00:00:00Z")),
                ("2026-01-17T08:30:00Z", None),
                ("2026-01-17T23:30:00Z", None),
            ],
        );
    }

    #[test]
    fn overlapping_and_back_to_back_windows_are_followed_to_the_final_end() {
        let overlapping = r#"[{"start":"22:00","end":"10:00","days":["fri"]},
                              {"start":"09:00","end":"12:00","days":["sat"]}]"#;
        check_quiet(
            overlapping,
            UTC,
            &[
                ("2026-01-16T23:00:00Z", Some("2026-01-17T12:00:00Z")),
                ("2026-01-17T09:30:00Z", Some("2026-01-17T12:00:00Z")),
                ("2026-01-17T10:00:00Z", Some("2026-01-17T12:00:00Z")),
                ("2026-01-17T11:00:00Z", Some("2026-01-17T12:00:00Z")),
                ("2026-01-17T12:00:00Z", None),
            ],
        );
        let back_to_back = r#"[{"start":"22:00","end":"07:00"},
                               {"start":"07:00","end":"08:00"}]"#;
        check_quiet(
            back_to_back,
            UTC,
            &[
                ("2026-01-16T03:00:00Z", Some("2026-01-16T08:00:00Z")),
                ("2026-01-16T07:00:00Z", Some("2026-01-16T08:00:00Z")),
                ("2026-01-16T08:00:00Z", None),
            ],
        );
        let chain = r#"[{"start":"22:00","end":"23:00"},{"start":"23:00","end":"00:00"},
                        {"start":"00:00","end":"01:00"},{"start":"00:30","end":"02:00"}]"#;
        check_quiet(
            chain,
            UTC,
            &[
                ("2026-01-16T22:00:00Z", Some("2026-01-17T02:00:00Z")),
                ("2026-01-17T00:45:00Z", Some("2026-01-17T02:00:00Z")),
            ],
        );
        check_quiet(
            chain,
            Kathmandu,
            &[("2026-01-16T16:15:00Z", Some("2026-01-16T20:15:00Z"))],
        );
        // Back to back across the LA spring-forward jump: 02:30 is 03:00.
        let across_the_jump = r#"[{"start":"22:00","end":"02:30"},
                                  {"start":"03:00","end":"04:00"}]"#;
        check_quiet(
            across_the_jump,
            LA,
            &[("2026-03-08T07:00:00Z", Some("2026-03-08T11:00:00Z"))],
        );
    }

    #[test]
    fn windows_covering_every_moment_still_give_an_answer() {
        let always = r#"[{"start":"00:00","end":"12:00"},{"start":"12:00","end":"00:00"}]"#;
        // The first end, then 32 half-day hops.
        check_quiet(
            always,
            UTC,
            &[("2026-01-16T01:00:00Z", Some("2026-02-01T12:00:00Z"))],
        );
    }

    #[test]
    fn no_windows_means_never_quiet() {
        for hours in [QuietHours::default(), quiet("[]")] {
            assert!(hours.is_empty());
            assert_eq!(hours.windows(), &[]);
            for at in ["2026-01-16T03:00:00Z", "2026-03-08T10:00:00Z"] {
                assert_eq!(hours.quiet_until(LA, utc(at)), None);
            }
        }
    }

    #[test]
    fn quiet_hours_read_one_window_or_a_list_and_write_them_back_the_same_way() {
        let one = quiet(r#"{"start":"22:00","end":"07:00","days":["fri","sat"]}"#);
        let expected = QuietWindow {
            start: time("22:00"),
            end: time("07:00"),
            days: vec![Day::Fri, Day::Sat],
        };
        assert_eq!(one.windows(), &[expected]);
        let list =
            r#"[{"start":"22:00","end":"07:00"},{"start":"13:00","end":"14:00","days":["sun"]}]"#;
        let table = [
            (NIGHT, NIGHT),
            (r#"{"start":"22:00","end":"07:00","days":[]}"#, NIGHT),
            (r#"[{"start":"22:00","end":"07:00"}]"#, NIGHT),
            ("[]", "[]"),
            (list, list),
        ];
        for (input, written) in table {
            let hours = quiet(input);
            assert_eq!(serde_json::to_string(&hours).unwrap(), written, "{input}");
            assert_eq!(quiet(written), hours, "{input}");
        }
        let fourteen = format!("[{}]", [LUNCH; 14].join(","));
        assert_eq!(quiet(&fourteen).windows().len(), 14);
        let window = quiet(LUNCH).windows()[0].clone();
        assert_eq!(
            QuietHours::new(vec![window.clone(); 14])
                .unwrap()
                .windows()
                .len(),
            14
        );
        assert!(QuietHours::new(vec![window; 15]).is_err());
    }

    #[test]
    fn malformed_quiet_hours_are_refused_with_a_reason() {
        let fifteen = format!("[{}]", [LUNCH; 15].join(","));
        refused::<QuietHours>(&[
            (
                r#"{"start":"22:00","end":"07:00","mode":1}"#,
                "unknown field `mode`",
            ),
            (
                r#"[{"start":"22:00","end":"07:00","mode":1}]"#,
                "unknown field `mode`",
            ),
            (r#"{"start":"22:00"}"#, "missing field `end`"),
            (
                r#"{"start":"22:00","end":"22:00"}"#,
                "quiet hours start and end must differ",
            ),
            (
                r#"[{"start":"07:00","end":"07:00"}]"#,
                "quiet hours start and end must differ",
            ),
            (r#"{"start":"24:00","end":"07:00"}"#, "HH:MM"),
            (r#"{"start":"22:00","end":"7:00"}"#, "HH:MM"),
            (r#"{"start":"22:00","end":"07:60"}"#, "HH:MM"),
            (
                r#"{"start":"22:00","end":"07:00","days":["fri","fri"]}"#,
                "must not repeat",
            ),
            (
                r#"{"start":"22:00","end":"07:00","days":["friday"]}"#,
                "unknown variant",
            ),
            (
                r#"{"start":"22:00","end":"07:00","days":"fri"}"#,
                "invalid type",
            ),
            (&fifteen, "at most 14 windows"),
            (r#""22:00-07:00""#, "a quiet hours window"),
            ("null", "a quiet hours window"),
        ]);
    }

    #[test]
    fn a_digest_fires_at_the_first_matching_local_time_strictly_after_the_instant() {
        check_next(
            DAILY_8,
            UTC,
            &[
                ("2026-01-15T07:59:00Z", "2026-01-15T08:00:00Z"),
                ("2026-01-15T08:00:00Z", "2026-01-16T08:00:00Z"),
                ("2026-01-15T08:00:01Z", "2026-01-16T08:00:00Z"),
                ("2026-01-15T23:59:00Z", "2026-01-16T08:00:00Z"),
            ],
        );
        check_next(
            DAILY_8,
            Tokyo,
            &[
                ("2026-01-15T22:00:00Z", "2026-01-15T23:00:00Z"),
                ("2026-01-15T23:00:00Z", "2026-01-16T23:00:00Z"),
            ],
        );
        check_next(
            DAILY_8,
            Kolkata,
            &[("2026-01-15T02:30:00Z", "2026-01-16T02:30:00Z")],
        );
        check_next(
            DAILY_8,
            Kathmandu,
            &[("2026-01-15T00:00:00Z", "2026-01-15T02:15:00Z")],
        );
        // 2026-01-19 is a Monday.
        check_next(
            MONDAY_8,
            UTC,
            &[
                ("2026-01-16T12:00:00Z", "2026-01-19T08:00:00Z"),
                ("2026-01-18T23:59:00Z", "2026-01-19T08:00:00Z"),
                ("2026-01-19T07:00:00Z", "2026-01-19T08:00:00Z"),
                ("2026-01-19T08:00:00Z", "2026-01-26T08:00:00Z"),
                ("2026-01-19T09:00:00Z", "2026-01-26T08:00:00Z"),
                ("2026-01-20T09:00:00Z", "2026-01-26T08:00:00Z"),
            ],
        );
        // Monday 08:00 in Adelaide (+10:30 in January) is Sunday 21:30Z.
        check_next(
            MONDAY_8,
            Adelaide,
            &[
                ("2026-01-18T21:00:00Z", "2026-01-18T21:30:00Z"),
                ("2026-01-18T21:30:00Z", "2026-01-25T21:30:00Z"),
            ],
        );
    }

    #[test]
    fn a_digest_keeps_its_local_time_across_dst_changes() {
        // London: 08:00 GMT, then 08:00 BST from 2026-03-29, GMT again
        // from 2026-10-25.
        check_next(
            DAILY_8,
            London,
            &[
                ("2026-03-28T08:00:00Z", "2026-03-29T07:00:00Z"),
                ("2026-03-29T07:00:00Z", "2026-03-30T07:00:00Z"),
                ("2026-10-24T07:00:00Z", "2026-10-25T08:00:00Z"),
                ("2026-10-25T08:00:00Z", "2026-10-26T08:00:00Z"),
            ],
        );
        check_next(
            MONDAY_8,
            London,
            &[("2026-03-23T08:00:00Z", "2026-03-30T07:00:00Z")],
        );
    }

    #[test]
    fn a_digest_due_in_a_gap_fires_at_the_jump_and_one_due_twice_fires_once() {
        let at_0230 = r#"{"every":"daily","at":"02:30"}"#;
        let at_0130 = r#"{"every":"daily","at":"01:30"}"#;
        // LA 02:30 does not exist on 2026-03-08: sent at the jump, 10:00Z.
        check_next(
            at_0230,
            LA,
            &[
                ("2026-03-07T10:30:00Z", "2026-03-08T10:00:00Z"),
                ("2026-03-08T10:00:00Z", "2026-03-09T09:30:00Z"),
            ],
        );
        // LA 01:30 happens twice on 2026-11-01: sent once, at 01:30 PDT.
        check_next(
            at_0130,
            LA,
            &[
                ("2026-10-31T08:30:00Z", "2026-11-01T08:30:00Z"),
                ("2026-11-01T08:30:00Z", "2026-11-02T09:30:00Z"),
                ("2026-11-01T09:00:00Z", "2026-11-02T09:30:00Z"),
            ],
        );
        // Adelaide's gap (2026-10-04) and fold (2026-04-05) are both at 02:30.
        check_next(
            at_0230,
            Adelaide,
            &[
                ("2026-10-02T17:00:00Z", "2026-10-03T16:30:00Z"),
                ("2026-10-03T16:30:00Z", "2026-10-04T16:00:00Z"),
                ("2026-04-03T17:00:00Z", "2026-04-04T16:00:00Z"),
                ("2026-04-04T16:00:00Z", "2026-04-05T17:00:00Z"),
            ],
        );
        let sunday_0230 = r#"{"every":"weekly","day":"sun","at":"02:30"}"#;
        check_next(
            sunday_0230,
            LA,
            &[("2026-03-02T00:00:00Z", "2026-03-08T10:00:00Z")],
        );
    }

    #[test]
    fn digest_schedules_read_and_write_their_json_form() {
        let table = [
            (DAILY_8, DigestSchedule::daily(time("08:00"))),
            (MONDAY_8, DigestSchedule::weekly(Day::Mon, time("08:00"))),
        ];
        for (json, schedule) in table {
            assert_eq!(digest(json), schedule);
            assert_eq!(serde_json::to_string(&schedule).unwrap(), json);
        }
        let weekly = digest(MONDAY_8);
        let parts = (weekly.every(), weekly.day(), weekly.at());
        assert_eq!(parts, (Every::Weekly, Some(Day::Mon), time("08:00")));
        assert_eq!(digest(DAILY_8).day(), None);
        assert_eq!(
            digest(r#"{"every":"daily","day":null,"at":"08:00"}"#).day(),
            None
        );
    }

    #[test]
    fn malformed_digest_schedules_are_refused_with_a_reason() {
        refused::<DigestSchedule>(&[
            (
                r#"{"every":"weekly","at":"08:00"}"#,
                "weekly digest needs a day",
            ),
            (
                r#"{"every":"weekly","day":null,"at":"08:00"}"#,
                "weekly digest needs a day",
            ),
            (
                r#"{"every":"daily","day":"mon","at":"08:00"}"#,
                "daily digest takes no day",
            ),
            (
                r#"{"every":"daily","at":"08:00","tz":"UTC"}"#,
                "unknown field `tz`",
            ),
            (
                r#"{"every":"hourly","at":"08:00"}"#,
                "unknown variant `hourly`",
            ),
            (r#"{"every":"daily"}"#, "missing field `at`"),
            (r#"{"every":"daily","at":"8:00"}"#, "HH:MM"),
            (
                r#"{"every":"weekly","day":"monday","at":"08:00"}"#,
                "unknown variant",
            ),
        ]);
    }

    #[test]
    fn a_skipped_local_time_is_the_jump_and_a_repeated_one_its_first_occurrence() {
        let table = [
            (LA, "2026-03-08", "01:59", "2026-03-08T09:59:00Z"),
            (LA, "2026-03-08", "02:00", "2026-03-08T10:00:00Z"),
            (LA, "2026-03-08", "02:59", "2026-03-08T10:00:00Z"),
            (LA, "2026-03-08", "03:00", "2026-03-08T10:00:00Z"),
            (LA, "2026-11-01", "01:00", "2026-11-01T08:00:00Z"),
            (LA, "2026-11-01", "01:59", "2026-11-01T08:59:00Z"),
            (LA, "2026-11-01", "02:00", "2026-11-01T10:00:00Z"),
            (London, "2026-03-29", "01:30", "2026-03-29T01:00:00Z"),
            (London, "2026-10-25", "01:30", "2026-10-25T00:30:00Z"),
            (Adelaide, "2026-10-04", "02:30", "2026-10-03T16:30:00Z"),
            (Adelaide, "2026-04-05", "02:30", "2026-04-04T16:00:00Z"),
            (Kathmandu, "2026-06-01", "00:00", "2026-05-31T18:15:00Z"),
            // Samoa skipped 2011-12-30 altogether, jumping from -10:00 to +14:00.
            (Apia, "2011-12-30", "12:00", "2011-12-30T10:00:00Z"),
        ];
        for (tz, date, hh_mm, expected) in table {
            let got = instant(tz, date.parse().unwrap(), time(hh_mm).naive());
            assert_eq!(got, utc(expected), "{date} {hh_mm} in {tz}");
        }
    }

    #[test]
    fn the_openapi_schemas_describe_the_json_forms() {
        let schema = |s: RefOr<Schema>| serde_json::to_value(s).unwrap();
        let time = schema(LocalTime::schema());
        assert_eq!(time["type"], "string");
        assert_eq!(time["pattern"], "^([01][0-9]|2[0-3]):[0-5][0-9]$");
        let days = json!(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]);
        assert_eq!(schema(Day::schema())["enum"], days);
        assert_eq!(schema(Every::schema())["enum"], json!(["daily", "weekly"]));

        let window = schema(QuietWindow::schema());
        assert_eq!(window["required"], json!(["start", "end"]));
        assert_eq!(window["additionalProperties"], false);
        let fields = &window["properties"];
        assert_eq!(fields["start"]["$ref"], "#/components/schemas/LocalTime");
        assert_eq!(fields["end"]["$ref"], "#/components/schemas/LocalTime");
        assert_eq!(fields["days"]["type"], "array");
        assert_eq!(fields["days"]["uniqueItems"], true);
        assert_eq!(fields["days"]["items"]["$ref"], "#/components/schemas/Day");

        let hours = schema(QuietHours::schema());
        assert_eq!(
            hours["oneOf"][0]["$ref"],
            "#/components/schemas/QuietWindow"
        );
        assert_eq!(hours["oneOf"][1]["type"], "array");
        assert_eq!(hours["oneOf"][1]["maxItems"], 14);
        let items = &hours["oneOf"][1]["items"];
        assert_eq!(items["$ref"], "#/components/schemas/QuietWindow");
        let mut referenced = Vec::new();
        QuietHours::schemas(&mut referenced);
        for name in ["QuietWindow", "LocalTime", "Day"] {
            assert!(referenced.iter().any(|(n, _)| n == name), "{name}");
        }

        let digest = schema(DigestSchedule::schema());
        let daily = &digest["oneOf"][0];
        assert_eq!(daily["required"], json!(["every", "at"]));
        assert_eq!(daily["properties"]["every"]["enum"], json!(["daily"]));
        assert_eq!(daily["properties"]["day"]["type"], "null");
        assert_eq!(daily["additionalProperties"], false);
        let weekly = &digest["oneOf"][1];
        assert_eq!(weekly["required"], json!(["every", "at", "day"]));
        assert_eq!(weekly["properties"]["every"]["enum"], json!(["weekly"]));
        assert_eq!(
            weekly["properties"]["day"]["$ref"],
            "#/components/schemas/Day"
        );
        assert_eq!(weekly["additionalProperties"], false);
        let mut referenced = Vec::new();
        DigestSchedule::schemas(&mut referenced);
        for name in ["LocalTime", "Day"] {
            assert!(referenced.iter().any(|(n, _)| n == name), "{name}");
        }
    }
}
