use herald_domain::Channel;

use super::*;
use crate::{Rendered, TemplateError};

fn render_error_parts(err: TemplateError) -> (String, String) {
    match err {
        TemplateError::Render { part, message, .. } => (part, message),
        other => panic!("expected a render error, got {other}"),
    }
}

#[test]
fn a_missing_param_is_a_render_error_that_names_the_variable() {
    let store = shipped();
    let cases = [
        (
            "welcome",
            Channel::Email,
            None,
            &[("app_name", "Acme")][..],
            "email.subject",
            "name",
        ),
        (
            "welcome",
            Channel::Email,
            Some("fr"),
            &[("name", "Ada")][..],
            "email.subject.fr",
            "app_name",
        ),
        (
            "welcome",
            Channel::Sms,
            None,
            &[("name", "Ada")][..],
            "sms.body",
            "app_name",
        ),
        (
            "order_shipped",
            Channel::Push,
            None,
            &[("name", "Ada"), ("order_id", "1")][..],
            "push.body",
            "carrier",
        ),
        (
            "new_comment",
            Channel::InApp,
            None,
            &[("commenter", "Grace")][..],
            "in_app.title",
            "post_title",
        ),
    ];
    for (template, channel, tag, given, part, variable) in cases {
        let tag = tag.map(locale);
        let err = store
            .render(&name(template), channel, tag.as_ref(), &params(given))
            .unwrap_err();
        assert!(err.is_caller_error(), "{err}");
        let text = err.to_string();
        let (got_part, message) = render_error_parts(err);
        assert_eq!(got_part, part, "{text}");
        assert!(
            message.contains(&format!("variable \"{variable}\" is missing")),
            "{text}"
        );
    }
}

#[test]
fn html_parts_are_escaped_and_plain_text_parts_are_not() {
    let store = load_greeting(&[(
        "greeting/template.toml",
        Some(
            "description = \"d\"\ncategory = \"account\"\nchannels = [\"email\", \"push\", \"sms\", \"in_app\"]\nparams = [\"name\"]\n",
        ),
    ), ("greeting/sms.body.hbs", Some("Hi {{name}}")), ("greeting/in_app.title.hbs", Some("Hi {{name}}")), ("greeting/in_app.body.hbs", Some("Hello {{name}}"))]);
    let p = params(&[("name", "Tom & <Jerry>")]);
    let greeting = name("greeting");
    let render = |channel| store.render(&greeting, channel, None, &p).unwrap();
    let cases = [
        (
            render(Channel::Email),
            Rendered::Email {
                subject: "Hello Tom & <Jerry>".to_owned(),
                html: Some("<p>Hello Tom &amp; &lt;Jerry&gt;</p>\n".to_owned()),
                text: Some("Hello Tom & <Jerry>\n".to_owned()),
            },
        ),
        (
            render(Channel::Push),
            Rendered::Push {
                title: "Hi Tom & <Jerry>".to_owned(),
                body: "Hello Tom & <Jerry>".to_owned(),
            },
        ),
        (
            render(Channel::Sms),
            Rendered::Sms {
                body: "Hi Tom & <Jerry>".to_owned(),
            },
        ),
        (
            render(Channel::InApp),
            Rendered::InApp {
                title: "Hi Tom & <Jerry>".to_owned(),
                body: "Hello Tom & <Jerry>".to_owned(),
            },
        ),
    ];
    for (got, expected) in cases {
        assert_eq!(got, expected);
    }
}

#[test]
fn triple_stash_passes_trusted_html_through_in_the_html_part() {
    let store = load_greeting(&[("greeting/email.html.hbs", Some("<p>{{{name}}}</p>"))]);
    let Rendered::Email { html, .. } = store
        .render(
            &name("greeting"),
            Channel::Email,
            None,
            &params(&[("name", "<b>Ada</b>")]),
        )
        .unwrap()
    else {
        panic!("not an email");
    };
    assert_eq!(html.as_deref(), Some("<p><b>Ada</b></p>"));
}

#[test]
fn each_part_comes_from_the_most_specific_locale_that_has_it() {
    let store = load_greeting(&[
        ("greeting/email.subject.fr.hbs", Some("Bonjour {{name}}")),
        (
            "greeting/email.text.fr.hbs",
            Some("Bonjour {{name}} (texte)"),
        ),
        ("greeting/email.subject.fr-CA.hbs", Some("Allô {{name}}")),
        ("greeting/push.title.pt-BR.hbs", Some("Olá {{name}}")),
    ]);
    let greeting = name("greeting");
    assert_eq!(
        store.get(&greeting).unwrap().locales,
        vec!["fr", "fr-CA", "pt-BR"]
    );
    let p = params(&[("name", "Ada")]);
    // (requested locale, subject, text, html)
    let cases = [
        (None, "Hello Ada", "Hello Ada\n", "<p>Hello Ada</p>\n"),
        (
            Some("fr"),
            "Bonjour Ada",
            "Bonjour Ada (texte)",
            "<p>Hello Ada</p>\n",
        ),
        (
            Some("fr-BE"),
            "Bonjour Ada",
            "Bonjour Ada (texte)",
            "<p>Hello Ada</p>\n",
        ),
        (
            Some("fr-CA"),
            "Allô Ada",
            "Bonjour Ada (texte)",
            "<p>Hello Ada</p>\n",
        ),
        (
            Some("FR-ca"),
            "Allô Ada",
            "Bonjour Ada (texte)",
            "<p>Hello Ada</p>\n",
        ),
        (Some("de"), "Hello Ada", "Hello Ada\n", "<p>Hello Ada</p>\n"),
        (
            Some("pt-BR"),
            "Hello Ada",
            "Hello Ada\n",
            "<p>Hello Ada</p>\n",
        ),
    ];
    for (tag, subject, text, html) in cases {
        let tag = tag.map(locale);
        let got = store
            .render(&greeting, Channel::Email, tag.as_ref(), &p)
            .unwrap();
        let expected = Rendered::Email {
            subject: subject.to_owned(),
            html: Some(html.to_owned()),
            text: Some(text.to_owned()),
        };
        assert_eq!(got, expected, "{tag:?}");
    }
    let push = store
        .render(&greeting, Channel::Push, Some(&locale("pt-BR")), &p)
        .unwrap();
    assert_eq!(
        push,
        Rendered::Push {
            title: "Olá Ada".to_owned(),
            body: "Hello Ada".to_owned()
        }
    );
}

