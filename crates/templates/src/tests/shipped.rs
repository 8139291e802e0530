use herald_domain::{Category, Channel};

use super::*;
use crate::{Rendered, TemplateError};

#[test]
fn the_shipped_templates_are_welcome_order_shipped_new_comment_payment_failed_and_security_alert() {
    let store = shipped();
    let listed: Vec<(&str, &str, Vec<Channel>, Vec<String>)> = store
        .list()
        .into_iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.category.as_str(),
                t.channels.clone(),
                t.params.clone(),
            )
        })
        .collect();
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    use Channel::*;
    assert_eq!(
        listed,
        vec![
            (
                "new_comment",
                "social",
                vec![Email, Push, InApp],
                strings(&["name", "commenter", "post_title", "comment_excerpt", "url"]),
            ),
            (
                "order_shipped",
                "transactional",
                vec![Email, Push, Sms, InApp],
                strings(&["name", "order_id", "carrier", "tracking_url"]),
            ),
            (
                "payment_failed",
                "billing",
                vec![Email, Push, InApp],
                strings(&["name", "amount", "update_url"]),
            ),
            (
                "security_alert",
                "security",
                vec![Email, Push, InApp],
                strings(&["name", "device", "location", "time", "secure_url"]),
            ),
            (
                "welcome",
                "account",
                vec![Email, Push, Sms, InApp],
                strings(&["name", "app_name"]),
            ),
        ]
    );
    let digests: Vec<(&str, bool, Option<String>)> = store
        .list()
        .into_iter()
        .map(|t| {
            let window = t.digest.map(|d| d.window.to_string());
            (t.name.as_str(), t.digestible, window)
        })
        .collect();
    assert_eq!(
        digests,
        vec![
            ("new_comment", true, Some("10m".to_owned())),
            ("order_shipped", false, None),
            ("payment_failed", false, None),
            ("security_alert", false, None),
            ("welcome", false, None),
        ]
    );
    let escalations: Vec<(&str, String)> = store
        .list()
        .into_iter()
        .filter_map(|t| {
            t.escalate.map(|e| {
                (
                    t.name.as_str(),
                    format!("{} -> {} after {}", e.from, e.to, e.after),
                )
            })
        })
        .collect();
    assert_eq!(
        escalations,
        vec![
            ("payment_failed", "push -> email after 30m".to_owned()),
            ("security_alert", "in_app -> email after 15m".to_owned())
        ]
    );
    let welcome = store.get(&name("welcome")).unwrap();
    assert_eq!(welcome.locales, vec!["fr".to_owned()]);
    assert_eq!(welcome.category, Category::parse("account").unwrap());
    assert!(!welcome.description.is_empty());
}

#[test]
fn every_shipped_template_renders_every_channel_in_every_locale_with_its_example_params() {
    let store = shipped();
    for info in store.list() {
        let example = store.example(&info.name).unwrap();
        let mut locales = vec![None];
        locales.extend(info.locales.iter().map(|l| Some(locale(l))));
        for &channel in &info.channels {
            for locale in &locales {
                let context = format!("{} {channel} {locale:?}", info.name);
                let rendered = store
                    .render(&info.name, channel, locale.as_ref(), example)
                    .unwrap_or_else(|e| panic!("{context}: {e}"));
                if let Rendered::Email { html, text, .. } = &rendered {
                    assert!(html.is_some() || text.is_some(), "{context}");
                }
                for text in texts(&rendered) {
                    assert!(!text.trim().is_empty(), "{context}: empty part");
                    assert!(!text.contains("{{"), "{context}: unrendered {text}");
                }
            }
        }
        store
            .check(&info.name, &info.channels, example)
            .unwrap_or_else(|e| panic!("{}: {e}", info.name));
    }
}

