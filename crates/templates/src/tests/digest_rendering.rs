use herald_domain::Channel;

use super::*;
use crate::Rendered;

const COMMENTERS: [&str; 5] = [
    "Grace Hopper",
    "Alan Turing",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
];

/// `n` comments on new_comment's example post, by the first `n` commenters.
fn comments(store: &TemplateStore, commenters: &[&str]) -> Vec<Map<String, Value>> {
    let example = store.example(&name("new_comment")).unwrap();
    items_with(example, "commenter", commenters)
}

fn render_error_parts(err: TemplateError) -> (String, String) {
    match err {
        TemplateError::Render { part, message, .. } => (part, message),
        other => panic!("expected a render error, got {other}"),
    }
}

#[test]
fn the_new_comment_digest_reads_well_for_one_two_and_many_comments() {
    let store = shipped();
    let new_comment = name("new_comment");
    let post = "\"Notes on the Analytical Engine\"";
    // (comments, e-mail subject, push title, in-app title)
    let cases = [
        (
            1,
            format!("Grace Hopper commented on {post}"),
            "Grace Hopper commented on your post",
            format!("New comment on {post}"),
        ),
        (
            2,
            format!("Grace Hopper and Alan Turing commented on {post}"),
            "Grace Hopper and Alan Turing commented on your post",
            format!("2 new comments on {post}"),
        ),
        (
            3,
            format!("Grace Hopper, Alan Turing and Edsger Dijkstra commented on {post}"),
            "Grace Hopper and 2 others commented on your post",
            format!("3 new comments on {post}"),
        ),
        (
            5,
            format!("Grace Hopper, Alan Turing and 3 others commented on {post}"),
            "Grace Hopper and 4 others commented on your post",
            format!("5 new comments on {post}"),
        ),
    ];
    for (n, subject, push_title, in_app_title) in cases {
        let items = comments(&store, &COMMENTERS[..n]);
        let render = |channel| {
            store
                .render_digest(&new_comment, channel, None, &items)
                .unwrap_or_else(|e| panic!("{n} {channel}: {e}"))
        };
        let Rendered::Email {
            subject: got,
            html: Some(html),
            text: Some(text),
        } = render(Channel::Email)
        else {
            panic!("{n}: not an e-mail with both bodies");
        };
        assert_eq!(got, subject, "{n}");
        for commenter in &COMMENTERS[..n] {
            assert!(
                html.contains(&format!("{commenter}</strong>")),
                "{n}: {html}"
            );
        }
        if n == 1 {
            assert!(
                text.contains("Grace Hopper left a comment on your post"),
                "{text}"
            );
        } else {
            assert!(
                text.contains(&format!("There are {n} new comments")),
                "{text}"
            );
            for commenter in &COMMENTERS[..n] {
                assert!(
                    text.contains(&format!("  {commenter} wrote:")),
                    "{n}: {text}"
                );
            }
        }
        let Rendered::Push { title, .. } = render(Channel::Push) else {
            panic!("{n}: not a push");
        };
        assert_eq!(title, push_title, "{n}");
        let Rendered::InApp { title, body } = render(Channel::InApp) else {
            panic!("{n}: not in-app");
        };
        assert_eq!(title, in_app_title, "{n}");
        assert!(!body.contains("\n"), "{n}: {body}");
    }
}

