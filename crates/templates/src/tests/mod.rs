//! Tests for the whole store: the shipped templates, rendering rules and the
//! loader's refusals. Fixtures are written to temporary folders.

mod loading;
mod rendering;
mod shipped;

use std::fs;
use std::path::{Path, PathBuf};

use herald_domain::{Locale, TemplateName};
use serde_json::{Map, Value};
use tempfile::TempDir;

use crate::TemplateStore;

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
