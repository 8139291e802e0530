//! Quiet hours: windows of local time in which a delivery waits.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::{instant, Day, LocalTime};
use crate::DomainError;

/// How many windows a user may keep: two for each day of the week, say a
/// night and a midday break.
pub const MAX_QUIET_WINDOWS: usize = 14;

/// Chained windows are followed this many times at most, so windows that
/// cover the whole week cannot loop forever.
const MAX_HOPS: usize = 32;

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
