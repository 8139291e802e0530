//! The wall-clock rules, table by table: times of day and the local-time
//! mapping here, quiet hours and digest schedules in their own files.

mod digest;
mod quiet;

use super::*;
use chrono_tz::America::Los_Angeles as LA;
use chrono_tz::Asia::{Kathmandu, Kolkata, Tokyo};
use chrono_tz::Australia::Adelaide;
use chrono_tz::Europe::{London, Paris};
use chrono_tz::Pacific::Apia;
use chrono_tz::UTC;
use serde_json::json;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

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
