//! A user's choices about what reaches them, where and when, and the rule
//! that says which choice wins.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Category, CategoryPolicy, Channel, DigestSchedule, Priority, QuietHours};

/// `GET|PUT /v1/users/{id}/preferences`. Anything not mentioned is allowed.
///
/// A category×channel entry wins over the channel-wide one, so a user may
/// turn e-mail off in general and still keep security alerts by e-mail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "channels": {"sms": false},
    "categories": {"marketing": {"email": true}},
    "quiet_hours": {"start": "22:00", "end": "07:00"},
    "digests": {"social": {"every": "daily", "at": "08:00"}}
}))]
pub struct Preferences {
    /// Channel-wide switches, e.g. `{"sms": false}`.
    #[serde(default)]
    #[schema(value_type = BTreeMap<Channel, bool>, example = json!({"email": true, "sms": false}))]
    pub channels: BTreeMap<Channel, bool>,
    /// Per category, per channel, e.g. `{"marketing": {"email": false}}`.
    #[serde(default)]
    #[schema(value_type = BTreeMap<Category, BTreeMap<Channel, bool>>, example = json!({"marketing": {"email": false}}))]
    pub categories: BTreeMap<Category, BTreeMap<Channel, bool>>,
    /// When not to be interrupted, in the user's `time_zone` (UTC when the
    /// user has none). Deliveries inside a window wait for its end; in-app
    /// messages are silent and are not held.
    #[serde(default, skip_serializing_if = "QuietHours::is_empty")]
    pub quiet_hours: QuietHours,
    /// Per category, a digest at a fixed local time instead of one message
    /// each: `{"social": {"every": "daily", "at": "08:00"}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = BTreeMap<Category, DigestSchedule>)]
    pub digests: BTreeMap<Category, DigestSchedule>,
}

/// The rule that decided whether a channel is on, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecidingRule {
    /// The category is required: users cannot opt out.
    RequiredCategory,
    /// A `critical` notification in a category that lets it ignore opt-outs.
    CriticalBypass,
    /// The user's switch for this category on this channel.
    UserCategorySwitch,
    /// An opt-in category the user has not opted in to.
    CategoryDefault,
    /// The user's switch for the whole channel.
    UserChannelSwitch,
    /// Nothing said otherwise.
    Default,
}

impl DecidingRule {
    pub fn as_str(self) -> &'static str {
        match self {
            DecidingRule::RequiredCategory => "required_category",
            DecidingRule::CriticalBypass => "critical_bypass",
            DecidingRule::UserCategorySwitch => "user_category_switch",
            DecidingRule::CategoryDefault => "category_default",
            DecidingRule::UserChannelSwitch => "user_channel_switch",
            DecidingRule::Default => "default",
        }
    }
}

impl fmt::Display for DecidingRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a channel is on for a category, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    pub enabled: bool,
    pub decided_by: DecidingRule,
}

impl Preferences {
    /// Resolves one channel for one category, most binding rule first: a
    /// required category, a critical bypass, the user's category switch, an
    /// opt-in category's default, the user's channel switch, and otherwise on.
    ///
    /// An opt-in category stays off for a user who merely has the channel
    /// on: only a switch for that category opts them in.
    pub fn effective(
        &self,
        policy: &CategoryPolicy,
        category: &Category,
        channel: Channel,
        priority: Priority,
    ) -> Effective {
        let decided = |enabled, decided_by| Effective {
            enabled,
            decided_by,
        };
        if policy.required {
            return decided(true, DecidingRule::RequiredCategory);
        }
        if policy.bypasses_opt_out(priority) {
            return decided(true, DecidingRule::CriticalBypass);
        }
        if let Some(&on) = self.categories.get(category).and_then(|c| c.get(&channel)) {
            return decided(on, DecidingRule::UserCategorySwitch);
        }
        if !policy.default_enabled {
            return decided(false, DecidingRule::CategoryDefault);
        }
        match self.channels.get(&channel) {
            Some(&on) => decided(on, DecidingRule::UserChannelSwitch),
            None => decided(true, DecidingRule::Default),
        }
    }

