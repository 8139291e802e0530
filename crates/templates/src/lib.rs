//! Server-side notification templates.
//!
//! A request names a template and carries params; it never carries rendered
//! HTML. This crate loads the templates folder once at startup, refuses a
//! broken folder with an error naming the file, and renders one channel's
//! parts with Handlebars in strict mode, so a missing param is a clear error
//! for the caller instead of a blank in a customer's inbox.
//!
//! # Folder format
//!
//! One folder per template, named after it (lower-case letters, digits, `_`
//! and `-`). Folders whose name starts with `_` or `.` are reserved and
//! skipped, and so are plain files next to the folders (such as a README).
//!
//! ```text
//! templates/
//!   welcome/
//!     template.toml
//!     email.subject.hbs      email.html.hbs      email.text.hbs
//!     push.title.hbs         push.body.hbs
//!     sms.body.hbs
//!     in_app.title.hbs       in_app.body.hbs
//!     email.subject.fr.hbs   email.html.fr.hbs   …   (locale variants)
//! ```
//!
//! `template.toml` describes the template; unknown keys are an error, at the
//! top level and inside `digest` and `escalate`:
//!
//! ```toml
//! description = "Greets a new user"
//! category = "account"
//! channels = ["email", "in_app", "push", "sms"]   # the channels this template offers
//! params = ["name", "app_name"]                     # documented params (for the API listing)
//! digest = { window = "10m" }                       # optional: group requests sharing a group_key
//! escalate = { from = "in_app", to = "email", after = "15m" }   # optional
//! [example]                                          # example params; used by tests
//! name = "Ada"
//! app_name = "Acme"
//! ```
//!
//! - `digest.window` ([`DigestSpec`]) is how long requests carrying the same
//!   `group_key` are collected before they go out as one digest. It needs
//!   the digest variant (below) to render that digest with.
//! - `escalate` ([`Escalation`]): if the `from` delivery is not read within
//!   `after`, the `to` channel is sent. `from` must be `in_app` or `push`
//!   (the channels that report being read), both must be listed in
//!   `channels`, and they must differ.
//!
//! Both durations are [`Span`](herald_domain::Span)s: `90s`, `10m`, `2h`, `1d`.
//!
//! Every other file is a part, `[digest.]<channel>.<part>[.<locale>].hbs`:
//!
//! | channel  | parts                                         |
//! |----------|-----------------------------------------------|
//! | `email`  | `subject`, and `html` or `text` or both       |
//! | `push`   | `title`, `body`                               |
//! | `sms`    | `body`                                        |
//! | `in_app` | `title`, `body`                               |
//!
//! Files starting with `digest.` (`digest.email.subject.hbs`,
//! `digest.push.body.fr.hbs`) make up the *digest variant*: the message that
//! stands for several notifications of the template at once. It is optional,
//! but all or nothing: one digest file commits the template to the digest
//! parts of every listed channel, as required above, in the default locale.
//! [`TemplateInfo::digestible`] tells whether a template has it; the router
//! groups a template's notifications (by `group_key`, or into a user's
//! scheduled digest) only then.
//!
//! Loading fails, naming the file, when a folder name is not a valid template
//! name, `template.toml` is missing, malformed or has an unknown key, an
//! escalation breaks the rules above, a `digest` window is set without a
//! digest variant, a declared channel lacks a required default part (in the
//! single-notification variant, or in the digest variant if there is one), a
//! part file belongs to an undeclared channel, has an unknown part name or a
//! malformed locale tag, a locale variant has no default file of its variant
//! to fall back to, or a file does not compile. Hidden files (starting with
//! `.`) inside a template folder are ignored; any other stray file is an
//! error, which catches typos such as `email.subjet.hbs` or
//! `digest.emial.subject.hbs`. Partials and decorators are refused: every
//! part stands alone.
//!
//! # Rendering
//!
//! A locale variant (`email.subject.fr.hbs`, `email.html.pt-BR.hbs`) may
//! provide only some parts. Each part is looked up along the requested
//! locale's fallbacks (`fr-CA`, then `fr`), then in the default file. Tags are
//! matched case-insensitively. A digest part is looked up the same way among
//! the digest files only: a digest never falls back to a single
//! notification's file, which expects other params.
//!
//! `email.html` and `digest.email.html` are HTML-escaped (`{{{raw}}}` opts
//! out); every other part is plain text and is not escaped. Subjects, titles
//! and the push, SMS and in-app bodies are trimmed and must not come out
//! empty; line breaks in the e-mail subject and the push title become single
//! spaces, so a param cannot inject a header.
//!
//! [`TemplateStore::render`] and [`TemplateStore::check`] render the
//! single-notification files with one request's params.
//! [`TemplateStore::render_digest`] and [`TemplateStore::check_digest`]
//! render the digest files with the grouped requests' params, oldest first,
//! as this context:
//!
//! | name     | value                                              |
//! |----------|----------------------------------------------------|
//! | `count`  | how many notifications the digest stands for (≥ 1) |
//! | `items`  | each one's params, oldest first                    |
//! | `first`  | the oldest one's params (`items.[0]`)              |
//! | `last`   | the newest one's params                            |
//! | `others` | `count - 1`                                        |
//!
//! A digest of no items is refused, so `first` and `last` always exist.
//!
//! # Helpers
//!
//! The helpers built into Handlebars (`if`, `unless`, `each`, `with`,
//! `lookup`, `eq`, `gt`, `and`, …) and one more, `minus`: `{{minus count 2}}`
//! is `count - 2`. It takes exactly two whole numbers and is an error on
//! anything else (text, fractions, a missing variable), so a digest can say
//! "Ana, Ben and {{minus count 2}} others" and fail its check rather than
//! print nonsense.

