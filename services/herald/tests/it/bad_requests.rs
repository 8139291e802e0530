//! Bad input gets a clear 4xx JSON error, never a 5xx.

use crate::support::Backend;

crate::on_both_backends!(
    bad_requests_get_the_right_4xx_with_a_json_error,
    a_bad_idempotency_key_is_refused,
    mangled_bodies_never_cause_a_server_error,
    health_readiness_and_the_openapi_document_answer,
    a_body_that_is_not_an_object_is_refused_and_changes_nothing,
    a_cap_written_as_a_whole_float_is_that_integer,
);

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{ada, TestApp};

struct Case {
    method: Method,
    path: &'static str,
    body: Body,
    status: u16,
    code: &'static str,
}

enum Body {
    None,
    Json(Value),
    Raw(&'static str, String),
}

fn case(method: Method, path: &'static str, body: Body, status: u16, code: &'static str) -> Case {
    Case {
        method,
        path,
        body,
        status,
        code,
    }
}

fn send(body: Value) -> Body {
    Body::Json(body)
}

async fn bad_requests_get_the_right_4xx_with_a_json_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    ada(&app).await;
    let params = json!({"name": "Ada", "app_name": "Acme"});
    let many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    let huge = format!(
        r#"{{"template":"welcome","recipients":["ada"],"params":{{"x":"{}"}}}}"#,
        "a".repeat(300_000)
    );
    let json_type = "application/json";
    use Method as M;
    let cases = vec![
        case(
            M::POST,
            "/v1/notifications",
            Body::Raw(json_type, "{not json".into()),
            400,
            "invalid_json",
        ),
        case(
            M::POST,
            "/v1/notifications",
            Body::Raw("text/plain", "{}".into()),
            415,
            "unsupported_media_type",
        ),
        case(
            M::POST,
            "/v1/notifications",
            Body::Raw(json_type, huge),
            413,
            "payload_too_large",
        ),
        case(
            M::POST,
            "/v1/notifications",
            send(json!({"template": "nope", "recipients": ["ada"]})),
            422,
            "unknown_template",
        ),
        case(
            M::POST,
            "/v1/notifications",
            send(json!({"template": "welcome", "recipients": ["ada"], "params": {"name": "Ada"}})),
            422,
            "invalid_params",
        ),
        case(
            M::POST,
            "/v1/notifications",
            send(json!({"template": "welcome", "recipients": ["ghost"], "params": params})),
            422,
            "unknown_user",
        ),
        case(
            M::POST,
            "/v1/notifications",
            send(
                json!({"template": "welcome", "recipients": ["ada"], "params": params, "channels": ["fax"]}),
            ),
            422,
            "invalid_body",
        ),
        case(
            M::POST,
            "/v1/notifications",
            send(json!({"template": "new_comment", "recipients": ["ada"], "channels": ["sms"]})),
            422,
            "channel_not_in_template",
        ),
        case(
            M::POST,
            "/v1/notifications",
            send(json!({"template": "welcome", "recipients": [], "params": params})),
            422,
            "invalid_request",
        ),
        case(
            M::POST,
            "/v1/notifications",
            send(json!({"template": "welcome", "recipients": many, "params": params})),
            422,
            "invalid_request",
        ),
        case(
            M::POST,
            "/v1/notifications",
            send(json!({"template": "welcome", "recipients": ["a b"]})),
            422,
            "invalid_body",
        ),
        case(
            M::POST,
            "/v1/notifications",
            send(json!({"template": "welcome", "recipients": ["ada"], "colour": "red"})),
            422,
            "invalid_body",
        ),
        case(
            M::POST,
            "/v1/notifications",
            send(json!({"template": "welcome", "recipients": "ada"})),
            422,
            "invalid_body",
        ),
        case(
            M::POST,
            "/v1/notifications",
            send(json!({"template": "welcome", "recipients": ["ada"], "priority": "urgent"})),
            422,
            "invalid_body",
        ),
        case(
            M::POST,
            "/v1/notifications",
            send(json!([1, 2])),
            422,
            "invalid_body",
        ),
        // An array is not read as a struct by position: every body is an object.
        case(
            M::POST,
            "/v1/notifications",
            send(json!(["welcome", ["ada"], params])),
            422,
            "invalid_body",
        ),
        case(
            M::PUT,
            "/v1/users/ada",
            send(json!([])),
            422,
            "invalid_body",
        ),
        case(
            M::POST,
            "/v1/users/ada/devices",
            send(json!(["apns", "ab".repeat(16)])),
            422,
            "invalid_body",
        ),
        case(
            M::PUT,
            "/v1/users/ada/preferences",
            send(json!([])),
            422,
            "invalid_body",
        ),
        case(
            M::PUT,
            "/v1/topics/news",
            send(json!([])),
            422,
            "invalid_body",
        ),
        case(
            M::POST,
            "/v1/topics/news/subscribers",
            send(json!([["ada"], []])),
            422,
            "invalid_body",
        ),
        case(
            M::PUT,
            "/v1/admin/categories/marketing",
            send(json!([])),
            422,
            "invalid_body",
        ),
        case(
            M::GET,
            "/v1/notifications/not-a-uuid",
            Body::None,
            400,
            "invalid_id",
        ),
        case(
            M::GET,
            "/v1/notifications/0190b7a2-6c3e-7d7a-8f00-000000000001",
            Body::None,
            404,
            "notification_not_found",
        ),
        case(
            M::PUT,
            "/v1/users/a%20b",
            send(json!({})),
            400,
            "invalid_user_id",
        ),
        case(
            M::PUT,
            "/v1/users/bob",
            send(json!({"email": "not-an-address"})),
            422,
            "invalid_body",
        ),
        case(
            M::PUT,
            "/v1/users/bob",
            send(json!({"phone": "0612345678"})),
            422,
            "invalid_body",
        ),
        case(
            M::PUT,
            "/v1/users/bob",
            send(json!({"time_zone": "Mars/Olympus"})),
            422,
            "invalid_body",
        ),
        case(
            M::PUT,
            "/v1/users/bob",
            send(json!({"locale": "english"})),
            422,
            "invalid_body",
        ),
        case(
            M::PUT,
            "/v1/users/bob",
            send(json!({"name": "x".repeat(201)})),
            422,
            "invalid_body",
        ),
        case(M::GET, "/v1/users/ghost", Body::None, 404, "user_not_found"),
        case(
            M::POST,
            "/v1/users/ghost/devices",
            send(json!({"platform": "fcm", "token": "t".repeat(40)})),
            404,
            "user_not_found",
        ),
        case(
            M::POST,
            "/v1/users/ada/devices",
            send(json!({"platform": "apns", "token": "short"})),
            422,
            "invalid_body",
        ),
        case(
            M::POST,
            "/v1/users/ada/devices",
            send(json!({"platform": "webpush", "token": "t".repeat(40)})),
            422,
            "invalid_body",
        ),
        case(
            M::PUT,
            "/v1/users/ada/preferences",
            send(json!({"channels": {"fax": false}})),
            422,
            "invalid_body",
        ),
        case(
            M::PUT,
            "/v1/users/ada/preferences",
            send(json!({"channels": {"email": "no"}})),
            422,
            "invalid_body",
        ),
        case(
            M::PUT,
            "/v1/users/ghost/preferences",
            send(json!({})),
            404,
            "user_not_found",
        ),
        case(
            M::GET,
            "/v1/users/ghost/preferences",
            Body::None,
            404,
            "user_not_found",
        ),
        case(
            M::GET,
            "/v1/users/ghost/inbox",
            Body::None,
            404,
            "user_not_found",
        ),
        case(
            M::GET,
            "/v1/users/ada/inbox?limit=0",
            Body::None,
            400,
            "invalid_query",
        ),
        case(
            M::GET,
            "/v1/users/ada/inbox?limit=lots",
            Body::None,
            400,
            "invalid_query",
        ),
        case(
            M::POST,
            "/v1/users/ada/inbox/not-a-uuid/read",
            Body::None,
            400,
            "invalid_id",
        ),
        case(
            M::POST,
            "/v1/users/ada/inbox/0190b7a2-6c3e-7d7a-8f00-000000000001/read",
            Body::None,
            404,
            "message_not_found",
        ),
        case(
            M::DELETE,
            "/v1/notifications",
            Body::None,
            405,
            "method_not_allowed",
        ),
        case(M::GET, "/v2/anything", Body::None, 404, "not_found"),
    ];
    for c in cases {
        let mut request = app
            .client
            .request(c.method.clone(), format!("{}{}", app.base, c.path));
        request = match c.body {
            Body::None => request,
            Body::Json(v) => request.json(&v),
            Body::Raw(content_type, raw) => request.header("content-type", content_type).body(raw),
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{} {}: not JSON: {text}", c.method, c.path));
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (c.status, Some(c.code)),
            "{} {}: {body}",
            c.method,
            c.path
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
}

async fn a_bad_idempotency_key_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    ada(&app).await;
    let body = crate::support::welcome(&["ada"], &["email"]);
    let (status, answer) = app.send_with_key(&"k".repeat(300), &body).await;
    assert_eq!(
        (status.as_u16(), answer["error"]["code"].as_str()),
        (400, Some("invalid_idempotency_key"))
    );
}

/// Mangled versions of a valid body: cut short, bytes flipped, values
/// swapped for other types. None may produce a 5xx.
async fn mangled_bodies_never_cause_a_server_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    ada(&app).await;
    let valid =
        serde_json::to_string(&crate::support::welcome(&["ada"], &["email", "in_app"])).unwrap();
    let bytes = valid.as_bytes();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let replacements: [&[u8]; 8] = [
        b"null",
        b"1e999",
        b"[]",
        b"{}",
        b"\"\\u0000\"",
        b"-0",
        b"\xff\xfe",
        b"\"\xf0\x9f\x92\xa9\"",
    ];
    for round in 0..300 {
        let mut body = bytes.to_vec();
        match round % 3 {
            0 => body.truncate((next() as usize) % bytes.len()),
            1 => {
                let i = (next() as usize) % body.len();
                body[i] = (next() % 256) as u8;
            }
            _ => {
                let i = (next() as usize) % body.len();
                let r = replacements[(next() as usize) % replacements.len()];
                body.splice(i..(i + 1).min(body.len()), r.iter().copied());
            }
        }
        let response = app
            .client
            .post(format!("{}/v1/notifications", app.base))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status.as_u16() < 500,
            "{status} for {:?}",
            String::from_utf8_lossy(&body)
        );
        let json: Value = response.json().await.unwrap();
        assert!(status == 202 || json["error"]["code"].is_string(), "{json}");
    }
}

