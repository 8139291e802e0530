//! Digest schedules: daily or weekly, at a local time.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{OneOfBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::{instant, Day, LocalTime};

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
