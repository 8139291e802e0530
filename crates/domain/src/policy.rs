//! An operator's rules for a category of notifications.
//!
//! Categories are what users opt in and out of (`account`, `security`,
//! `marketing`, `social`). The operator decides, per category, whether users
//! may opt out at all, whether it is on before a user says anything, whether
//! a `critical` notification may interrupt quiet hours, how long a
//! notification stays worth delivering, and how often one person may be
//! interrupted by it. A category nobody defined behaves as
//! [`CategoryPolicy::default`]: on by default, opt-out allowed, no expiry,
//! no caps.

use serde::{Deserialize, Serialize};

use crate::{Channel, DomainError, Priority, Span};

/// The most caps one category may declare.
pub const MAX_CAPS: usize = 16;
/// The largest `max` a cap may have.
pub const MAX_CAP_SENDS: u32 = 1000;

/// `PUT /v1/admin/categories/{name}`, and one entry of the categories file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryPolicy {
    /// What the category is for, shown to operators: up to 500 characters,
    /// without control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 500, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub description: Option<String>,
    /// Users cannot opt out (security alerts, password resets).
    #[serde(default)]
    pub required: bool,
    /// Whether a user who has said nothing gets this category; `false` makes
    /// it opt-in (marketing).
    #[serde(default = "yes")]
    pub default_enabled: bool,
    /// `critical` notifications ignore the user's opt-outs.
    #[serde(default)]
    pub critical_bypasses_opt_out: bool,
    /// `critical` notifications ignore the user's quiet hours.
    #[serde(default)]
    pub critical_bypasses_quiet_hours: bool,
    /// Drop rather than deliver once this old: a deferral that would end
    /// later suppresses the delivery with reason `expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_after: Option<Span>,
    /// How often one user may be interrupted, per channel. `critical`
    /// notifications are not capped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 16)]
    pub caps: Vec<FrequencyCap>,
}

fn yes() -> bool {
    true
}

impl Default for CategoryPolicy {
    fn default() -> Self {
        CategoryPolicy {
            description: None,
            required: false,
            default_enabled: true,
            critical_bypasses_opt_out: false,
            critical_bypasses_quiet_hours: false,
            expires_after: None,
            caps: Vec::new(),
        }
    }
}

/// At most `max` deliveries on `channel` in any period of length `per`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    pub channel: Channel,
    /// A whole number from 1 to 1000 (`3` or `3.0`).
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 1000)]
    pub max: u32,
    pub per: Span,
}

/// Reads a count from any JSON number with no fractional part. JSON has one
/// number type, and JSON Schema's `integer` admits `3.0` as well as `3`, so
/// a client writing numbers as floats is not refused for it.
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    use serde::de::{Error, Unexpected, Visitor};
    struct WholeNumber;
    impl Visitor<'_> for WholeNumber {
        type Value = u32;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a whole number")
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<u32, E> {
            u32::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<u32, E> {
            u32::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
        }

        fn visit_f64<E: Error>(self, v: f64) -> Result<u32, E> {
            if v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v) {
                // Whole and in range, so the conversion is exact.
                Ok(v as u32)
            } else {
                Err(E::invalid_value(Unexpected::Float(v), &self))
            }
        }
    }
    deserializer.deserialize_any(WholeNumber)
}

impl CategoryPolicy {
    /// Checks what serde cannot: sizes and ranges.
    pub fn validate(self) -> Result<Self, DomainError> {
        if let Some(description) = &self.description {
            if description.chars().count() > 500 || description.chars().any(char::is_control) {
                return Err(DomainError::invalid(
                    "description",
                    description,
                    "must be at most 500 characters, without control characters",
                ));
            }
        }
        if self.caps.len() > MAX_CAPS {
            return Err(DomainError::invalid(
                "caps",
                "[…]",
                "may list at most 16 caps",
            ));
        }
        if let Some(cap) = self
            .caps
            .iter()
            .find(|c| c.max == 0 || c.max > MAX_CAP_SENDS)
        {
            return Err(DomainError::invalid(
                "cap max",
                &cap.max.to_string(),
                "must be 1 to 1000",
            ));
        }
        Ok(self)
    }

    pub fn bypasses_opt_out(&self, priority: Priority) -> bool {
        self.critical_bypasses_opt_out && priority == Priority::Critical
    }

