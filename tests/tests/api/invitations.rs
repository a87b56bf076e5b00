//! Invitations over HTTP: an admin invites, the mail (real SMTP) carries a link that works once
//! and until it expires, the invitee chooses a password and is signed in with the invited
//! roles and unit; revoking and resending kill the old link; every dead link gets the same
//! answer; two acceptances of one link at once make one user; admins invite only new emails
//! into units they reach.

use chrono::{DateTime, Duration, Utc};
use pettycash_commands::mail::sender::REMOVED;
use pettycash_domain::Role;
use pettycash_tests::mail::PUBLIC_URL;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{invitation_token_in, MailServer, Reply, TestApp, TestUser, PASSWORD};
use reqwest::{Method, StatusCode};
use std::time::Instant;
use uuid::Uuid;

/// A company ACME with a department, its admin, and the organisation's admin (of no unit).
struct Acme {
    org_admin: TestUser,
    admin: TestUser,
    company: Uuid,
    department: Uuid,
}

async fn acme(app: &TestApp) -> Acme {
    let org_admin = app.user(&[Role::Admin]).await;
    let company = app.unit(&org_admin, "company", "ACME", None).await;
    let region = app.unit(&org_admin, "region", "EAST", Some(company)).await;
    let branch = app.unit(&org_admin, "branch", "NBI", Some(region)).await;
    let department = app.unit(&org_admin, "department", "OPS", Some(branch)).await;
    let admin = app.user_in(&[Role::Admin], Some(company)).await;
    Acme { org_admin, admin, company, department }
}

async fn invite(app: &TestApp, admin: &TestUser, email: &str, roles: &[&str], unit: Option<Uuid>) -> Reply {
    let body = json!({"email": email, "name": "Ann Achieng", "roles": roles, "unit_id": unit});
    app.post(admin, "/api/invitations/", body).await
}

async fn invited(app: &TestApp, admin: &TestUser, email: &str, unit: Option<Uuid>) -> Uuid {
    let r = invite(app, admin, email, &["staff"], unit).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.id()
}

async fn lookup(app: &TestApp, token: &str) -> Reply {
    app.send(None, Method::POST, "/api/invitations/lookup", Some(json!({"token": token}))).await
}

fn expires_at(r: &Reply) -> DateTime<Utc> {
    r.body["expires_at"].as_str().unwrap().parse().unwrap()
}

/// Asserts the one answer every dead link gets, and returns its body.
fn dead(r: &Reply) -> Value {
    assert_eq!((r.status, r.code()), (StatusCode::GONE, "invitation_invalid"), "{r:?}");
    r.body.clone()
}

/// A signed-in user from an accepted invitation's answer.
fn signed_in(r: &Reply, email: &str) -> TestUser {
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    TestUser {
        id: r.body["user"]["id"].as_str().unwrap().parse().unwrap(),
        email: email.to_string(),
        token: r.body["token"].as_str().unwrap().to_string(),
    }
}

