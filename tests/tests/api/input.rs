//! Bad input: every refusal is a 4xx with a JSON error naming the field, and appends nothing.

use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{Cast, Reply, TestApp, TestUser};
use reqwest::{Method, StatusCode};
use uuid::Uuid;

const REQUISITIONS: &str = "/api/requisitions/";

/// A valid create-requisition body for `fund`, with `changes` merged in (a null removes a key).
fn requisition_body(fund: Uuid, changes: Value) -> Value {
    let mut body = json!({"fund_id": fund, "amount": "25.00", "purpose": "Printer paper"});
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            body.as_object_mut().unwrap().remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    body
}

/// Sends raw JSON text as `user`.
async fn post_text(app: &TestApp, user: &TestUser, path: &str, text: &str) -> Reply {
    app.send_raw(user, Method::POST, path, "application/json", text.as_bytes().to_vec()).await
}

/// Opens a fund and creates a draft requisition from it as staff: the fund and the draft's path.
async fn draft(app: &TestApp, c: &Cast) -> (Uuid, String) {
    let fund = app.fund(&c.admin, "5000").await;
    let r = app.post(&c.staff, REQUISITIONS, requisition_body(fund, json!({}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    (fund, format!("/api/requisitions/{}", r.id()))
}

/// Asserts a refusal with `status`, a JSON error naming `field` (and `code` when given), and
/// that nothing was appended to the event store.
async fn assert_refused(app: &TestApp, r: &Reply, status: u16, field: &str, code: Option<&str>, events: i64) {
    assert_eq!(r.status.as_u16(), status, "{r:?}");
    assert!(r.body["error"]["message"].is_string(), "a JSON error body: {r:?}");
    assert_eq!(r.field(), field, "{r:?}");
    if let Some(code) = code {
        assert_eq!(r.code(), code, "{r:?}");
    }
    assert_eq!(app.event_count().await, events, "nothing is appended: {r:?}");
}

#[tokio::test]
async fn a_negative_or_zero_amount_is_refused_as_not_positive() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let events = app.event_count().await;
    for amount in [json!("-5"), json!(-5), json!("0"), json!(0), json!("0.00")] {
        let r = app.post(&c.staff, REQUISITIONS, requisition_body(fund, json!({"amount": amount}))).await;
        assert_refused(&app, &r, 422, "amount", Some("amount_not_positive"), events).await;
    }
}

#[tokio::test]
async fn an_amount_with_more_decimals_than_the_currency_has_is_refused() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let events = app.event_count().await;
    for amount in [json!("12.345"), json!(12.345)] {
        let r = app.post(&c.staff, REQUISITIONS, requisition_body(fund, json!({"amount": amount}))).await;
        assert_refused(&app, &r, 422, "amount", Some("too_many_decimals"), events).await;
    }
}

#[tokio::test]
async fn huge_non_numeric_and_non_string_amounts_are_refused_naming_amount() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let events = app.event_count().await;
    let huge_number = format!(r#"{{"fund_id": "{fund}", "amount": 1e40, "purpose": "x"}}"#);
    let r = post_text(&app, &c.staff, REQUISITIONS, &huge_number).await;
    assert_refused(&app, &r, 422, "amount", None, events).await;

    for amount in [
        json!("1e40"),
        json!("99999999999999999999999999999999"),
        json!("abc"),
        json!(""),
        json!("12,50"),
        json!(true),
        json!([12]),
        json!({"value": 12}),
        json!("1000000000.01"),
    ] {
        let r =
            app.post(&c.staff, REQUISITIONS, requisition_body(fund, json!({"amount": amount.clone()}))).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "amount {amount}: {r:?}");
        assert_eq!(r.field(), "amount", "amount {amount}: {r:?}");
        assert_eq!(app.event_count().await, events, "amount {amount}");
    }
}

