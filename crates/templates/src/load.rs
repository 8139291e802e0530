//! Reading and checking the templates folder.
//!
//! Everything that can be wrong with a template folder is found here, at
//! startup, so a typo in a file name fails the deploy instead of a
//! notification hours later. Every error names the file it is about.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use handlebars::template::TemplateElement;
use handlebars::{no_escape, Handlebars, Template as Compiled};
use herald_domain::{Category, Channel, TemplateName};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::part::{Part, PartFile};
use crate::{Inner, PartSource, Template, TemplateError, TemplateInfo};

const MANIFEST: &str = "template.toml";

/// The contents of `template.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    description: String,
    category: Category,
    channels: Vec<Channel>,
    #[serde(default)]
    params: Vec<String>,
    #[serde(default)]
    example: Map<String, Value>,
}

pub(crate) fn load_dir(dir: &Path) -> Result<Inner, TemplateError> {
    let mut html = Handlebars::new();
    html.set_strict_mode(true);
    let mut text = Handlebars::new();
    text.set_strict_mode(true);
    text.register_escape_fn(no_escape);

    let mut templates = BTreeMap::new();
    for (file_name, path) in entries(dir)? {
        if file_name.starts_with('_') || file_name.starts_with('.') || !is_dir(&path)? {
            continue;
        }
        let name = TemplateName::parse(file_name.as_str())
            .map_err(|e| load_error(&path, format!("not a valid template folder name: {e}")))?;
        let template = load_template(&path, name.clone(), &mut html, &mut text)?;
        templates.insert(name, template);
    }
    Ok(Inner {
        templates,
        html,
        text,
    })
}

fn load_template(
    dir: &Path,
    name: TemplateName,
    html: &mut Handlebars<'static>,
    text: &mut Handlebars<'static>,
) -> Result<Template, TemplateError> {
    let manifest = read_manifest(&dir.join(MANIFEST))?;
    let mut channels = manifest.channels;
    channels.sort();

    let mut files: BTreeMap<(Part, Option<String>), PartSource> = BTreeMap::new();
    let mut paths: BTreeMap<(Part, Option<String>), PathBuf> = BTreeMap::new();
    // Lower-cased tag → the spelling first seen, so `fr` and `FR` can't both appear.
    let mut locales: BTreeMap<String, String> = BTreeMap::new();
    for (file_name, path) in entries(dir)? {
        if file_name == MANIFEST || file_name.starts_with('.') {
            continue;
        }
        if is_dir(&path)? {
            return Err(load_error(
                &path,
                "unexpected folder: a template folder holds only template.toml and .hbs part files",
            ));
        }
        let PartFile { part, locale } =
            PartFile::parse(&file_name).map_err(|m| load_error(&path, m))?;
        if !channels.contains(&part.channel()) {
            return Err(load_error(
                &path,
                format!(
                    "part file for channel {}, which template.toml does not list in `channels`",
                    part.channel()
                ),
            ));
        }
        let tag = locale.as_ref().map(|l| l.as_str().to_ascii_lowercase());
        if let (Some(tag), Some(locale)) = (&tag, &locale) {
            let first = locales
                .entry(tag.clone())
                .or_insert_with(|| locale.as_str().to_owned());
            if first != locale.as_str() {
                return Err(load_error(
                    &path,
                    format!("locale tag {locale} is spelt differently from {first} in another file of this template"),
                ));
            }
        }
        let label = file_name.trim_end_matches(".hbs").to_owned();
        let key = format!("{name}/{label}");
        let compiled = compile(&path, &key)?;
        if part.is_html() {
            html.register_template(&key, compiled);
        } else {
            text.register_template(&key, compiled);
        }
        files.insert((part, tag.clone()), PartSource { part, label, key });
        paths.insert((part, tag), path);
    }

    for &channel in &channels {
        for alternatives in Part::requirements(channel) {
            if alternatives.iter().any(|&p| files.contains_key(&(p, None))) {
                continue;
            }
            let names: Vec<String> = alternatives.iter().map(|p| format!("{p}.hbs")).collect();
            let message = match names.as_slice() {
                [one] => format!("missing {one}: template.toml lists {channel}, which needs it"),
                _ => format!(
                    "missing {}: template.toml lists {channel}, which needs at least one of them",
                    names.join(" or ")
                ),
            };
            return Err(load_error(&dir.join(&names[0]), message));
        }
    }
    for ((part, tag), path) in &paths {
        if tag.is_some() && !files.contains_key(&(*part, None)) {
            return Err(load_error(
                path,
                format!("a locale variant needs a default {part}.hbs to fall back to"),
            ));
        }
    }

    Ok(Template {
        info: TemplateInfo {
            name,
            description: manifest.description,
            category: manifest.category,
            channels,
            locales: locales
                .into_values()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            params: manifest.params,
        },
        example: manifest.example,
        files,
    })
}

