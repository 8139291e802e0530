//! What reached the SMTP stand-in: the first arrival of each expected
//! delivery (named by the `X-Herald-Delivery-Id` header), the copies that
//! came again, and any mail nobody expected.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use herald_domain::DeliveryId;
use herald_standins::smtp::{ReceivedMail, SmtpSink};

use crate::progress::Progress;

const DELIVERY_HEADER: &str = "X-Herald-Delivery-Id";
/// How often a wait prints where it stands.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// How often a progress bar is moved on (reading only the mail count).
const BAR_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Default)]
pub struct Arrivals {
    /// The first arrival of each expected delivery.
    pub first: HashMap<DeliveryId, Instant>,
    /// How many times each delivery arrived, for those that came more than once.
    pub repeated: HashMap<DeliveryId, usize>,
    /// Mails without the header, or naming a delivery this run did not send.
    pub unexpected: usize,
    /// Mails looked at so far (a prefix of the sink's list).
    seen: usize,
    /// Deliveries of the warm-up, not counted whenever they arrive.
    ignored: HashSet<DeliveryId>,
}

impl Arrivals {
    /// Counts only mails after the sink's first `skip`, and never `ignored` ones.
    pub fn after(skip: usize, ignored: HashSet<DeliveryId>) -> Arrivals {
        Arrivals {
            seen: skip,
            ignored,
            ..Arrivals::default()
        }
    }

    /// Extra copies: arrivals beyond the first of each delivery.
    pub fn duplicates(&self) -> usize {
        self.repeated.values().map(|n| n - 1).sum()
    }

    pub fn missing<'a>(
        &'a self,
        expected: &'a HashMap<DeliveryId, Instant>,
    ) -> impl Iterator<Item = &'a DeliveryId> + 'a {
        expected.keys().filter(|id| !self.first.contains_key(id))
    }

    /// Takes in the mails after those already seen.
    fn absorb(&mut self, mails: &[ReceivedMail], expected: &HashMap<DeliveryId, Instant>) {
        for mail in mails.iter().skip(self.seen) {
            let id = mail
                .header(DELIVERY_HEADER)
                .and_then(|h| DeliveryId::parse(h.trim()).ok());
            if id.is_some_and(|id| self.ignored.contains(&id)) {
                continue;
            }
            let Some(id) = id.filter(|id| expected.contains_key(id)) else {
                self.unexpected += 1;
                continue;
            };
            match self.first.entry(id) {
                Entry::Occupied(_) => *self.repeated.entry(id).or_insert(1) += 1,
                Entry::Vacant(first) => {
                    first.insert(mail.received_at);
                }
            }
        }
        self.seen = self.seen.max(mails.len());
    }
}

/// Waits until every expected delivery has arrived or `deadline` passes.
pub async fn wait_for_all(
    smtp: &SmtpSink,
    expected: &HashMap<DeliveryId, Instant>,
    mut arrivals: Arrivals,
    deadline: Instant,
    verbose: bool,
) -> Arrivals {
    let mut progress = Progress::bar_only("arrived", expected.len(), verbose);
    loop {
        let still_needed = expected.len() - arrivals.first.len();
        if still_needed == 0 {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let wait = PROGRESS_EVERY.min(deadline - now);
        let target = arrivals.seen + still_needed;
        let mails = if progress.is_bar() {
            follow(smtp, &arrivals, target, wait, &mut progress).await;
            smtp.messages()
        } else {
            smtp.wait_for(target, wait).await
        };
        arrivals.absorb(&mails, expected);
        progress.set(arrivals.first.len());
        progress.note(format!(
            "duplicates {}, unexpected {}",
            arrivals.duplicates(),
            arrivals.unexpected
        ));
        if !verbose || progress.is_bar() {
            continue;
        }
        eprintln!(
            "  arrived {}/{} (mails {}, duplicates {}, unexpected {})",
            arrivals.first.len(),
            expected.len(),
            mails.len(),
            arrivals.duplicates(),
            arrivals.unexpected
        );
    }
    progress.finish();
    arrivals
}

/// Moves the bar on with the mail count (cheap, unlike reading the mails)
/// until `target` mails have come or `wait` has passed.
async fn follow(
    smtp: &SmtpSink,
    arrivals: &Arrivals,
    target: usize,
    wait: Duration,
    progress: &mut Progress,
) {
    let until = Instant::now() + wait;
    loop {
        let count = smtp.count();
        progress.set(arrivals.first.len() + count.saturating_sub(arrivals.seen));
        if count >= target || Instant::now() >= until {
            return;
        }
        tokio::time::sleep(BAR_EVERY).await;
    }
}

/// Waits `quiet` more, so a late second copy still counts, and takes in
/// whatever came.
pub async fn settle(
    smtp: &SmtpSink,
    expected: &HashMap<DeliveryId, Instant>,
    mut arrivals: Arrivals,
    quiet: Duration,
) -> Arrivals {
    tokio::time::sleep(quiet).await;
    arrivals.absorb(&smtp.messages(), expected);
    arrivals
}
