use pettycash_tests::serde_json::json;
use pettycash_tests::{Cast, TestApp};
use reqwest::StatusCode;

#[tokio::test]
async fn requisition_is_created_submitted_approved_by_its_chain_and_paid_once() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let id = app.submitted(&c.staff, fund, "1500.50").await;

    let r = app.get(&c.staff, &format!("/api/requisitions/{id}")).await;
    assert_eq!(r.body["chain"], json!(["department_head", "group_finance_manager"]));
    assert_eq!(r.body["amount"], "1500.50");

    app.approve_by(id, &[&c.head, &c.gfm]).await;
    let r = app.get(&c.staff, &format!("/api/requisitions/{id}/")).await;
    assert_eq!(r.body["status"], "approved");

    let paid = app.pay(&c.treasury, id).await;
    assert_eq!(paid.status, StatusCode::CREATED, "{paid:?}");
    assert_eq!(paid.body["amount"], "1500.50");
    assert_eq!(paid.body["fund_balance_after"], "3499.50");
    assert!(paid.headers.contains_key("x-event-position"));
    assert_eq!(app.balance(&c.staff, fund).await.to_string(), "3499.50");

    let r = app.get(&c.staff, &format!("/api/requisitions/{id}")).await;
    assert_eq!(r.body["status"], "paid");
    let history = app.get(&c.auditor, &format!("/api/requisitions/{id}/history")).await;
    let types: Vec<&str> =
        history.body.as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "RequisitionCreated",
            "RequisitionSubmitted",
            "RequisitionApproved",
            "RequisitionApproved",
            "PaymentCodeIssued",
            "RequisitionPaid"
        ]
    );
    assert_eq!(history.body[4]["actor_id"], c.treasury.id.to_string(), "the payer asked for the code");
    assert_eq!(history.body[5]["actor_id"], c.treasury.id.to_string());
}
