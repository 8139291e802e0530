//! Frequency caps: "at most 3 push an hour" as a sliding window.
//!
//! A cap holds when no period of length `per` contains more than `max`
//! sends. The store keeps, per (user, category, channel), the instants at
//! which deliveries were sent or are reserved to be sent (a delivery deferred
//! by a cap reserves the slot it will use, so ten notifications arriving at
//! once are spread over the next hours instead of all waking at the same
//! moment). [`next_slot`] finds the earliest instant from `now` at which one
//! more send keeps every cap, given everyone else's sends and reservations.

use chrono::{DateTime, Duration, Utc};

use crate::FrequencyCap;

/// The earliest instant `t >= now` at which one more send keeps every cap in
/// `caps`, given the instants in `taken` (other deliveries' sends and
/// reservations, past or future, in any order).
///
/// With no caps the answer is `now`. Candidates are `now` and the moments
/// the taken sends leave a window (`taken + per`); the first feasible one is
/// the answer, so the result is exact rather than polled.
pub fn next_slot(
    caps: &[&FrequencyCap],
    taken: &[DateTime<Utc>],
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let mut taken = taken.to_vec();
    taken.sort();
    let mut candidates: Vec<DateTime<Utc>> = std::iter::once(now)
        .chain(
            caps.iter()
                .flat_map(|cap| taken.iter().map(move |t| *t + per(cap)))
                .filter(|t| *t > now),
        )
        .collect();
    candidates.sort();
    candidates.dedup();
    candidates
        .into_iter()
        .find(|&t| caps.iter().all(|cap| fits(cap, &taken, t)))
        // Always found: once the last taken send has left every window
        // (`last + per`, a candidate unless `now` is later still) nothing
        // is in the way.
        .unwrap_or(now)
}

fn per(cap: &FrequencyCap) -> Duration {
    cap.per.as_chrono()
}

/// Would a send at `t` keep `cap`? Every window `[a, a + per)` that holds `t`
/// must hold fewer than `max` taken sends. The fullest such window starts at
/// `t` or at a taken send in `(t - per, t]`, so only those are checked.
fn fits(cap: &FrequencyCap, taken: &[DateTime<Utc>], t: DateTime<Utc>) -> bool {
    let per = per(cap);
    let max = cap.max as usize;
    let starts = std::iter::once(t).chain(taken.iter().copied().filter(|&s| s > t - per && s <= t));
    starts.into_iter().all(|a| {
        let inside = taken.iter().filter(|&&s| s >= a && s < a + per).count();
        inside < max
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Channel, Span};

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .to_utc()
            + Duration::minutes(minute)
    }

    fn cap(max: u32, per: &str) -> FrequencyCap {
        FrequencyCap {
            channel: Channel::Push,
            max,
            per: Span::parse(per).unwrap(),
        }
    }

    fn minutes(list: &[i64]) -> Vec<DateTime<Utc>> {
        list.iter().map(|&m| at(m)).collect()
    }

    #[test]
    fn the_slot_table_for_three_an_hour() {
        let three = cap(3, "1h");
        let table: [(&[i64], i64, i64); 12] = [
            // (taken, now, expected slot)
            (&[], 0, 0),
            (&[0], 1, 1),
            (&[0, 1], 2, 2),
            // Full: the next slot is when the oldest leaves the window.
            (&[0, 1, 2], 3, 60),
            (&[0, 1, 2], 59, 60),
            // The window is half-open: a send an hour ago no longer counts.
            (&[0, 1, 2], 60, 60),
            (&[0, 1, 2], 61, 61),
            // Reservations in the future count too: the 5th goes after the 4th's slot.
            (&[0, 1, 2, 60], 4, 61),
            (&[0, 1, 2, 60, 61], 5, 62),
            // A send now must not overfill a window that holds later reservations.
            (&[60, 61, 62], 30, 120),
            (&[60, 61], 30, 30),
            // Order of `taken` does not matter.
            (&[2, 0, 1], 3, 60),
        ];
        for (taken, now, expected) in table {
            assert_eq!(
                next_slot(&[&three], &minutes(taken), at(now)),
                at(expected),
                "taken {taken:?} now {now}"
            );
        }
    }

    #[test]
    fn every_cap_of_a_channel_must_hold_at_once() {
        let hourly = cap(2, "1h");
        let daily = cap(3, "1d");
        // Hourly alone would allow minute 60; the daily cap is full until 0 + 1 day.
        let slot = next_slot(&[&hourly, &daily], &minutes(&[0, 1, 30]), at(31));
        assert_eq!(slot, at(24 * 60));
        assert_eq!(next_slot(&[&hourly, &daily], &minutes(&[0]), at(5)), at(5));
    }

    #[test]
    fn no_caps_means_now() {
        assert_eq!(next_slot(&[], &minutes(&[0, 0, 0]), at(1)), at(1));
    }

    #[test]
    fn slots_handed_out_one_after_another_never_overfill_any_window() {
        // Twenty notifications arrive within a minute under 3 an hour: each
        // takes the slot offered, and every hour-long window holds at most 3.
        let three = cap(3, "1h");
        let mut taken = Vec::new();
        for i in 0..20 {
            let slot = next_slot(&[&three], &taken, at(0) + Duration::seconds(i * 3));
            taken.push(slot);
        }
        for &start in &taken {
            let inside = taken
                .iter()
                .filter(|&&t| t >= start && t < start + Duration::hours(1))
                .count();
            assert!(inside <= 3, "{inside} sends in the hour from {start}");
        }
        taken.sort();
        assert_eq!(taken[3], at(60));
        assert_eq!(taken[19], at(6 * 60) + Duration::seconds(3));
    }
}