#[test]
fn every_documented_param_of_a_shipped_template_is_needed_by_its_parts() {
    let store = shipped();
    for info in store.list() {
        let example = store.example(&info.name).unwrap();
        assert_eq!(
            example.keys().collect::<Vec<_>>().len(),
            info.params.len(),
            "{}: the example must cover every param",
            info.name
        );
        for param in &info.params {
            let mut params = example.clone();
            params.remove(param);
            let err = store
                .check(&info.name, &info.channels, &params)
                .unwrap_err();
            assert!(
                matches!(&err, TemplateError::Render { message, .. } if message.contains(&format!("{param:?}"))),
                "{} without {param}: {err}",
                info.name
            );
        }
    }
}

#[test]
fn shipped_sms_bodies_fit_in_one_message_with_the_example_params() {
    let store = shipped();
    for info in store.list() {
        if !info.channels.contains(&Channel::Sms) {
            continue;
        }
        let example = store.example(&info.name).unwrap();
        let Rendered::Sms { body } = store
            .render(&info.name, Channel::Sms, None, example)
            .unwrap()
        else {
            panic!("{}: not an SMS", info.name);
        };
        assert!(
            body.chars().count() <= 160,
            "{}: {} chars",
            info.name,
            body.len()
        );
    }
}

#[test]
fn the_french_welcome_is_french_where_translated_and_english_elsewhere() {
    let store = shipped();
    let example = store.example(&name("welcome")).unwrap();
    let welcome = name("welcome");
    let fr = locale("fr-FR");
    let Rendered::Email {
        subject,
        html,
        text,
    } = store
        .render(&welcome, Channel::Email, Some(&fr), example)
        .unwrap()
    else {
        panic!("not an email");
    };
    assert_eq!(subject, "Bienvenue sur Acme, Ada !");
    assert!(html.unwrap().contains("lang=\"fr\""));
    assert!(text.unwrap().starts_with("Bonjour Ada,"));
    let push = store
        .render(&welcome, Channel::Push, Some(&fr), example)
        .unwrap();
    assert_eq!(
        push,
        Rendered::Push {
            title: "Welcome to Acme".to_owned(),
            body: "Hi Ada, your account is ready. Tap to finish setting up your profile."
                .to_owned(),
        }
    );
}

#[test]
fn every_shipped_digest_renders_every_channel_in_every_locale_with_three_copies_of_the_example() {
    let store = shipped();
    let digestible: Vec<_> = store.list().into_iter().filter(|t| t.digestible).collect();
    assert!(!digestible.is_empty());
    for info in digestible {
        let example = store.example(&info.name).unwrap();
        let items = vec![example.clone(); 3];
        let mut locales = vec![None];
        locales.extend(info.locales.iter().map(|l| Some(locale(l))));
        for &channel in &info.channels {
            for locale in &locales {
                let context = format!("{} digest {channel} {locale:?}", info.name);
                let rendered = store
                    .render_digest(&info.name, channel, locale.as_ref(), &items)
                    .unwrap_or_else(|e| panic!("{context}: {e}"));
                for text in texts(&rendered) {
                    assert!(!text.trim().is_empty(), "{context}: empty part");
                    assert!(!text.contains("{{"), "{context}: unrendered {text}");
                }
            }
        }
        store
            .check_digest(&info.name, &info.channels, &items)
            .unwrap_or_else(|e| panic!("{}: {e}", info.name));
        // A digest needs every param too: a request that passes `check` but
        // lacks one would otherwise break the digest it later joins.
        for param in &info.params {
            let mut without = example.clone();
            without.remove(param);
            let err = store
                .check_digest(&info.name, &info.channels, &vec![without; 3])
                .unwrap_err();
            assert!(
                matches!(&err, TemplateError::Render { message, .. } if message.contains(param.as_str())),
                "{} digest without {param}: {err}",
                info.name
            );
        }
    }
}

/// Every text of a rendered message.
fn texts(rendered: &Rendered) -> Vec<&str> {
    match rendered {
        Rendered::Email {
            subject,
            html,
            text,
        } => [Some(subject), html.as_ref(), text.as_ref()]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect(),
        Rendered::Push { title, body } | Rendered::InApp { title, body } => vec![title, body],
        Rendered::Sms { body } => vec![body],
    }
}
