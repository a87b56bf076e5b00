//! Bulk payments (issue #14 [treasury]): a batch of approved requisitions paid by mobile money
//! through the provider's batch file, settled by importing the provider's result file; never
//! sent to the provider's API.

use pettycash_domain::Role;
use pettycash_tests::{Cast, TestApp, TestUser};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

async fn app() -> TestApp {
    // The tests tick the scheduler themselves.
    TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        c.scheduler_interval_secs = 3600;
    })
    .await
}

/// A staff user with `name` (signed in).
async fn staff_named(app: &TestApp, name: &str) -> TestUser {
    let email = format!("{}@test.example", Uuid::new_v4().simple());
    let ctx = pettycash_commands::CommandContext::operator("test");
    let user = app
        .service
        .register_user_in(&ctx, &email, name, vec![Role::Staff], Some(pettycash_tests::PASSWORD), None)
        .await
        .unwrap();
    let r = app
        .send(
            None,
            Method::POST,
            "/api/auth/login",
            Some(json!({"email": email, "password": pettycash_tests::PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    TestUser { id: user.value.id, email, token: r.body["token"].as_str().unwrap().to_string() }
}

async fn approved(app: &TestApp, c: &Cast, requester: &TestUser, fund: Uuid, amount: &str) -> Uuid {
    let id = app.submitted(requester, fund, amount).await;
    app.approve_by(id, &[&c.head]).await;
    id
}

/// Asks for the batch code and creates the batch: the reply.
async fn batch(app: &TestApp, c: &Cast, ids: &[Uuid], destinations: Value) -> pettycash_tests::Reply {
    let r = app.post(&c.treasury, "/api/treasury/bulk-payments/code", json!({"requisition_ids": ids})).await;
    if r.status != StatusCode::CREATED {
        return r;
    }
    let key: Uuid = r.body["batch_key"].as_str().unwrap().parse().unwrap();
    let code = app.queued_payment_code(&c.treasury.email, key).await;
    let body = json!({"requisition_ids": ids, "destinations": destinations, "code": code});
    app.post(&c.treasury, "/api/treasury/bulk-payments/", body).await
}

async fn fund_figures(app: &TestApp, c: &Cast, fund: Uuid) -> (String, String, String) {
    let r = app.get(&c.admin, &format!("/api/funds/{fund}")).await;
    let s = |k: &str| r.body[k].as_str().unwrap().to_string();
    (s("balance"), s("reserved"), s("available"))
}

async fn status_of(app: &TestApp, c: &Cast, requisition: Uuid) -> String {
    let r = app.get(&c.admin, &format!("/api/requisitions/{requisition}")).await;
    r.body["status"].as_str().unwrap_or_default().to_string()
}

async fn file(app: &TestApp, c: &Cast, batch: Uuid, format: &str) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let resp = app
        .client
        .get(format!("{}/api/treasury/bulk-payments/{batch}/file?format={format}", app.address))
        .bearer_auth(&c.treasury.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let headers = resp.headers().clone();
    (headers, resp.bytes().await.unwrap().to_vec())
}

async fn results(app: &TestApp, user: &TestUser, batch: Uuid, csv: &str) -> pettycash_tests::Reply {
    let path = format!("/api/treasury/bulk-payments/{batch}/results");
    app.send_raw(user, Method::POST, &path, "text/csv", csv.as_bytes().to_vec()).await
}

async fn fund_events(app: &TestApp, fund: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
        .bind(fund.to_string())
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batch_is_paid_by_its_file_and_settled_by_the_result_file_once() {
    use pettycash_commands::scheduler::tick;
    let app = app().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let sneaky = staff_named(&app, "=HYPERLINK(\"http://x\")").await;
    let a = approved(&app, &c, &c.staff, fund, "100").await;
    let b = approved(&app, &c, &sneaky, fund, "200").await;
    let d = approved(&app, &c, &c.staff, fund, "300").await;
    let e = approved(&app, &c, &c.staff, fund, "400").await;
    let ids = [a, b, d, e];
    // Every bad destination is named at once; nothing starts.
    let r = batch(&app, &c, &ids, json!({a: "0712000001", b: "12345", d: "0712000003"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(r.field(), format!("destinations.{b}"));
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("destinations.{e}")), "{message}");
    assert_eq!(fund_figures(&app, &c, fund).await, ("5000.00".into(), "0".into(), "5000.00".into()));

    app.clock.advance(chrono::Duration::seconds(31));
    let destinations = json!({a: "0712000001", b: "+254712000002", d: "0712 000 003", e: "0712000004"});
    let r = batch(&app, &c, &ids, destinations).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!((r.body["count"].as_i64(), r.body["total"].as_str()), (Some(4), Some("1000.00")));
    let batch_id = r.id();
    assert_eq!(fund_figures(&app, &c, fund).await, ("5000.00".into(), "1000.00".into(), "4000.00".into()));

    let read = app.get(&c.auditor, &format!("/api/treasury/bulk-payments/{batch_id}")).await;
    assert_eq!(read.status, StatusCode::OK, "{read:?}");
    let lines = read.body["lines"].as_array().unwrap().clone();
    assert_eq!(lines.len(), 4);
    let payment_of = |req: Uuid| -> (Uuid, String) {
        let l = lines.iter().find(|l| l["requisition_id"] == req.to_string()).unwrap();
        (l["payment_id"].as_str().unwrap().parse().unwrap(), l["amount"].as_str().unwrap().to_string())
    };
    let list = app.get(&c.treasury, "/api/treasury/bulk-payments/").await;
    assert_eq!(list.body.as_array().unwrap().len(), 1, "{list:?}");

    // The CSV file: the provider's columns, the payment id as reference, the formula neutralised.
    let (headers, csv) = file(&app, &c, batch_id, "csv").await;
    assert!(headers["content-disposition"].to_str().unwrap().starts_with("attachment;"));
    let mut reader = csv::Reader::from_reader(csv.as_slice());
    assert_eq!(reader.headers().unwrap(), vec!["MobileNumber", "Amount", "Reference", "Name"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 4);
    let row_b = rows.iter().find(|r| r[2] == payment_of(b).0.to_string()).unwrap();
    assert_eq!((&row_b[0], &row_b[1], &row_b[3]), ("254712000002", "200.00", "'=HYPERLINK(\"http://x\")"));
    // The XLSX file says the same.
    let (_, xlsx) = file(&app, &c, batch_id, "xlsx").await;
    {
        use calamine::{Data, Reader, Xlsx};
        let mut book: Xlsx<_> = Xlsx::new(std::io::Cursor::new(xlsx)).unwrap();
        let sheet = book.worksheet_range("Payments").unwrap();
        let rows: Vec<_> = sheet.rows().collect();
        assert_eq!(rows.len(), 5);
        let row = rows.iter().find(|r| r[2] == Data::String(payment_of(d).0.to_string())).unwrap();
        assert_eq!(
            (row[0].clone(), row[1].clone()),
            (Data::String("254712000003".into()), Data::Float(300.0))
        );
    }

    // The scheduler, far past the timeout, never sends nor asks about a batch payment.
    app.clock.advance(chrono::Duration::hours(3));
    let t = tick(&app.service).await.unwrap();
    assert_eq!((t.timed_out, t.chased), (0, 0), "{t:?}");
    assert!(app.simulator.requests().is_empty(), "a batch payment was sent to the provider's API");
    // Nor does an explicit submit.
    let acted = app.service.submit_provider_payment(payment_of(a).0).await.unwrap();
    assert_eq!(acted, pettycash_commands::provider_payments::Acted::Unchanged);
    assert!(app.simulator.requests().is_empty());

    // Results: a and b succeed, d fails, an unknown reference, a malformed line, e mismatched.
    let result_file = format!(
        "Reference,Status,Amount,ReceiptNumber,ResultCode,Reason\n\
         {},Completed,{},QKA1,,\n\
         {},Completed,{},QKB2,,\n\
         {},Failed,{},,2001,Invalid account\n\
         {},Completed,100,QKZ9,,\n\
         {},Completed,abc,QKE5,,\n\
         {},Completed,999,QKE6,,\n",
        payment_of(a).0,
        payment_of(a).1,
        payment_of(b).0,
        payment_of(b).1,
        payment_of(d).0,
        payment_of(d).1,
        Uuid::now_v7(),
        payment_of(e).0,
        payment_of(e).0,
    );
    let r = results(&app, &c.treasury, batch_id, &result_file).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let outcomes: Vec<&str> =
        r.body["lines"].as_array().unwrap().iter().map(|l| l["outcome"].as_str().unwrap()).collect();
    assert_eq!(
        outcomes,
        ["applied", "applied", "applied", "unknown_reference", "invalid", "amount_mismatch"]
    );
    assert_eq!(r.body["lines"][4]["column"], "Amount");
    assert_eq!(r.body["lines"][4]["row"], 6);
    assert_eq!(r.body["batch_status"], "open");
    assert_eq!(
        (
            status_of(&app, &c, a).await,
            status_of(&app, &c, b).await,
            status_of(&app, &c, d).await,
            status_of(&app, &c, e).await
        ),
        ("paid".into(), "paid".into(), "approved".into(), "approved".into())
    );
    // 300 paid, d's 300 released, e's 400 still reserved.
    assert_eq!(fund_figures(&app, &c, fund).await, ("4700.00".into(), "400.00".into(), "4300.00".into()));

    // The same file again changes nothing: each line says so.
    let before = fund_events(&app, fund).await;
    let r = results(&app, &c.treasury, batch_id, &result_file).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let outcomes: Vec<&str> =
        r.body["lines"].as_array().unwrap().iter().map(|l| l["outcome"].as_str().unwrap()).collect();
    assert_eq!(
        outcomes,
        [
            "already_applied",
            "already_applied",
            "already_applied",
            "unknown_reference",
            "invalid",
            "amount_mismatch"
        ]
    );
    assert_eq!(fund_events(&app, fund).await, before);
    assert_eq!(fund_figures(&app, &c, fund).await, ("4700.00".into(), "400.00".into(), "4300.00".into()));
    let read = app.get(&c.treasury, &format!("/api/treasury/bulk-payments/{batch_id}")).await;
    assert_eq!(read.body["imports"].as_array().unwrap().len(), 2);
    assert_eq!(read.body["imports"][0]["file_sha256"], read.body["imports"][1]["file_sha256"]);

    // Not treasury: 403.
    let r = results(&app, &c.auditor, batch_id, &result_file).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
}

#[tokio::test]
async fn only_treasury_batches_approved_requisitions_and_each_is_in_one_batch_only() {
    let app = app().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let a = approved(&app, &c, &c.staff, fund, "100").await;
    let b = approved(&app, &c, &c.staff, fund, "200").await;
    let pending = app.submitted(&c.staff, fund, "50").await;
    // Not treasury: 403.
    let r = app.post(&c.auditor, "/api/treasury/bulk-payments/code", json!({"requisition_ids": [a]})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    let r = app.post(&c.auditor, "/api/treasury/bulk-payments/", json!({"requisition_ids": [a]})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    // A requisition not approved is named.
    let r = app
        .post(&c.treasury, "/api/treasury/bulk-payments/code", json!({"requisition_ids": [a, pending]}))
        .await;
    assert!(matches!(r.status, StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY), "{r:?}");
    assert_eq!(r.field(), format!("requisition_ids.{pending}"));

    // Two batches over the same requisition, concurrently: it is in one batch only.
    let ask = |ids: Vec<Uuid>| {
        let app = &app;
        let c = &c;
        async move {
            let r = app
                .post(&c.treasury, "/api/treasury/bulk-payments/code", json!({"requisition_ids": ids}))
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
            let key: Uuid = r.body["batch_key"].as_str().unwrap().parse().unwrap();
            (ids, app.queued_payment_code(&c.treasury.email, key).await)
        }
    };
    let (one, two) = (ask(vec![a]).await, ask(vec![a, b]).await);
    let create = |(ids, code): (Vec<Uuid>, String)| {
        let app = &app;
        let c = &c;
        async move {
            let destinations: serde_json::Map<String, Value> =
                ids.iter().map(|id| (id.to_string(), json!("0712000009"))).collect();
            let body = json!({"requisition_ids": ids, "destinations": destinations, "code": code});
            app.post(&c.treasury, "/api/treasury/bulk-payments/", body).await
        }
    };
    let (r1, r2) = tokio::join!(create(one), create(two));
    let created = [&r1, &r2].iter().filter(|r| r.status == StatusCode::CREATED).count();
    assert_eq!(created, 1, "{r1:?} {r2:?}");
    let in_batches: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM provider_payments WHERE requisition_id = $1 AND batch_id IS NOT NULL",
    )
    .bind(a)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(in_batches, 1);
    let loser = if r1.status == StatusCode::CREATED { &r2 } else { &r1 };
    assert!(matches!(loser.status, StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY), "{loser:?}");
}

#[tokio::test]
async fn the_batch_code_is_bound_to_its_selection_and_dies_after_five_wrong_attempts() {
    let app = app().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let a = approved(&app, &c, &c.staff, fund, "100").await;
    let b = approved(&app, &c, &c.staff, fund, "200").await;
    let r = app.post(&c.treasury, "/api/treasury/bulk-payments/code", json!({"requisition_ids": [a]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let key: Uuid = r.body["batch_key"].as_str().unwrap().parse().unwrap();
    let code = app.queued_payment_code(&c.treasury.email, key).await;
    // Asked again at once: rate-limited.
    let again =
        app.post(&c.treasury, "/api/treasury/bulk-payments/code", json!({"requisition_ids": [a]})).await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS, "{again:?}");
    let destinations = json!({a: "0712000001", b: "0712000002"});
    // Another selection: no code was issued for it.
    let body = json!({"requisition_ids": [a, b], "destinations": destinations, "code": code});
    let r = app.post(&c.treasury, "/api/treasury/bulk-payments/", body).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "payment_code_not_issued"), "{r:?}");
    // Five wrong codes lock it; the right one then no longer works.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let body = json!({"requisition_ids": [a], "destinations": destinations, "code": wrong});
        let r = app.post(&c.treasury, "/api/treasury/bulk-payments/", body).await;
        assert_eq!(r.field(), "code", "{r:?}");
    }
    let body = json!({"requisition_ids": [a], "destinations": destinations, "code": code});
    let r = app.post(&c.treasury, "/api/treasury/bulk-payments/", body).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "payment_code_locked"), "{r:?}");
    assert_eq!(fund_figures(&app, &c, fund).await, ("5000.00".into(), "0".into(), "5000.00".into()));
    // The audit trail of each requisition: the code issued for it, every refusal with its reason
    // (the other selection's refusal is on both of its requisitions).
    let problems = |id: Uuid| {
        let pool = app.pool.clone();
        async move {
            let rows: Vec<(String, Option<String>)> = sqlx::query_as(
                "SELECT event_type, payload->'PaymentCodeRejected'->>'problem' FROM events
                 WHERE aggregate_id = $1 AND event_type LIKE 'PaymentCode%' ORDER BY sequence",
            )
            .bind(id.to_string())
            .fetch_all(&pool)
            .await
            .unwrap();
            rows.into_iter().map(|(t, p)| p.unwrap_or(t)).collect::<Vec<_>>()
        }
    };
    let mut expected = vec!["PaymentCodeIssued".to_string(), "not_issued".into()];
    expected.extend(std::iter::repeat_n("wrong".to_string(), 5));
    expected.push("locked".into());
    assert_eq!(problems(a).await, expected);
    assert_eq!(problems(b).await, ["not_issued"]);
}
