//! The parts a channel is made of, and how a part file's name spells them.
//!
//! A part file is named `[digest.]<channel>.<part>[.<locale>].hbs`. Parsing
//! the name is kept apart from reading the folder so the rules (which parts
//! exist, which are required, which are HTML) live in one place.

use std::fmt;

use herald_domain::{Channel, Locale};

/// One piece of one channel's message, e.g. the subject of an e-mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Part {
    EmailSubject,
    EmailHtml,
    EmailText,
    PushTitle,
    PushBody,
    SmsBody,
    InAppTitle,
    InAppBody,
}

/// What rendering does to a part's output after Handlebars is done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Left exactly as rendered: e-mail bodies keep their layout.
    AsIs,
    /// Trimmed, and refused if nothing is left.
    Trim,
    /// Like `Trim`, and line breaks become spaces: these end up in a header
    /// (or a notification title) where a newline could inject another one.
    SingleLine,
}

impl Part {
    pub(crate) const ALL: [Part; 8] = [
        Part::EmailSubject,
        Part::EmailHtml,
        Part::EmailText,
        Part::PushTitle,
        Part::PushBody,
        Part::SmsBody,
        Part::InAppTitle,
        Part::InAppBody,
    ];

    pub(crate) fn channel(self) -> Channel {
        match self {
            Part::EmailSubject | Part::EmailHtml | Part::EmailText => Channel::Email,
            Part::PushTitle | Part::PushBody => Channel::Push,
            Part::SmsBody => Channel::Sms,
            Part::InAppTitle | Part::InAppBody => Channel::InApp,
        }
    }

    /// The part's name within its channel: `subject`, `html`, `body`…
    fn short_name(self) -> &'static str {
        match self {
            Part::EmailSubject => "subject",
            Part::EmailHtml => "html",
            Part::EmailText => "text",
            Part::PushTitle | Part::InAppTitle => "title",
            Part::PushBody | Part::SmsBody | Part::InAppBody => "body",
        }
    }

    /// The full name used in file names and errors, e.g. `email.subject`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Part::EmailSubject => "email.subject",
            Part::EmailHtml => "email.html",
            Part::EmailText => "email.text",
            Part::PushTitle => "push.title",
            Part::PushBody => "push.body",
            Part::SmsBody => "sms.body",
            Part::InAppTitle => "in_app.title",
            Part::InAppBody => "in_app.body",
        }
    }

    /// Only the HTML body is escaped; everything else is plain text that
    /// would be garbled by `&amp;`.
    pub(crate) fn is_html(self) -> bool {
        self == Part::EmailHtml
    }

    pub(crate) fn finish(self) -> Finish {
        match self {
            Part::EmailHtml | Part::EmailText => Finish::AsIs,
            Part::EmailSubject | Part::PushTitle => Finish::SingleLine,
            Part::PushBody | Part::SmsBody | Part::InAppTitle | Part::InAppBody => Finish::Trim,
        }
    }

    pub(crate) fn of(channel: Channel) -> impl Iterator<Item = Part> {
        Part::ALL
            .into_iter()
            .filter(move |p| p.channel() == channel)
    }

    /// The alternatives a channel needs at least one of, in the default locale.
    /// E-mail needs a subject and an HTML or a text body; the others need
    /// every part.
    pub(crate) fn requirements(channel: Channel) -> Vec<Vec<Part>> {
        match channel {
            Channel::Email => vec![
                vec![Part::EmailSubject],
                vec![Part::EmailHtml, Part::EmailText],
            ],
            other => Part::of(other).map(|p| vec![p]).collect(),
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which message a part file belongs to: the one sent for a single
/// notification, or the one that stands for a group of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Variant {
    Single,
    Digest,
}

impl Variant {
    /// What a file name of this variant starts with, before the channel.
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Variant::Single => "",
            Variant::Digest => "digest.",
        }
    }

    /// The default file of `part` in this variant, as written in errors:
    /// `email.subject.hbs`, `digest.email.subject.hbs`.
    pub(crate) fn file_name(self, part: Part) -> String {
        format!("{}{part}.hbs", self.prefix())
    }
}

/// A parsed part file name: which variant and part, and for which locale
/// (`None` is the default file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartFile {
    pub(crate) variant: Variant,
    pub(crate) part: Part,
    pub(crate) locale: Option<Locale>,
}

