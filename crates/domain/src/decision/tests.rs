//! The decision table: each row a situation, the verdict and the trace it must give.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::*;
use crate::{FrequencyCap, Preferences, Span};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn person(zone: chrono_tz::Tz, preferences: serde_json::Value) -> RecipientProfile {
    RecipientProfile {
        has_email: true,
        has_phone: true,
        push_devices: 1,
        preferences: serde_json::from_value::<Preferences>(preferences).unwrap(),
        time_zone: zone,
    }
}

fn sleeper(zone: chrono_tz::Tz) -> RecipientProfile {
    person(
        zone,
        json!({"quiet_hours": {"start": "22:00", "end": "07:00"}}),
    )
}

/// A situation with sensible defaults; rows override what they test.
fn situation<'a>(
    who: Option<&'a RecipientProfile>,
    policy: &'a CategoryPolicy,
    category: &'a Category,
    now: &str,
) -> Situation<'a> {
    let now = utc(now);
    Situation {
        channel: Channel::Push,
        category,
        priority: Priority::Normal,
        policy,
        recipient: who,
        created_at: now,
        send_at: None,
        group: None,
        may_group: true,
        digestible: true,
        cap_taken: &[],
        now,
    }
}

fn rules(d: &Decision) -> Vec<(Rule, Outcome)> {
    d.trace.iter().map(|t| (t.rule, t.outcome)).collect()
}

fn until(d: &Decision) -> Option<String> {
    d.trace.last().and_then(|t| t.until).map(|u| u.to_rfc3339())
}

fn deferred_to(d: &Decision) -> DateTime<Utc> {
    match d.verdict {
        Verdict::Defer { until, .. } => until,
        ref other => panic!("not deferred: {other:?}"),
    }
}

#[test]
fn quiet_hours_defer_to_the_window_end_in_each_users_own_zone() {
    let social = Category::parse("social").unwrap();
    let open = CategoryPolicy::default();
    // (zone, now in UTC, the local end of the window)
    let table = [
        // 00:00 in Tokyo on 1 December.
        (
            chrono_tz::Asia::Tokyo,
            "2026-11-30T15:00:00Z",
            "2026-12-01T07:00:00+09:00",
        ),
        // 23:30 in London (GMT).
        (
            chrono_tz::Europe::London,
            "2026-11-30T23:30:00Z",
            "2026-12-01T07:00:00+00:00",
        ),
        // 03:00 in Los Angeles (PST).
        (
            chrono_tz::America::Los_Angeles,
            "2026-12-01T11:00:00Z",
            "2026-12-01T07:00:00-08:00",
        ),
        // 22:00 in Kolkata exactly: the start is inside.
        (
            chrono_tz::Asia::Kolkata,
            "2026-11-30T16:30:00Z",
            "2026-12-01T07:00:00+05:30",
        ),
        // 06:59 in Adelaide (ACDT, +10:30).
        (
            chrono_tz::Australia::Adelaide,
            "2026-11-30T20:29:00Z",
            "2026-12-01T07:00:00+10:30",
        ),
    ];
    for (zone, now, end) in table {
        let who = sleeper(zone);
        let d = decide(&situation(Some(&who), &open, &social, now));
        assert_eq!(
            rules(&d),
            vec![
                (Rule::Preferences, Outcome::Pass),
                (Rule::QuietHours, Outcome::Deferred)
            ],
            "{zone} {now}"
        );
        assert_eq!(until(&d).as_deref(), Some(end), "{zone} {now}");
        assert_eq!(deferred_to(&d), utc(end), "{zone} {now}");
        assert_eq!(d.cap_slot, None);
    }
}

