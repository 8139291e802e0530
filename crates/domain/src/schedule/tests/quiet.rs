//! Quiet hours: window edges, midnight, DST in several zones, weekdays,
//! chained windows and the JSON forms.

use super::*;

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
