//! The helpers Herald adds to the ones built into Handlebars.
//!
//! Kept to the few a digest needs to read well ("Ana, Ben and 3 others"):
//! every helper is part of the template language operators write in, so
//! each one is documented in the crate docs and `templates/README.md`.

use handlebars::{
    Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason,
    ScopedJson,
};
use serde_json::Value;

pub(crate) fn register(registry: &mut Handlebars<'static>) {
    registry.register_helper("minus", Box::new(Minus));
}

/// `{{minus a b}}`: `a - b` for two whole numbers.
///
/// Refuses anything else (text, fractions, a missing variable, an overflow)
/// rather than guessing, so a template that counts wrong fails its check
/// instead of telling someone about "NaN others".
struct Minus;

impl HelperDef for Minus {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let usage = |detail: String| -> RenderError {
            RenderErrorReason::Other(format!(
                "minus takes two whole numbers, as in {{{{minus count 2}}}}: {detail}"
            ))
            .into()
        };
        if h.params().len() != 2 || !h.hash().is_empty() {
            return Err(usage(format!(
                "got {} argument(s){}",
                h.params().len(),
                if h.hash().is_empty() {
                    ""
                } else {
                    " and named arguments"
                }
            )));
        }
        let mut numbers = [0_i64; 2];
        for (slot, param) in numbers.iter_mut().zip(h.params()) {
            if r.strict_mode() && param.is_value_missing() {
                return Err(
                    RenderErrorReason::MissingVariable(param.relative_path().cloned()).into(),
                );
            }
            *slot = param
                .value()
                .as_i64()
                // JSON's spelling, so `"3"` and `3` look different in the error.
                .ok_or_else(|| usage(format!("got {}", param.value())))?;
        }
        let [a, b] = numbers;
        let difference = a
            .checked_sub(b)
            .ok_or_else(|| usage(format!("{a} - {b} is out of range")))?;
        Ok(ScopedJson::Derived(Value::from(difference)))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn strict() -> Handlebars<'static> {
        let mut hbs = Handlebars::new();
        hbs.set_strict_mode(true);
        register(&mut hbs);
        hbs
    }

    #[test]
    fn minus_subtracts_whole_numbers_including_below_zero() {
        let hbs = strict();
        let cases = [
            ("{{minus count 2}}", json!({"count": 5}), "3"),
            ("{{minus count 2}}", json!({"count": 1}), "-1"),
            ("{{minus a b}}", json!({"a": -4, "b": -6}), "2"),
            (
                "{{#if (gt (minus count 1) 1)}}many{{/if}}",
                json!({"count": 3}),
                "many",
            ),
        ];
        for (template, data, expected) in cases {
            let got = hbs.render_template(template, &data).unwrap();
            assert_eq!(got, expected, "{template} with {data}");
        }
    }

    #[test]
    fn minus_refuses_anything_but_two_whole_numbers() {
        let hbs = strict();
        let cases = [
            ("{{minus count 2}}", json!({"count": "5"}), "got \"5\""),
            ("{{minus count 2}}", json!({"count": 2.5}), "got 2.5"),
            ("{{minus count 2}}", json!({"count": null}), "got null"),
            ("{{minus count}}", json!({"count": 5}), "got 1 argument(s)"),
            (
                "{{minus count 1 2}}",
                json!({"count": 5}),
                "got 3 argument(s)",
            ),
            (
                "{{minus count 1 by=2}}",
                json!({"count": 5}),
                "named arguments",
            ),
            ("{{minus a 1}}", json!({"a": i64::MIN}), "is out of range"),
            ("{{minus total 2}}", json!({"count": 5}), "\"total\""),
        ];
        for (template, data, expected) in cases {
            let err = hbs.render_template(template, &data).unwrap_err();
            assert!(
                err.to_string().contains(expected),
                "{template} with {data}: {err}"
            );
        }
    }
}