    /// The user's digest schedule for a category, if they chose one.
    pub fn digest_for(&self, category: &Category) -> Option<&DigestSchedule> {
        self.digests.get(category)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DecidingRule::*;

    fn prefs(json: &str) -> Preferences {
        serde_json::from_str(json).unwrap()
    }

    fn cat(name: &str) -> Category {
        Category::parse(name).unwrap()
    }

    #[test]
    fn the_deciding_rule_table() {
        let user = prefs(
            r#"{"channels":{"email":false,"sms":true},
                "categories":{"security":{"email":true},"marketing":{"sms":false,"push":true}}}"#,
        );
        let open = CategoryPolicy::default();
        let required = CategoryPolicy {
            required: true,
            ..CategoryPolicy::default()
        };
        let opt_in = CategoryPolicy {
            default_enabled: false,
            ..CategoryPolicy::default()
        };
        let bypass = CategoryPolicy {
            critical_bypasses_opt_out: true,
            ..CategoryPolicy::default()
        };
        let n = Priority::Normal;
        let c = Priority::Critical;
        let table = [
            // (category, policy, channel, priority, enabled, rule)
            ("social", &open, Channel::Email, n, false, UserChannelSwitch),
            ("social", &open, Channel::Sms, n, true, UserChannelSwitch),
            ("social", &open, Channel::Push, n, true, Default),
            (
                "security",
                &open,
                Channel::Email,
                n,
                true,
                UserCategorySwitch,
            ),
            (
                "marketing",
                &open,
                Channel::Sms,
                n,
                false,
                UserCategorySwitch,
            ),
            (
                "marketing",
                &opt_in,
                Channel::Push,
                n,
                true,
                UserCategorySwitch,
            ),
            (
                "marketing",
                &opt_in,
                Channel::Sms,
                n,
                false,
                UserCategorySwitch,
            ),
            (
                "marketing",
                &opt_in,
                Channel::InApp,
                n,
                false,
                CategoryDefault,
            ),
            // An opt-in category is not switched on by a channel switch.
            ("social", &opt_in, Channel::Sms, n, false, CategoryDefault),
            (
                "social",
                &required,
                Channel::Email,
                n,
                true,
                RequiredCategory,
            ),
            (
                "marketing",
                &required,
                Channel::Sms,
                n,
                true,
                RequiredCategory,
            ),
            ("social", &bypass, Channel::Email, c, true, CriticalBypass),
            (
                "social",
                &bypass,
                Channel::Email,
                Priority::High,
                false,
                UserChannelSwitch,
            ),
            ("social", &open, Channel::Email, c, false, UserChannelSwitch),
        ];
        for (category, policy, channel, priority, enabled, rule) in table {
            let got = user.effective(policy, &cat(category), channel, priority);
            assert_eq!(
                got,
                Effective {
                    enabled,
                    decided_by: rule
                },
                "{category} {channel} {priority:?} {policy:?}"
            );
        }
    }

    #[test]
    fn empty_preferences_allow_everything_by_default() {
        let p = Preferences::default();
        for c in Channel::ALL {
            let e = p.effective(&CategoryPolicy::default(), &cat("any"), c, Priority::Normal);
            assert_eq!((e.enabled, e.decided_by), (true, Default));
        }
    }

    #[test]
    fn preferences_refuse_unknown_channels_and_fields() {
        for bad in [
            r#"{"channels":{"fax":false}}"#,
            r#"{"channel":{}}"#,
            r#"{"categories":{"Bad Cat":{}}}"#,
            r#"{"quiet_hours":{"start":"22:00"}}"#,
            r#"{"digests":{"social":{"every":"hourly","at":"08:00"}}}"#,
        ] {
            assert!(serde_json::from_str::<Preferences>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quiet_hours_and_digests_round_trip() {
        let p = prefs(
            r#"{"quiet_hours":{"start":"22:00","end":"07:00"},
                "digests":{"social":{"every":"daily","at":"08:00"}}}"#,
        );
        assert_eq!(p.quiet_hours.windows().len(), 1);
        assert!(p.digest_for(&cat("social")).is_some());
        assert!(p.digest_for(&cat("account")).is_none());
        let back: Preferences = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        let empty = serde_json::to_value(Preferences::default()).unwrap();
        assert_eq!(empty, serde_json::json!({"channels": {}, "categories": {}}));
    }
}