#[test]
fn outside_quiet_hours_and_at_their_end_a_delivery_is_queued() {
    let social = Category::parse("social").unwrap();
    let open = CategoryPolicy::default();
    let who = sleeper(chrono_tz::Asia::Tokyo);
    for now in [
        "2026-11-30T22:00:00Z",
        "2026-12-01T03:00:00Z",
        "2026-11-30T12:59:00Z",
    ] {
        let d = decide(&situation(Some(&who), &open, &social, now));
        assert_eq!(d.verdict, Verdict::Queue, "{now}");
        assert_eq!(
            rules(&d),
            vec![
                (Rule::Preferences, Outcome::Pass),
                (Rule::QuietHours, Outcome::Pass),
                (Rule::Queue, Outcome::Queued)
            ]
        );
    }
}

#[test]
fn in_app_is_silent_and_passes_quiet_hours() {
    let social = Category::parse("social").unwrap();
    let open = CategoryPolicy::default();
    let who = sleeper(chrono_tz::Asia::Tokyo);
    let mut s = situation(Some(&who), &open, &social, "2026-11-30T18:00:00Z");
    s.channel = Channel::InApp;
    let d = decide(&s);
    assert_eq!(d.verdict, Verdict::Queue);
    assert_eq!(d.trace[1].rule, Rule::QuietHours);
    assert_eq!(d.trace[1].reason.as_deref(), Some("in_app_is_silent"));
}

#[test]
fn a_critical_alert_passes_quiet_hours_only_where_its_category_allows() {
    let security = Category::parse("security").unwrap();
    let bypass = CategoryPolicy {
        required: true,
        critical_bypasses_quiet_hours: true,
        ..CategoryPolicy::default()
    };
    let strict = CategoryPolicy {
        required: true,
        ..CategoryPolicy::default()
    };
    // 03:00 in Los Angeles.
    let who = sleeper(chrono_tz::America::Los_Angeles);
    let now = "2026-12-01T11:00:00Z";
    let table = [
        (&bypass, Priority::Critical, Outcome::Bypassed),
        (&bypass, Priority::High, Outcome::Deferred),
        (&strict, Priority::Critical, Outcome::Deferred),
    ];
    for (policy, priority, outcome) in table {
        let mut s = situation(Some(&who), policy, &security, now);
        s.priority = priority;
        let d = decide(&s);
        assert_eq!(d.trace[1].rule, Rule::QuietHours, "{priority:?}");
        assert_eq!(d.trace[1].outcome, outcome, "{priority:?} {policy:?}");
        assert_eq!(d.trace[0].reason.as_deref(), Some("required_category"));
        if outcome == Outcome::Bypassed {
            assert_eq!(d.verdict, Verdict::Queue);
        }
    }
}

#[test]
fn an_expiring_category_is_dropped_rather_than_delivered_stale() {
    let rides = Category::parse("rides").unwrap();
    let two_hours = CategoryPolicy {
        expires_after: Some(Span::parse("2h").unwrap()),
        ..CategoryPolicy::default()
    };
    let who = sleeper(chrono_tz::Europe::London);
    // 03:00 London: the window ends at 07:00, past the two hours.
    let d = decide(&situation(
        Some(&who),
        &two_hours,
        &rides,
        "2026-12-01T03:00:00Z",
    ));
    assert_eq!(d.verdict, Verdict::Suppress(SuppressReason::Expired));
    assert_eq!(rules(&d)[1], (Rule::QuietHours, Outcome::Suppressed));
    assert_eq!(d.trace[1].reason.as_deref(), Some("expired"));
    assert_eq!(until(&d).as_deref(), Some("2026-12-01T07:00:00+00:00"));
    // 05:30: the window ends within two hours, so it waits.
    let d = decide(&situation(
        Some(&who),
        &two_hours,
        &rides,
        "2026-12-01T05:30:00Z",
    ));
    assert_eq!(deferred_to(&d), utc("2026-12-01T07:00:00Z"));
    // Released three hours after it was created: expired by then.
    let mut s = situation(Some(&who), &two_hours, &rides, "2026-12-01T07:00:00Z");
    s.created_at = utc("2026-12-01T04:00:00Z");
    let d = decide(&s);
    assert_eq!(rules(&d)[1], (Rule::Expiry, Outcome::Suppressed));
    // Expiry counts from send_at when that is later.
    s.send_at = Some(utc("2026-12-01T06:30:00Z"));
    assert_eq!(decide(&s).verdict, Verdict::Queue);
}

