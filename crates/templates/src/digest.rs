//! Rendering a digest: one message standing for several notifications of the
//! same template, from its `digest.*.hbs` files.
//!
//! The files see the group, not one request's params: `count`, `items` (each
//! request's params, oldest first), `first`, `last` and `others`
//! (`count - 1`). Everything else (strict mode, escaping, finishing, locale
//! fallback) is as for a single notification.

use handlebars::Context;
use herald_domain::{Channel, Locale, TemplateName};
use serde_json::{Map, Value};

use crate::part::Variant;
use crate::render::offers;
use crate::{Rendered, Template, TemplateError, TemplateStore};

impl TemplateStore {
    /// Renders one channel of the template's digest variant for `items`, the
    /// grouped requests' params, oldest first. `locale` is resolved as in
    /// [`TemplateStore::render`], among the digest files only.
    pub fn render_digest(
        &self,
        name: &TemplateName,
        channel: Channel,
        locale: Option<&Locale>,
        items: &[Map<String, Value>],
    ) -> Result<Rendered, TemplateError> {
        self.render_digest_of(name, channel, locale, items, items.len())
    }

    /// [`render_digest`](Self::render_digest) for a digest that stands for
    /// `count` notifications of which only `items` are given (a large digest
    /// carries a sample: its first and last ones). `count` and `others` say
    /// the whole number; `count` below `items.len()` is raised to it.
    pub fn render_digest_of(
        &self,
        name: &TemplateName,
        channel: Channel,
        locale: Option<&Locale>,
        items: &[Map<String, Value>],
        count: usize,
    ) -> Result<Rendered, TemplateError> {
        let template = self.template(name)?;
        offers(template, channel)?;
        let context = digest_context(template, items, count)?;
        self.render_variant(template, Variant::Digest, channel, locale, &context)
    }

    /// Renders every digest file (default and locale variants) of each given
    /// channel with `items`, like [`TemplateStore::check`] does for a single
    /// notification. Checking a request that carries a `group_key` with
    /// `items = [its params]` makes sure it can later be part of a digest.
    /// A template without a digest variant is refused, as by
    /// [`TemplateStore::render_digest`]: check [`TemplateInfo::digestible`]
    /// first.
    ///
    /// [`TemplateInfo::digestible`]: crate::TemplateInfo::digestible
    pub fn check_digest(
        &self,
        name: &TemplateName,
        channels: &[Channel],
        items: &[Map<String, Value>],
    ) -> Result<(), TemplateError> {
        let template = self.template(name)?;
        for &channel in channels {
            offers(template, channel)?;
        }
        let context = digest_context(template, items, items.len())?;
        self.check_variant(template, Variant::Digest, channels, &context)
    }
}

fn digest_context(
    template: &Template,
    items: &[Map<String, Value>],
    count: usize,
) -> Result<Context, TemplateError> {
    let named = || template.info.name.to_string();
    if !template.info.digestible {
        return Err(TemplateError::NoDigestVariant { template: named() });
    }
    // `first` and `last` must exist, and "0 new comments" is never worth sending.
    let (Some(first), Some(last)) = (items.first(), items.last()) else {
        return Err(TemplateError::EmptyDigest { template: named() });
    };
    let count = count.max(items.len());
    let mut context = Map::new();
    context.insert("count".to_owned(), Value::from(count));
    context.insert(
        "items".to_owned(),
        Value::Array(items.iter().cloned().map(Value::Object).collect()),
    );
    context.insert("first".to_owned(), Value::Object(first.clone()));
    context.insert("last".to_owned(), Value::Object(last.clone()));
    context.insert("others".to_owned(), Value::from(count - 1));
    Ok(Context::from(Value::Object(context)))
}