#[test]
fn digest_html_is_escaped_and_the_plain_text_parts_are_not() {
    let store = shipped();
    let items = comments(&store, &["<script>", "Alan Turing"]);
    let new_comment = name("new_comment");
    let render = |channel| {
        store
            .render_digest(&new_comment, channel, None, &items)
            .unwrap()
    };
    let Rendered::Email {
        subject,
        html: Some(html),
        text: Some(text),
    } = render(Channel::Email)
    else {
        panic!("not an e-mail with both bodies");
    };
    assert!(
        html.contains("&lt;script&gt; and Alan Turing commented"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    assert!(subject.starts_with("<script> and Alan Turing"), "{subject}");
    assert!(text.contains("  <script> wrote:"), "{text}");
    let Rendered::Push { title, .. } = render(Channel::Push) else {
        panic!("not a push");
    };
    assert_eq!(title, "<script> and Alan Turing commented on your post");
    let Rendered::InApp { body, .. } = render(Channel::InApp) else {
        panic!("not in-app");
    };
    assert!(
        body.starts_with("<script> and Alan Turing commented."),
        "{body}"
    );
}

#[test]
fn each_digest_part_comes_from_the_most_specific_digest_locale_that_has_it() {
    let store = load_greeting(&with_digest(&[
        (
            "greeting/digest.email.subject.fr.hbs",
            Some("{{count}} bonjours"),
        ),
        (
            "greeting/digest.email.subject.fr-CA.hbs",
            Some("{{count}} allôs"),
        ),
        // A single notification's translation is no fallback for a digest.
        ("greeting/email.subject.de.hbs", Some("Hallo {{name}}")),
    ]));
    let greeting = name("greeting");
    let items = items_with(&params(&[]), "name", &["Ada", "Grace"]);
    let default_text = "- Ada\n- Grace\n";
    let cases = [
        (None, "2 hellos, the first for Ada"),
        (Some("fr"), "2 bonjours"),
        (Some("fr-BE"), "2 bonjours"),
        (Some("FR-ca"), "2 allôs"),
        (Some("de"), "2 hellos, the first for Ada"),
    ];
    for (tag, subject) in cases {
        let tag = tag.map(locale);
        let got = store
            .render_digest(&greeting, Channel::Email, tag.as_ref(), &items)
            .unwrap();
        let expected = Rendered::Email {
            subject: subject.to_owned(),
            html: Some("<ul><li>Ada</li><li>Grace</li></ul>".to_owned()),
            text: Some(default_text.to_owned()),
        };
        assert_eq!(got, expected, "{tag:?}");
    }
    let push = store
        .render_digest(&greeting, Channel::Push, Some(&locale("fr")), &items)
        .unwrap();
    assert_eq!(
        push,
        Rendered::Push {
            title: "2 hellos".to_owned(),
            body: "The latest for Grace, 1 before".to_owned(),
        }
    );
}

#[test]
fn digests_that_cannot_be_rendered_are_refused_with_a_clear_error() {
    let store = shipped();
    let one = comments(&store, &["Grace Hopper"]);
    let welcome = store.example(&name("welcome")).unwrap().clone();
    // (error, message, is the caller at fault)
    let cases = [
        (
            store
                .render_digest(&name("new_comment"), Channel::Email, None, &[])
                .map(drop),
            "cannot render a digest of template new_comment without items",
            false,
        ),
        (
            store.check_digest(&name("new_comment"), &[Channel::Push], &[]),
            "cannot render a digest of template new_comment without items",
            false,
        ),
        (
            store
                .render_digest(
                    &name("welcome"),
                    Channel::Email,
                    None,
                    std::slice::from_ref(&welcome),
                )
                .map(drop),
            "template welcome has no digest variant",
            false,
        ),
        (
            store.check_digest(&name("welcome"), &[Channel::Email], &[welcome]),
            "template welcome has no digest variant",
            false,
        ),
        (
            store
                .render_digest(&name("nope"), Channel::Email, None, &one)
                .map(drop),
            "unknown template nope",
            true,
        ),
        (
            store
                .render_digest(&name("new_comment"), Channel::Sms, None, &one)
                .map(drop),
            "template new_comment has no sms version",
            true,
        ),
    ];
    for (result, expected, caller) in cases {
        let err = result.unwrap_err();
        assert_eq!(err.to_string(), expected);
        assert_eq!(err.is_caller_error(), caller, "{err}");
    }
    let err = store
        .render_digest(&name("welcome"), Channel::Email, None, &[])
        .unwrap_err();
    assert!(
        matches!(err, TemplateError::NoDigestVariant { .. }),
        "{err}"
    );
}

#[test]
fn a_missing_item_variable_is_a_render_error_that_names_its_path() {
    let store = shipped();
    let new_comment = name("new_comment");
    let mut no_commenter = comments(&store, &["Grace Hopper"]);
    no_commenter[0].remove("commenter");
    let mut second_without_excerpt = comments(&store, &COMMENTERS[..2]);
    second_without_excerpt[1].remove("comment_excerpt");
    let mut second_without_commenter = comments(&store, &COMMENTERS[..4]);
    second_without_commenter[1].remove("commenter");
    // (items, channel, part, variable)
    let cases = [
        (
            &no_commenter,
            Channel::Email,
            "digest.email.subject",
            "first.commenter",
        ),
        (
            &second_without_excerpt,
            Channel::Push,
            "digest.push.body",
            "last.comment_excerpt",
        ),
        (
            &second_without_commenter,
            Channel::Email,
            "digest.email.subject",
            "items.[1].commenter",
        ),
    ];
    for (items, channel, part, variable) in cases {
        let err = store
            .render_digest(&new_comment, channel, None, items)
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
fn check_digest_catches_a_missing_variable_used_only_in_a_digest_locale_variant() {
    let store = load_greeting(&with_digest(&[(
        "greeting/digest.email.text.de.hbs",
        Some("{{#each items}}{{name}} ({{nickname}}){{/each}}"),
    )]));
    let greeting = name("greeting");
    let items = items_with(&params(&[]), "name", &["Ada", "Grace"]);
    store
        .render_digest(&greeting, Channel::Email, None, &items)
        .unwrap();
    // The single-notification files use `{{name}}`, which the digest context
    // lacks: check_digest must render only the digest files.
    store
        .check_digest(&greeting, &[Channel::Push], &items)
        .unwrap();
    let err = store
        .check_digest(&greeting, &[Channel::Push, Channel::Email], &items)
        .unwrap_err();
    let (part, message) = render_error_parts(err);
    assert_eq!(part, "digest.email.text.de");
    assert!(message.contains("\"nickname\""), "{message}");
    let nicknamed = items_with(&params(&[("nickname", "Countess")]), "name", &["Ada"]);
    store
        .check_digest(&greeting, &[Channel::Push, Channel::Email], &nicknamed)
        .unwrap();
}

#[test]
fn minus_counts_the_others_in_a_digest_and_refuses_text() {
    let store = load_greeting(&with_digest(&[(
        "greeting/digest.push.title.hbs",
        Some("{{first.name}} and {{minus count 1}} more"),
    )]));
    let greeting = name("greeting");
    let items = items_with(&params(&[]), "name", &["Ada", "Grace", "Alan"]);
    let Rendered::Push { title, .. } = store
        .render_digest(&greeting, Channel::Push, None, &items)
        .unwrap()
    else {
        panic!("not a push");
    };
    assert_eq!(title, "Ada and 2 more");
    let store = load_greeting(&with_digest(&[(
        "greeting/digest.push.title.hbs",
        Some("{{minus first.name 1}} more"),
    )]));
    let err = store
        .render_digest(&greeting, Channel::Push, None, &items)
        .unwrap_err();
    let (part, message) = render_error_parts(err);
    assert_eq!(part, "digest.push.title");
    assert!(
        message.contains("minus takes two whole numbers"),
        "{message}"
    );
}

#[test]
fn a_large_digest_carries_a_sample_and_says_the_whole_count() {
    let store = shipped();
    // Two of 250 comments travel (the first and the last); the count is all of them.
    let items = comments(&store, &["Grace Hopper", "Donald Knuth"]);
    let rendered = store
        .render_digest_of(&name("new_comment"), Channel::Email, None, &items, 250)
        .unwrap();
    let Rendered::Email { subject, .. } = rendered else {
        panic!("an e-mail")
    };
    assert_eq!(
        subject,
        "Grace Hopper, Donald Knuth and 248 others commented on \"Notes on the Analytical Engine\""
    );
    // A count below the items given is raised to them.
    let rendered = store
        .render_digest_of(&name("new_comment"), Channel::InApp, None, &items, 1)
        .unwrap();
    assert!(
        matches!(rendered, Rendered::InApp { ref title, .. } if title.starts_with("2 new comments")),
        "{rendered:?}"
    );
}
