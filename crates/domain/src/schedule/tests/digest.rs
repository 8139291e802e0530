//! Digest schedules: the next firing, across DST, and the JSON forms.

use super::*;

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