#[test]
fn send_at_in_the_future_defers_everything_after_it_and_a_past_one_is_now() {
    let social = Category::parse("social").unwrap();
    let open = CategoryPolicy::default();
    let who = sleeper(chrono_tz::Asia::Kolkata);
    let mut s = situation(Some(&who), &open, &social, "2026-12-01T06:00:00Z");
    s.send_at = Some(utc("2026-12-01T18:00:00Z"));
    let d = decide(&s);
    assert_eq!(
        rules(&d),
        vec![
            (Rule::Preferences, Outcome::Pass),
            (Rule::SendAt, Outcome::Deferred)
        ]
    );
    assert_eq!(deferred_to(&d), utc("2026-12-01T18:00:00Z"));
    assert_eq!(until(&d).as_deref(), Some("2026-12-01T23:30:00+05:30"));
    // At send_at (23:30 in Kolkata) quiet hours apply in turn.
    s.now = utc("2026-12-01T18:00:00Z");
    let d = decide(&s);
    assert_eq!(deferred_to(&d), utc("2026-12-02T01:30:00Z"));
    s.send_at = Some(utc("2026-01-01T00:00:00Z"));
    s.now = utc("2026-12-01T06:00:00Z");
    assert_eq!(decide(&s).verdict, Verdict::Queue);
}

#[test]
fn suppressions_name_their_reason_and_stop_the_trace() {
    let marketing = Category::parse("marketing").unwrap();
    let open = CategoryPolicy::default();
    let opt_in = CategoryPolicy {
        default_enabled: false,
        ..CategoryPolicy::default()
    };
    let nobody = RecipientProfile::default();
    let switched = person(
        chrono_tz::UTC,
        json!({"channels": {"sms": false}, "categories": {"marketing": {"email": false}}}),
    );
    let now = "2026-12-01T12:00:00Z";
    let table: [(
        Option<&RecipientProfile>,
        &CategoryPolicy,
        Channel,
        SuppressReason,
        Rule,
    ); 7] = [
        (
            None,
            &open,
            Channel::Email,
            SuppressReason::UnknownUser,
            Rule::Recipient,
        ),
        (
            Some(&nobody),
            &open,
            Channel::Email,
            SuppressReason::NoEmailAddress,
            Rule::Reachability,
        ),
        (
            Some(&nobody),
            &open,
            Channel::Sms,
            SuppressReason::NoPhoneNumber,
            Rule::Reachability,
        ),
        (
            Some(&nobody),
            &open,
            Channel::Push,
            SuppressReason::NoPushDevice,
            Rule::Reachability,
        ),
        (
            Some(&switched),
            &open,
            Channel::Sms,
            SuppressReason::OptedOutOfChannel,
            Rule::Preferences,
        ),
        (
            Some(&switched),
            &open,
            Channel::Email,
            SuppressReason::OptedOutOfCategory,
            Rule::Preferences,
        ),
        (
            Some(&switched),
            &opt_in,
            Channel::Push,
            SuppressReason::NotOptedIn,
            Rule::Preferences,
        ),
    ];
    for (who, policy, channel, reason, rule) in table {
        let mut s = situation(who, policy, &marketing, now);
        s.channel = channel;
        let d = decide(&s);
        assert_eq!(d.verdict, Verdict::Suppress(reason.clone()), "{channel}");
        assert_eq!(rules(&d), vec![(rule, Outcome::Suppressed)], "{channel}");
        assert_eq!(d.trace[0].reason.as_deref(), Some(reason.as_str()));
    }
    // In-app needs no address.
    let mut s = situation(Some(&nobody), &open, &marketing, now);
    s.channel = Channel::InApp;
    assert_eq!(decide(&s).verdict, Verdict::Queue);
}

