use super::*;

#[test]
fn broken_digest_variants_are_refused_with_an_error_naming_the_file() {
    let windowed = greeting_toml(r#"["email", "push"]"#, "digest = { window = \"10m\" }\n");
    let windowed = ("greeting/template.toml", Some(windowed.as_str()));
    // (what is wrong, changes to the fixture, file the error names, words in the message)
    let cases: Vec<(&str, Vec<Change>, &str, &str)> = vec![
        (
            "digest part file for a channel the template does not list",
            with_digest(&[("greeting/digest.sms.body.hbs", Some("{{count}} hellos"))]),
            "greeting/digest.sms.body.hbs",
            "digest part file for channel sms, which template.toml does not list in `channels`",
        ),
        (
            "digest variant without a subject",
            with_digest(&[windowed, ("greeting/digest.email.subject.hbs", None)]),
            "greeting/digest.email.subject.hbs",
            "missing digest.email.subject.hbs: the template has a digest variant, which needs it for email",
        ),
        (
            "digest variant without an e-mail body",
            with_digest(&[
                ("greeting/digest.email.html.hbs", None),
                ("greeting/digest.email.text.hbs", None),
            ]),
            "greeting/digest.email.html.hbs",
            "missing digest.email.html.hbs or digest.email.text.hbs: the template has a digest variant, which needs at least one of them for email",
        ),
        (
            "digest variant missing a channel's part",
            with_digest(&[("greeting/digest.push.body.hbs", None)]),
            "greeting/digest.push.body.hbs",
            "missing digest.push.body.hbs: the template has a digest variant, which needs it for push",
        ),
        (
            "one digest file commits the template to a whole digest variant",
            vec![("greeting/digest.push.title.hbs", Some("{{count}} hellos"))],
            "greeting/digest.email.subject.hbs",
            "missing digest.email.subject.hbs",
        ),
        (
            "a digest locale variant is not enough for the default locale",
            with_digest(&[
                ("greeting/digest.push.body.hbs", None),
                ("greeting/digest.push.body.fr.hbs", Some("Salut")),
            ]),
            "greeting/digest.push.body.hbs",
            "missing digest.push.body.hbs",
        ),
        (
            // The single-notification email.text.hbs exists, but a digest
            // file falls back only to a digest file.
            "digest locale variant without a default digest file",
            with_digest(&[
                ("greeting/digest.email.text.hbs", None),
                ("greeting/digest.email.text.fr.hbs", Some("Salut")),
            ]),
            "greeting/digest.email.text.fr.hbs",
            "a locale variant needs a default digest.email.text.hbs to fall back to",
        ),
        (
            "misspelt channel in a digest file name",
            with_digest(&[("greeting/digest.emial.subject.hbs", Some("Hi"))]),
            "greeting/digest.emial.subject.hbs",
            "unknown part digest.emial.subject: \"emial\" is not a channel",
        ),
        (
            "misspelt digest prefix",
            with_digest(&[("greeting/digests.email.subject.hbs", Some("Hi"))]),
            "greeting/digests.email.subject.hbs",
            "\"digests\" is not a channel",
        ),
        (
            "digest written where the locale goes",
            with_digest(&[("greeting/email.subject.digest.hbs", Some("Hi"))]),
            "greeting/email.subject.digest.hbs",
            "a digest part starts with digest.",
        ),
        (
            "one locale spelt two ways across the variants",
            with_digest(&[
                ("greeting/email.subject.pt-BR.hbs", Some("Olá")),
                ("greeting/digest.email.subject.pt-br.hbs", Some("Olá")),
            ]),
            "greeting/email.subject.pt-BR.hbs",
            "spelt differently from pt-br",
        ),
        (
            "uncompilable digest file",
            with_digest(&[(
                "greeting/digest.push.title.hbs",
                Some("{{#each items}}{{name}}"),
            )]),
            "greeting/digest.push.title.hbs",
            "does not compile",
        ),
    ];
    assert_refused(cases);
}

#[test]
fn digest_locales_are_listed_with_the_other_locales() {
    let store = load_greeting(&with_digest(&[
        ("greeting/email.subject.fr.hbs", Some("Salut {{name}}")),
        ("greeting/digest.push.title.de.hbs", Some("{{count}} Grüße")),
    ]));
    let info = store.get(&name("greeting")).unwrap();
    assert_eq!(info.locales, vec!["de", "fr"]);
}
