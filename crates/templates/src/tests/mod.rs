//! Tests for the whole store: the shipped templates, rendering rules and the
//! loader's refusals. Fixtures are written to temporary folders.

mod digest_loading;
mod digest_rendering;
mod loading;
mod manifest;
mod rendering;
mod shipped;

use std::fs;
use std::path::{Path, PathBuf};

use herald_domain::{Locale, TemplateName};
use serde_json::{Map, Value};
use tempfile::TempDir;

use crate::{TemplateError, TemplateStore};

/// A small, valid template used as the starting point of most fixtures.
const GREETING: &[(&str, &str)] = &[
    (
        "greeting/template.toml",
        r#"
description = "Says hello"
category = "account"
channels = ["email", "push"]
params = ["name"]
[example]
name = "Ada"
"#,
    ),
    ("greeting/email.subject.hbs", "Hello {{name}}\n"),
    ("greeting/email.html.hbs", "<p>Hello {{name}}</p>\n"),
    ("greeting/email.text.hbs", "Hello {{name}}\n"),
    ("greeting/push.title.hbs", "Hi {{name}}\n"),
    ("greeting/push.body.hbs", "Hello {{name}}\n"),
];

/// A whole digest variant for `GREETING`, to add to a fixture.
const GREETING_DIGEST: &[Change] = &[
    (
        "greeting/digest.email.subject.hbs",
        Some("{{count}} hellos, the first for {{first.name}}\n"),
    ),
    (
        "greeting/digest.email.html.hbs",
        Some("<ul>{{#each items}}<li>{{name}}</li>{{/each}}</ul>"),
    ),
    (
        "greeting/digest.email.text.hbs",
        Some("{{#each items}}- {{name}}\n{{/each}}"),
    ),
    ("greeting/digest.push.title.hbs", Some("{{count}} hellos\n")),
    (
        "greeting/digest.push.body.hbs",
        Some("The latest for {{last.name}}, {{others}} before"),
    ),
];

/// `GREETING_DIGEST` followed by `changes`, which win where they overlap.
fn with_digest<'a>(changes: &[Change<'a>]) -> Vec<Change<'a>> {
    GREETING_DIGEST.iter().chain(changes).copied().collect()
}

/// A `template.toml` for `greeting` with `channels` and `extra` lines.
fn greeting_toml(channels: &str, extra: &str) -> String {
    format!(
        "description = \"Says hello\"\ncategory = \"account\"\nchannels = {channels}\nparams = [\"name\"]\n{extra}"
    )
}

fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates")
}

fn shipped() -> TemplateStore {
    TemplateStore::load(&shipped_dir()).unwrap()
}

fn name(value: &str) -> TemplateName {
    TemplateName::parse(value).unwrap()
}

fn locale(value: &str) -> Locale {
    Locale::parse(value).unwrap()
}

fn params(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect()
}

/// A change to a fixture: a path and its new text, or `None` to remove it.
type Change<'a> = (&'a str, Option<&'a str>);

/// Writes the `GREETING` fixture with `changes` applied: `Some(text)` adds or
/// replaces a file, `None` removes it.
fn greeting_with(changes: &[Change]) -> TempDir {
    let mut files: Vec<(String, String)> = GREETING
        .iter()
        .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
        .collect();
    for (path, change) in changes {
        files.retain(|(p, _)| p != path);
        if let Some(text) = change {
            files.push(((*path).to_owned(), (*text).to_owned()));
        }
    }
    let dir = TempDir::new().unwrap();
    for (path, text) in files {
        let full = dir.path().join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, text).unwrap();
    }
    dir
}

fn load_greeting(changes: &[Change]) -> TemplateStore {
    let dir = greeting_with(changes);
    TemplateStore::load(dir.path()).unwrap()
}

/// Each case is (what is wrong, changes to the fixture, the file the error
/// must name, words its message must contain). Every case must fail to load
/// with a load error naming that file.
fn assert_refused(cases: Vec<(&str, Vec<Change>, &str, &str)>) {
    for (what, changes, file, words) in cases {
        let dir = greeting_with(&changes);
        let err = TemplateStore::load(dir.path()).unwrap_err();
        assert!(!err.is_caller_error(), "{what}: {err}");
        let TemplateError::Load { path, message } = &err else {
            panic!("{what}: expected a load error, got {err}");
        };
        assert_eq!(
            Path::new(path),
            dir.path().join(file),
            "{what}: wrong file in {err}"
        );
        assert!(message.contains(words), "{what}: {message}");
        assert!(err.to_string().starts_with(path.as_str()), "{what}: {err}");
    }
}

/// Params for `n` items, each a copy of `base` with one key changed.
fn items_with(base: &Map<String, Value>, key: &str, values: &[&str]) -> Vec<Map<String, Value>> {
    values
        .iter()
        .map(|v| {
            let mut item = base.clone();
            item.insert(key.to_owned(), Value::String((*v).to_owned()));
            item
        })
        .collect()
}