#[test]
fn a_scheduled_digest_collects_ordinary_notifications_but_not_urgent_or_in_app_ones() {
    let social = Category::parse("social").unwrap();
    let open = CategoryPolicy::default();
    let who = person(
        chrono_tz::Asia::Tokyo,
        json!({"digests": {"social": {"every": "daily", "at": "08:00"}}}),
    );
    // 12:00 in Tokyo: the next 08:00 is tomorrow's.
    let now = "2026-12-01T03:00:00Z";
    let table = [
        (Priority::Low, Channel::Email, true),
        (Priority::Normal, Channel::Push, true),
        (Priority::High, Channel::Email, false),
        (Priority::Critical, Channel::Email, false),
        (Priority::Normal, Channel::InApp, false),
    ];
    for (priority, channel, digested) in table {
        let mut s = situation(Some(&who), &open, &social, now);
        s.priority = priority;
        s.channel = channel;
        let d = decide(&s);
        if digested {
            assert_eq!(
                d.verdict,
                Verdict::Digest(DigestPlan::Scheduled {
                    closes_at: utc("2026-12-01T23:00:00Z")
                }),
                "{priority:?} {channel}"
            );
            assert_eq!(until(&d).as_deref(), Some("2026-12-02T08:00:00+09:00"));
            assert_eq!(d.trace.last().unwrap().reason.as_deref(), Some("scheduled"));
        } else {
            assert_eq!(d.verdict, Verdict::Queue, "{priority:?} {channel}");
        }
    }
    // Another category is not collected, nor a template without a digest variant.
    let account = Category::parse("account").unwrap();
    assert_eq!(
        decide(&situation(Some(&who), &open, &account, now)).verdict,
        Verdict::Queue
    );
    let mut s = situation(Some(&who), &open, &social, now);
    s.digestible = false;
    assert_eq!(decide(&s).verdict, Verdict::Queue);
}

#[test]
fn a_group_key_with_a_digest_window_groups_unless_the_delivery_is_itself_a_digest() {
    let social = Category::parse("social").unwrap();
    let open = CategoryPolicy::default();
    let who = person(chrono_tz::UTC, json!({}));
    let key = GroupKey::parse("post-981").unwrap();
    let window = Span::parse("10m").unwrap();
    let mut s = situation(Some(&who), &open, &social, "2026-12-01T12:00:00Z");
    s.group = Some((&key, window));
    let d = decide(&s);
    assert_eq!(
        d.verdict,
        Verdict::Digest(DigestPlan::Group {
            key: key.clone(),
            window
        })
    );
    assert_eq!(rules(&d).last(), Some(&(Rule::Digest, Outcome::Grouped)));
    assert_eq!(d.waiting_reason(), Some(super::GROUPED));
    s.may_group = false;
    let d = decide(&s);
    assert_eq!(d.verdict, Verdict::Queue);
    assert_eq!(d.waiting_reason(), None);
}