#[tokio::test]
async fn an_amount_given_as_a_json_number_is_accepted_and_shown_with_the_currencys_decimals() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let r = app.post(&c.staff, REQUISITIONS, requisition_body(fund, json!({"amount": 12.5}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["amount"], "12.50");
    let r = app.post(&c.staff, REQUISITIONS, requisition_body(fund, json!({"amount": 0.1}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["amount"], "0.10");
    let r = app.get(&c.staff, &format!("/api/requisitions/{}", r.id())).await;
    assert_eq!(r.body["amount"], "0.10");
}

#[tokio::test]
async fn a_currency_other_than_the_funds_is_refused_naming_currency() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let events = app.event_count().await;

    let r = app.post(&c.staff, REQUISITIONS, requisition_body(fund, json!({"currency": "USD"}))).await;
    assert_refused(&app, &r, 422, "currency", Some("currency_mismatch"), events).await;
    let r = app.post(&c.staff, REQUISITIONS, requisition_body(fund, json!({"currency": "XYZ"}))).await;
    assert_refused(&app, &r, 422, "currency", None, events).await;

    // The fund's own currency, in any case, is fine.
    let r = app.post(&c.staff, REQUISITIONS, requisition_body(fund, json!({"currency": "kes"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["currency"], "KES");
}

#[tokio::test]
async fn malformed_json_is_a_400_and_trailing_garbage_a_4xx() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let events = app.event_count().await;

    let r = post_text(&app, &c.staff, REQUISITIONS, r#"{"amount": "#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    assert_eq!(r.code(), "malformed_json", "{r:?}");

    let r = post_text(&app, &c.staff, REQUISITIONS, "{'amount': 1}").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    assert_eq!(r.code(), "malformed_json", "{r:?}");

    let valid = requisition_body(fund, json!({})).to_string();
    for garbage in [format!("{valid} xyz"), format!("{valid}{valid}"), format!("{valid},")] {
        let r = post_text(&app, &c.staff, REQUISITIONS, &garbage).await;
        assert!(
            r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::UNPROCESSABLE_ENTITY,
            "trailing garbage `{garbage}`: {r:?}"
        );
        assert!(r.body["error"]["code"].is_string(), "{r:?}");
    }
    assert_eq!(app.event_count().await, events);
}

#[tokio::test]
async fn unknown_missing_and_invalid_fields_are_named() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let events = app.event_count().await;

    let cases = [
        (json!({"colour": "red"}), "colour"),
        (json!({"purpose": null}), "purpose"),
        (json!({"amount": null}), "amount"),
        (json!({"fund_id": null}), "fund_id"),
        (json!({"fund_id": "not-a-uuid"}), "fund_id"),
        (json!({"fund_id": 42}), "fund_id"),
        (json!({"fund_id": Uuid::new_v4()}), "fund_id"),
        (json!({"purpose": 5}), "purpose"),
        (json!({"submit": "yes"}), "submit"),
        (json!({"payee": ["a"]}), "payee"),
    ];
    for (changes, field) in cases {
        let body = requisition_body(fund, changes.clone());
        let r = app.post(&c.staff, REQUISITIONS, body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{changes}: {r:?}");
        assert_eq!(r.field(), field, "{changes}: {r:?}");
        assert_eq!(app.event_count().await, events, "{changes}");
    }
}

#[tokio::test]
async fn a_one_megabyte_purpose_is_refused_naming_purpose() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let events = app.event_count().await;
    let purpose = "a".repeat(1_000_000);
    let r = app.post(&c.staff, REQUISITIONS, requisition_body(fund, json!({"purpose": purpose}))).await;
    assert_refused(&app, &r, 422, "purpose", None, events).await;

    // Just over the limit (1,000 characters after trimming) is refused; the limit itself is not.
    let r =
        app.post(&c.staff, REQUISITIONS, requisition_body(fund, json!({"purpose": "é".repeat(1001)}))).await;
    assert_refused(&app, &r, 422, "purpose", None, events).await;
    let r =
        app.post(&c.staff, REQUISITIONS, requisition_body(fund, json!({"purpose": "é".repeat(1000)}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
}

#[tokio::test]
async fn a_body_over_the_size_limit_is_a_413_with_a_json_error() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let events = app.event_count().await;
    let body = requisition_body(fund, json!({"purpose": "a".repeat(3 * 1024 * 1024)})).to_string();
    let r = post_text(&app, &c.staff, REQUISITIONS, &body).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{r:?}");
    assert!(r.body["error"]["code"].is_string(), "a JSON error body: {r:?}");
    assert_eq!(app.event_count().await, events);
}

#[tokio::test]
async fn a_blank_purpose_is_refused() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let events = app.event_count().await;
    for purpose in ["", "   ", "\n\t "] {
        let r = app.post(&c.staff, REQUISITIONS, requisition_body(fund, json!({"purpose": purpose}))).await;
        assert_refused(&app, &r, 422, "purpose", None, events).await;
    }
}

#[tokio::test]
async fn a_json_body_sent_as_text_plain_is_a_415_json_error() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let events = app.event_count().await;
    let body = requisition_body(fund, json!({})).to_string().into_bytes();
    let r = app.send_raw(&c.staff, Method::POST, REQUISITIONS, "text/plain", body).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{r:?}");
    assert!(r.body["error"]["code"].is_string(), "a JSON error body: {r:?}");
    assert_eq!(app.event_count().await, events);
}

#[tokio::test]
async fn opening_a_fund_with_bad_input_is_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let events = app.event_count().await;
    let cases = [
        (json!({"name": "F", "currency": "XYZ", "float": "100"}), "currency", Some("unknown_currency")),
        (json!({"name": "F", "currency": "KES", "float": "0"}), "float", Some("amount_not_positive")),
        (json!({"name": "F", "currency": "KES", "float": "-100"}), "float", Some("amount_not_positive")),
        (json!({"name": "F", "currency": "JPY", "float": "10.5"}), "float", Some("too_many_decimals")),
        (json!({"currency": "KES", "float": "100"}), "name", None),
        (json!({"name": "  ", "currency": "KES", "float": "100"}), "name", None),
        (json!({"name": "F", "float": "100"}), "currency", None),
        (json!({"name": "F", "currency": "KES"}), "float", None),
        (json!({"name": "F", "currency": "KES", "float": "100", "owner": "me"}), "owner", None),
        (
            json!({"name": "F", "currency": "KES", "float": "100", "custodian_id": Uuid::new_v4()}),
            "custodian_id",
            None,
        ),
    ];
    for (body, field, code) in cases {
        let r = app.post(&c.admin, "/api/funds/", body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {r:?}");
        assert_eq!(r.field(), field, "{body}: {r:?}");
        if let Some(code) = code {
            assert_eq!(r.code(), code, "{body}: {r:?}");
        }
        assert_eq!(app.event_count().await, events, "{body}");
    }
}

#[tokio::test]
async fn a_payment_with_an_unknown_method_or_requisition_is_refused() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let id = app.submitted(&c.staff, fund, "50").await;
    app.approve_by(id, &[&c.head]).await;
    let events = app.event_count().await;
    let payments = "/api/treasury/payments/";

    let r = app.post(&c.treasury, payments, json!({"requisition_id": id, "method": "bitcoin"})).await;
    assert_refused(&app, &r, 422, "method", None, events).await;
    let r = app.post(&c.treasury, payments, json!({"requisition_id": id})).await;
    assert_refused(&app, &r, 422, "method", None, events).await;
    let r = app.post(&c.treasury, payments, json!({"requisition_id": "nope", "method": "cash"})).await;
    assert_refused(&app, &r, 422, "requisition_id", None, events).await;

    let r =
        app.post(&c.treasury, payments, json!({"requisition_id": Uuid::new_v4(), "method": "cash"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    assert_eq!(r.code(), "not_found", "{r:?}");
    assert_eq!(app.event_count().await, events);
    assert_eq!(app.balance(&c.staff, fund).await.to_string(), "5000.00");
}

#[tokio::test]
async fn an_edit_with_nothing_or_an_unknown_field_is_refused() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let (_, path) = draft(&app, &c).await;
    let events = app.event_count().await;

    let r = app.patch(&c.staff, &path, json!({})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert!(r.body["error"]["code"].is_string(), "{r:?}");
    assert_eq!(app.event_count().await, events);

    let r = app.patch(&c.staff, &path, json!({"purpose": "New", "status": "approved"})).await;
    assert_refused(&app, &r, 422, "status", None, events).await;
    let r = app.patch(&c.staff, &path, json!({"amount": "-1"})).await;
    assert_refused(&app, &r, 422, "amount", Some("amount_not_positive"), events).await;
    let r = app.patch(&c.staff, &path, json!({"purpose": " "})).await;
    assert_refused(&app, &r, 422, "purpose", None, events).await;

    let r = app.get(&c.staff, &path).await;
    assert_eq!(r.body["purpose"], "Printer paper");
    assert_eq!(r.body["amount"], "25.00");
}

#[tokio::test]
async fn a_purpose_that_looks_like_sql_is_stored_verbatim() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let purpose = "'); DROP TABLE events; -- \"quoted\" \\ $1 %s";
    let r = app.post(&c.staff, REQUISITIONS, requisition_body(fund, json!({"purpose": purpose}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["purpose"], purpose);
    let got = app.get(&c.staff, &format!("/api/requisitions/{}", r.id())).await;
    assert_eq!(got.status, StatusCode::OK, "{got:?}");
    assert_eq!(got.body["purpose"], purpose);

    let exists: bool = sqlx::query_scalar("SELECT to_regclass('public.events') IS NOT NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(exists, "the events table still exists");
    assert!(app.event_count().await > 0);
}

#[tokio::test]
async fn no_bad_body_ever_gets_a_500() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let valid = requisition_body(fund, json!({})).to_string();
    let mut bodies: Vec<String> = [
        json!({"amount": "-5"}),
        json!({"amount": 0}),
        json!({"amount": "12.345"}),
        json!({"amount": "1e40"}),
        json!({"amount": "99999999999999999999999999999999"}),
        json!({"amount": "abc"}),
        json!({"amount": true}),
        json!({"amount": "NaN"}),
        json!({"amount": "-0"}),
        json!({"amount": "1e-40"}),
        json!({"amount": "e"}),
        json!({"amount": "."}),
        json!({"amount": "--1"}),
        json!({"amount": "1e"}),
        json!({"amount": "1E99999999999"}),
        json!({"currency": "USD"}),
        json!({"currency": "XYZ"}),
        json!({"currency": ""}),
        json!({"colour": "red"}),
        json!({"purpose": null}),
        json!({"fund_id": null}),
        json!({"fund_id": "not-a-uuid"}),
        json!({"fund_id": Uuid::new_v4()}),
        json!({"purpose": "   "}),
        json!({"purpose": "a\u{0}b"}),
        json!({"payee": "x".repeat(10_000)}),
        json!({"purpose": "a".repeat(1_000_000)}),
    ]
    .into_iter()
    .map(|changes| requisition_body(fund, changes).to_string())
    .collect();
    let huge_number = format!(r#"{{"fund_id": "{fund}", "amount": 1e400, "purpose": "x"}}"#);
    for number in
        ["5e-324", "1.7976931348623157e308", "-0.0", "1e-7", "-1e400", "0.0000000000000000000000000000001"]
    {
        bodies.push(format!(r#"{{"fund_id": "{fund}", "amount": {number}, "purpose": "x"}}"#));
        bodies.push(format!(r#"{{"fund_id": "{fund}", "amount": "{number}", "purpose": "x"}}"#));
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(5_000), "}".repeat(5_000));
    bodies.extend([
        r#"{"amount": "#.to_string(),
        format!("{valid} xyz"),
        huge_number,
        deep,
        "null".into(),
        "[]".into(),
        "\"text\"".into(),
        "{}".into(),
        "\u{feff}{}".into(),
        format!(r#"{{"fund_id": "{fund}", "amount": "1", "purpose": "\ud800"}}"#),
        format!(r#"{{"fund_id": "{fund}", "amount": "1", "amount": "2", "purpose": "x"}}"#),
        format!(r#"{{"fund_id": "{fund}", "amount": "1", "purpose": "x", "a\u0000": 1}}"#),
        format!(r#"{{"fund_id": "{fund}", "amount": "1", "purpose": "x", "colour": {deep_object}}}"#),
    ]);
    let events = app.event_count().await;
    for body in &bodies {
        let r = post_text(&app, &c.staff, REQUISITIONS, body).await;
        let shown: String = body.chars().take(120).collect();
        assert!(r.status.is_client_error(), "`{shown}` answered {}: {r:?}", r.status);
        assert!(r.body["error"]["code"].is_string(), "`{shown}` has a JSON error: {r:?}");
    }
    assert_eq!(app.event_count().await, events, "no bad body appended anything");
}

// ----- NUL and control characters, where text enters ------------------------------------------

/// Asserts a 422 `validation_error` naming `field`, whose body does not echo the NUL it
/// refuses, and that nothing was appended.
async fn assert_nul_refused(app: &TestApp, r: &Reply, field: &str, events: i64) {
    assert_refused(app, r, 422, field, Some("validation_error"), events).await;
    assert!(r.body["error"]["message"].as_str().unwrap().contains("U+0000"), "names the character: {r:?}");
    let error = &r.body["error"];
    for text in [&error["field"], &error["message"]] {
        assert!(!text.as_str().unwrap_or_default().contains('\0'), "the NUL is not echoed: {r:?}");
    }
}

#[tokio::test]
async fn a_nul_in_the_login_email_is_a_422_naming_email() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let events = app.event_count().await;
    let email = format!("{}\u{0}", c.staff.email);

    let r =
        app.send(None, Method::POST, "/api/auth/login", Some(json!({"email": email, "password": "x"}))).await;

    assert_nul_refused(&app, &r, "email", events).await;
}

#[tokio::test]
async fn a_nul_in_a_purpose_is_refused_by_the_body_check_naming_purpose() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let (fund, path) = draft(&app, &c).await;
    let events = app.event_count().await;

    let r = app.post(&c.staff, REQUISITIONS, requisition_body(fund, json!({"purpose": "Paper\u{0}"}))).await;
    assert_nul_refused(&app, &r, "purpose", events).await;
    let r = app.patch(&c.staff, &path, json!({"purpose": "\u{0}"})).await;
    assert_nul_refused(&app, &r, "purpose", events).await;
}

#[tokio::test]
async fn a_nul_in_a_nested_value_or_an_unknown_key_is_named_by_its_path() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let events = app.event_count().await;
    let policy = "/api/approval-policy";

    let nested = json!({"tiers": [{"up_to": null, "chain": ["department_head", "cfo\u{0}"]}]});
    let r = app.send(Some(&c.admin), Method::PUT, policy, Some(nested)).await;
    assert_nul_refused(&app, &r, "tiers[0].chain[1]", events).await;

    let unknown_nested = json!({"tiers": [{"up_to": null, "chain": ["cfo"], "x\u{0}": 1}]});
    let r = app.send(Some(&c.admin), Method::PUT, policy, Some(unknown_nested)).await;
    assert_nul_refused(&app, &r, "tiers[0].x\\u0000", events).await;

    let r = app.post(&c.staff, REQUISITIONS, requisition_body(fund, json!({"colour\u{0}": "red"}))).await;
    assert_nul_refused(&app, &r, "colour\\u0000", events).await;

    // An escaped backslash before `u0000` is not a NUL.
    let r = app.post(&c.staff, REQUISITIONS, requisition_body(fund, json!({"purpose": "C:\\u0000"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["purpose"], "C:\\u0000");
}

#[tokio::test]
async fn control_characters_in_query_parameters_are_a_422_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let cases = [
        ("/api/requisitions/?q=%00%01%02", "q"),
        ("/api/requisitions/?q=printer%09paper", "q"),
        ("/api/requisitions/?q=a%0Ab", "q"),
        ("/api/requisitions/?q=a%7F", "q"),
        ("/api/requisitions/?status=%00", "status"),
        ("/api/requisitions/?from=2024-01-01%00", "from"),
        ("/api/requisitions/?%00=1", "\\u0000"),
        ("/api/treasury/payments/?fund_id=%00", "fund_id"),
        ("/api/approvals/?cursor=%00", "cursor"),
        ("/api/funds/?min_position=1%00", "min_position"),
    ];
    for (path, field) in cases {
        let r = app.get(&c.treasury, path).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {r:?}");
        assert_eq!(r.code(), "validation_error", "{path}: {r:?}");
        assert_eq!(r.field(), field, "{path}: {r:?}");
    }

    // Text, spaces and `+` (a space too) are fine.
    let r = app.get(&c.treasury, "/api/requisitions/?q=printer%20paper+A4").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
}

#[tokio::test]
async fn dates_outside_the_years_1_to_9999_are_a_422_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let cases = [
        ("/api/requisitions/?from=-200000-01-01", "from"),
        ("/api/requisitions/?to=99999-01-01", "to"),
        ("/api/requisitions/?from=0000-06-01", "from"),
        ("/api/requisitions/?to=10000-01-01T00:00:00Z", "to"),
        ("/api/treasury/payments/?from=-200000-01-01", "from"),
        ("/api/treasury/payments/?to=99999-01-01", "to"),
    ];
    for (path, field) in cases {
        let r = app.get(&c.treasury, path).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {r:?}");
        assert_eq!(r.field(), field, "{path}: {r:?}");
    }

    // The first and the last day are fine.
    for path in [
        "/api/requisitions/?from=0001-01-01&to=9999-12-31",
        "/api/treasury/payments/?from=0001-01-01&to=9999-12-31",
    ] {
        let r = app.get(&c.treasury, path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {r:?}");
    }

    // A cursor is a time too: one made up with the year -100000 is not ours.
    let at = chrono::NaiveDate::from_ymd_opt(-100_000, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
    let mut bytes = at.and_utc().timestamp_micros().to_be_bytes().to_vec();
    bytes.extend_from_slice(Uuid::new_v4().as_bytes());
    let cursor: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    for list in ["/api/requisitions/", "/api/approvals/", "/api/treasury/payments/"] {
        let r = app.get(&c.treasury, &format!("{list}?cursor={cursor}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{list}: {r:?}");
        assert_eq!(r.code(), "invalid_cursor", "{list}: {r:?}");
        assert_eq!(r.field(), "cursor", "{list}: {r:?}");
    }
}

/// `body` with every string `TEXT` replaced by `text`.
fn fill(body: &Value, text: &str) -> Value {
    match body {
        Value::String(s) if s == "TEXT" => Value::String(text.into()),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill(v, text)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), fill(v, text))).collect()),
        other => other.clone(),
    }
}

/// Every text field of every command body, with NUL and with another control character: a
/// 4xx naming the field (422, or 401 where a password is only compared), nothing appended,
/// never a 500.
#[tokio::test]
async fn every_text_field_refuses_nul_and_control_characters_naming_the_field() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let (fund, draft_path) = draft(&app, &c).await;
    let pending = app.submitted(&c.staff, fund, "30").await;
    let approved = app.submitted(&c.staff, fund, "31").await;
    app.approve_by(approved, &[&c.head]).await;
    let r = |p: &str| format!("/api/requisitions/{pending}/{p}");
    // (who, method, path, body with TEXT where the text goes, the field named)
    let cases: Vec<(&TestUser, Method, String, Value, &str)> = vec![
        (
            &c.admin,
            Method::POST,
            "/api/users/".into(),
            json!({"email": "TEXT", "name": "N", "roles": ["staff"]}),
            "email",
        ),
        (
            &c.admin,
            Method::POST,
            "/api/users/".into(),
            json!({"email": "n@x.example", "name": "TEXT", "roles": ["staff"]}),
            "name",
        ),
        (
            &c.admin,
            Method::POST,
            "/api/users/".into(),
            json!({"email": "n@x.example", "name": "N", "roles": ["TEXT"]}),
            "roles",
        ),
        (&c.admin, Method::POST, format!("/api/users/{}/roles", c.staff.id), json!({"role": "TEXT"}), "role"),
        (
            &c.admin,
            Method::POST,
            "/api/funds/".into(),
            json!({"name": "TEXT", "currency": "KES", "float": "1"}),
            "name",
        ),
        (
            &c.admin,
            Method::POST,
            "/api/funds/".into(),
            json!({"name": "F", "currency": "TEXT", "float": "1"}),
            "currency",
        ),
        (
            &c.staff,
            Method::POST,
            REQUISITIONS.into(),
            requisition_body(fund, json!({"purpose": "TEXT"})),
            "purpose",
        ),
        (
            &c.staff,
            Method::POST,
            REQUISITIONS.into(),
            requisition_body(fund, json!({"payee": "TEXT"})),
            "payee",
        ),
        (
            &c.staff,
            Method::POST,
            REQUISITIONS.into(),
            requisition_body(fund, json!({"category": "TEXT"})),
            "category",
        ),
        (
            &c.staff,
            Method::POST,
            REQUISITIONS.into(),
            requisition_body(fund, json!({"currency": "TEXT"})),
            "currency",
        ),
        (&c.staff, Method::PATCH, draft_path.clone(), json!({"purpose": "TEXT"}), "purpose"),
        (&c.staff, Method::PATCH, draft_path.clone(), json!({"payee": "TEXT"}), "payee"),
        (&c.staff, Method::PATCH, draft_path.clone(), json!({"category": "TEXT"}), "category"),
        (&c.head, Method::POST, r("reject"), json!({"reason": "TEXT"}), "reason"),
        (&c.head, Method::POST, r("request-changes"), json!({"reason": "TEXT"}), "reason"),
        (&c.staff, Method::POST, r("cancel"), json!({"reason": "TEXT"}), "reason"),
        (
            &c.treasury,
            Method::POST,
            "/api/treasury/payments/".into(),
            json!({"requisition_id": approved, "method": "cash", "reference": "TEXT"}),
            "reference",
        ),
        (
            &c.treasury,
            Method::POST,
            "/api/treasury/payments/".into(),
            json!({"requisition_id": approved, "method": "TEXT"}),
            "method",
        ),
        (
            &c.admin,
            Method::PUT,
            "/api/approval-policy".into(),
            json!({"tiers": [{"up_to": null, "chain": ["TEXT"]}]}),
            "tiers[0].chain[0]",
        ),
    ];
    let events = app.event_count().await;
    for (user, method, path, body, field) in &cases {
        for bad in ["x\u{0}y", "x\u{1}y", "x\u{1b}[2Jy", "x\u{7f}y"] {
            let reply = app.send(Some(user), method.clone(), path, Some(fill(body, bad))).await;
            assert!(reply.status.is_client_error(), "{method} {path} {field} {bad:?}: {reply:?}");
            // Named as the field, or as its element (`roles[0]`).
            let named = reply.field();
            assert!(
                !named.is_empty() && (named.starts_with(field) || field.starts_with(named)),
                "{method} {path} {bad:?}: names `{named}`, not `{field}`: {reply:?}"
            );
            assert_eq!(app.event_count().await, events, "{method} {path} {field} {bad:?}: nothing appended");
        }
    }
    // Sign-in: NUL anywhere is refused before it reaches SQL; a control character in a
    // password is only ever compared, so it is a wrong password.
    for (email, password, field) in
        [(format!("{}\u{0}", c.staff.email), "p", "email"), (c.staff.email.clone(), "p\u{0}", "password")]
    {
        let reply = app
            .send(None, Method::POST, "/api/auth/login", Some(json!({"email": email, "password": password})))
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{reply:?}");
        assert_eq!(reply.field(), field, "{reply:?}");
    }
    let reply = app
        .send(
            None,
            Method::POST,
            "/api/auth/login",
            Some(json!({"email": format!("{}\u{1}", c.staff.email), "password": "p"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reply:?}");
}

/// Every filter of every list, with NUL and with another control character: 422 naming it.
#[tokio::test]
async fn every_filter_refuses_nul_and_control_characters_naming_it() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "100").await;
    let lists = [
        (
            "/api/requisitions/",
            &[
                "status",
                "fund_id",
                "requester_id",
                "from",
                "to",
                "q",
                "mine",
                "limit",
                "cursor",
                "min_position",
            ][..],
        ),
        ("/api/approvals/", &["limit", "cursor", "min_position"][..]),
        ("/api/treasury/payments/", &["fund_id", "from", "to", "limit", "cursor", "min_position"][..]),
        ("/api/funds/", &["min_position"][..]),
        (&*format!("/api/funds/{fund}/ledger"), &["after", "limit", "min_position"][..]),
        ("/api/dashboard/", &["min_position", "days"][..]),
    ];
    for (path, params) in lists {
        for param in params {
            for bad in ["%00", "1%01", "%1B", "a%7F"] {
                let url = format!("{path}?{param}={bad}");
                let reply = app.get(&c.auditor, &url).await;
                assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {reply:?}");
                assert_eq!(reply.field(), *param, "{url}: {reply:?}");
            }
        }
    }
}
