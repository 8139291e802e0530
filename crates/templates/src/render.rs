//! Rendering one channel, and checking a request before it is queued.
//!
//! Handlebars runs in strict mode, so a param the template uses but the
//! request lacks is an error that names the variable. The output is then
//! finished per part (see [`Finish`]): a subject that would be blank or span
//! two header lines is refused or flattened here, not by each provider.

use handlebars::{Context, RenderError, RenderErrorReason};
use herald_domain::{Channel, Locale, TemplateName};
use serde_json::{Map, Value};

use crate::part::{Finish, Part, Variant};
use crate::{PartSource, Rendered, Template, TemplateError, TemplateStore};

impl TemplateStore {
    /// Renders the parts of one channel. `locale` picks the most specific variant available via Locale::fallbacks(), else the default (no-locale) files.
    pub fn render(
        &self,
        name: &TemplateName,
        channel: Channel,
        locale: Option<&Locale>,
        params: &Map<String, Value>,
    ) -> Result<Rendered, TemplateError> {
        let template = self.template(name)?;
        offers(template, channel)?;
        let context = context(template, params)?;
        self.render_variant(template, Variant::Single, channel, locale, &context)
    }

    /// Renders every part of each given channel in the default locale and every locale variant, so a request with missing params is refused before it is queued. Returns the first error.
    pub fn check(
        &self,
        name: &TemplateName,
        channels: &[Channel],
        params: &Map<String, Value>,
    ) -> Result<(), TemplateError> {
        let template = self.template(name)?;
        for &channel in channels {
            offers(template, channel)?;
        }
        let context = context(template, params)?;
        self.check_variant(template, Variant::Single, channels, &context)
    }

    /// One channel's message from `variant`'s files; the caller has checked
    /// that the template offers the channel.
    pub(crate) fn render_variant(
        &self,
        template: &Template,
        variant: Variant,
        channel: Channel,
        locale: Option<&Locale>,
        context: &Context,
    ) -> Result<Rendered, TemplateError> {
        let part = |part: Part| -> Result<Option<String>, TemplateError> {
            template
                .resolve(variant, part, locale)
                .map(|file| self.render_file(template, file, context))
                .transpose()
        };
        let required = |p: Part| -> Result<String, TemplateError> {
            part(p)?.ok_or_else(|| TemplateError::Render {
                template: template.info.name.to_string(),
                part: format!("{}{p}", variant.prefix()),
                message: "the template has no such part".to_owned(),
            })
        };
        Ok(match channel {
            Channel::Email => Rendered::Email {
                subject: required(Part::EmailSubject)?,
                html: part(Part::EmailHtml)?,
                text: part(Part::EmailText)?,
            },
            Channel::Push => Rendered::Push {
                title: required(Part::PushTitle)?,
                body: required(Part::PushBody)?,
            },
            Channel::Sms => Rendered::Sms {
                body: required(Part::SmsBody)?,
            },
            Channel::InApp => Rendered::InApp {
                title: required(Part::InAppTitle)?,
                body: required(Part::InAppBody)?,
            },
        })
    }

    /// Renders every file of `variant` for the given channels; the caller
    /// has checked that the template offers them.
    pub(crate) fn check_variant(
        &self,
        template: &Template,
        variant: Variant,
        channels: &[Channel],
        context: &Context,
    ) -> Result<(), TemplateError> {
        // Rendering each file once covers every locale: a locale's message is
        // made of its own files and default files, all of which are here.
        for &channel in channels {
            for file in template.files_of(variant, channel) {
                self.render_file(template, file, context)?;
            }
        }
        Ok(())
    }

    fn render_file(
        &self,
        template: &Template,
        file: &PartSource,
        context: &Context,
    ) -> Result<String, TemplateError> {
        let registry = if file.part.is_html() {
            &self.inner.html
        } else {
            &self.inner.text
        };
        let error = |message: String| TemplateError::Render {
            template: template.info.name.to_string(),
            part: file.label.clone(),
            message,
        };
        let output = registry
            .render_with_context(&file.key, context)
            .map_err(|e| error(describe(&e)))?;
        finish(file.part.finish(), output).map_err(|m| error(m.to_owned()))
    }
}

pub(crate) fn offers(template: &Template, channel: Channel) -> Result<(), TemplateError> {
    if template.info.channels.contains(&channel) {
        Ok(())
    } else {
        Err(TemplateError::ChannelNotOffered {
            template: template.info.name.to_string(),
            channel,
        })
    }
}

fn context(template: &Template, params: &Map<String, Value>) -> Result<Context, TemplateError> {
    Context::wraps(params).map_err(|e| TemplateError::Render {
        template: template.info.name.to_string(),
        part: "params".to_owned(),
        message: describe(&e),
    })
}

/// A Handlebars error in words for the API caller, without the registry's
/// internal template names.
pub(crate) fn describe(err: &RenderError) -> String {
    let reason = match err.reason() {
        RenderErrorReason::MissingVariable(Some(path)) => {
            format!("variable {path:?} is missing from the params")
        }
        RenderErrorReason::MissingVariable(None) => {
            "a variable is missing from the params".to_owned()
        }
        other => other.to_string(),
    };
    match (err.line_no, err.column_no) {
        (Some(line), Some(column)) => format!("{reason} (line {line}, column {column})"),
        _ => reason,
    }
}

fn finish(finish: Finish, output: String) -> Result<String, &'static str> {
    let finished = match finish {
        Finish::AsIs => return Ok(output),
        Finish::Trim => output.trim().to_owned(),
        Finish::SingleLine => single_line(output.trim()),
    };
    if finished.is_empty() {
        Err("rendered empty (nothing but whitespace is left)")
    } else {
        Ok(finished)
    }
}

/// Replaces each run of CR and LF characters with one space.
fn single_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_break = false;
    for c in text.chars() {
        if c == '\r' || c == '\n' {
            if !in_break {
                out.push(' ');
            }
            in_break = true;
        } else {
            out.push(c);
            in_break = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finishing_trims_flattens_and_refuses_blank_output() {
        let cases = [
            (Finish::AsIs, "  <p>hi</p>\n", Ok("  <p>hi</p>\n")),
            (Finish::Trim, "  hello\nthere \n", Ok("hello\nthere")),
            (
                Finish::SingleLine,
                " Hi\r\nBcc: x@y.z\n",
                Ok("Hi Bcc: x@y.z"),
            ),
            (Finish::SingleLine, "a\n\n\rb", Ok("a b")),
            (Finish::Trim, " \n\t ", Err("rendered empty")),
            (Finish::SingleLine, "\r\n", Err("rendered empty")),
        ];
        for (how, input, expected) in cases {
            let got = finish(how, input.to_owned());
            match expected {
                Ok(text) => assert_eq!(got.as_deref(), Ok(text), "{input:?}"),
                Err(fragment) => {
                    let err = got.unwrap_err();
                    assert!(err.contains(fragment), "{input:?}: {err}");
                }
            }
        }
    }
}