#[tokio::test]
async fn an_invitee_follows_the_mailed_link_chooses_a_password_and_is_signed_in_once() {
    let smtp = MailServer::start().await;
    let app = TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        smtp.configure(c);
    })
    .await;
    let acme = acme(&app).await;
    let before = Utc::now();

    let r =
        invite(&app, &acme.admin, " Ann@Example.com ", &["treasury", "staff"], Some(acme.department)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let id = r.id();
    assert_eq!(r.body["email"], "ann@example.com");
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["roles"], json!(["staff", "treasury"]));
    assert_eq!(
        (r.body["unit_id"].clone(), r.body["company_id"].clone()),
        (json!(acme.department), json!(acme.company))
    );
    let expiry = expires_at(&r);
    assert!(
        expiry >= before + Duration::days(7) - Duration::seconds(1)
            && expiry <= Utc::now() + Duration::days(7)
    );

    // The mail: to the invitee, with the link and the expiry, in both bodies.
    let mails = smtp.wait_for(1).await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let mail = &mails[0];
    assert_eq!(mail.to, ["ann@example.com"]);
    assert!(mail.subject.contains("invites you to Petty Cash"), "{}", mail.subject);
    let token = invitation_token_in(&mail.text).expect("a link in the text");
    let link = format!("{PUBLIC_URL}/invitations/{token}");
    assert!(mail.text.contains(&link) && mail.html.contains(&format!("href=\"{link}\"")), "{}", mail.html);
    assert!(mail.text.contains(&expiry.format("%-d %B %Y, %H:%M UTC").to_string()), "{}", mail.text);
    assert!(mail.text.contains("treasurer") && mail.text.contains("department OPS"), "{}", mail.text);
    // The token is nowhere in the database: not in the events, not in the table, and the mail's
    // body left the outbox once it was sent.
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body_text FROM mail_outbox WHERE sent_at IS NOT NULL")
                .fetch_optional(&app.pool)
                .await
                .unwrap();
        if body.as_deref() == Some(REMOVED) {
            break;
        }
        assert!(Instant::now() < deadline, "the sent mail still holds its body: {body:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let holders: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM events WHERE payload::text LIKE '%' || $1 || '%' OR metadata::text LIKE '%' || $1 || '%')
              + (SELECT count(*) FROM invitations WHERE token_hash LIKE '%' || $1 || '%')
              + (SELECT count(*) FROM mail_outbox WHERE body_text || body_html || coalesce(link, '') LIKE '%' || $1 || '%')",
    )
    .bind(&token)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(holders, 0, "the token is stored somewhere");

    // The page greets them.
    let r = lookup(&app, &token).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        (r.body["email"].as_str(), r.body["name"].as_str()),
        (Some("ann@example.com"), Some("Ann Achieng"))
    );

    // A weak password: 422 naming it, and the link still works.
    let r = app.accept_invitation(&token, "short").await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "password"), "{r:?}");
    assert_eq!(lookup(&app, &token).await.status, StatusCode::OK);

    // A good one: a user, signed in, with the invited roles, in the invited unit.
    let r = app.accept_invitation(&token, PASSWORD).await;
    let cookies: Vec<&str> = r.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    assert!(cookies.iter().any(|c| c.starts_with("pettycash_session=")), "{cookies:?}");
    let ann = signed_in(&r, "ann@example.com");
    let me = app.get(&ann, "/api/me").await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    assert_eq!(me.body["roles"], json!(["staff", "treasury"]));
    assert_eq!(
        (me.body["unit_id"].clone(), me.body["company_id"].clone()),
        (json!(acme.department), json!(acme.company))
    );
    // Sponsored by the inviter, who registered them (segregation of duties holds).
    let sponsors: Vec<Uuid> = sqlx::query_scalar("SELECT sponsors FROM users WHERE id = $1")
        .bind(ann.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sponsors, [acme.admin.id]);
    let (registered_by, actor): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT payload->'UserRegistered'->>'registered_by', metadata->>'actor_id'
         FROM events WHERE aggregate_type = 'user' AND aggregate_id = $1 AND sequence = 1",
    )
    .bind(ann.id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(registered_by, Some(acme.admin.id.to_string()));
    assert_eq!(actor, Some(ann.id.to_string()), "the invitee acted");
    // Their password signs them in too.
    let login = json!({"email": "ann@example.com", "password": PASSWORD});
    assert_eq!(app.send(None, Method::POST, "/api/auth/login", Some(login)).await.status, StatusCode::OK);

    // The admin sees it accepted.
    let list = app.get(&acme.admin, "/api/invitations/").await;
    assert_eq!(list.status, StatusCode::OK, "{list:?}");
    let item = &list.body["items"][0];
    assert_eq!(
        (item["id"].clone(), item["status"].clone(), item["user_id"].clone()),
        (json!(id), json!("accepted"), json!(ann.id))
    );

    // The same link again: dead, and no second user.
    dead(&app.accept_invitation(&token, PASSWORD).await);
    dead(&lookup(&app, &token).await);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = 'ann@example.com'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(users, 1);
}

