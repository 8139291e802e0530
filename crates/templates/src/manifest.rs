//! `template.toml`: what a template says about itself.
//!
//! Everything that can be checked from the manifest alone is checked here;
//! rules that also need the part files (a digest window needs a digest
//! variant) are checked by the loader once it has read them.

use std::collections::BTreeSet;
use std::path::Path;

use herald_domain::{Category, Channel, Escalation, Span};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::load::{load_error, read};
use crate::TemplateError;

/// How long requests that share a `group_key` are collected before they go
/// out as one digest (`digest = { window = "10m" }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DigestSpec {
    pub window: Span,
}

/// The contents of `template.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    pub(crate) description: String,
    pub(crate) category: Category,
    pub(crate) channels: Vec<Channel>,
    #[serde(default)]
    pub(crate) params: Vec<String>,
    #[serde(default)]
    pub(crate) example: Map<String, Value>,
    #[serde(default)]
    digest: Option<RawDigest>,
    #[serde(default)]
    escalate: Option<RawEscalation>,
}

// The public types only serialize: these private twins are what may be
// written in a manifest, so a typo inside the inline table is refused too.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDigest {
    window: Span,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    from: Channel,
    to: Channel,
    after: Span,
}

/// Only these report being read (the receipt the escalation waits for);
/// an e-mail or SMS that is never marked read would always escalate.
const ESCALATES_FROM: [Channel; 2] = [Channel::InApp, Channel::Push];

impl Manifest {
    pub(crate) fn digest(&self) -> Option<DigestSpec> {
        self.digest
            .as_ref()
            .map(|d| DigestSpec { window: d.window })
    }

    pub(crate) fn escalate(&self) -> Option<Escalation> {
        self.escalate.as_ref().map(|e| Escalation {
            from: e.from,
            to: e.to,
            after: e.after,
        })
    }
}

pub(crate) fn read_manifest(path: &Path) -> Result<Manifest, TemplateError> {
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
    if let Some(escalation) = manifest.escalate() {
        check_escalation(&escalation, &manifest.channels).map_err(|m| load_error(path, m))?;
    }
    Ok(manifest)
}

fn check_escalation(e: &Escalation, channels: &[Channel]) -> Result<(), String> {
    if !ESCALATES_FROM.contains(&e.from) {
        return Err(format!(
            "escalate.from is {}, but only in_app and push deliveries report being read, so only they can escalate",
            e.from
        ));
    }
    for (key, channel) in [("from", e.from), ("to", e.to)] {
        if !channels.contains(&channel) {
            return Err(format!(
                "escalate.{key} is {channel}, which template.toml does not list in `channels`"
            ));
        }
    }
    if e.from == e.to {
        return Err(format!(
            "escalate.from and escalate.to are both {}: an escalation must move to another channel",
            e.from
        ));
    }
    Ok(())
}

fn first_duplicate<T: Ord>(items: &[T]) -> Option<&T> {
    let mut seen = BTreeSet::new();
    items.iter().find(|item| !seen.insert(*item))
}