fn read_manifest(path: &Path) -> Result<Manifest, TemplateError> {
    if !path.exists() {
        return Err(load_error(
            path,
            "missing: every template folder needs a template.toml (start the folder name with _ to keep a folder that is not a template)",
        ));
    }
    let source = read(path)?;
    let manifest: Manifest = toml::from_str(&source).map_err(|e| {
        let at = e
            .span()
            .map(|span| {
                let newlines = source.bytes().take(span.start).filter(|&b| b == b'\n');
                format!(" at line {}", newlines.count() + 1)
            })
            .unwrap_or_default();
        load_error(path, format!("invalid template.toml{at}: {}", e.message()))
    })?;

    if manifest.description.trim().is_empty() {
        return Err(load_error(path, "description must not be empty"));
    }
    if manifest.channels.is_empty() {
        return Err(load_error(path, "channels must list at least one channel"));
    }
    if let Some(channel) = first_duplicate(&manifest.channels) {
        return Err(load_error(
            path,
            format!("channel {channel} is listed twice"),
        ));
    }
    if let Some(param) = manifest.params.iter().find(|p| p.trim().is_empty()) {
        return Err(load_error(path, format!("param name {param:?} is blank")));
    }
    if let Some(param) = first_duplicate(&manifest.params) {
        return Err(load_error(path, format!("param {param} is listed twice")));
    }
    if let Some(key) = manifest
        .example
        .keys()
        .find(|k| !manifest.params.contains(k))
    {
        return Err(load_error(
            path,
            format!("example.{key} is not one of the documented params"),
        ));
    }
    Ok(manifest)
}

fn compile(path: &Path, key: &str) -> Result<Compiled, TemplateError> {
    let source = read(path)?;
    let compiled = Compiled::compile_with_name(&source, key.to_owned()).map_err(|e| {
        let at = e
            .pos()
            .map(|(line, column)| format!(" (line {line}, column {column})"))
            .unwrap_or_default();
        load_error(path, format!("does not compile: {}{at}", e.reason()))
    })?;
    if let Some(what) = unsupported(&compiled) {
        return Err(load_error(
            path,
            format!("{what} are not supported: each part file must stand alone"),
        ));
    }
    Ok(compiled)
}

/// Partials and decorators are refused: all parts share two registries, so a
/// partial could pull in another template's part, and a missing one would
/// only show up when a notification is rendered.
fn unsupported(template: &Compiled) -> Option<&'static str> {
    template.elements.iter().find_map(|element| match element {
        TemplateElement::PartialExpression(_) | TemplateElement::PartialBlock(_) => {
            Some("partials ({{> name}})")
        }
        TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_) => {
            Some("decorators and inline partials ({{* name}}, {{#*inline}})")
        }
        TemplateElement::HelperBlock(helper)
        | TemplateElement::Expression(helper)
        | TemplateElement::HtmlExpression(helper) => helper
            .template
            .iter()
            .chain(helper.inverse.iter())
            .find_map(unsupported),
        _ => None,
    })
}

/// A folder's entries as (file name, path), sorted so errors are deterministic.
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, TemplateError> {
    let reading =
        fs::read_dir(dir).map_err(|e| load_error(dir, format!("cannot read folder: {e}")))?;
    let mut out = Vec::new();
    for entry in reading {
        let entry = entry.map_err(|e| load_error(dir, format!("cannot read folder: {e}")))?;
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| load_error(&path, "file name is not valid UTF-8"))?;
        out.push((name, path));
    }
    out.sort();
    Ok(out)
}

fn is_dir(path: &Path) -> Result<bool, TemplateError> {
    fs::metadata(path)
        .map(|m| m.is_dir())
        .map_err(|e| load_error(path, format!("cannot read: {e}")))
}

fn read(path: &Path) -> Result<String, TemplateError> {
    fs::read_to_string(path).map_err(|e| load_error(path, format!("cannot read: {e}")))
}

fn first_duplicate<T: Ord>(items: &[T]) -> Option<&T> {
    let mut seen = BTreeSet::new();
    items.iter().find(|item| !seen.insert(*item))
}

fn load_error(path: &Path, message: impl Into<String>) -> TemplateError {
    TemplateError::Load {
        path: path.display().to_string(),
        message: message.into(),
    }
}
