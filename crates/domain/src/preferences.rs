//! A user's choices about what reaches them where.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Category, Channel, Priority};

/// Opt-ins and opt-outs. Anything not mentioned is allowed.
///
/// A category×channel entry wins over the channel-wide one, so a user may
/// turn e-mail off in general and still keep security alerts by e-mail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// Channel-wide switches, e.g. `{"sms": false}`.
    #[serde(default)]
    #[schema(value_type = Object, example = json!({"email": true, "sms": false}))]
    pub channels: BTreeMap<Channel, bool>,
    /// Per category, per channel, e.g. `{"marketing": {"email": false}}`.
    #[serde(default)]
    #[schema(value_type = Object, example = json!({"marketing": {"email": false}}))]
    pub categories: BTreeMap<Category, BTreeMap<Channel, bool>>,
}

/// Which switch turned a channel off, for the `suppressed` receipt's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOutScope {
    Channel,
    Category,
}

impl Preferences {
    /// `None` if the user allows `category` on `channel`, else the switch
    /// that forbids it.
    pub fn opt_out(&self, category: &Category, channel: Channel) -> Option<OptOutScope> {
        if let Some(&allowed) = self.categories.get(category).and_then(|c| c.get(&channel)) {
            return (!allowed).then_some(OptOutScope::Category);
        }
        match self.channels.get(&channel) {
            Some(false) => Some(OptOutScope::Channel),
            _ => None,
        }
    }
}

/// An operator's rules for a category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CategoryPolicy {
    /// May `critical` notifications in this category ignore opt-outs?
    #[serde(default)]
    pub critical_bypasses_opt_out: bool,
}

impl CategoryPolicy {
    pub fn bypasses_opt_out(&self, priority: Priority) -> bool {
        self.critical_bypasses_opt_out && priority == Priority::Critical
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefs(json: &str) -> Preferences {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn opt_outs_follow_category_then_channel_then_default() {
        let marketing = Category::parse("marketing").unwrap();
        let security = Category::parse("security").unwrap();
        let p = prefs(
            r#"{"channels":{"email":false,"sms":true},
                "categories":{"security":{"email":true},"marketing":{"sms":false}}}"#,
        );
        let table = [
            (&marketing, Channel::Email, Some(OptOutScope::Channel)),
            (&security, Channel::Email, None),
            (&marketing, Channel::Sms, Some(OptOutScope::Category)),
            (&security, Channel::Sms, None),
            (&marketing, Channel::Push, None),
            (&security, Channel::InApp, None),
        ];
        for (category, channel, expected) in table {
            assert_eq!(
                p.opt_out(category, channel),
                expected,
                "{category} {channel}"
            );
        }
    }

    #[test]
    fn empty_preferences_allow_everything() {
        let p = Preferences::default();
        for c in Channel::ALL {
            assert_eq!(p.opt_out(&Category::parse("any").unwrap(), c), None);
        }
    }

    #[test]
    fn preferences_refuse_unknown_channels_and_fields() {
        assert!(serde_json::from_str::<Preferences>(r#"{"channels":{"fax":false}}"#).is_err());
        assert!(serde_json::from_str::<Preferences>(r#"{"channel":{}}"#).is_err());
        assert!(serde_json::from_str::<Preferences>(r#"{"categories":{"Bad Cat":{}}}"#).is_err());
    }

    #[test]
    fn only_critical_priority_bypasses_and_only_where_the_policy_allows() {
        let allows = CategoryPolicy {
            critical_bypasses_opt_out: true,
        };
        let forbids = CategoryPolicy::default();
        assert!(allows.bypasses_opt_out(Priority::Critical));
        assert!(!allows.bypasses_opt_out(Priority::High));
        assert!(!forbids.bypasses_opt_out(Priority::Critical));
    }
}
