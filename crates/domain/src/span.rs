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

/// What [`Span::parse`] accepts, as a regular expression: 1 to 31622400
/// seconds, 1 to 527040 minutes, 1 to 8784 hours or 1 to 366 days, each
/// number without a leading zero.
pub const SPAN_PATTERN: &str = concat!(
    "^(",
    "([1-9][0-9]{0,6}|[12][0-9]{7}|30[0-9]{6}|31[0-5][0-9]{5}|316[01][0-9]{4}|3162[01][0-9]{3}|31622[0-3][0-9]{2}|31622400)s",
    "|([1-9][0-9]{0,4}|[1-4][0-9]{5}|5[01][0-9]{4}|52[0-6][0-9]{3}|5270[0-3][0-9]|527040)m",
    "|([1-9][0-9]{0,2}|[1-7][0-9]{3}|8[0-6][0-9]{2}|87[0-7][0-9]|878[0-4])h",
    "|([1-9][0-9]?|[12][0-9]{2}|3[0-5][0-9]|36[0-6])d",
    ")$"
);

/// A positive duration, `1s` to `366d`, parsed from text such as `10m`.
///
/// The OpenAPI pattern ([`SPAN_PATTERN`]) is exact: per unit it spells out the
/// numbers from 1 to the unit's count in 366 days, so a client validating
/// against the schema refuses `367d` just as the server does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Span(Duration);

impl utoipa::PartialSchema for Span {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A positive duration, `1s` to `366d`: a whole number without a leading zero, \
                 then `s`, `m`, `h` or `d`, e.g. `10m`.",
            ))
            .pattern(Some(SPAN_PATTERN))
            .examples(["10m"])
            .into()
    }
}

impl utoipa::ToSchema for Span {}

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

    /// One piece of a branch of [`SPAN_PATTERN`]: a set of characters,
    /// repeated `min..=max` times.
    type Atom = (Vec<char>, usize, usize);

    /// Reads the pattern's shape, `^((alt|alt…)unit|(alt|…)unit…)$`, into
    /// the alternatives of each unit. Enough of regular expressions for this
    /// one pattern, so the test needs no regex engine.
    fn span_pattern_branches() -> Vec<(char, Vec<Vec<Atom>>)> {
        let inner = SPAN_PATTERN
            .strip_prefix("^(")
            .and_then(|p| p.strip_suffix(")$"))
            .unwrap();
        // Split at the `|` between units, outside any parentheses.
        let mut groups = vec![String::new()];
        let mut depth = 0;
        for c in inner.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                '|' if depth == 0 => {
                    groups.push(String::new());
                    continue;
                }
                _ => {}
            }
            groups.last_mut().unwrap().push(c);
        }
        groups
            .iter()
            .map(|group| {
                let unit = group.chars().last().unwrap();
                let body = group
                    .strip_prefix('(')
                    .and_then(|g| g.strip_suffix(&format!("){unit}")))
                    .unwrap();
                (unit, body.split('|').map(parse_atoms).collect())
            })
            .collect()
    }

    fn parse_atoms(text: &str) -> Vec<Atom> {
        let chars: Vec<char> = text.chars().collect();
        let mut atoms = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let set: Vec<char> = if chars[i] == '[' {
                let end = i + chars[i..].iter().position(|&c| c == ']').unwrap();
                let class = &chars[i + 1..end];
                i = end + 1;
                let mut set = Vec::new();
                let mut j = 0;
                while j < class.len() {
                    if j + 2 < class.len() && class[j + 1] == '-' {
                        set.extend(class[j]..=class[j + 2]);
                        j += 3;
                    } else {
                        set.push(class[j]);
                        j += 1;
                    }
                }
                set
            } else {
                i += 1;
                vec![chars[i - 1]]
            };
            let (min, max) = match chars.get(i) {
                Some('?') => {
                    i += 1;
                    (0, 1)
                }
                Some('{') => {
                    let end = i + chars[i..].iter().position(|&c| c == '}').unwrap();
                    let counts: String = chars[i + 1..end].iter().collect();
                    i = end + 1;
                    match counts.split_once(',') {
                        Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                        None => (counts.parse().unwrap(), counts.parse().unwrap()),
                    }
                }
                _ => (1, 1),
            };
            atoms.push((set, min, max));
        }
        atoms
    }

    fn atoms_match(atoms: &[Atom], text: &[char]) -> bool {
        let Some(((set, min, max), rest)) = atoms.split_first() else {
            return text.is_empty();
        };
        (*min..=*max).any(|n| {
            n <= text.len()
                && text[..n].iter().all(|c| set.contains(c))
                && atoms_match(rest, &text[n..])
        })
    }

    #[test]
    fn the_openapi_pattern_accepts_exactly_what_the_parser_accepts() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(Span::schema()).unwrap();
        assert_eq!(schema["type"], "string");
        assert_eq!(schema["pattern"], SPAN_PATTERN);
        let branches = span_pattern_branches();
        let units: Vec<char> = branches.iter().map(|(u, _)| *u).collect();
        assert_eq!(units, vec!['s', 'm', 'h', 'd']);
        let matches = |unit: char, digits: &str| {
            let text: Vec<char> = digits.chars().collect();
            branches
                .iter()
                .filter(|(u, _)| *u == unit)
                .flat_map(|(_, alternatives)| alternatives)
                .any(|atoms| atoms_match(atoms, &text))
        };
        // Every number up to 100 000 and around each limit, with and without
        // a leading zero: the pattern and the parser agree on all of them.
        let mut numbers: Vec<u64> = (0..=100_000).collect();
        for limit in [366u64, 8_784, 527_040, 31_622_400] {
            numbers.extend(limit.saturating_sub(2_000)..=limit + 2_000);
            numbers.extend([limit * 10, limit * 10 + 9, 99_999_999, 100_000_000]);
        }
        for unit in ['s', 'm', 'h', 'd'] {
            for &n in &numbers {
                for digits in [n.to_string(), format!("0{n}")] {
                    let text = format!("{digits}{unit}");
                    assert_eq!(
                        matches(unit, &digits),
                        Span::parse(&text).is_ok(),
                        "{text:?}"
                    );
                }
            }
        }
    }
}
