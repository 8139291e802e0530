use herald_domain::{Channel, Span};

use super::*;
use crate::{DigestSpec, Escalation};

const EMAIL_PUSH: &str = r#"["email", "push"]"#;

#[test]
fn digest_and_escalate_in_template_toml_are_exposed_on_the_template_info() {
    let toml = greeting_toml(
        r#"["email", "push", "in_app"]"#,
        "digest = { window = \"10m\" }\nescalate = { from = \"in_app\", to = \"email\", after = \"90m\" }\n",
    );
    let mut changes = with_digest(&[
        ("greeting/template.toml", Some(&toml)),
        ("greeting/in_app.title.hbs", Some("Hi {{name}}")),
        ("greeting/in_app.body.hbs", Some("Hello {{name}}")),
        ("greeting/digest.in_app.title.hbs", Some("{{count}} hellos")),
        ("greeting/digest.in_app.body.hbs", Some("For {{last.name}}")),
    ]);
    changes.push(("greeting/email.subject.fr.hbs", Some("Salut {{name}}")));
    let store = load_greeting(&changes);
    let info = store.get(&name("greeting")).unwrap();
    let span = |text| Span::parse(text).unwrap();
    assert_eq!(
        info.digest,
        Some(DigestSpec {
            window: span("10m")
        })
    );
    assert_eq!(
        info.escalate,
        Some(Escalation {
            from: Channel::InApp,
            to: Channel::Email,
            after: span("90m"),
        })
    );
    assert!(info.digestible);
    let json = serde_json::to_value(info).unwrap();
    assert_eq!(json["digest"], serde_json::json!({ "window": "10m" }));
    assert_eq!(
        json["escalate"],
        serde_json::json!({ "from": "in_app", "to": "email", "after": "90m" })
    );
    assert_eq!(json["digestible"], serde_json::json!(true));
}

#[test]
fn digest_files_without_a_window_make_a_template_digestible_for_scheduled_digests() {
    let store = load_greeting(GREETING_DIGEST);
    let info = store.get(&name("greeting")).unwrap();
    assert!(info.digestible);
    assert_eq!(info.digest, None);
    assert_eq!(info.escalate, None);
}

#[test]
fn a_template_without_digest_files_is_not_digestible() {
    let store = shipped();
    let cases = [
        ("welcome", false),
        ("order_shipped", false),
        ("new_comment", true),
    ];
    for (template, digestible) in cases {
        let info = store.get(&name(template)).unwrap();
        assert_eq!(info.digestible, digestible, "{template}");
        assert_eq!(info.escalate, None, "{template}");
    }
    assert!(!load_greeting(&[]).list()[0].digestible);
}

#[test]
fn digest_and_escalate_problems_in_template_toml_are_refused_naming_it() {
    let escalate = |from: &str, to: &str, after: &str| {
        greeting_toml(
            EMAIL_PUSH,
            &format!("escalate = {{ from = \"{from}\", to = \"{to}\", after = \"{after}\" }}\n"),
        )
    };
    let with_in_app = |extra: &str| greeting_toml(r#"["email", "push", "in_app"]"#, extra);
    let tomls = [
        (
            "escalation from a channel that never reports being read",
            escalate("email", "push", "15m"),
            "escalate.from is email, but only in_app and push deliveries report being read",
        ),
        (
            "escalation from sms",
            with_in_app("escalate = { from = \"sms\", to = \"email\", after = \"15m\" }\n"),
            "escalate.from is sms, but only in_app and push",
        ),
        (
            "escalation from a channel the template does not list",
            escalate("in_app", "email", "15m"),
            "escalate.from is in_app, which template.toml does not list in `channels`",
        ),
        (
            "escalation to a channel the template does not list",
            escalate("push", "sms", "15m"),
            "escalate.to is sms, which template.toml does not list in `channels`",
        ),
        (
            "escalation to the same channel",
            escalate("push", "push", "15m"),
            "escalate.from and escalate.to are both push",
        ),
        (
            "escalation to an unknown channel",
            escalate("push", "fax", "15m"),
            "unknown variant `fax`",
        ),
        (
            "escalation after a malformed span",
            escalate("push", "email", "15 minutes"),
            "must be a number and a unit s, m, h or d",
        ),
        (
            "escalation without `after`",
            greeting_toml(
                EMAIL_PUSH,
                "escalate = { from = \"push\", to = \"email\" }\n",
            ),
            "missing field `after`",
        ),
        (
            "unknown key inside escalate",
            greeting_toml(
                EMAIL_PUSH,
                "escalate = { from = \"push\", to = \"email\", after = \"15m\", retries = 2 }\n",
            ),
            "unknown field `retries`",
        ),
        (
            "unknown key inside digest",
            greeting_toml(EMAIL_PUSH, "digest = { window = \"10m\", max = 5 }\n"),
            "unknown field `max`",
        ),
        (
            "digest window of zero",
            greeting_toml(EMAIL_PUSH, "digest = { window = \"0m\" }\n"),
            "must be a number and a unit s, m, h or d",
        ),
        (
            "digest window longer than a year",
            greeting_toml(EMAIL_PUSH, "digest = { window = \"400d\" }\n"),
            "must be at most 366 days",
        ),
        (
            "digest without a window",
            greeting_toml(EMAIL_PUSH, "digest = {}\n"),
            "missing field `window`",
        ),
        (
            "digest window without a digest variant to render it",
            greeting_toml(EMAIL_PUSH, "digest = { window = \"10m\" }\n"),
            "digest.window is set, but the template has no digest variant",
        ),
    ];
    let cases = tomls
        .iter()
        .map(|(what, toml, words)| {
            let changes = vec![("greeting/template.toml", Some(toml.as_str()))];
            (*what, changes, "greeting/template.toml", *words)
        })
        .collect();
    assert_refused(cases);
}