async fn health_readiness_and_the_openapi_document_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, health) = app.request(Method::GET, "/healthz", None).await;
    assert_eq!(
        (status.as_u16(), health["status"].as_str()),
        (200, Some("ok"))
    );
    let (status, ready) = app.request(Method::GET, "/readyz", None).await;
    assert_eq!(
        (status.as_u16(), ready["status"].as_str()),
        (200, Some("ok"))
    );
    let (status, doc) = app.request(Method::GET, "/openapi.json", None).await;
    assert_eq!(status, 200);
    for path in [
        "/v1/notifications",
        "/v1/notifications/{id}",
        "/v1/users/{id}",
        "/v1/users/{id}/devices",
        "/v1/users/{id}/preferences",
        "/v1/users/{id}/inbox",
        "/v1/users/{id}/inbox/{message}/read",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    let (status, templates) = app.request(Method::GET, "/v1/templates", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = templates
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec![
            "new_comment",
            "order_shipped",
            "payment_failed",
            "security_alert",
            "welcome"
        ]
    );
}

/// serde fills a struct from an array by position; the API reads only
/// objects, so `[]` does not pass for a policy or a profile whose fields are
/// all optional (it used to replace them with the defaults).
async fn a_body_that_is_not_an_object_is_refused_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    ada(&app).await;
    let policy =
        json!({"default_enabled": false, "caps": [{"channel": "push", "max": 3, "per": "1h"}]});
    let (status, _) = app
        .request(Method::PUT, "/v1/admin/categories/marketing", Some(policy))
        .await;
    assert_eq!(status, 201);
    for (method, path, body) in [
        (Method::PUT, "/v1/admin/categories/marketing", json!([])),
        (Method::PUT, "/v1/admin/categories/social", json!([])),
        (Method::PUT, "/v1/users/ada", json!([])),
        (Method::PUT, "/v1/users/bob", json!([])),
        (Method::PUT, "/v1/topics/news", json!([])),
        (Method::PUT, "/v1/topics/news", json!(["what changed"])),
        (
            Method::PUT,
            "/v1/users/ada/preferences",
            json!([{"email": false}]),
        ),
        (
            Method::POST,
            "/v1/notifications",
            json!(["welcome", ["ada"]]),
        ),
        (Method::PUT, "/v1/users/ada", json!("ada@example.com")),
        (Method::PUT, "/v1/users/ada", json!(null)),
    ] {
        let (status, answer) = app.request(method.clone(), path, Some(body.clone())).await;
        assert_eq!(
            (status.as_u16(), answer["error"]["code"].as_str()),
            (422, Some("invalid_body")),
            "{method} {path} {body}: {answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("a JSON object")),
            "{answer}"
        );
    }
    let (_, marketing) = app
        .request(Method::GET, "/v1/admin/categories/marketing", None)
        .await;
    assert_eq!(marketing["default_enabled"], false, "{marketing}");
    assert_eq!(marketing["caps"][0]["max"], 3, "{marketing}");
    for gone in [
        "/v1/admin/categories/social",
        "/v1/users/bob",
        "/v1/topics/news",
    ] {
        let (status, _) = app.request(Method::GET, gone, None).await;
        assert_eq!(status, 404, "{gone}");
    }
    let (_, user) = app.request(Method::GET, "/v1/users/ada", None).await;
    assert_eq!(user["email"], "ada@example.com", "{user}");
}

