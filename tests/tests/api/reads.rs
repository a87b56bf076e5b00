//! Queries over the read models: read-your-writes with `min_position`, the requisitions list
//! (filters, visibility, keyset paging), the approvals inbox, funds and their cash book,
//! treasury's payments and the dashboard. The projection engine runs inside the server.

use pettycash_domain::requisition::Status;
use pettycash_domain::visibility::DashboardScope;
use pettycash_domain::Role;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{Cast, Reply, TestApp, TestUser};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use std::collections::BTreeSet;
use uuid::Uuid;

fn dec(v: &Value) -> Decimal {
    v.as_str().unwrap_or_else(|| panic!("not a decimal string: {v}")).parse().unwrap()
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// Percent-encodes a query value (RFC 3339 times carry `+` and `:`).
fn enc(s: &str) -> String {
    s.replace('%', "%25").replace('+', "%2B").replace(':', "%3A").replace(' ', "%20").replace('&', "%26")
}

/// Today, yesterday and tomorrow (UTC) as `YYYY-MM-DD`, by the database's clock.
async fn days(app: &TestApp) -> (String, String, String) {
    sqlx::query_as(
        "SELECT d::text, (d - 1)::text, (d + 1)::text FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS d) t",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// The `position` of a command's answer.
fn position(r: &Reply) -> i64 {
    r.body["position"].as_i64().unwrap_or_else(|| panic!("no position in {r:?}"))
}

/// GET expecting 200; checks the position is in the body and the header alike.
async fn ok(app: &TestApp, user: &TestUser, path: &str) -> Reply {
    let r = app.get(user, path).await;
    assert_eq!(r.status, StatusCode::OK, "GET {path}: {r:?}");
    let header: i64 = r.headers["x-projection-position"].to_str().unwrap().parse().unwrap();
    assert_eq!(r.body["position"].as_i64(), Some(header), "{r:?}");
    r
}

fn items(r: &Reply) -> &Vec<Value> {
    r.body["items"].as_array().unwrap_or_else(|| panic!("no items in {r:?}"))
}

fn ids(r: &Reply) -> BTreeSet<Uuid> {
    items(r).iter().map(|i| i["id"].as_str().unwrap().parse().unwrap()).collect()
}

fn set(ids: &[Uuid]) -> BTreeSet<Uuid> {
    ids.iter().copied().collect()
}

fn find(r: &Reply, id: Uuid) -> Option<&Value> {
    items(r).iter().find(|i| i["id"] == id.to_string())
}

/// Creates a requisition as `user`; returns its id and the command's position.
async fn create(app: &TestApp, user: &TestUser, body: Value) -> (Uuid, i64) {
    let r = app.post(user, "/api/requisitions/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    (r.id(), position(&r))
}

async fn act(app: &TestApp, user: &TestUser, id: Uuid, action: &str, body: Value) -> i64 {
    let r = app.post(user, &format!("/api/requisitions/{id}/{action}"), body).await;
    assert_eq!(r.status, StatusCode::OK, "{action}: {r:?}");
    position(&r)
}

async fn paid(app: &TestApp, treasurer: &TestUser, id: Uuid) -> Reply {
    let r = app.pay(treasurer, id).await;
    assert_eq!(r.status, StatusCode::CREATED, "pay: {r:?}");
    r
}

/// Follows `next_cursor` from `first` until the end; returns the ids in order.
async fn walk(app: &TestApp, user: &TestUser, path: &str) -> (Vec<Uuid>, usize) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut url = path.to_string();
    let (mut all, mut pages) = (Vec::new(), 0);
    loop {
        let r = ok(app, user, &url).await;
        pages += 1;
        assert!(items(&r).len() <= 2, "{r:?}");
        all.extend(items(&r).iter().map(|i| i["id"].as_str().unwrap().parse::<Uuid>().unwrap()));
        match r.body["next_cursor"].as_str() {
            Some(c) => url = format!("{path}{sep}cursor={}", enc(c)),
            None => break,
        }
        assert!(pages < 50, "pagination does not end");
    }
    (all, pages)
}

// ----- read your writes ----------------------------------------------------------------------

#[tokio::test]
async fn min_position_returns_the_state_a_command_just_wrote() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;

    let (id, p) =
        create(&app, &c.staff, json!({"fund_id": fund, "amount": "500", "purpose": "Toner", "submit": true}))
            .await;
    let r = ok(&app, &c.staff, &format!("/api/requisitions/?min_position={p}")).await;
    assert!(r.body["position"].as_i64().unwrap() >= p, "{r:?}");
    let item = find(&r, id).unwrap_or_else(|| panic!("created requisition missing: {r:?}"));
    assert_eq!(item["status"], "pending_approval");
    assert_eq!(item["current_role"], "department_head");
    assert_eq!(item["chain"], json!(["department_head"]));
    assert_eq!(item["approvals_count"], 0);
    assert_eq!(dec(&item["amount"]), d("500"));
    assert_eq!(item["currency"], "KES");
    assert!(item["submitted_at"].is_string() && item["paid_at"].is_null(), "{item}");

    // The header works as well as the query parameter.
    let p = act(&app, &c.head, id, "approve", json!({})).await;
    let r = app
        .client
        .get(format!("{}/api/requisitions/", app.address))
        .bearer_auth(&c.staff.token)
        .header("x-min-position", p.to_string())
        .send()
        .await
        .unwrap();
    let r = TestApp::reply(r).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let item = find(&r, id).unwrap();
    assert_eq!(item["status"], "approved");
    assert_eq!(item["current_role"], Value::Null);
    assert_eq!(item["approvals_count"], 1);

    let receipt = paid(&app, &c.treasury, id).await;
    let p = position(&receipt);
    let payment = receipt.id();
    let r = ok(&app, &c.treasury, &format!("/api/treasury/payments/?min_position={p}")).await;
    let item = find(&r, payment).unwrap_or_else(|| panic!("payment missing: {r:?}"));
    assert_eq!(item["requisition_id"], id.to_string());
    assert_eq!(dec(&item["fund_balance_after"]), d("4500"));
    let r = ok(&app, &c.staff, &format!("/api/funds/{fund}/ledger?min_position={p}")).await;
    let last = items(&r).last().unwrap();
    assert_eq!(last["kind"], "disbursement");
    assert_eq!(last["payment_id"], payment.to_string());
    let r = ok(&app, &c.staff, &format!("/api/requisitions/?min_position={p}")).await;
    assert_eq!(find(&r, id).unwrap()["status"], "paid");
    assert!(find(&r, id).unwrap()["paid_at"].is_string());

    // A position the store has not reached: 503 with Retry-After, after the bounded wait.
    let r = app.get(&c.staff, &format!("/api/requisitions/?min_position={}", p + 1_000_000)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");
    assert!(r.headers.contains_key("retry-after"), "{r:?}");
    assert_eq!(r.field(), "min_position");

    let r = app.get(&c.staff, "/api/requisitions/?min_position=soon").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    assert_eq!(r.field(), "min_position");
}

// ----- the requisitions list -----------------------------------------------------------------

#[tokio::test]
async fn list_filters_narrow_and_keyset_paging_walks_every_item_once() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let staff2 = app.user(&[Role::Staff]).await;
    let fund_a = app.fund(&c.admin, "50000").await;
    let fund_b = app.fund(&c.admin, "50000").await;

    let (r1, _) = create(
        &app,
        &c.staff,
        json!({"fund_id": fund_a, "amount": "100", "purpose": "Printer toner 50%_off", "payee": "Acme Stationers"}),
    )
    .await;
    let (r2, _) = create(
        &app,
        &c.staff,
        json!({"fund_id": fund_a, "amount": "200", "purpose": "Taxi fare", "submit": true}),
    )
    .await;
    let (r3, _) = create(
        &app,
        &c.staff,
        json!({"fund_id": fund_b, "amount": "300", "purpose": "Coffee beans", "payee": "Java House", "submit": true}),
    )
    .await;
    let (r4, _) =
        create(&app, &staff2, json!({"fund_id": fund_b, "amount": "400", "purpose": "printer PAPER"})).await;
    let (r5, p) =
        create(&app, &staff2, json!({"fund_id": fund_a, "amount": "500", "purpose": "Water"})).await;

    let list = |query: String| {
        let app = &app;
        let auditor = &c.auditor;
        async move { ids(&ok(app, auditor, &format!("/api/requisitions/?min_position={p}&{query}")).await) }
    };
    assert_eq!(list(String::new()).await, set(&[r1, r2, r3, r4, r5]));
    assert_eq!(list("status=draft".into()).await, set(&[r1, r4, r5]));
    assert_eq!(list("status=pending_approval".into()).await, set(&[r2, r3]));
    assert_eq!(list("status=paid".into()).await, set(&[]));
    assert_eq!(list(format!("fund_id={fund_b}")).await, set(&[r3, r4]));
    assert_eq!(list(format!("requester_id={}", staff2.id)).await, set(&[r4, r5]));
    assert_eq!(list(format!("fund_id={fund_a}&status=draft")).await, set(&[r1, r5]));
    assert_eq!(list("q=printer".into()).await, set(&[r1, r4]));
    assert_eq!(list("q=PRINTER%20paper".into()).await, set(&[r4]));
    assert_eq!(list("q=java".into()).await, set(&[r3]), "payee matches too");
    // `%` and `_` are literal, not wildcards.
    assert_eq!(list("q=%25".into()).await, set(&[r1]));
    assert_eq!(list("q=_".into()).await, set(&[r1]));
    assert_eq!(list("q=nothing-like-this".into()).await, set(&[]));
    assert_eq!(list("mine=true".into()).await, set(&[]), "the auditor requested nothing");
    let mine = ok(&app, &c.staff, &format!("/api/requisitions/?mine=true&min_position={p}")).await;
    assert_eq!(ids(&mine), set(&[r1, r2, r3]));

    // Dates (UTC days, `to` inclusive) and RFC 3339 times (inclusive both ends).
    let (today, yesterday, tomorrow) = days(&app).await;
    assert_eq!(list(format!("from={today}&to={today}")).await.len(), 5);
    assert_eq!(list(format!("to={yesterday}")).await, set(&[]));
    assert_eq!(list(format!("from={tomorrow}")).await, set(&[]));
    let all = ok(&app, &c.auditor, "/api/requisitions/").await;
    let created = |id: Uuid| find(&all, id).unwrap()["created_at"].as_str().unwrap().to_string();
    assert_eq!(list(format!("from={}", enc(&created(r3)))).await, set(&[r3, r4, r5]));
    assert_eq!(list(format!("to={}", enc(&created(r2)))).await, set(&[r1, r2]));
    assert_eq!(
        list(format!("from={}&to={}", enc(&created(r2)), enc(&created(r4)))).await,
        set(&[r2, r3, r4])
    );

    // Newest first, each item exactly once, pages of at most two.
    let newest_first: Vec<Uuid> =
        items(&all).iter().map(|i| i["id"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(newest_first, [r5, r4, r3, r2, r1]);
    let (walked, pages) = walk(&app, &c.auditor, "/api/requisitions/?limit=2").await;
    assert_eq!(walked, newest_first);
    assert_eq!(pages, 3);
    let (walked, _) = walk(&app, &c.auditor, &format!("/api/requisitions/?limit=2&fund_id={fund_a}")).await;
    assert_eq!(walked, [r5, r2, r1]);
    let (walked, pages) = walk(&app, &c.auditor, "/api/requisitions/?limit=2&status=draft").await;
    assert_eq!((walked, pages), (vec![r5, r4, r1], 2));
    let first = ok(&app, &c.auditor, "/api/requisitions/?limit=5").await;
    assert_eq!(first.body["next_cursor"], Value::Null, "no cursor when nothing follows");

    // Bad input names the parameter.
    for (query, status, field) in [
        ("status=bogus", 422, "status"),
        ("status=PAID", 422, "status"),
        ("cursor=not-a-cursor", 400, "cursor"),
        ("cursor=00112233", 400, "cursor"),
        ("from=2024-13-45", 422, "from"),
        ("to=yesterday", 422, "to"),
        ("from=2024-05-02&to=2024-05-01", 422, "to"),
        ("fund_id=xyz", 422, "fund_id"),
        ("requester_id=1", 422, "requester_id"),
        ("limit=0", 422, "limit"),
        ("limit=ten", 422, "limit"),
        ("mine=maybe", 422, "mine"),
    ] {
        let r = app.get(&c.auditor, &format!("/api/requisitions/?{query}")).await;
        assert_eq!(r.status.as_u16(), status, "{query}: {r:?}");
        assert_eq!(r.field(), field, "{query}: {r:?}");
    }
    // Over-large limits are capped, not refused.
    let r = ok(&app, &c.auditor, "/api/requisitions/?limit=100000").await;
    assert_eq!(items(&r).len(), 5);
}

#[tokio::test]
async fn staff_see_their_own_auditors_all_and_approvers_and_treasury_what_was_submitted_to_them() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let staff2 = app.user(&[Role::Staff]).await;
    let fund = app.fund(&c.admin, "5000").await;
    let (mine, _) = create(&app, &c.staff, json!({"fund_id": fund, "amount": "10", "purpose": "Pens"})).await;
    let (theirs, p) =
        create(&app, &staff2, json!({"fund_id": fund, "amount": "20", "purpose": "Pads", "submit": true}))
            .await;

    let q = format!("/api/requisitions/?min_position={p}");
    assert_eq!(ids(&ok(&app, &c.staff, &q).await), set(&[mine]));
    assert_eq!(ids(&ok(&app, &staff2, &q).await), set(&[theirs]));
    // Asking for someone else's gives staff nothing, not their requisitions.
    let r = ok(&app, &c.staff, &format!("{q}&requester_id={}", staff2.id)).await;
    assert_eq!(ids(&r), set(&[]));
    for reader in [&c.auditor, &c.admin] {
        assert_eq!(ids(&ok(&app, reader, &q).await), set(&[mine, theirs]));
    }
    // A draft is its requester's: the company-wide roles see what was submitted, the other
    // approvers what was submitted to their role (20 needs the department head only).
    for reader in [&c.treasury, &c.cfo, &c.gfm, &c.head] {
        assert_eq!(ids(&ok(&app, reader, &q).await), set(&[theirs]));
    }
    let branch = app.user(&[Role::BranchManager]).await;
    assert_eq!(ids(&ok(&app, &branch, &q).await), set(&[]));
    let r = app.client.get(format!("{}/api/requisitions/", app.address)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

// ----- the approvals inbox -------------------------------------------------------------------

#[tokio::test]
async fn approvals_inbox_follows_the_chain_and_excludes_own_and_already_approved() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    // Everyone is in place before the submissions: steps go to who holds the role then.
    let head_requester = app.user(&[Role::Staff, Role::DepartmentHead]).await;
    let both = app.user(&[Role::DepartmentHead, Role::GroupFinanceManager]).await;
    let fund = app.fund(&c.admin, "50000").await;
    let small = app.submitted(&c.staff, fund, "500").await;
    let big = app.submitted(&c.staff, fund, "5000").await;
    // A requester who holds the head role too never sees their own.
    let (own, p) = create(
        &app,
        &head_requester,
        json!({"fund_id": fund, "amount": "300", "purpose": "Own", "submit": true}),
    )
    .await;

    let inbox = |user: &TestUser, p: i64| {
        let (app, user) = (&app, user.clone());
        async move { ok(app, &user, &format!("/api/approvals/?min_position={p}")).await }
    };
    let r = inbox(&c.head, p).await;
    assert_eq!(ids(&r), set(&[small, big, own]));
    let oldest_first: Vec<&str> = items(&r).iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(oldest_first, [small.to_string(), big.to_string(), own.to_string()]);
    assert_eq!(find(&r, small).unwrap()["current_role"], "department_head");
    assert_eq!(ids(&inbox(&head_requester, p).await), set(&[small, big]));
    assert_eq!(ids(&inbox(&c.gfm, p).await), set(&[]));
    assert_eq!(ids(&inbox(&c.staff, p).await), set(&[]));
    assert_eq!(ids(&inbox(&c.auditor, p).await), set(&[]));

    let p = act(&app, &c.head, small, "approve", json!({})).await;
    assert_eq!(ids(&inbox(&c.head, p).await), set(&[big, own]));
    let p = act(&app, &c.head, big, "approve", json!({})).await;
    assert_eq!(ids(&inbox(&c.head, p).await), set(&[own]));
    let r = inbox(&c.gfm, p).await;
    assert_eq!(ids(&r), set(&[big]));
    assert_eq!(find(&r, big).unwrap()["current_role"], "group_finance_manager");
    assert_eq!(find(&r, big).unwrap()["approvals_count"], 1);

    // Someone who approved an earlier step does not see the next one, even holding its role.
    let other = app.submitted(&c.staff, fund, "6000").await;
    let p = act(&app, &both, other, "approve", json!({})).await;
    // `both` also holds the head role: `own` waits on its first step.
    assert_eq!(ids(&inbox(&both, p).await), set(&[big, own]));
    assert_eq!(ids(&inbox(&c.gfm, p).await), set(&[big, other]));

    // Paging like the list.
    let r = ok(&app, &c.gfm, "/api/approvals/?limit=1").await;
    assert_eq!(items(&r).len(), 1);
    let cursor = r.body["next_cursor"].as_str().unwrap();
    let r2 = ok(&app, &c.gfm, &format!("/api/approvals/?limit=1&cursor={cursor}")).await;
    assert_eq!(ids(&r).union(&ids(&r2)).copied().collect::<BTreeSet<_>>(), set(&[big, other]));
    assert_eq!(r2.body["next_cursor"], Value::Null);
    let r = app.get(&c.gfm, "/api/approvals/?cursor=zzz").await;
    assert_eq!((r.status, r.field()), (StatusCode::BAD_REQUEST, "cursor"), "{r:?}");
}

// ----- funds and the cash book ---------------------------------------------------------------

#[tokio::test]
async fn funds_list_balances_and_ledger_runs_to_the_fund_balance() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let usd = app.fund_in(&c.admin, "1000", "USD").await;
    let small = app.submitted(&c.staff, fund, "500").await;
    let big = app.submitted(&c.staff, fund, "1500.50").await;
    app.approve_by(small, &[&c.head]).await;
    app.approve_by(big, &[&c.head, &c.gfm]).await;
    let first = paid(&app, &c.treasury, small).await;
    let second = paid(&app, &c.treasury, big).await;
    let p = position(&second);

    let r = ok(&app, &c.staff, &format!("/api/funds/?min_position={p}")).await;
    assert_eq!(items(&r).len(), 2);
    let f = find(&r, fund).unwrap();
    assert_eq!(dec(&f["balance"]), d("2999.50"));
    assert_eq!(dec(&f["balance"]), app.balance(&c.staff, fund).await);
    assert_eq!(dec(&f["float"]), d("5000"));
    assert_eq!(f["percent_of_float"], "60.0");
    assert_eq!(f["disbursements"], 2);
    assert_eq!(dec(&f["disbursed_total"]), d("2000.50"));
    assert_eq!(f["currency"], "KES");
    let u = find(&r, usd).unwrap();
    assert_eq!((u["currency"].as_str(), u["percent_of_float"].as_str()), (Some("USD"), Some("100.0")));
    assert_eq!(u["disbursements"], 0);

    let r = ok(&app, &c.staff, &format!("/api/funds/{fund}/ledger?min_position={p}")).await;
    assert_eq!(r.body["fund_id"], fund.to_string());
    assert_eq!(r.body["next_after"], Value::Null);
    let book = items(&r);
    let kinds: Vec<&str> = book.iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["opening", "disbursement", "disbursement"]);
    let amounts: Vec<Decimal> = book.iter().map(|m| dec(&m["amount"])).collect();
    assert_eq!(amounts, [d("5000"), d("-500"), d("-1500.50")]);
    let mut running = Decimal::ZERO;
    for m in book {
        running += dec(&m["amount"]);
        assert_eq!(dec(&m["balance_after"]), running, "{m}");
    }
    assert_eq!(running, app.balance(&c.staff, fund).await);
    assert_eq!(book[1]["payment_id"], first.body["id"]);
    assert_eq!(book[1]["requisition_id"], small.to_string());
    assert_eq!(book[2]["payment_id"], second.body["id"]);
    let positions: Vec<i64> = book.iter().map(|m| m["position"].as_i64().unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");

    // Paged by position.
    let page1 = ok(&app, &c.staff, &format!("/api/funds/{fund}/ledger?limit=2")).await;
    assert_eq!(items(&page1).len(), 2);
    let after = page1.body["next_after"].as_i64().unwrap();
    assert_eq!(after, positions[1]);
    let page2 = ok(&app, &c.staff, &format!("/api/funds/{fund}/ledger/?limit=2&after={after}")).await;
    assert_eq!(items(&page2).len(), 1);
    assert_eq!(items(&page2)[0]["position"], positions[2]);
    assert_eq!(page2.body["next_after"], Value::Null);

    let r = app.get(&c.staff, &format!("/api/funds/{}/ledger", Uuid::new_v4())).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"), "{r:?}");
    let r = app.get(&c.staff, "/api/funds/not-an-id/ledger").await;
    assert_eq!((r.status, r.field()), (StatusCode::BAD_REQUEST, "id"), "{r:?}");
    let r = app.get(&c.staff, &format!("/api/funds/{fund}/ledger?after=x")).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "after"), "{r:?}");
}

// ----- treasury's payments -------------------------------------------------------------------

#[tokio::test]
async fn payments_list_is_for_treasury_and_finance_and_filters() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "5000").await;
    let other_fund = app.fund(&c.admin, "5000").await;
    let a = app.submitted(&c.staff, fund, "100").await;
    let b = app.submitted(&c.staff, fund, "200").await;
    app.approve_by(a, &[&c.head]).await;
    app.approve_by(b, &[&c.head]).await;
    let pa = paid(&app, &c.treasury, a).await;
    let pb = paid(&app, &c.treasury, b).await;
    let p = position(&pb);

    let r = ok(&app, &c.treasury, &format!("/api/treasury/payments/?min_position={p}")).await;
    let listed: Vec<Uuid> = items(&r).iter().map(|i| i["id"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(listed, [pb.id(), pa.id()], "newest first");
    let item = &items(&r)[1];
    assert_eq!(item["requisition_id"], a.to_string());
    assert_eq!(item["fund_id"], fund.to_string());
    assert_eq!(dec(&item["amount"]), d("100"));
    assert_eq!(item["currency"], "KES");
    assert_eq!(item["method"], "cash");
    assert_eq!(item["paid_by"], c.treasury.id.to_string());
    assert_eq!(dec(&item["fund_balance_after"]), d("4900"));
    assert_eq!(dec(&items(&r)[0]["fund_balance_after"]), d("4700"));
    assert!(item["paid_at"].is_string());

    let (today, yesterday, _) = days(&app).await;
    let count = |r: Reply| items(&r).len();
    assert_eq!(count(ok(&app, &c.treasury, &format!("/api/treasury/payments/?fund_id={fund}")).await), 2);
    assert_eq!(
        count(ok(&app, &c.treasury, &format!("/api/treasury/payments/?fund_id={other_fund}")).await),
        0
    );
    assert_eq!(
        count(ok(&app, &c.treasury, &format!("/api/treasury/payments/?from={today}&to={today}")).await),
        2
    );
    assert_eq!(count(ok(&app, &c.treasury, &format!("/api/treasury/payments/?to={yesterday}")).await), 0);
    let paid_at = items(&r)[0]["paid_at"].as_str().unwrap().to_string();
    let r2 = ok(&app, &c.treasury, &format!("/api/treasury/payments/?from={}", enc(&paid_at))).await;
    assert_eq!(ids(&r2), set(&[pb.id()]));
    let page = ok(&app, &c.treasury, "/api/treasury/payments/?limit=1").await;
    assert_eq!(ids(&page), set(&[pb.id()]));
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let page = ok(&app, &c.treasury, &format!("/api/treasury/payments/?limit=1&cursor={cursor}")).await;
    assert_eq!(ids(&page), set(&[pa.id()]));
    assert_eq!(page.body["next_cursor"], Value::Null);

    for reader in [&c.auditor, &c.admin, &c.cfo, &c.gfm] {
        assert_eq!(count(ok(&app, reader, "/api/treasury/payments/").await), 2);
    }
    for outsider in [&c.staff, &c.head] {
        let r = app.get(outsider, "/api/treasury/payments/").await;
        assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "missing_role"), "{r:?}");
    }
    let r = app.get(&c.treasury, "/api/treasury/payments/?from=someday").await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "from"), "{r:?}");
    let r = app.get(&c.treasury, "/api/treasury/payments/?cursor=abc").await;
    assert_eq!((r.status, r.field()), (StatusCode::BAD_REQUEST, "cursor"), "{r:?}");
}