impl PartFile {
    /// Parses `email.subject.hbs`, `email.subject.pt-BR.hbs` or
    /// `digest.email.subject.hbs`. The error is written to be shown next to
    /// the file's path.
    pub(crate) fn parse(file_name: &str) -> Result<PartFile, String> {
        const SHAPE: &str =
            "expected [digest.]<channel>.<part>[.<locale>].hbs, e.g. email.subject.hbs, email.subject.fr.hbs or digest.email.subject.hbs";
        let stem = file_name
            .strip_suffix(".hbs")
            .ok_or_else(|| {
            format!("not a part file: a template folder holds only template.toml and part files; {SHAPE}")
        })?;
        // Only an exact `digest` is the prefix: `digests.email.subject.hbs`
        // falls through and is refused because `digests` is not a channel.
        let (variant, stem) = match stem.strip_prefix(Variant::Digest.prefix()) {
            Some(rest) => (Variant::Digest, rest),
            None => (Variant::Single, stem),
        };
        let prefix = variant.prefix();
        let segments: Vec<&str> = stem.split('.').collect();
        let (channel, name, locale) = match segments.as_slice() {
            [channel, name] => (*channel, *name, None),
            [channel, name, locale] => (*channel, *name, Some(*locale)),
            _ => return Err(format!("unknown part file name; {SHAPE}")),
        };
        let channel: Channel = channel.parse().map_err(|_| {
            format!("unknown part {prefix}{channel}.{name}: {channel:?} is not a channel (email, push, sms, in_app)")
        })?;
        let part = Part::of(channel)
            .find(|p| p.short_name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Part::of(channel).map(Part::short_name).collect();
                format!(
                    "unknown part {prefix}{channel}.{name}: {channel} parts are {}",
                    known.join(", ")
                )
            })?;
        let locale = locale
            .map(|tag| {
                Locale::parse(tag).map_err(|_| {
                    let hint = if tag == "digest" {
                        "; a digest part starts with digest., e.g. digest.email.subject.hbs"
                    } else {
                        ""
                    };
                    format!(
                        "malformed locale tag {tag:?}: expected a language tag such as fr or pt-BR{hint}"
                    )
                })
            })
            .transpose()?;
        Ok(PartFile {
            variant,
            part,
            locale,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_file_names_parse_into_a_part_and_an_optional_locale() {
        use Variant::{Digest, Single};
        let cases = [
            ("email.subject.hbs", Single, Part::EmailSubject, None),
            (
                "email.html.pt-BR.hbs",
                Single,
                Part::EmailHtml,
                Some("pt-BR"),
            ),
            (
                "in_app.body.zh-Hant-TW.hbs",
                Single,
                Part::InAppBody,
                Some("zh-Hant-TW"),
            ),
            ("sms.body.hbs", Single, Part::SmsBody, None),
            ("digest.email.subject.hbs", Digest, Part::EmailSubject, None),
            (
                "digest.push.body.fr.hbs",
                Digest,
                Part::PushBody,
                Some("fr"),
            ),
            (
                "digest.in_app.title.pt-BR.hbs",
                Digest,
                Part::InAppTitle,
                Some("pt-BR"),
            ),
        ];
        for (name, variant, part, locale) in cases {
            let parsed = PartFile::parse(name).unwrap();
            assert_eq!(parsed.variant, variant, "{name}");
            assert_eq!(parsed.part, part, "{name}");
            assert_eq!(parsed.locale.as_ref().map(Locale::as_str), locale, "{name}");
        }
    }

    #[test]
    fn misspelt_part_file_names_are_refused_with_a_reason() {
        let cases = [
            ("emial.subject.hbs", "not a channel"),
            ("email.body.hbs", "email parts are subject, html, text"),
            ("email.subject.f_r.hbs", "malformed locale tag"),
            ("email.hbs", "unknown part file name"),
            ("email.subject.fr.CA.hbs", "unknown part file name"),
            ("email.subject.txt", "not a part file"),
            (
                "digest.emial.subject.hbs",
                "unknown part digest.emial.subject: \"emial\" is not a channel",
            ),
            (
                "digests.email.subject.hbs",
                "unknown part digests.email: \"digests\" is not a channel",
            ),
            (
                "digest.email.body.hbs",
                "unknown part digest.email.body: email parts are subject, html, text",
            ),
            ("digest.email.subject.f_r.hbs", "malformed locale tag"),
            ("digest.email.hbs", "unknown part file name"),
            ("digest.hbs", "unknown part file name"),
            (
                "digest.digest.email.subject.hbs",
                "unknown part digest.digest.email: \"digest\" is not a channel",
            ),
            (
                "email.subject.digest.hbs",
                "a digest part starts with digest., e.g. digest.email.subject.hbs",
            ),
        ];
        for (name, expected) in cases {
            let err = PartFile::parse(name).unwrap_err();
            assert!(err.contains(expected), "{name}: {err}");
        }
    }
}
