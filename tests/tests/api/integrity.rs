//! The MAC of every event covers its JSON as PostgreSQL prints the stored jsonb
//! (`pettycash_domain::integrity::jsonb_text`, computed before the row exists). If the two
//! texts ever differed, genuine events would not authenticate: this compares them on the
//! database for every shape the service writes and for awkward values.

use pettycash_domain::integrity::jsonb_text;
use pettycash_tests::serde_json::{json, Value};

#[tokio::test]
async fn jsonb_text_is_exactly_what_postgresql_prints() {
    let (_, pool) = pettycash_tests::fresh_database().await;
    let values = vec![
        json!(null),
        json!({}),
        json!([]),
        json!({"b": 1, "a": 2, "aa": 3, "ab": [], "B": {}, "é": true, "z": false}),
        json!({"s": "quote \" backslash \\ slash / tab \t newline \n return \r bell \u{7} esc \u{1b} del \u{7f} \u{80} é 日本 😀"}),
        json!({"n": [0, -1, 1.5, -0.25, 100.0, 1e21, 1.5e-7, 12345678901234567890u64, -9223372036854775808i64, 0.1]}),
        json!({"RequisitionCreated": {"requisition_id": "0193fb1c-4b80-7a3e-9c51-6f0a8d2e4b17", "amount": "1500.00",
            "purpose": "Office stationery — toner", "payee": null, "category": "office"}}),
        json!({"actor_id": "operator", "request_id": "cli-1", "user_agent": "pettycash-cli/0.1.0 user add",
            "time": "2026-12-02T10:00:00.000000Z", "client_ip": "10.0.0.1"}),
        json!([[1, [2, [3, {"deep": {"deeper": ["x", {"k": "v"}]}}]]]]),
    ];
    for value in values {
        let printed: String =
            sqlx::query_scalar("SELECT $1::jsonb::text").bind(&value).fetch_one(&pool).await.unwrap();
        assert_eq!(jsonb_text(&value), printed, "for {value}");
        // And stable through a read: what a reader parses back prints the same.
        let parsed: Value = serde_json::from_str(&printed).unwrap();
        assert_eq!(jsonb_text(&parsed), printed, "re-read {value}");
    }
}