// ----- the dashboard -------------------------------------------------------------------------

#[tokio::test]
async fn dashboard_numbers_match_a_scripted_scenario() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let staff2 = app.user(&[Role::Staff]).await;
    let fund = app.fund(&c.admin, "10000").await;

    let _pending = app.submitted(&c.staff, fund, "100").await;
    let approved = app.submitted(&c.staff, fund, "200").await;
    app.approve_by(approved, &[&c.head]).await;
    let paid1 = app.submitted(&c.staff, fund, "300").await;
    let paid2 = app.submitted(&c.staff, fund, "400.50").await;
    app.approve_by(paid1, &[&c.head]).await;
    app.approve_by(paid2, &[&c.head]).await;
    paid(&app, &c.treasury, paid1).await;
    paid(&app, &c.treasury, paid2).await;
    let rejected = app.submitted(&c.staff, fund, "500").await;
    act(&app, &c.head, rejected, "reject", json!({"reason": "No budget"})).await;
    let (_draft, p) =
        create(&app, &c.staff, json!({"fund_id": fund, "amount": "600", "purpose": "Later"})).await;

    let totals = |v: &Value, count: i64, kes: &str| {
        assert_eq!(v["count"], count, "{v}");
        let amounts = v["amount"].as_object().unwrap();
        assert_eq!(amounts.len(), 1, "{v}");
        assert_eq!(dec(&amounts["KES"]), d(kes), "{v}");
    };
    let statuses = json!({"draft": 1, "pending_approval": 1, "changes_requested": 0, "approved": 1,
                          "rejected": 1, "cancelled": 0, "paid": 2});
    for (viewer, scope, awaiting) in [(&c.auditor, "all", 0), (&c.head, "all", 1), (&c.staff, "own", 0)] {
        let r = ok(&app, viewer, &format!("/api/dashboard/?min_position={p}")).await;
        let b = &r.body;
        assert_eq!(b["scope"], scope, "{b}");
        totals(&b["pending_approval"], 1, "100");
        assert_eq!(b["pending_approval"]["awaiting_me"], awaiting, "{b}");
        totals(&b["paid_today"], 2, "700.50");
        totals(&b["paid_month_to_date"], 2, "700.50");
        assert_eq!(b["by_status"], statuses);
        let seconds = b["average_seconds_to_payment"].as_f64().unwrap_or_else(|| panic!("not a number: {b}"));
        assert!((0.0..3600.0).contains(&seconds), "{seconds}");
        let funds = b["funds"].as_array().unwrap();
        assert_eq!(funds.len(), 1);
        assert_eq!(funds[0]["id"], fund.to_string());
        assert_eq!(dec(&funds[0]["balance"]), d("9299.50"));
        assert_eq!(dec(&funds[0]["float"]), d("10000"));
        assert_eq!(funds[0]["percent_of_float"], "93.0");
        assert_eq!(funds[0]["currency"], "KES");
    }

    // Someone with no requisitions of their own sees zeros (staff see their own numbers only).
    let r = ok(&app, &staff2, "/api/dashboard").await;
    let b = &r.body;
    assert_eq!(b["scope"], "own");
    assert_eq!(b["pending_approval"], json!({"count": 0, "amount": {}, "awaiting_me": 0}));
    assert_eq!(b["paid_today"], json!({"count": 0, "amount": {}}));
    assert_eq!(b["by_status"].as_object().unwrap().values().map(|v| v.as_i64().unwrap()).sum::<i64>(), 0);
    assert_eq!(b["by_status"].as_object().unwrap().len(), 7);
    assert_eq!(b["average_seconds_to_payment"], Value::Null);
    assert_eq!(b["funds"].as_array().unwrap().len(), 1, "fund balances are for everyone");
}

