//! Reverse- and forward-paths of `MAIL FROM` and `RCPT TO` (RFC 5321 §4.1.2).
//!
//! Kept apart from the session so the one piece of real parsing can be tested
//! with a table, without a socket.

/// Parses `FROM:<path> params` (or `TO:`), keyword case-insensitive, and
/// returns the mailbox without brackets plus the parameter text.
pub(super) fn parse_path<'a>(arg: &'a str, keyword: &str) -> Option<(String, &'a str)> {
    let prefix = arg.get(..keyword.len())?;
    if !prefix.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg.get(keyword.len()..)?.trim_start().strip_prefix('<')?;
    let (path, params) = rest.split_once('>')?;
    if path.contains(|c: char| c.is_whitespace() || c == '<')
        || !(params.is_empty() || params.starts_with(' '))
    {
        return None;
    }
    // RFC 5321 §3.3 and appendix C: source routes must be accepted, then ignored.
    let mailbox = match path.strip_prefix('@') {
        Some(route) => route.split_once(':')?.1,
        None => path,
    };
    Some((mailbox.to_owned(), params))
}

#[cfg(test)]
mod tests {
    use super::parse_path;

    #[test]
    fn paths_parse_the_way_relays_read_them() {
        let cases = [
            ("FROM:<a@x.test>", Some(("a@x.test", ""))),
            (
                "from: <a@x.test> BODY=8BITMIME",
                Some(("a@x.test", " BODY=8BITMIME")),
            ),
            ("FROM:<>", Some(("", ""))),
            ("FROM:<@relay.test:a@x.test>", Some(("a@x.test", ""))),
            ("FROM:a@x.test", None),
            ("FROM:<a@x.test", None),
            ("FROM:<a b@x.test>", None),
            ("FROM:<a@x.test>junk", None),
            ("TO:<a@x.test>", None),
            ("FR", None),
            ("FROMÖ:<a@x.test>", None),
        ];
        for (arg, expected) in cases {
            let parsed = parse_path(arg, "FROM:");
            let parsed = parsed
                .as_ref()
                .map(|(path, params)| (path.as_str(), *params));
            assert_eq!(parsed, expected, "{arg}");
        }
    }
}