mod digest;
mod error;
mod helpers;
mod load;
mod manifest;
mod part;
mod render;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use handlebars::Handlebars;
use herald_domain::{Category, Channel, Locale, TemplateName};
use serde_json::{Map, Value};

pub use error::TemplateError;
pub use herald_domain::Escalation;
pub use manifest::DigestSpec;
use part::{Part, Variant};

/// Every template from one folder, compiled and ready to render.
///
/// Cloning is cheap: clones share the compiled templates.
#[derive(Clone)]
pub struct TemplateStore {
    inner: Arc<Inner>,
}

struct Inner {
    templates: BTreeMap<TemplateName, Template>,
    /// Escapes HTML; holds only `email.html` parts.
    html: Handlebars<'static>,
    /// Does not escape; holds every plain-text part.
    text: Handlebars<'static>,
}

/// What the API lists about a template.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TemplateInfo {
    pub name: TemplateName,
    pub description: String,
    pub category: Category,
    pub channels: Vec<Channel>,
    /// Locale tags found in any part file, digest or not, sorted. The
    /// default files have none.
    pub locales: Vec<String>,
    /// Param names documented in `template.toml`.
    pub params: Vec<String>,
    /// The window that groups requests carrying a `group_key`, if any.
    pub digest: Option<DigestSpec>,
    /// The channel to fall back to when a delivery is not read in time.
    pub escalate: Option<Escalation>,
    /// The template ships a digest variant (`digest.*.hbs`), so a group of
    /// its notifications can be sent as one message.
    pub digestible: bool,
}

/// One channel's rendered message.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    /// At least one of `html` and `text` is present.
    Email {
        subject: String,
        html: Option<String>,
        text: Option<String>,
    },
    Push {
        title: String,
        body: String,
    },
    Sms {
        body: String,
    },
    InApp {
        title: String,
        body: String,
    },
}

/// One loaded template folder.
struct Template {
    info: TemplateInfo,
    /// The `[example]` params from `template.toml`. Only the tests read them
    /// for now: they render every shipped template with its example.
    #[cfg_attr(not(test), allow(dead_code))]
    example: Map<String, Value>,
    files: BTreeMap<FileKey, PartSource>,
}

/// Which file: its variant, its part and its lower-cased locale tag (`None`
/// is the default file).
type FileKey = (Variant, Part, Option<String>);

/// Where one part file was registered.
struct PartSource {
    part: Part,
    /// The file name without `.hbs`, as shown in errors: `email.subject.fr`.
    label: String,
    /// The name it is registered under in its Handlebars registry.
    key: String,
}

impl Template {
    /// The most specific file for `part` in `variant`: the locale's
    /// fallbacks in order, then the variant's default file. A digest never
    /// falls back to a single notification's file: those expect other params.
    fn resolve(
        &self,
        variant: Variant,
        part: Part,
        locale: Option<&Locale>,
    ) -> Option<&PartSource> {
        let localized = locale
            .into_iter()
            .flat_map(Locale::fallbacks)
            .find_map(|tag| {
                self.files
                    .get(&(variant, part, Some(tag.to_ascii_lowercase())))
            });
        localized.or_else(|| self.files.get(&(variant, part, None)))
    }

    /// Every file of one channel in `variant`, default and locale variants.
    fn files_of(&self, variant: Variant, channel: Channel) -> impl Iterator<Item = &PartSource> {
        self.files
            .iter()
            .filter(move |((v, part, _), _)| *v == variant && part.channel() == channel)
            .map(|(_, file)| file)
    }
}

impl TemplateStore {
    /// Loads every folder under `dir`; fails with a clear error naming the file on any problem.
    #[tracing::instrument(skip_all, fields(dir = %dir.display()))]
    pub fn load(dir: &Path) -> Result<TemplateStore, TemplateError> {
        let inner = load::load_dir(dir)?;
        tracing::info!(templates = inner.templates.len(), "templates loaded");
        Ok(TemplateStore {
            inner: Arc::new(inner),
        })
    }

    pub fn get(&self, name: &TemplateName) -> Option<&TemplateInfo> {
        self.inner.templates.get(name).map(|t| &t.info)
    }

    /// Every template, sorted by name.
    pub fn list(&self) -> Vec<&TemplateInfo> {
        self.inner.templates.values().map(|t| &t.info).collect()
    }

    fn template(&self, name: &TemplateName) -> Result<&Template, TemplateError> {
        self.inner
            .templates
            .get(name)
            .ok_or_else(|| TemplateError::UnknownTemplate(name.to_string()))
    }

    /// The example params of a template, for tests that render every template.
    #[cfg(test)]
    fn example(&self, name: &TemplateName) -> Option<&Map<String, Value>> {
        self.inner.templates.get(name).map(|t| &t.example)
    }
}

impl fmt::Debug for TemplateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemplateStore")
            .field(
                "templates",
                &self.inner.templates.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}
