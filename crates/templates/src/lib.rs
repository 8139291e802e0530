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
//! `template.toml` describes the template; unknown keys are an error:
//!
//! ```toml
//! description = "Greets a new user"
//! category = "account"
//! channels = ["email", "in_app", "push", "sms"]   # the channels this template offers
//! params = ["name", "app_name"]                     # documented params (for the API listing)
//! [example]                                          # example params; used by tests
//! name = "Ada"
//! app_name = "Acme"
//! ```
//!
//! Every other file is a part, `<channel>.<part>[.<locale>].hbs`:
//!
//! | channel  | parts                                         |
//! |----------|-----------------------------------------------|
//! | `email`  | `subject`, and `html` or `text` or both       |
//! | `push`   | `title`, `body`                               |
//! | `sms`    | `body`                                        |
//! | `in_app` | `title`, `body`                               |
//!
//! Loading fails, naming the file, when a folder name is not a valid template
//! name, `template.toml` is missing, malformed or has an unknown key, a
//! declared channel lacks a required default part, a part file belongs to an
//! undeclared channel, has an unknown part name or a malformed locale tag, a
//! locale variant has no default file to fall back to, or a file does not
//! compile. Hidden files (starting with `.`) inside a template folder are
//! ignored; any other stray file is an error, which catches typos such as
//! `email.subjet.hbs`. Partials and decorators are refused: every part stands
//! alone.
//!
//! # Rendering
//!
//! A locale variant (`email.subject.fr.hbs`, `email.html.pt-BR.hbs`) may
//! provide only some parts. Each part is looked up along the requested
//! locale's fallbacks (`fr-CA`, then `fr`), then in the default file. Tags are
//! matched case-insensitively.
//!
//! `email.html` is HTML-escaped (`{{{raw}}}` opts out); every other part is
//! plain text and is not escaped. Subjects, titles and the push, SMS and
//! in-app bodies are trimmed and must not come out empty; line breaks in the
//! e-mail subject and the push title become single spaces, so a param cannot
//! inject a header.

mod error;
mod load;
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
use part::Part;

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
    /// Locale variants found besides the default, sorted.
    pub locales: Vec<String>,
    /// Param names documented in `template.toml`.
    pub params: Vec<String>,
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
    /// Keyed by part and lower-cased locale tag (`None` is the default file).
    files: BTreeMap<(Part, Option<String>), PartSource>,
}

/// Where one part file was registered.
struct PartSource {
    part: Part,
    /// The file name without `.hbs`, as shown in errors: `email.subject.fr`.
    label: String,
    /// The name it is registered under in its Handlebars registry.
    key: String,
}

impl Template {
    /// The most specific file for `part`: the locale's fallbacks in order,
    /// then the default file.
    fn resolve(&self, part: Part, locale: Option<&Locale>) -> Option<&PartSource> {
        let variant = locale
            .into_iter()
            .flat_map(Locale::fallbacks)
            .find_map(|tag| self.files.get(&(part, Some(tag.to_ascii_lowercase()))));
        variant.or_else(|| self.files.get(&(part, None)))
    }

    /// Every file of one channel, default and variants.
    fn files_of(&self, channel: Channel) -> impl Iterator<Item = &PartSource> {
        self.files
            .values()
            .filter(move |f| f.part.channel() == channel)
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
