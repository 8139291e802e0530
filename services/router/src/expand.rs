//! Topic fan-out: a notification to a topic is routed a page of subscribers
//! at a time by a timer that carries its cursor.
//!
//! Each firing routes the page after the cursor, publishes it, and only then
//! moves the cursor on (in the timer's payload). A restart mid-expansion
//! fires the timer again from the last cursor it saved: the page routed but
//! not yet recorded as done is routed again, which finds its deliveries
//! decided and only republishes jobs still queued, so nobody is skipped and
//! nobody is sent twice. The list is never held in memory.

use chrono::{DateTime, Utc};
use herald_domain::{NotificationId, TopicName, UserId};
use herald_store::Timer;
use serde::{Deserialize, Serialize};

use crate::events::{route_page_by_page, PAGE};
use crate::judge::{Judge, Routed};
use crate::notice::Notice;
use crate::RouteError;

/// Where one topic's expansion stands: the timer's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExpandCursor {
    pub notification: NotificationId,
    pub topic: TopicName,
    /// The last subscriber routed; `None` before the first page.
    pub after: Option<UserId>,
    /// Every subscriber was routed: the timer stays only as a tombstone.
    #[serde(default)]
    pub done: bool,
}

impl ExpandCursor {
    pub fn start(notification: NotificationId, topic: TopicName) -> Self {
        ExpandCursor {
            notification,
            topic,
            after: None,
            done: false,
        }
    }

    /// The timer's subject: one expansion per (notification, topic).
    pub fn subject(&self) -> String {
        format!("{}/{}", self.notification, self.topic)
    }

    pub fn payload(&self) -> Result<String, RouteError> {
        serde_json::to_string(self).map_err(|e| RouteError::Poison(e.to_string()))
    }
}

/// What one firing did: the cursor to save, or `None` when the topic is
/// done (then `done` is the finished cursor).
pub(crate) struct Expanded {
    pub next: Option<ExpandCursor>,
    pub done: ExpandCursor,
    pub routed: Routed,
}

/// Routes the page after the cursor.
pub(crate) async fn expand_page(
    judge: &Judge,
    timer: &Timer,
    now: DateTime<Utc>,
) -> Result<Expanded, RouteError> {
    let cursor: ExpandCursor = serde_json::from_str(&timer.payload)
        .map_err(|e| RouteError::Poison(format!("bad expansion cursor: {e}")))?;
    let finished = |cursor: &ExpandCursor| Expanded {
        next: None,
        done: ExpandCursor {
            done: true,
            ..cursor.clone()
        },
        routed: Routed::default(),
    };
    if cursor.done {
        return Ok(finished(&cursor));
    }
    let Some(notice) = Notice::load(&judge.store, &judge.templates, cursor.notification).await?
    else {
        return Ok(finished(&cursor));
    };
    if notice.cancelled {
        // Nobody further down the list is told.
        return Ok(finished(&cursor));
    }
    let page = judge
        .store
        .topic_subscribers(&cursor.topic, cursor.after.as_ref(), PAGE as i64)
        .await?;
    let routed = route_page_by_page(judge, &notice, &page, now).await?;
    let next = (page.len() == PAGE).then(|| ExpandCursor {
        after: page.last().cloned(),
        ..cursor.clone()
    });
    Ok(Expanded {
        next,
        routed,
        ..finished(&cursor)
    })
}
