//! How to reach a person: addresses, numbers, time zone and language.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;

macro_rules! string_newtype_impls {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// An e-mail address in the plain `local@domain` form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl utoipa::PartialSchema for EmailAddress {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
            .max_length(Some(254))
            .description(Some(
                "An e-mail address in the plain `local@domain` form, at most 254 characters.",
            ))
            .examples(["ada@example.com"])
            .into()
    }
}

impl utoipa::ToSchema for EmailAddress {}

impl EmailAddress {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let invalid = |reason| Err(DomainError::invalid("e-mail address", value, reason));
        if value.len() > 254 {
            return invalid("must be at most 254 characters");
        }
        let Some((local, domain)) = value.rsplit_once('@') else {
            return invalid("must look like name@example.com");
        };
        if local.is_empty() || local.len() > 64 {
            return invalid("the part before @ must be 1 to 64 characters");
        }
        let local_ok = local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        if !local_ok || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return invalid("the part before @ has characters an address may not use");
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !domain_ok {
            return invalid("the domain must look like example.com");
        }
        Ok(EmailAddress(value.to_owned()))
    }
}
string_newtype_impls!(EmailAddress);

/// A phone number in E.164 form: `+` then 8 to 15 digits, the first not 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = r"^\+[1-9][0-9]{7,14}$", example = "+14155550100")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let digits = value.strip_prefix('+').unwrap_or("");
        let ok = (8..=15).contains(&digits.len())
            && digits.chars().all(|c| c.is_ascii_digit())
            && !digits.starts_with('0');
        if !ok {
            return Err(DomainError::invalid(
                "phone number",
                value,
                "must be E.164: + then 8 to 15 digits, e.g. +14155550100",
            ));
        }
        Ok(PhoneNumber(value.to_owned()))
    }
}
string_newtype_impls!(PhoneNumber);

/// An IANA time zone name such as `Europe/Paris`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZoneName(String);

/// Every name [`TimeZoneName::parse`] accepts, so a client can check a zone
/// before sending it.
impl utoipa::PartialSchema for TimeZoneName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "An IANA time zone name such as `Europe/Paris`, as the tz database spells it.",
            ))
            .enum_values(Some(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())))
            .examples(["Europe/Paris"])
            .into()
    }
}

impl utoipa::ToSchema for TimeZoneName {}

impl TimeZoneName {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        chrono_tz::Tz::from_str(value)
            .map(|tz| TimeZoneName(tz.name().to_owned()))
            .map_err(|_| {
                DomainError::invalid(
                    "time zone",
                    value,
                    "must be an IANA name such as Europe/Paris",
                )
            })
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        // The constructor only admits names chrono-tz knows.
        chrono_tz::Tz::from_str(&self.0).unwrap_or(chrono_tz::UTC)
    }

    /// A user's zone: theirs, or UTC when they have none.
    pub fn or_utc(zone: Option<&TimeZoneName>) -> chrono_tz::Tz {
        zone.map_or(chrono_tz::UTC, TimeZoneName::tz)
    }
}
string_newtype_impls!(TimeZoneName);

/// A BCP 47 language tag such as `en`, `fr-CA` or `zh-Hant-TW`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$", example = "fr-CA")]
pub struct Locale(String);

impl Locale {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let mut parts = value.split('-');
        let language_ok = parts.next().is_some_and(|l| {
            (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic())
        });
        let rest_ok = parts
            .all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
        if !language_ok || !rest_ok {
            return Err(DomainError::invalid(
                "locale",
                value,
                "must be a language tag such as en or fr-CA",
            ));
        }
        Ok(Locale(value.to_owned()))
    }

    /// The tags to try, most specific first: `zh-Hant-TW`, `zh-Hant`, `zh`.
    pub fn fallbacks(&self) -> Vec<&str> {
        let mut out = vec![self.0.as_str()];
        let mut rest = self.0.as_str();
        while let Some((head, _)) = rest.rsplit_once('-') {
            out.push(head);
            rest = head;
        }
        out
    }
}
string_newtype_impls!(Locale);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses() {
        for ok in [
            "a@example.com",
            "first.last+tag@sub.example.co.uk",
            "x_y@a-b.io",
        ] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a b@example.com",
            "a@exa mple.com",
            ".a@example.com",
            "a..b@example.com",
            "a@-example.com",
            "a@example..com",
            "<a@example.com>",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn phone_numbers_must_be_e164() {
        assert!(PhoneNumber::parse("+14155550100").is_ok());
        assert!(PhoneNumber::parse("+33612345678").is_ok());
        for bad in [
            "14155550100",
            "+1 415 555",
            "+0123456789",
            "+12",
            "+1234567890123456",
            "+1415abc0100",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_time_zone_schema_lists_exactly_the_names_parse_accepts() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(TimeZoneName::schema()).unwrap();
        let names = schema["enum"].as_array().unwrap();
        assert_eq!(names.len(), chrono_tz::TZ_VARIANTS.len());
        for name in names {
            let name = name.as_str().unwrap();
            assert_eq!(TimeZoneName::parse(name).unwrap().as_str(), name);
        }
        assert!(names.iter().any(|n| n == "Europe/Paris"));
    }

    #[test]
    fn time_zones_must_be_iana_names() {
        assert_eq!(
            TimeZoneName::parse("Europe/Paris").unwrap().tz(),
            chrono_tz::Europe::Paris
        );
        assert!(TimeZoneName::parse("Mars/Olympus").is_err());
        assert!(TimeZoneName::parse("").is_err());
    }

    #[test]
    fn locales_fall_back_from_specific_to_general() {
        let l = Locale::parse("zh-Hant-TW").unwrap();
        assert_eq!(l.fallbacks(), vec!["zh-Hant-TW", "zh-Hant", "zh"]);
        assert_eq!(Locale::parse("en").unwrap().fallbacks(), vec!["en"]);
        for bad in ["", "e", "english-language-tag", "en_US", "en-", "1a"] {
            assert!(Locale::parse(bad).is_err(), "{bad}");
        }
    }
}