#[test]
fn line_breaks_in_a_subject_or_push_title_become_single_spaces() {
    let store = load_greeting(&[]);
    let p = params(&[("name", "Ada\r\nBcc: everyone@example.com\n")]);
    let greeting = name("greeting");
    let Rendered::Email { subject, text, .. } =
        store.render(&greeting, Channel::Email, None, &p).unwrap()
    else {
        panic!("not an email");
    };
    assert_eq!(subject, "Hello Ada Bcc: everyone@example.com");
    assert_eq!(
        text.as_deref(),
        Some("Hello Ada\r\nBcc: everyone@example.com\n\n")
    );
    let Rendered::Push { title, .. } = store.render(&greeting, Channel::Push, None, &p).unwrap()
    else {
        panic!("not a push");
    };
    assert_eq!(title, "Hi Ada Bcc: everyone@example.com");
}

#[test]
fn a_subject_or_title_that_renders_empty_is_refused() {
    let store = load_greeting(&[
        ("greeting/email.subject.hbs", Some("{{name}}")),
        ("greeting/push.title.hbs", Some("  {{name}}\n")),
    ]);
    let blank = params(&[("name", " \r\n ")]);
    for (channel, part) in [
        (Channel::Email, "email.subject"),
        (Channel::Push, "push.title"),
    ] {
        let err = store
            .render(&name("greeting"), channel, None, &blank)
            .unwrap_err();
        let (got_part, message) = render_error_parts(err);
        assert_eq!(got_part, part);
        assert!(message.contains("rendered empty"), "{message}");
    }
}

#[test]
fn optional_params_can_be_tested_with_if_in_strict_mode() {
    let store = load_greeting(&[(
        "greeting/email.text.hbs",
        Some("Hello {{name}}{{#if nickname}} ({{nickname}}){{/if}}"),
    )]);
    let greeting = name("greeting");
    let cases = [
        (params(&[("name", "Ada")]), "Hello Ada"),
        (
            params(&[("name", "Ada"), ("nickname", "Countess")]),
            "Hello Ada (Countess)",
        ),
    ];
    for (p, expected) in cases {
        let Rendered::Email { text, .. } =
            store.render(&greeting, Channel::Email, None, &p).unwrap()
        else {
            panic!("not an email");
        };
        assert_eq!(text.as_deref(), Some(expected));
    }
}

#[test]
fn unknown_templates_and_channels_not_offered_are_caller_errors() {
    let store = shipped();
    let p = params(&[]);
    let cases = [
        (
            store
                .render(&name("nope"), Channel::Email, None, &p)
                .unwrap_err(),
            "unknown template nope",
        ),
        (
            store
                .render(&name("new_comment"), Channel::Sms, None, &p)
                .unwrap_err(),
            "template new_comment has no sms version",
        ),
        (
            store
                .check(&name("nope"), &[Channel::Email], &p)
                .unwrap_err(),
            "unknown template nope",
        ),
        (
            store
                .check(&name("new_comment"), &[Channel::Email, Channel::Sms], &p)
                .unwrap_err(),
            "template new_comment has no sms version",
        ),
    ];
    for (err, expected) in cases {
        assert!(err.is_caller_error(), "{err}");
        assert_eq!(err.to_string(), expected);
    }
}

#[test]
fn check_catches_a_missing_param_used_only_in_a_locale_variant() {
    let store = load_greeting(&[
        ("greeting/email.subject.fr.hbs", Some("Bonjour {{name}}")),
        (
            "greeting/email.text.de.hbs",
            Some("Hallo {{name}}, {{nickname}}"),
        ),
    ]);
    let greeting = name("greeting");
    let p = params(&[("name", "Ada")]);
    store.render(&greeting, Channel::Email, None, &p).unwrap();
    store.check(&greeting, &[Channel::Push], &p).unwrap();
    let err = store
        .check(&greeting, &[Channel::Push, Channel::Email], &p)
        .unwrap_err();
    let (part, message) = render_error_parts(err);
    assert_eq!(part, "email.text.de");
    assert!(message.contains("\"nickname\""), "{message}");
    let with_nickname = params(&[("name", "Ada"), ("nickname", "Countess")]);
    store
        .check(&greeting, &[Channel::Push, Channel::Email], &with_nickname)
        .unwrap();
}

#[test]
fn the_store_is_cheap_to_clone_and_can_be_shared_across_threads() {
    fn assert_shareable<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    assert_shareable::<TemplateStore>();
    let store = shipped();
    let clone = store.clone();
    assert!(std::sync::Arc::ptr_eq(&store.inner, &clone.inner));
    assert!(format!("{store:?}").contains("welcome"));
    let handle = std::thread::spawn(move || clone.list().len());
    assert_eq!(handle.join().unwrap(), 5);
}