/// JSON Schema's `integer` admits `3.0`, and so does the server: a cap's
/// `max` is read from any whole number. A fraction is still refused.
async fn a_cap_written_as_a_whole_float_is_that_integer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let path = "/v1/admin/categories/social";
    let whole = json!({"caps": [{"channel": "push", "max": 3.0, "per": "1h"}, {"channel": "sms", "max": 1e3, "per": "366d"}]});
    let (status, view) = app.request(Method::PUT, path, Some(whole)).await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["caps"][0]["max"], 3, "{view}");
    assert_eq!(view["caps"][1]["max"], 1000, "{view}");
    for (max, needle) in [
        (json!(2.5), "whole number"),
        (json!(-3.0), "whole number"),
        (json!(1001.0), "1 to 1000"),
        (json!(0.0), "1 to 1000"),
    ] {
        let body = json!({"caps": [{"channel": "push", "max": max, "per": "1h"}]});
        let (status, answer) = app.request(Method::PUT, path, Some(body)).await;
        assert_eq!(status, 422, "{max}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(needle)),
            "{max}: {answer}"
        );
    }
}

/// The statuses every operation must document, read from the structure of
/// `/openapi.json` itself, so a new endpoint that forgets one fails here:
///
/// * a JSON body: 400 (malformed JSON), 413 (too large), 415 (not sent as
///   JSON) and 422 (does not fit the schema);
/// * path or query parameters: 400 (they do not parse). A request's
///   parameters never earn a 422 here: 422 is for bodies;
/// * every `/v1` route: the API key (`security`), 401 and 403, and 503
///   (the database unreachable);
/// * every error answer: the `{error: {code, message}}` body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_documents_the_statuses_its_inputs_can_earn() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (status, doc) = app.request(Method::GET, "/openapi.json", None).await;
    assert_eq!(status, 200);
    let mut operations = 0;
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            operations += 1;
            let name = format!("{} {path}", method.to_uppercase());
            let responses = operation["responses"].as_object().expect("responses");
            let mut expect = |status: &str, why: &str| {
                if !responses.contains_key(status) {
                    missing.push(format!("{name}: {status} ({why})"));
                }
            };
            let json_body = operation["requestBody"]["content"]
                .as_object()
                .is_some_and(|c| c.contains_key("application/json"));
            if json_body {
                for status in ["400", "413", "415", "422"] {
                    expect(status, "JSON body");
                }
            }
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for kind in ["path", "query"] {
                if parameters.iter().any(|p| p["in"] == kind) {
                    expect("400", kind);
                }
            }
            if path.starts_with("/v1/") {
                expect("401", "API key");
                expect("403", "API key scope");
                expect("503", "the database unreachable");
                assert_eq!(
                    operation["security"],
                    json!([{"api_key": []}]),
                    "{name}: no security requirement"
                );
            }
            for (status, response) in responses {
                // The probes answer 503 with their own body (what is failing).
                if status.starts_with('4') || (status.starts_with('5') && path.starts_with("/v1/"))
                {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{name}: {status} is not an ErrorBody"
                    );
                }
            }
            // A path parameter has a schema that says what parses.
            for p in parameters.iter().filter(|p| p["in"] == "path") {
                let schema = &p["schema"];
                let constrained = schema["$ref"].is_string()
                    || schema["pattern"].is_string()
                    || schema["format"].is_string()
                    || schema["enum"].is_array();
                assert!(
                    constrained,
                    "{name}: path parameter {} is any string",
                    p["name"]
                );
            }
        }
    }
    assert!(operations >= 27, "only {operations} operations documented");
    for open in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert!(
            doc["paths"][open]["get"].is_object(),
            "{open} is not documented"
        );
    }
    assert!(
        missing.is_empty(),
        "undocumented statuses:\n{}",
        missing.join("\n")
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
}
