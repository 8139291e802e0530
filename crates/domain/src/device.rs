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
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "DeviceWire", into = "DeviceWire")]
pub struct Device {
    platform: PushPlatform,
    token: String,
}

/// The token's rules per platform, as patterns: what [`Device::new`] checks.
const APNS_TOKEN_PATTERN: &str = "^[0-9A-Fa-f]{32,200}$";
const FCM_TOKEN_PATTERN: &str = "^[A-Za-z0-9:_\\-]{32,4096}$";

/// One object per platform, each with its own token pattern.
impl utoipa::PartialSchema for Device {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Type};
        let platform = |platform: PushPlatform, pattern: &str, description: &str| {
            ObjectBuilder::new()
                .property(
                    "platform",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([platform.as_str()])),
                )
                .required("platform")
                .property(
                    "token",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(pattern))
                        .description(Some(description)),
                )
                .required("token")
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        OneOfBuilder::new()
            .item(platform(
                PushPlatform::Apns,
                APNS_TOKEN_PATTERN,
                "32 to 200 hexadecimal characters",
            ))
            .item(platform(
                PushPlatform::Fcm,
                FCM_TOKEN_PATTERN,
                "32 to 4096 letters, digits, `:`, `_` and `-`",
            ))
            .description(Some(
                "A push device: `apns` with a hexadecimal token, or `fcm` with a URL-safe one.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Device {}

#[derive(Serialize, Deserialize)]
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
    fn the_schema_has_one_shape_per_platform_with_the_checked_lengths() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(Device::schema()).unwrap();
        let shapes = schema["oneOf"].as_array().unwrap();
        assert_eq!(shapes.len(), 2);
        for (shape, platform, pattern, (min, max), good) in [
            (&shapes[0], "apns", APNS_TOKEN_PATTERN, (32, 200), 'a'),
            (&shapes[1], "fcm", FCM_TOKEN_PATTERN, (32, 4096), '_'),
        ] {
            assert_eq!(shape["properties"]["platform"]["enum"][0], platform);
            assert_eq!(shape["properties"]["token"]["pattern"], pattern);
            assert_eq!(shape["additionalProperties"], false);
            assert!(pattern.ends_with(&format!("{{{min},{max}}}$")), "{pattern}");
            let platform = PushPlatform::parse(platform).unwrap();
            let token = |n: usize| good.to_string().repeat(n);
            assert!(Device::new(platform, &token(min)).is_ok());
            assert!(Device::new(platform, &token(max)).is_ok());
            assert!(Device::new(platform, &token(min - 1)).is_err());
            assert!(Device::new(platform, &token(max + 1)).is_err());
        }
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
