//! The escalation tables: every delivery state against every condition, and
//! every way a template's escalation meets the selected channels.

use chrono::{DateTime, Duration, Utc};

use super::*;
use Channel::*;
use DeliveryState::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn now() -> DateTime<Utc> {
    utc("2026-03-02T10:00:00Z")
}

fn escalation(from: Channel, to: Channel, after: &str) -> Escalation {
    Escalation {
        from,
        to,
        after: Span::parse(after).unwrap(),
    }
}

fn push_to_email() -> Escalation {
    escalation(Push, Email, "15m")
}

/// The first delivery's `not_before` as the store may hold it, and when a
/// check that comes too early looks again (`max(not_before, now) + 15m`).
fn not_befores() -> [(Option<DateTime<Utc>>, DateTime<Utc>); 4] {
    [
        (None, utc("2026-03-02T10:15:00Z")),
        (
            Some(utc("2026-03-02T09:00:00Z")),
            utc("2026-03-02T10:15:00Z"),
        ),
        (Some(now()), utc("2026-03-02T10:15:00Z")),
        (
            Some(utc("2026-03-02T13:30:00Z")),
            utc("2026-03-02T13:45:00Z"),
        ),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Arm {
    Done,
    Later,
    Now,
}

/// Where each state of the first delivery leads, with an escalation in force
/// and the notification not cancelled.
const ARMS: [(DeliveryState, Arm); 10] = [
    // Not gone out yet: the window starts again when it may.
    (Queued, Arm::Later),
    (Deferred, Arm::Later),
    (Sending, Arm::Later),
    // Gone out and not read in time.
    (Sent, Arm::Now),
    (Delivered, Arm::Now),
    // Never going to be read.
    (Failed, Arm::Now),
    (Bounced, Arm::Now),
    (Suppressed, Arm::Now),
    // Read, or withdrawn before it was sent.
    (Read, Arm::Done),
    (Cancelled, Arm::Done),
];

#[test]
fn the_arm_table_names_every_delivery_state_once() {
    let mut named: Vec<&str> = ARMS.iter().map(|(s, _)| s.as_str()).collect();
    let mut all: Vec<&str> = DeliveryState::ALL.iter().map(|s| s.as_str()).collect();
    named.sort_unstable();
    all.sort_unstable();
    assert_eq!(named, all);
}

#[test]
fn an_escalation_in_force_is_done_later_or_now_by_the_first_delivery_state() {
    for (state, arm) in ARMS {
        for (not_before, look_again_at) in not_befores() {
            let expected = match arm {
                Arm::Done => EscalationDue::Done,
                Arm::Later => EscalationDue::Later(look_again_at),
                Arm::Now => EscalationDue::Now {
                    to: Email,
                    why: "push not read within 15m".into(),
                },
            };
            assert_eq!(
                escalation_due(Some(&push_to_email()), false, state, not_before, now()),
                expected,
                "{state}, not_before {not_before:?}"
            );
        }
    }
}

#[test]
fn a_cancelled_notification_or_no_escalation_is_done_whatever_the_first_delivery_state() {
    let e = push_to_email();
    for state in DeliveryState::ALL {
        for (not_before, _) in not_befores() {
            for (escalation, cancelled) in [(Some(&e), true), (None, true), (None, false)] {
                assert_eq!(
                    escalation_due(escalation, cancelled, state, not_before, now()),
                    EscalationDue::Done,
                    "{state}, not_before {not_before:?}, escalation {escalation:?}, cancelled {cancelled}"
                );
            }
        }
    }
}

#[test]
fn an_escalation_due_now_names_its_target_and_why_and_a_later_one_waits_its_own_window() {
    let table = [
        (
            escalation(InApp, Email, "2h"),
            "in_app not read within 2h",
            utc("2026-03-02T12:00:00Z"),
        ),
        (
            escalation(Push, Sms, "90s"),
            "push not read within 90s",
            utc("2026-03-02T10:01:30Z"),
        ),
        (
            escalation(InApp, Push, "1d"),
            "in_app not read within 1d",
            now() + Duration::days(1),
        ),
    ];
    for (e, why, later) in table {
        assert_eq!(
            escalation_due(Some(&e), false, Delivered, None, now()),
            EscalationDue::Now {
                to: e.to,
                why: why.into()
            }
        );
        assert_eq!(
            escalation_due(Some(&e), false, Queued, None, now()),
            EscalationDue::Later(later)
        );
    }
}

/// (case, named by the request, the template's escalation, sent now,
/// escalation in force)
type HoldBackRow = (&'static str, bool, Option<Escalation>, Vec<Channel>, bool);

#[test]
fn an_escalation_holds_its_target_back_only_when_the_template_chose_the_channels() {
    let selected = || vec![Push, Email];
    let table: [HoldBackRow; 10] = [
        ("no escalation", false, None, vec![Push, Email], false),
        ("no escalation, named", true, None, vec![Push, Email], false),
        (
            "from and to selected",
            false,
            Some(escalation(Push, Email, "15m")),
            vec![Push],
            true,
        ),
        (
            "from and to selected, named",
            true,
            Some(escalation(Push, Email, "15m")),
            vec![Push, Email],
            false,
        ),
        (
            "from selected, to not",
            false,
            Some(escalation(Push, Sms, "15m")),
            vec![Push, Email],
            true,
        ),
        (
            "from selected, to not, named",
            true,
            Some(escalation(Push, Sms, "15m")),
            vec![Push, Email],
            false,
        ),
        (
            "to selected, from not",
            false,
            Some(escalation(InApp, Email, "15m")),
            vec![Push, Email],
            false,
        ),
        (
            "to selected, from not, named",
            true,
            Some(escalation(InApp, Email, "15m")),
            vec![Push, Email],
            false,
        ),
        (
            "neither selected",
            false,
            Some(escalation(InApp, Sms, "15m")),
            vec![Push, Email],
            false,
        ),
        (
            "neither selected, named",
            true,
            Some(escalation(InApp, Sms, "15m")),
            vec![Push, Email],
            false,
        ),
    ];
    for (case, named, template_escalation, channels, in_force) in table {
        assert_eq!(
            hold_back_escalation(selected(), named, template_escalation),
            FirstSend {
                channels,
                escalation: template_escalation.filter(|_| in_force),
            },
            "{case}"
        );
    }
}

#[test]
fn holding_back_keeps_the_order_of_the_other_channels() {
    assert_eq!(
        hold_back_escalation(
            vec![Sms, Email, InApp, Push],
            false,
            Some(escalation(InApp, Email, "15m"))
        ),
        FirstSend {
            channels: vec![Sms, InApp, Push],
            escalation: Some(escalation(InApp, Email, "15m")),
        }
    );
    assert_eq!(
        hold_back_escalation(Vec::new(), false, Some(escalation(InApp, Email, "15m"))),
        FirstSend {
            channels: Vec::new(),
            escalation: None,
        }
    );
}
