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
use herald_domain::{Channel, TemplateName};

use crate::manifest::read_manifest;
use crate::part::{Part, PartFile, Variant};
use crate::{helpers, FileKey, Inner, PartSource, Template, TemplateError, TemplateInfo};

const MANIFEST: &str = "template.toml";

pub(crate) fn load_dir(dir: &Path) -> Result<Inner, TemplateError> {
    let mut html = Handlebars::new();
    html.set_strict_mode(true);
    let mut text = Handlebars::new();
    text.set_strict_mode(true);
    text.register_escape_fn(no_escape);
    helpers::register(&mut html);
    helpers::register(&mut text);

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
    let manifest_path = dir.join(MANIFEST);
    let manifest = read_manifest(&manifest_path)?;
    let (digest, escalate) = (manifest.digest(), manifest.escalate());
    let mut channels = manifest.channels;
    channels.sort();

    let mut files: BTreeMap<FileKey, PartSource> = BTreeMap::new();
    let mut paths: BTreeMap<FileKey, PathBuf> = BTreeMap::new();
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
        let PartFile {
            variant,
            part,
            locale,
        } = PartFile::parse(&file_name).map_err(|m| load_error(&path, m))?;
        if !channels.contains(&part.channel()) {
            let what = match variant {
                Variant::Single => "part file",
                Variant::Digest => "digest part file",
            };
            return Err(load_error(
                &path,
                format!(
                    "{what} for channel {}, which template.toml does not list in `channels`",
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
        files.insert(
            (variant, part, tag.clone()),
            PartSource { part, label, key },
        );
        paths.insert((variant, part, tag), path);
    }

    // One digest file commits the template to a whole digest variant: the
    // router may then group any of its channels, and each must render.
    let digestible = files.keys().any(|(v, _, _)| *v == Variant::Digest);
    check_required(dir, &files, Variant::Single, &channels)?;
    if digestible {
        check_required(dir, &files, Variant::Digest, &channels)?;
    }
    for ((variant, part, tag), path) in &paths {
        if tag.is_some() && !files.contains_key(&(*variant, *part, None)) {
            return Err(load_error(
                path,
                format!(
                    "a locale variant needs a default {} to fall back to",
                    variant.file_name(*part)
                ),
            ));
        }
    }
    if digest.is_some() && !digestible {
        return Err(load_error(
            &manifest_path,
            "digest.window is set, but the template has no digest variant to render the group with: add digest.<channel>.<part>.hbs files or remove `digest`",
        ));
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
            digest,
            escalate,
            digestible,
        },
        example: manifest.example,
        files,
    })
}

/// Every listed channel has its required default parts in `variant`.
fn check_required(
    dir: &Path,
    files: &BTreeMap<FileKey, PartSource>,
    variant: Variant,
    channels: &[Channel],
) -> Result<(), TemplateError> {
    for &channel in channels {
        for alternatives in Part::requirements(channel) {
            if alternatives
                .iter()
                .any(|&p| files.contains_key(&(variant, p, None)))
            {
                continue;
            }
            let names: Vec<String> = alternatives.iter().map(|&p| variant.file_name(p)).collect();
            let what = match names.as_slice() {
                [one] => format!("missing {one}"),
                _ => format!("missing {}", names.join(" or ")),
            };
            let needs = if names.len() == 1 {
                "it"
            } else {
                "at least one of them"
            };
            let message = match variant {
                Variant::Single => {
                    format!("{what}: template.toml lists {channel}, which needs {needs}")
                }
                Variant::Digest => format!(
                    "{what}: the template has a digest variant, which needs {needs} for {channel} (listed in template.toml)"
                ),
            };
            return Err(load_error(&dir.join(&names[0]), message));
        }
    }
    Ok(())
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

pub(crate) fn read(path: &Path) -> Result<String, TemplateError> {
    fs::read_to_string(path).map_err(|e| load_error(path, format!("cannot read: {e}")))
}

pub(crate) fn load_error(path: &Path, message: impl Into<String>) -> TemplateError {
    TemplateError::Load {
        path: path.display().to_string(),
        message: message.into(),
    }
}