/// The dashboard reads running totals that the requisitions projection moves as rows change;
/// they must always equal what a scan of every requisition row gives (the oracle below, the
/// query the dashboard used before), for everyone and for each requester, whatever path the
/// requisitions took (edits after changes requested, resubmissions, cancellations, two
/// currencies, several requesters).
#[tokio::test]
async fn dashboard_totals_equal_a_scan_of_every_requisition() {
    use pettycash_projections::queries::dashboard;
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let staff2 = app.user(&[Role::Staff]).await;
    let kes = app.fund_in(&c.admin, "100000", "KES").await;
    let usd = app.fund_in(&c.admin, "100000", "USD").await;
    for (i, requester) in [&c.staff, &staff2, &c.staff, &staff2, &c.staff, &staff2].into_iter().enumerate() {
        let fund = if i % 2 == 0 { kes } else { usd };
        let paid = app.submitted(requester, fund, &format!("{}.50", 100 + i)).await;
        app.approve_by(paid, &[&c.head]).await;
        assert_eq!(app.pay(&c.treasury, paid).await.status, StatusCode::CREATED);
        // Changes requested, edited to another amount, resubmitted, approved, paid.
        let edited = app.submitted(requester, fund, "300").await;
        let r = app
            .post(&c.head, &format!("/api/requisitions/{edited}/request-changes"), json!({"reason": "x"}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let r = app
            .patch(
                requester,
                &format!("/api/requisitions/{edited}"),
                json!({"amount": format!("{}", 250 + i)}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let r = app.post(requester, &format!("/api/requisitions/{edited}/submit"), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        app.approve_by(edited, &[&c.head]).await;
        assert_eq!(app.pay(&c.treasury, edited).await.status, StatusCode::CREATED);
        // Cancelled, rejected, pending, approved-not-paid, a draft.
        let cancelled = app.submitted(requester, fund, "40").await;
        let r = app
            .post(requester, &format!("/api/requisitions/{cancelled}/cancel"), json!({"reason": "x"}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let rejected = app.submitted(requester, fund, "45").await;
        let r =
            app.post(&c.head, &format!("/api/requisitions/{rejected}/reject"), json!({"reason": "x"})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        app.submitted(requester, fund, &format!("{}", 10 + i)).await;
        let approved = app.submitted(requester, fund, "20").await;
        app.approve_by(approved, &[&c.head]).await;
        let r = app
            .post(
                requester,
                "/api/requisitions/",
                json!({"fund_id": fund, "amount": "5", "purpose": "draft"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }
    pettycash_tests::wait_for_projections(&app.pool, &["requisitions"]).await;

    let now = chrono::Utc::now();
    for requester in [None, Some(c.staff.id), Some(staff2.id), Some(c.head.id)] {
        let scope = match requester {
            None => DashboardScope::Company(None),
            Some(_) => DashboardScope::Own,
        };
        let got = dashboard(&app.pool, scope, requester.unwrap_or_default(), now).await.unwrap();
        // The oracle: every requisition row, scanned.
        let rows: Vec<(Status, String, i64, Decimal)> = sqlx::query_as(
            "SELECT status, currency, count(*), sum(amount) FROM rm_requisitions
             WHERE ($1::uuid IS NULL OR requester_id = $1) GROUP BY 1, 2",
        )
        .bind(requester)
        .fetch_all(&app.pool)
        .await
        .unwrap();
        let mut by_status: std::collections::BTreeMap<Status, i64> =
            Status::ALL.iter().map(|s| (*s, 0)).collect();
        let mut pending = pettycash_projections::queries::Totals::default();
        for (status, currency, n, sum) in &rows {
            *by_status.get_mut(status).unwrap() += n;
            if *status == Status::PendingApproval {
                pending.count += n;
                *pending.amount.entry(currency.clone()).or_default() += sum;
            }
        }
        assert_eq!(got.by_status, by_status, "{requester:?}");
        assert_eq!(got.pending_approval, pending, "{requester:?}");
        let paid: Vec<(String, i64, Decimal)> = sqlx::query_as(
            "SELECT currency, count(*), sum(amount) FROM rm_requisitions
             WHERE status = 'paid' AND paid_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
               AND ($1::uuid IS NULL OR requester_id = $1) GROUP BY 1",
        )
        .bind(requester)
        .fetch_all(&app.pool)
        .await
        .unwrap();
        let mut month = pettycash_projections::queries::Totals::default();
        for (currency, n, sum) in paid {
            month.count += n;
            month.amount.insert(currency, sum);
        }
        assert_eq!(got.paid_month_to_date, month, "{requester:?}");
        let average: Option<f64> = sqlx::query_scalar(
            "SELECT avg(extract(epoch FROM paid_at - submitted_at))::float8 FROM rm_requisitions
             WHERE status = 'paid' AND ($1::uuid IS NULL OR requester_id = $1)",
        )
        .bind(requester)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        match (got.average_seconds_to_payment, average) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-6, "{a} vs {b}"),
            (a, b) => assert_eq!(a, b, "{requester:?}"),
        }
    }
}