#[test]
fn frequency_caps_pass_defer_fold_or_step_aside_for_critical() {
    let social = Category::parse("social").unwrap();
    let capped = CategoryPolicy {
        caps: vec![FrequencyCap {
            channel: Channel::Push,
            max: 3,
            per: Span::parse("1h").unwrap(),
        }],
        ..CategoryPolicy::default()
    };
    let plain = person(chrono_tz::Europe::London, json!({}));
    let digester = person(
        chrono_tz::Europe::London,
        json!({"digests": {"social": {"every": "daily", "at": "08:00"}}}),
    );
    let now = utc("2026-12-01T12:00:00Z");
    let three = [
        now - Duration::minutes(30),
        now - Duration::minutes(20),
        now - Duration::minutes(10),
    ];
    let two = &three[1..];

    // Under the cap: passes and holds the slot now.
    let mut s = situation(Some(&plain), &capped, &social, "2026-12-01T12:00:00Z");
    s.cap_taken = two;
    let d = decide(&s);
    assert_eq!(d.verdict, Verdict::Queue);
    assert_eq!(d.cap_slot, Some(now));
    assert_eq!(rules(&d)[1], (Rule::FrequencyCap, Outcome::Pass));

    // Over it: deferred to the slot, which it reserves.
    s.cap_taken = &three;
    let d = decide(&s);
    assert_eq!(
        d.verdict,
        Verdict::Defer {
            until: now + Duration::minutes(30),
            by: Rule::FrequencyCap
        }
    );
    assert_eq!(d.cap_slot, Some(now + Duration::minutes(30)));
    assert_eq!(d.waiting_reason(), Some("frequency_cap"));

    // Over it with a scheduled digest (a high-priority one, which the digest
    // does not collect up front): folded into the digest instead.
    let mut s = situation(Some(&digester), &capped, &social, "2026-12-01T12:00:00Z");
    s.priority = Priority::High;
    s.cap_taken = &three;
    let d = decide(&s);
    assert_eq!(
        d.verdict,
        Verdict::Digest(DigestPlan::Scheduled {
            closes_at: utc("2026-12-02T08:00:00Z")
        })
    );
    assert_eq!(
        d.trace.last().unwrap().reason.as_deref(),
        Some("folded_into_digest")
    );
    assert_eq!(d.cap_slot, None);
    // Its receipt says the cap put it there.
    assert_eq!(d.waiting_reason(), Some(super::FOLDED_BY_CAP));

    // Critical: not capped.
    s.priority = Priority::Critical;
    let d = decide(&s);
    assert_eq!(d.verdict, Verdict::Queue);
    assert_eq!(rules(&d)[1], (Rule::FrequencyCap, Outcome::Bypassed));
    assert_eq!(d.cap_slot, None);

    // Other channels are not capped by a push cap.
    let mut s = situation(Some(&plain), &capped, &social, "2026-12-01T12:00:00Z");
    s.channel = Channel::Email;
    s.cap_taken = &three;
    assert_eq!(
        rules(&decide(&s)),
        vec![
            (Rule::Preferences, Outcome::Pass),
            (Rule::Queue, Outcome::Queued)
        ]
    );

    // A cap slot past the expiry drops the notification.
    let expiring = CategoryPolicy {
        expires_after: Some(Span::parse("10m").unwrap()),
        ..capped.clone()
    };
    let mut s = situation(Some(&plain), &expiring, &social, "2026-12-01T12:00:00Z");
    s.cap_taken = &three;
    assert_eq!(
        decide(&s).verdict,
        Verdict::Suppress(SuppressReason::Expired)
    );
}

#[test]
fn a_fall_back_night_defers_to_the_first_time_the_clock_reads_the_end() {
    let social = Category::parse("social").unwrap();
    let open = CategoryPolicy::default();
    // Quiet until 01:30 on the night Los Angeles falls back (01:30 happens twice).
    let who = person(
        chrono_tz::America::Los_Angeles,
        json!({"quiet_hours": {"start": "23:00", "end": "01:30"}}),
    );
    // 00:30 PDT.
    let d = decide(&situation(
        Some(&who),
        &open,
        &social,
        "2026-11-01T07:30:00Z",
    ));
    assert_eq!(deferred_to(&d), utc("2026-11-01T08:30:00Z"));
    assert_eq!(until(&d).as_deref(), Some("2026-11-01T01:30:00-07:00"));
}

#[test]
fn a_spring_forward_night_ends_a_window_in_the_gap_at_the_transition() {
    let social = Category::parse("social").unwrap();
    let open = CategoryPolicy::default();
    let who = person(
        chrono_tz::America::Los_Angeles,
        json!({"quiet_hours": {"start": "22:00", "end": "02:30"}}),
    );
    // 01:00 PST on 8 March 2026; 02:30 does not exist that night.
    let d = decide(&situation(
        Some(&who),
        &open,
        &social,
        "2026-03-08T09:00:00Z",
    ));
    assert_eq!(deferred_to(&d), utc("2026-03-08T10:00:00Z"));
    assert_eq!(until(&d).as_deref(), Some("2026-03-08T03:00:00-07:00"));
}