#[tokio::test]
async fn unknown_used_revoked_replaced_and_expired_links_all_get_one_answer() {
    let app = TestApp::spawn().await;
    let acme = acme(&app).await;
    let revoked = invited(&app, &acme.admin, "revoked@example.com", None).await;
    let resent = invited(&app, &acme.admin, "resent@example.com", None).await;
    invited(&app, &acme.admin, "late@example.com", None).await;
    invited(&app, &acme.admin, "used@example.com", None).await;

    let used = app.invitation_token("used@example.com").await;
    signed_in(&app.accept_invitation(&used, PASSWORD).await, "used@example.com");
    let used = dead(&app.accept_invitation(&used, PASSWORD).await);

    let revoked_token = app.invitation_token("revoked@example.com").await;
    let r = app
        .post(&acme.admin, &format!("/api/invitations/{revoked}/revoke"), json!({"reason": "wrong address"}))
        .await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::OK, Some("revoked")), "{r:?}");
    let revoked_answer = dead(&app.accept_invitation(&revoked_token, PASSWORD).await);
    // Revoked twice: nothing more recorded; resending a revoked invitation: refused.
    let events = app.event_count().await;
    let r = app.post(&acme.admin, &format!("/api/invitations/{revoked}/revoke"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(app.event_count().await, events);
    let r = app.post(&acme.admin, &format!("/api/invitations/{revoked}/resend"), json!({})).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "invitation_not_pending"), "{r:?}");

    // Resending: a new mail, a new link; the old one is dead, the new one works.
    let old = app.invitation_token("resent@example.com").await;
    let r = app.post(&acme.admin, &format!("/api/invitations/{resent}/resend"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let new = app.invitation_token("resent@example.com").await;
    assert_ne!(old, new);
    let replaced = dead(&app.accept_invitation(&old, PASSWORD).await);
    dead(&lookup(&app, &old).await);
    assert_eq!(lookup(&app, &new).await.status, StatusCode::OK);

    // A week and a day later: expired (no event says so; the list shows it), and resending
    // gives it a new week.
    let late = app.invitation_token("late@example.com").await;
    app.clock.advance(Duration::days(8));
    let expired = dead(&app.accept_invitation(&late, PASSWORD).await);
    dead(&lookup(&app, &late).await);
    dead(&app.accept_invitation(&new, PASSWORD).await);
    let list = app.get(&acme.admin, "/api/invitations/?status=expired").await;
    let emails: Vec<&str> =
        list.body["items"].as_array().unwrap().iter().map(|i| i["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["late@example.com", "resent@example.com"], "{list:?}");
    let r = app.post(&acme.admin, &format!("/api/invitations/{resent}/resend"), json!({})).await;
    assert_eq!(r.body["status"], "pending", "{r:?}");
    assert!(expires_at(&r) > Utc::now() + Duration::days(14), "a week from the (moved) clock: {r:?}");
    let newest = app.invitation_token("resent@example.com").await;
    signed_in(&app.accept_invitation(&newest, PASSWORD).await, "resent@example.com");

    let unknown = dead(&app.accept_invitation("not-a-token-we-ever-made", PASSWORD).await);
    let empty = dead(&app.accept_invitation("", PASSWORD).await);
    for answer in [&used, &revoked_answer, &replaced, &expired, &empty] {
        assert_eq!(answer, &unknown, "one answer for every dead link");
    }
    // An accepted invitation cannot be revoked.
    let accepted = list_item(&app, &acme.admin, "used@example.com").await;
    let r = app
        .post(
            &acme.admin,
            &format!("/api/invitations/{}/revoke", accepted["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "invitation_not_pending"), "{r:?}");
}

async fn list_item(app: &TestApp, admin: &TestUser, email: &str) -> Value {
    let list = app.get(admin, "/api/invitations/?limit=200").await;
    list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["email"] == email)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn two_acceptances_of_one_link_at_once_make_one_user() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    for round in 0..5 {
        let email = format!("twice{round}@example.com");
        invited(&app, &admin, &email, None).await;
        let token = app.invitation_token(&email).await;
        let answers =
            futures::future::join_all((0..6).map(|_| app.accept_invitation(&token, PASSWORD))).await;
        let statuses: Vec<StatusCode> = answers.iter().map(|r| r.status).collect();
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{answers:#?}");
        assert!(statuses.iter().all(|s| *s == StatusCode::CREATED || *s == StatusCode::GONE), "{answers:#?}");
        let (users, registered): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM users WHERE email = $1),
                    (SELECT count(*) FROM events WHERE event_type = 'UserRegistered'
                       AND payload->'UserRegistered'->>'email' = $1)",
        )
        .bind(&email)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!((users, registered), (1, 1));
    }
}

#[tokio::test]
async fn admins_invite_only_new_emails_with_roles_into_units_they_reach() {
    let app = TestApp::spawn().await;
    let acme = acme(&app).await;
    let globex = app.unit(&acme.org_admin, "company", "GLOBEX", None).await;
    let globex_admin = app.user_in(&[Role::Admin], Some(globex)).await;
    let staff = app.user_in(&[Role::Staff], Some(acme.company)).await;

    // Only admins.
    let r = invite(&app, &staff, "x@example.com", &["staff"], None).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "missing_role"), "{r:?}");
    assert_eq!(app.get(&staff, "/api/invitations/").await.status, StatusCode::FORBIDDEN);
    // Not an email a user has, nor one with an open invitation.
    let r = invite(&app, &acme.admin, &staff.email.to_uppercase(), &["staff"], None).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "already_exists"), "{r:?}");
    let id = invited(&app, &acme.admin, "bo@example.com", Some(acme.department)).await;
    let r = invite(&app, &acme.admin, "bo@example.com", &["staff"], None).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "already_exists"), "{r:?}");
    // Roles as a registration takes them; a unit the admin reaches.
    let r = invite(&app, &acme.admin, "cy@example.com", &["king"], None).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "roles"), "{r:?}");
    let r = invite(&app, &acme.admin, "cy@example.com", &[], None).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "roles"), "{r:?}");
    let r = invite(&app, &globex_admin, "cy@example.com", &["staff"], Some(acme.department)).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "unit_id"), "{r:?}");
    // Without a unit: the admin's company.
    let r = invite(&app, &globex_admin, "cy@example.com", &["staff"], None).await;
    assert_eq!((r.status, r.body["unit_id"].clone()), (StatusCode::CREATED, json!(globex)), "{r:?}");

    // Another company's invitation is not found, nor listed.
    for action in ["resend", "revoke"] {
        let r = app.post(&globex_admin, &format!("/api/invitations/{id}/{action}"), json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{action}: {r:?}");
    }
    assert_eq!(list_item(&app, &globex_admin, "bo@example.com").await, Value::Null);
    assert_eq!(list_item(&app, &acme.admin, "bo@example.com").await["id"], json!(id));

    // The organisation's admin gives a company its first admin, and manages that invitation
    // although it is the company's.
    let r = invite(&app, &acme.org_admin, "first@globex.example", &["admin"], Some(globex)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let first = r.id();
    assert_eq!(list_item(&app, &acme.org_admin, "first@globex.example").await["id"], json!(first));
    let r = app.post(&acme.org_admin, &format!("/api/invitations/{first}/resend"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let token = app.invitation_token("first@globex.example").await;
    let first_admin = signed_in(&app.accept_invitation(&token, PASSWORD).await, "first@globex.example");
    let me = app.get(&first_admin, "/api/me").await;
    assert_eq!((me.body["roles"].clone(), me.body["company_id"].clone()), (json!(["admin"]), json!(globex)));
    // Their company's users include them; the organisation's admin registered them.
    let users = app.get(&globex_admin, "/api/users/").await;
    assert!(users.body.as_array().unwrap().iter().any(|u| u["email"] == "first@globex.example"), "{users:?}");
}

#[tokio::test]
async fn the_list_pages_newest_first_and_filters_by_status() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(invited(&app, &admin, &format!("p{n}@example.com"), None).await);
    }
    let r = app.post(&admin, &format!("/api/invitations/{}/revoke", ids[1]), json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    let first = app.get(&admin, "/api/invitations/?limit=3").await;
    let page_ids = |r: &Reply| -> Vec<Value> {
        r.body["items"].as_array().unwrap().iter().map(|i| i["id"].clone()).collect()
    };
    assert_eq!(page_ids(&first), [json!(ids[4]), json!(ids[3]), json!(ids[2])]);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app.get(&admin, &format!("/api/invitations/?limit=3&cursor={cursor}")).await;
    assert_eq!(page_ids(&second), [json!(ids[1]), json!(ids[0])]);
    assert_eq!(second.body["next_cursor"], Value::Null);
    let revoked = app.get(&admin, "/api/invitations/?status=revoked").await;
    assert_eq!(page_ids(&revoked), [json!(ids[1])]);
    let r = app.get(&admin, "/api/invitations/?status=lost").await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "status"));
    let r = app.get(&admin, "/api/invitations/?cursor=nope").await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "invalid_cursor"));
}
