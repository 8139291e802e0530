//! Push devices: which service delivers to them, and their token.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DomainError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PushPlatform {
    Apns,
    Fcm,
}

impl PushPlatform {
    pub fn as_str(self) -> &'static str {
        match self {
            PushPlatform::Apns => "apns",
            PushPlatform::Fcm => "fcm",
        }
    }

    pub fn parse(value: &str) -> Result<Self, DomainError> {
        match value {
            "apns" => Ok(PushPlatform::Apns),
            "fcm" => Ok(PushPlatform::Fcm),
            other => Err(DomainError::invalid(
                "push platform",
                other,
                "expected apns or fcm",
            )),
        }
    }
}

impl fmt::Display for PushPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registered push device: APNs tokens are hex, FCM tokens URL-safe text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "DeviceWire", into = "DeviceWire")]
pub struct Device {
    platform: PushPlatform,
    token: String,
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DeviceWire {
    platform: PushPlatform,
    token: String,
}

impl Device {
    pub fn new(platform: PushPlatform, token: &str) -> Result<Self, DomainError> {
        let ok = match platform {
            PushPlatform::Apns => {
                (32..=200).contains(&token.len()) && token.chars().all(|c| c.is_ascii_hexdigit())
            }
            PushPlatform::Fcm => {
                (32..=4096).contains(&token.len())
                    && token
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ":_-".contains(c))
            }
        };
        if !ok {
            let reason = match platform {
                PushPlatform::Apns => "an APNs token is 32 to 200 hexadecimal characters",
                PushPlatform::Fcm => {
                    "an FCM token is 32 to 4096 characters of letters, digits, : _ -"
                }
            };
            return Err(DomainError::invalid("device token", token, reason));
        }
        Ok(Device {
            platform,
            token: token.to_owned(),
        })
    }

    pub fn platform(&self) -> PushPlatform {
        self.platform
    }

    pub fn token(&self) -> &str {
        &self.token
    }
}

impl TryFrom<DeviceWire> for Device {
    type Error = DomainError;
    fn try_from(wire: DeviceWire) -> Result<Self, Self::Error> {
        Device::new(wire.platform, &wire.token)
    }
}

impl From<Device> for DeviceWire {
    fn from(device: Device) -> Self {
        DeviceWire {
            platform: device.platform,
            token: device.token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_tokens_are_checked_per_platform() {
        let hex = "a1".repeat(32);
        assert!(Device::new(PushPlatform::Apns, &hex).is_ok());
        assert!(Device::new(PushPlatform::Apns, "xyz").is_err());
        assert!(Device::new(PushPlatform::Apns, &"g1".repeat(32)).is_err());
        let fcm = format!("fcm:{}", "A_b-9".repeat(20));
        assert!(Device::new(PushPlatform::Fcm, &fcm).is_ok());
        assert!(Device::new(PushPlatform::Fcm, &format!("{fcm} with space")).is_err());
    }

    #[test]
    fn devices_deserialise_through_the_checks() {
        let ok = format!(r#"{{"platform":"apns","token":"{}"}}"#, "ab".repeat(32));
        assert!(serde_json::from_str::<Device>(&ok).is_ok());
        let err =
            serde_json::from_str::<Device>(r#"{"platform":"apns","token":"short"}"#).unwrap_err();
        assert!(err.to_string().contains("hexadecimal"), "{err}");
        assert!(serde_json::from_str::<Device>(r#"{"platform":"webpush","token":"x"}"#).is_err());
    }
}
