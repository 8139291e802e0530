use herald_domain::Channel;

use super::*;

#[test]
fn broken_template_folders_are_refused_with_an_error_naming_the_file() {
    let toml = |extra: &str| {
        format!(
            "description = \"Says hello\"\ncategory = \"account\"\nchannels = [\"email\", \"push\"]\nparams = [\"name\"]\n{extra}"
        )
    };
    let unknown_key = toml("colour = \"blue\"\n");
    let duplicate_channel =
        toml("").replace("[\"email\", \"push\"]", "[\"email\", \"push\", \"email\"]");
    let undocumented_example = toml("[example]\nnickname = \"Ada\"\n");
    let unknown_channel = toml("").replace("\"push\"]", "\"pigeon\"]");
    // (what is wrong, changes to the fixture, file the error names, words in the message)
    let cases: Vec<(&str, Vec<Change>, &str, &str)> = vec![
        (
            "missing template.toml",
            vec![("greeting/template.toml", None)],
            "greeting/template.toml",
            "missing",
        ),
        (
            "unknown key in template.toml",
            vec![("greeting/template.toml", Some(&unknown_key))],
            "greeting/template.toml",
            "line 5: unknown field `colour`",
        ),
        (
            "malformed template.toml",
            vec![(
                "greeting/template.toml",
                Some("description = \"unterminated\n"),
            )],
            "greeting/template.toml",
            "invalid template.toml at line 1",
        ),
        (
            "unknown channel in template.toml",
            vec![("greeting/template.toml", Some(&unknown_channel))],
            "greeting/template.toml",
            "pigeon",
        ),
        (
            "channel listed twice",
            vec![("greeting/template.toml", Some(&duplicate_channel))],
            "greeting/template.toml",
            "channel email is listed twice",
        ),
        (
            "example param that is not documented",
            vec![("greeting/template.toml", Some(&undocumented_example))],
            "greeting/template.toml",
            "example.nickname is not one of the documented params",
        ),
        (
            "part file for an undeclared channel",
            vec![("greeting/sms.body.hbs", Some("Hi {{name}}"))],
            "greeting/sms.body.hbs",
            "channel sms, which template.toml does not list",
        ),
        (
            "missing required part",
            vec![("greeting/push.body.hbs", None)],
            "greeting/push.body.hbs",
            "missing push.body.hbs: template.toml lists push",
        ),
        (
            "email without an html or text body",
            vec![
                ("greeting/email.html.hbs", None),
                ("greeting/email.text.hbs", None),
            ],
            "greeting/email.html.hbs",
            "missing email.html.hbs or email.text.hbs",
        ),
        (
            "unknown part name",
            vec![("greeting/email.subjet.hbs", Some("Hi"))],
            "greeting/email.subjet.hbs",
            "unknown part email.subjet",
        ),
        (
            "unknown channel in a part file name",
            vec![("greeting/emial.subject.hbs", Some("Hi"))],
            "greeting/emial.subject.hbs",
            "not a channel",
        ),
        (
            "bad locale tag",
            vec![("greeting/email.subject.f_r.hbs", Some("Salut"))],
            "greeting/email.subject.f_r.hbs",
            "malformed locale tag \"f_r\"",
        ),
        (
            "one locale spelt two ways",
            vec![
                ("greeting/email.subject.pt-BR.hbs", Some("Olá")),
                ("greeting/push.title.pt-br.hbs", Some("Olá")),
            ],
            "greeting/push.title.pt-br.hbs",
            "spelt differently from pt-BR",
        ),
        (
            "locale variant without a default file",
            vec![
                ("greeting/email.text.hbs", None),
                ("greeting/email.text.fr.hbs", Some("Salut")),
            ],
            "greeting/email.text.fr.hbs",
            "needs a default email.text.hbs",
        ),
        (
            "uncompilable hbs",
            vec![(
                "greeting/email.subject.hbs",
                Some("Hello {{#if name}}{{name}}"),
            )],
            "greeting/email.subject.hbs",
            "does not compile",
        ),
        (
            "a partial",
            vec![(
                "greeting/email.html.hbs",
                Some("{{#if name}}{{> footer}}{{/if}}"),
            )],
            "greeting/email.html.hbs",
            "partials",
        ),
        (
            "a stray file",
            vec![("greeting/notes.txt", Some("remember to translate"))],
            "greeting/notes.txt",
            "not a part file",
        ),
        (
            "bad folder name",
            vec![("Greeting/template.toml", Some(GREETING[0].1))],
            "Greeting",
            "not a valid template folder name",
        ),
    ];
    assert_refused(cases);
}

#[test]
fn reserved_folders_hidden_files_and_loose_files_are_skipped() {
    let dir = greeting_with(&[
        ("_drafts/email.subjet.hbs", Some("{{#broken")),
        (".git/config", Some("[core]")),
        ("README.md", Some("# Templates")),
        ("greeting/.DS_Store", Some("")),
        ("greeting/.email.subject.hbs.swp", Some("")),
    ]);
    let store = TemplateStore::load(dir.path()).unwrap();
    let names: Vec<&str> = store.list().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["greeting"]);
}

#[test]
fn a_missing_templates_folder_is_a_load_error() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("nowhere");
    let err = TemplateStore::load(&missing).unwrap_err();
    assert!(
        matches!(&err, TemplateError::Load { path, .. } if Path::new(path) == missing),
        "{err}"
    );
}

#[test]
fn loaded_templates_are_listed_by_name_with_what_template_toml_says() {
    let dir = greeting_with(&[
        (
            "another/template.toml",
            Some("description = \"Second\"\ncategory = \"social\"\nchannels = [\"sms\"]\n"),
        ),
        ("another/sms.body.hbs", Some("Hi")),
        ("another/sms.body.nl.hbs", Some("Hoi")),
        ("another/sms.body.de.hbs", Some("Hallo")),
    ]);
    let store = TemplateStore::load(dir.path()).unwrap();
    let names: Vec<&str> = store.list().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["another", "greeting"]);
    let another = store.get(&name("another")).unwrap();
    assert_eq!(another.description, "Second");
    assert_eq!(another.channels, vec![Channel::Sms]);
    assert_eq!(another.locales, vec!["de", "nl"]);
    assert!(another.params.is_empty());
    assert_eq!(
        serde_json::to_value(another).unwrap(),
        serde_json::json!({
            "name": "another",
            "description": "Second",
            "category": "social",
            "channels": ["sms"],
            "locales": ["de", "nl"],
            "params": [],
            "digest": null,
            "escalate": null,
            "digestible": false,
        })
    );
    assert!(store.get(&name("missing")).is_none());
}
