//! Durations written by people: `90s`, `10m`, `2h`, `1d`.
//!
//! Operators and users type these into settings (a throttle window, a
//! snooze), so the grammar is deliberately tiny: one whole number without a
//! leading zero, then one unit letter, `s`, `m`, `h` or `d`, in lower case.
//! No spaces, signs, fractions or compound forms such as `1h30m`: a value that
//! could be read two ways is refused rather than guessed at.
//!
//! A span is at least one unit long and at most 366 days, so a typo such as
//! `1000000d` is caught at the edge instead of becoming "never". A day is
//! always 86 400 seconds here: a span measures elapsed time, not the wall
//! clock (wall-clock rules live in `schedule`).
//!
//! The canonical text is the largest unit that divides the span exactly:
//! `120m` is shown as `2h`, while `90s` stays `90s`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::DomainError;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const MAX_SECS: u64 = 366 * DAY;

/// A positive duration, `1s` to `366d`, parsed from text such as `10m`.
///
/// The OpenAPI pattern admits up to eight digits because `31622400s` (366
/// days in seconds) is valid; it cannot express the 366-day limit itself, so
/// a value such as `99999999d` matches the pattern and is still refused.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[1-9][0-9]{0,7}[smhd]$", example = "10m")]
pub struct Span(Duration);

impl Span {
    pub fn parse(value: &str) -> Result<Span, DomainError> {
        let invalid = |reason| DomainError::invalid("duration", value, reason);
        let shape = || invalid("must be a number and a unit s, m, h or d, e.g. 10m");
        // The grammar is ASCII, so bytes will do: any multi-byte character
        // fails the unit or digit checks.
        let Some((&unit, digits)) = value.as_bytes().split_last() else {
            return Err(shape());
        };
        let unit_secs = match unit {
            b's' => 1,
            b'm' => MINUTE,
            b'h' => HOUR,
            b'd' => DAY,
            _ => return Err(shape()),
        };
        let well_formed =
            !digits.is_empty() && digits[0] != b'0' && digits.iter().all(|b| b.is_ascii_digit());
        if !well_formed {
            return Err(shape());
        }
        // Digits only, so the sole way to fail is overflow, which is too long anyway.
        let secs = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse::<u64>().ok())
            .and_then(|n| n.checked_mul(unit_secs))
            .filter(|&s| s <= MAX_SECS)
            .ok_or_else(|| invalid("must be at most 366 days"))?;
        Ok(Span(Duration::from_secs(secs)))
    }

    /// For spans chosen in code; not checked against the limits of [`Span::parse`].
    pub fn from_secs(secs: u64) -> Span {
        Span(Duration::from_secs(secs))
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }

    pub fn as_chrono(self) -> chrono::Duration {
        // Only a huge `from_secs` value can exceed chrono's range; saturate.
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        // `u64::is_multiple_of` would need Rust 1.87; the workspace targets 1.85.
        let (count, unit) = [(DAY, 'd'), (HOUR, 'h'), (MINUTE, 'm')]
            .into_iter()
            .find(|&(size, _)| secs > 0 && secs.checked_rem(size) == Some(0))
            .map_or((secs, 's'), |(size, unit)| (secs / size, unit));
        write!(f, "{count}{unit}")
    }
}

impl TryFrom<String> for Span {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Span::parse(&value)
    }
}

impl From<Span> for String {
    fn from(value: Span) -> String {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_spans_parse_to_their_length_in_seconds() {
        let table = [
            ("1s", 1),
            ("90s", 90),
            ("10m", 600),
            ("120m", 7_200),
            ("2h", 7_200),
            ("1d", 86_400),
            ("366d", 31_622_400),
            ("8784h", 31_622_400),
            ("527040m", 31_622_400),
            ("31622400s", 31_622_400),
        ];
        for (text, secs) in table {
            let span = Span::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(span.as_duration(), Duration::from_secs(secs), "{text:?}");
            assert_eq!(span.as_chrono(), chrono::Duration::seconds(secs as i64));
        }
    }

    #[test]
    fn malformed_or_out_of_range_spans_are_refused_with_a_reason() {
        let shape = "must be a number and a unit s, m, h or d, e.g. 10m";
        let too_long = "must be at most 366 days";
        let table = [
            ("", shape),
            ("0m", shape),
            ("0s", shape),
            ("01m", shape),
            ("10", shape),
            ("m", shape),
            ("1.5h", shape),
            ("-1h", shape),
            ("+1h", shape),
            ("10 m", shape),
            (" 10m", shape),
            ("10m ", shape),
            ("10M", shape),
            ("1h30m", shape),
            ("10é", shape),
            ("١٠m", shape),
            ("367d", too_long),
            ("8785h", too_long),
            ("527041m", too_long),
            ("31622401s", too_long),
            ("99999999999999999999999d", too_long),
        ];
        for (text, expected) in table {
            match Span::parse(text) {
                Err(DomainError::Invalid { kind, reason, .. }) => {
                    assert_eq!((kind, reason), ("duration", expected), "{text:?}")
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn display_uses_the_largest_unit_that_divides_exactly() {
        let table = [
            ("90s", "90s"),
            ("60s", "1m"),
            ("120m", "2h"),
            ("90m", "90m"),
            ("24h", "1d"),
            ("36h", "36h"),
            ("86400s", "1d"),
            ("366d", "366d"),
        ];
        for (text, shown) in table {
            let span = Span::parse(text).unwrap();
            assert_eq!(span.to_string(), shown, "{text:?}");
            assert_eq!(Span::parse(shown).unwrap(), span, "{shown:?} round trip");
        }
        assert_eq!(Span::from_secs(3_600).to_string(), "1h");
        assert_eq!(Span::from_secs(0).to_string(), "0s");
    }

    #[test]
    fn serde_reads_and_writes_the_canonical_text() {
        let span: Span = serde_json::from_str(r#""120m""#).unwrap();
        assert_eq!(span, Span::from_secs(7_200));
        assert_eq!(serde_json::to_string(&span).unwrap(), r#""2h""#);
        let err = serde_json::from_str::<Span>(r#""10 m""#).unwrap_err();
        assert!(err.to_string().contains("unit s, m, h or d"), "{err}");
        assert!(serde_json::from_str::<Span>("600").is_err());
    }

    #[test]
    fn the_openapi_pattern_matches_every_canonical_form_the_parser_accepts() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(Span::schema()).unwrap();
        assert_eq!(schema["type"], "string");
        assert_eq!(schema["pattern"], "^[1-9][0-9]{0,7}[smhd]$");
        // The longest accepted texts have eight digits; a ninth is never valid.
        let longest = ["31622400s", "527040m", "8784h", "366d"];
        for text in longest {
            assert!(Span::parse(text).is_ok());
            let digits = &text[..text.len() - 1];
            assert!((1..=8).contains(&digits.len()), "{text}");
        }
        assert!(Span::parse("100000000s").is_err());
    }
}