    pub fn bypasses_quiet_hours(&self, priority: Priority) -> bool {
        self.critical_bypasses_quiet_hours && priority == Priority::Critical
    }

    /// The caps that apply to `channel`.
    pub fn caps_on(&self, channel: Channel) -> impl Iterator<Item = &FrequencyCap> {
        self.caps.iter().filter(move |c| c.channel == channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> Result<CategoryPolicy, String> {
        serde_json::from_str::<CategoryPolicy>(json)
            .map_err(|e| e.to_string())
            .and_then(|p| p.validate().map_err(|e| e.to_string()))
    }

    #[test]
    fn an_empty_policy_is_the_default_one() {
        assert_eq!(policy("{}").unwrap(), CategoryPolicy::default());
        assert!(CategoryPolicy::default().default_enabled);
    }

    #[test]
    fn a_full_policy_parses_and_round_trips() {
        let p = policy(
            r#"{"description":"Likes and comments","required":false,"default_enabled":false,
                "critical_bypasses_quiet_hours":true,"expires_after":"2h",
                "caps":[{"channel":"push","max":3,"per":"1h"},{"channel":"push","max":10,"per":"1d"}]}"#,
        )
        .unwrap();
        assert_eq!(p.caps_on(Channel::Push).count(), 2);
        assert_eq!(p.caps_on(Channel::Email).count(), 0);
        assert_eq!(p.expires_after, Some(Span::parse("2h").unwrap()));
        let back: CategoryPolicy =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn a_cap_written_as_a_whole_float_is_that_integer() {
        for json in ["3", "3.0", "3e0", "0.3e1"] {
            let p = policy(&format!(
                r#"{{"caps":[{{"channel":"push","max":{json},"per":"1h"}}]}}"#
            ))
            .unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(p.caps[0].max, 3, "{json}");
        }
    }

    #[test]
    fn bad_policies_are_refused_with_a_reason() {
        let cases = [
            (r#"{"requierd":true}"#, "unknown field"),
            (
                r#"{"caps":[{"channel":"push","max":0,"per":"1h"}]}"#,
                "1 to 1000",
            ),
            (
                r#"{"caps":[{"channel":"push","max":1001,"per":"1h"}]}"#,
                "1 to 1000",
            ),
            (
                r#"{"caps":[{"channel":"fax","max":1,"per":"1h"}]}"#,
                "unknown variant",
            ),
            (
                r#"{"caps":[{"channel":"push","max":1,"per":"soon"}]}"#,
                "duration",
            ),
            (r#"{"caps":[{"channel":"push","max":1}]}"#, "missing field"),
            (r#"{"expires_after":"0m"}"#, "duration"),
            (r#"{"required":"yes"}"#, "invalid type"),
            (
                r#"{"caps":[{"channel":"push","max":2.5,"per":"1h"}]}"#,
                "expected a whole number",
            ),
            (
                r#"{"caps":[{"channel":"push","max":-1,"per":"1h"}]}"#,
                "expected a whole number",
            ),
            (
                r#"{"caps":[{"channel":"push","max":"3","per":"1h"}]}"#,
                "expected a whole number",
            ),
        ];
        for (json, needle) in cases {
            let err = policy(json).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
        let caps: Vec<String> = (0..17)
            .map(|_| r#"{"channel":"push","max":1,"per":"1h"}"#.to_owned())
            .collect();
        let err = policy(&format!(r#"{{"caps":[{}]}}"#, caps.join(","))).unwrap_err();
        assert!(err.contains("at most 16"), "{err}");
    }

    #[test]
    fn only_critical_priority_bypasses_and_only_where_the_policy_allows() {
        let allows = CategoryPolicy {
            critical_bypasses_opt_out: true,
            critical_bypasses_quiet_hours: true,
            ..CategoryPolicy::default()
        };
        let forbids = CategoryPolicy::default();
        assert!(allows.bypasses_opt_out(Priority::Critical));
        assert!(allows.bypasses_quiet_hours(Priority::Critical));
        assert!(!allows.bypasses_opt_out(Priority::High));
        assert!(!allows.bypasses_quiet_hours(Priority::High));
        assert!(!forbids.bypasses_opt_out(Priority::Critical));
        assert!(!forbids.bypasses_quiet_hours(Priority::Critical));
    }
}
