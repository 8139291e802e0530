//! The router's decision for one recipient: which channels, and why not the others.

use std::fmt;

use crate::preferences::OptOutScope;
use crate::{Category, CategoryPolicy, Channel, DomainError, Preferences, Priority, TemplateName};

/// What the router knows about a recipient when it decides.
#[derive(Debug, Clone, Default)]
pub struct RecipientProfile {
    pub has_email: bool,
    pub has_phone: bool,
    pub push_devices: usize,
    pub preferences: Preferences,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuppressReason {
    OptedOutOfChannel,
    OptedOutOfCategory,
    NoEmailAddress,
    NoPhoneNumber,
    NoPushDevice,
    UnknownUser,
}

impl SuppressReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            SuppressReason::OptedOutOfChannel => "opted_out_channel",
            SuppressReason::OptedOutOfCategory => "opted_out_category",
            SuppressReason::NoEmailAddress => "no_email_address",
            SuppressReason::NoPhoneNumber => "no_phone_number",
            SuppressReason::NoPushDevice => "no_push_device",
            SuppressReason::UnknownUser => "unknown_user",
        }
    }
}

impl fmt::Display for SuppressReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDecision {
    Deliver,
    Suppress(SuppressReason),
}

/// The channels a notification goes out on: the template's, narrowed by the
/// request's override. Asking for a channel the template has no text for is
/// the caller's mistake, not something to drop silently.
pub fn select_channels(
    template: &TemplateName,
    template_channels: &[Channel],
    requested: Option<&[Channel]>,
) -> Result<Vec<Channel>, DomainError> {
    let Some(requested) = requested else {
        return Ok(template_channels.to_vec());
    };
    if let Some(missing) = requested.iter().find(|c| !template_channels.contains(c)) {
        return Err(DomainError::ChannelNotInTemplate {
            channel: missing.to_string(),
            template: template.to_string(),
        });
    }
    Ok(requested.to_vec())
}

/// Decides, channel by channel, whether `recipient` gets this notification.
pub fn route(
    channels: &[Channel],
    category: &Category,
    priority: Priority,
    policy: &CategoryPolicy,
    recipient: &RecipientProfile,
) -> Vec<(Channel, RouteDecision)> {
    channels
        .iter()
        .map(|&channel| {
            (
                channel,
                decide(channel, category, priority, policy, recipient),
            )
        })
        .collect()
}

fn decide(
    channel: Channel,
    category: &Category,
    priority: Priority,
    policy: &CategoryPolicy,
    recipient: &RecipientProfile,
) -> RouteDecision {
    let unreachable = match channel {
        Channel::Email if !recipient.has_email => Some(SuppressReason::NoEmailAddress),
        Channel::Sms if !recipient.has_phone => Some(SuppressReason::NoPhoneNumber),
        Channel::Push if recipient.push_devices == 0 => Some(SuppressReason::NoPushDevice),
        _ => None,
    };
    if let Some(reason) = unreachable {
        return RouteDecision::Suppress(reason);
    }
    if policy.bypasses_opt_out(priority) {
        return RouteDecision::Deliver;
    }
    match recipient.preferences.opt_out(category, channel) {
        Some(OptOutScope::Channel) => RouteDecision::Suppress(SuppressReason::OptedOutOfChannel),
        Some(OptOutScope::Category) => RouteDecision::Suppress(SuppressReason::OptedOutOfCategory),
        None => RouteDecision::Deliver,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RouteDecision::*;
    use SuppressReason::*;

    fn reachable(prefs: &str) -> RecipientProfile {
        RecipientProfile {
            has_email: true,
            has_phone: true,
            push_devices: 1,
            preferences: serde_json::from_str(prefs).unwrap(),
        }
    }

    #[test]
    fn channel_selection_narrows_to_the_request_and_refuses_foreign_channels() {
        let t = TemplateName::parse("welcome").unwrap();
        let all = [Channel::Email, Channel::InApp];
        assert_eq!(select_channels(&t, &all, None).unwrap(), all.to_vec());
        assert_eq!(
            select_channels(&t, &all, Some(&[Channel::InApp])).unwrap(),
            vec![Channel::InApp]
        );
        let err = select_channels(&t, &all, Some(&[Channel::Sms])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "channel sms is not offered by template welcome"
        );
    }

    #[test]
    fn routing_table() {
        let social = Category::parse("social").unwrap();
        let none = CategoryPolicy::default();
        let bypass = CategoryPolicy {
            critical_bypasses_opt_out: true,
        };
        let no_contact = RecipientProfile::default();
        let opted_out =
            reachable(r#"{"channels":{"email":false},"categories":{"social":{"sms":false}}}"#);
        let n = Priority::Normal;
        let c = Priority::Critical;
        let table: Vec<(
            &RecipientProfile,
            Channel,
            Priority,
            &CategoryPolicy,
            RouteDecision,
        )> = vec![
            (
                &no_contact,
                Channel::Email,
                n,
                &none,
                Suppress(NoEmailAddress),
            ),
            (&no_contact, Channel::Sms, n, &none, Suppress(NoPhoneNumber)),
            (&no_contact, Channel::Push, n, &none, Suppress(NoPushDevice)),
            (&no_contact, Channel::InApp, n, &none, Deliver),
            (
                &no_contact,
                Channel::Email,
                c,
                &bypass,
                Suppress(NoEmailAddress),
            ),
            (
                &opted_out,
                Channel::Email,
                n,
                &none,
                Suppress(OptedOutOfChannel),
            ),
            (
                &opted_out,
                Channel::Sms,
                n,
                &none,
                Suppress(OptedOutOfCategory),
            ),
            (&opted_out, Channel::Push, n, &none, Deliver),
            (
                &opted_out,
                Channel::Email,
                c,
                &none,
                Suppress(OptedOutOfChannel),
            ),
            (&opted_out, Channel::Email, c, &bypass, Deliver),
            (
                &opted_out,
                Channel::Sms,
                Priority::High,
                &bypass,
                Suppress(OptedOutOfCategory),
            ),
        ];
        for (who, channel, priority, policy, expected) in table {
            let got = route(&[channel], &social, priority, policy, who);
            assert_eq!(
                got,
                vec![(channel, expected.clone())],
                "{channel} {priority:?} {policy:?}"
            );
        }
    }
}
