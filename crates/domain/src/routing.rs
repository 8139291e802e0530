//! Which channels a notification goes out on, what the router knows of a
//! recipient, and the reasons a delivery is suppressed.

use std::fmt;

use crate::{Channel, DomainError, Preferences, TemplateName};

/// What the router knows about a recipient when it decides.
#[derive(Debug, Clone)]
pub struct RecipientProfile {
    pub has_email: bool,
    pub has_phone: bool,
    pub push_devices: usize,
    pub preferences: Preferences,
    /// The user's zone; UTC when they have none.
    pub time_zone: chrono_tz::Tz,
}

impl Default for RecipientProfile {
    fn default() -> Self {
        RecipientProfile {
            has_email: false,
            has_phone: false,
            push_devices: 0,
            preferences: Preferences::default(),
            time_zone: chrono_tz::UTC,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuppressReason {
    OptedOutOfChannel,
    OptedOutOfCategory,
    /// An opt-in category the user has not opted in to.
    NotOptedIn,
    NoEmailAddress,
    NoPhoneNumber,
    NoPushDevice,
    UnknownUser,
    /// It would arrive later than the category's `expires_after` allows.
    Expired,
}

impl SuppressReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            SuppressReason::OptedOutOfChannel => "opted_out_channel",
            SuppressReason::OptedOutOfCategory => "opted_out_category",
            SuppressReason::NotOptedIn => "not_opted_in",
            SuppressReason::NoEmailAddress => "no_email_address",
            SuppressReason::NoPhoneNumber => "no_phone_number",
            SuppressReason::NoPushDevice => "no_push_device",
            SuppressReason::UnknownUser => "unknown_user",
            SuppressReason::Expired => "expired",
        }
    }
}

impl fmt::Display for SuppressReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
