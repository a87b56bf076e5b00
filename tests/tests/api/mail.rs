//! Mail, end to end: commands over HTTP, the `notifications` projection writing the outbox,
//! the sender delivering over real SMTP to a server on loopback. Assertions are on what the
//! recipients get (envelope recipients, subject, link in the body, Message-ID).

use pettycash_api::config::MailTransportConfig;
use pettycash_commands::mail::sender::Sender;
use pettycash_commands::mail::transport::{MailTransport, Smtp, SmtpSettings};
use pettycash_commands::mail::{Links, Mail, MailCategory};
use pettycash_commands::store::SideWrite;
use pettycash_domain::Role;
use pettycash_projections::{Engine, EngineOptions};
use pettycash_tests::mail::{fast_sender, PUBLIC_URL};
use pettycash_tests::serde_json::json;
use pettycash_tests::{wait_for_projections, MailServer, ReceivedMail, TestApp, TestUser};
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The mails to `user`.
fn to<'a>(mails: &'a [ReceivedMail], user: &TestUser) -> Vec<&'a ReceivedMail> {
    mails.iter().filter(|m| m.to == [user.email.clone()]).collect()
}

/// Asserts that `mail` is about requisition `id`: its link in both bodies.
fn links_to(mail: &ReceivedMail, id: Uuid) {
    let link = format!("{PUBLIC_URL}/requisitions/{id}");
    assert!(mail.text.contains(&link), "no {link} in the text: {}", mail.text);
    assert!(mail.html.contains(&format!("href=\"{link}\"")), "no {link} in the HTML: {}", mail.html);
}

async fn app_with(smtp: &MailServer) -> TestApp {
    TestApp::spawn_with(|c| {
        c.seal_interval_secs = 3600;
        smtp.configure(c);
    })
    .await
}

#[tokio::test]
async fn submitting_mails_the_active_holders_of_the_first_steps_role_but_not_the_requester_or_their_puppets()
{
    let smtp = MailServer::start().await;
    let app = app_with(&smtp).await;
    // The requester could approve as a department head (not their own requisition, though) and
    // registered another department head, who may not decide what their sponsor requested.
    let requester = app.user(&[Role::Staff, Role::DepartmentHead, Role::Admin]).await;
    let (head, gfm) = tokio::join!(app.user(&[Role::DepartmentHead]), app.user(&[Role::GroupFinanceManager]));
    let puppet = app
        .post(
            &requester,
            "/api/users/",
            json!({"email": "puppet@test.example", "name": "Puppet", "roles": ["department_head"]}),
        )
        .await;
    assert_eq!(puppet.status, StatusCode::CREATED, "{puppet:?}");
    let fund = app.fund(&requester, "10000").await;

    let id = app.submitted(&requester, fund, "500").await;

    let mails = app.delivered(&smtp).await;
    assert_eq!(mails.len(), 1, "only the other department head: {mails:#?}");
    let mail = &mails[0];
    assert_eq!(mail.to, [head.email.as_str()]);
    assert_eq!(mail.subject, "Approval requested: 500.00 KES — Test purchase");
    assert_eq!(mail.from, "pettycash@localhost");
    assert!(mail.text.contains("Hello Test department_head,"), "{}", mail.text);
    assert!(mail.text.contains("step 1 of 1"), "{}", mail.text);
    links_to(mail, id);
    assert!(to(&mails, &gfm).is_empty());
}

#[tokio::test]
async fn each_approval_mails_the_next_step_and_the_last_mails_the_requester_and_who_may_pay() {
    let smtp = MailServer::start().await;
    let app = app_with(&smtp).await;
    let staff = app.user(&[Role::Staff]).await;
    let (head, gfm, treasury) = tokio::join!(
        app.user(&[Role::DepartmentHead]),
        app.user(&[Role::GroupFinanceManager]),
        app.user(&[Role::Treasury]),
    );
    // A treasurer who approves the second step may not pay it: no "ready for payment" for them.
    let treasurer_approver = app.user(&[Role::GroupFinanceManager, Role::Treasury]).await;
    let admin = app.user(&[Role::Admin]).await;
    let fund = app.fund(&admin, "100000").await;
    let id = app.submitted(&staff, fund, "5000").await;
    let first = app.delivered(&smtp).await;
    assert_eq!(to(&first, &head).len(), 1);
    smtp.clear();

    app.approve_by(id, &[&head]).await;
    let second = app.delivered(&smtp).await;
    let mut recipients: Vec<String> = second.iter().flat_map(|m| m.to.clone()).collect();
    recipients.sort();
    let mut expected = vec![gfm.email.clone(), treasurer_approver.email.clone()];
    expected.sort();
    assert_eq!(recipients, expected, "the second step's role holders, nobody else");
    assert!(second
        .iter()
        .all(|m| m.subject.starts_with("Approval requested:") && m.text.contains("step 2 of 2")));
    links_to(&second[0], id);
    smtp.clear();

    app.approve_by(id, &[&treasurer_approver]).await;
    let third = app.delivered(&smtp).await;
    assert_eq!(third.len(), 2, "{third:#?}");
    let approved = to(&third, &staff);
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0].subject, "Approved: 5000.00 KES — Test purchase");
    links_to(approved[0], id);
    let ready = to(&third, &treasury);
    assert_eq!(ready.len(), 1, "{third:#?}");
    assert_eq!(ready[0].subject, "Ready for payment: 5000.00 KES — Test purchase");
    assert!(ready[0].text.contains("Fund: Test fund"), "{}", ready[0].text);
    links_to(ready[0], id);
    smtp.clear();

    // The payment code goes to the payer (read and cleared by `pay_via`).
    let paid = app.pay_via(&smtp, &treasury, id).await;
    assert_eq!(paid.status, StatusCode::CREATED, "{paid:?}");
    let fourth = app.delivered(&smtp).await;
    assert_eq!(fourth.len(), 1, "{fourth:#?}");
    assert_eq!(fourth[0].to, [staff.email.as_str()]);
    assert_eq!(fourth[0].subject, "Paid: 5000.00 KES — Test purchase");
    links_to(&fourth[0], id);
}

#[tokio::test]
async fn rejections_and_change_requests_mail_the_requester_the_reason() {
    let smtp = MailServer::start().await;
    let app = app_with(&smtp).await;
    let (staff, head, admin) =
        tokio::join!(app.user(&[Role::Staff]), app.user(&[Role::DepartmentHead]), app.user(&[Role::Admin]));
    let fund = app.fund(&admin, "10000").await;
    let rejected = app.submitted(&staff, fund, "100").await;
    let returned = app.submitted(&staff, fund, "200").await;
    app.delivered(&smtp).await;
    smtp.clear();

    let r = app
        .post(
            &head,
            &format!("/api/requisitions/{rejected}/reject"),
            json!({"reason": "Not <b>in</b> budget"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = app
        .post(
            &head,
            &format!("/api/requisitions/{returned}/request-changes"),
            json!({"reason": "Attach the quote"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");

    let mails = app.delivered(&smtp).await;
    assert_eq!(mails.len(), 2, "{mails:#?}");
    assert!(mails.iter().all(|m| m.to == [staff.email.clone()]));
    let no = mails.iter().find(|m| m.subject.starts_with("Rejected:")).expect("a rejection");
    assert_eq!(no.subject, "Rejected: 100.00 KES — Test purchase");
    assert!(no.text.contains("Reason: Not <b>in</b> budget"), "{}", no.text);
    assert!(no.html.contains("Not &lt;b&gt;in&lt;/b&gt; budget"), "escaped: {}", no.html);
    assert!(no.text.contains("rejected by Test department_head"), "{}", no.text);
    links_to(no, rejected);
    let back = mails.iter().find(|m| m.subject.starts_with("Changes requested:")).expect("a change request");
    assert!(back.text.contains("Reason: Attach the quote"), "{}", back.text);
    links_to(back, returned);
}

#[tokio::test]
async fn a_muted_category_is_not_mailed_but_an_unmutable_one_still_is() {
    let smtp = MailServer::start().await;
    let app = app_with(&smtp).await;
    let (staff, head, admin) =
        tokio::join!(app.user(&[Role::Staff]), app.user(&[Role::DepartmentHead]), app.user(&[Role::Admin]));

    let r = app.get(&staff, "/api/me/mail-preferences").await;
    assert_eq!((r.status, &r.body["muted"]), (StatusCode::OK, &json!([])));
    let r = app
        .send(
            Some(&staff),
            reqwest::Method::PUT,
            "/api/me/mail-preferences",
            Some(json!({"muted": ["requisition_outcome", "paid", "paid"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["muted"], json!(["requisition_outcome", "paid"]));
    for refused in ["security", "invitation", "payment_code", "no_such_category"] {
        let r = app
            .send(
                Some(&staff),
                reqwest::Method::PUT,
                "/api/me/mail-preferences",
                Some(json!({"muted": [refused]})),
            )
            .await;
        assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "muted"), "{refused}: {r:?}");
    }
    let r = app.get(&staff, "/api/me/mail-preferences").await;
    assert_eq!(
        r.body["muted"],
        json!(["requisition_outcome", "paid"]),
        "the refused requests changed nothing"
    );
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_type = 'user' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(staff.id.to_string())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(events, ["UserRegistered", "MailMuted"]);

    let fund = app.fund(&admin, "10000").await;
    let id = app.submitted(&staff, fund, "100").await;
    let r = app.post(&head, &format!("/api/requisitions/{id}/reject"), json!({"reason": "no"})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let mails = app.delivered(&smtp).await;
    assert_eq!(mails.len(), 1, "the approver's mail only: {mails:#?}");
    assert!(to(&mails, &staff).is_empty());

    // Security mail comes whatever the preferences say, even ones that somehow hold it. It is
    // a command's mail: written in the command's transaction (here an append with nothing but
    // the side write), sent after the commit.
    sqlx::query("UPDATE users SET muted_mail = muted_mail || '{security}' WHERE id = $1")
        .bind(staff.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let mail = Mail {
        category: MailCategory::Security,
        recipient_user_id: Some(staff.id),
        recipient_email: staff.email.clone(),
        subject: "Your password was changed".into(),
        body_text: "If this was not you, tell an administrator.".into(),
        body_html: "<p>If this was not you, tell an administrator.</p>".into(),
        link: None,
        source_position: None,
    };
    let muted = Mail { category: MailCategory::Paid, subject: "Muted".into(), ..mail.clone() };
    let writes = vec![SideWrite::Mail(Box::new(mail)), SideWrite::Mail(Box::new(muted))];
    app.service.store().append(&[], &json!({}), writes, None).await.expect("append the side writes");
    let mails = app.delivered(&smtp).await;
    let security = to(&mails, &staff);
    assert_eq!(security.len(), 1, "{mails:#?}");
    assert_eq!(security[0].subject, "Your password was changed");
}

#[tokio::test]
async fn with_the_smtp_server_down_mail_waits_and_is_delivered_once_when_it_is_back() {
    let mut smtp = MailServer::down();
    let app = app_with(&smtp).await;
    let (staff, head, admin) =
        tokio::join!(app.user(&[Role::Staff]), app.user(&[Role::DepartmentHead]), app.user(&[Role::Admin]));
    let fund = app.fund(&admin, "10000").await;
    let first = app.submitted(&staff, fund, "100").await;

    // Attempts fail (connection refused), are counted and wait for their retry.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (attempts, last_error, message_id) = loop {
        let row: Option<(i32, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT attempts, last_error, message_id FROM mail_outbox WHERE sent_at IS NULL AND attempts >= 2",
        )
        .fetch_optional(&app.pool)
        .await
        .unwrap();
        if let Some(row) = row {
            break row;
        }
        assert!(Instant::now() < deadline, "no failed attempts recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(attempts >= 2);
    assert!(last_error.as_deref().is_some_and(|e| e.contains(&format!("smtp://127.0.0.1:{}", smtp.port()))));
    let health = app.send(None, reqwest::Method::GET, "/health/", None).await;
    assert_eq!(health.body["mail"]["sender"], "smtp");
    assert_eq!(
        (health.body["mail"]["queued"].as_i64(), health.body["mail"]["failing"].as_i64()),
        (Some(1), Some(1))
    );

    smtp.listen().await;
    let mails = app.delivered(&smtp).await;
    assert_eq!(mails.len(), 1, "delivered exactly once: {mails:#?}");
    assert_eq!(mails[0].to, [head.email.as_str()]);
    assert_eq!(Some(mails[0].message_id.clone()), message_id, "the Message-ID fixed at the first attempt");
    assert!(mails[0].message_id.starts_with("<outbox-") && mails[0].message_id.ends_with("@localhost>"));
    links_to(&mails[0], first);

    // Down again: the next mail waits, and goes when the server is back; nothing twice.
    smtp.stop().await;
    let second = app.submitted(&staff, fund, "200").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL AND attempts > 0",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap()
        == 0
    {
        assert!(Instant::now() < deadline, "the second mail was not tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    smtp.listen().await;
    let mails = app.delivered(&smtp).await;
    assert_eq!(mails.len(), 2, "{mails:#?}");
    links_to(&mails[1], second);
    let mut ids: Vec<&str> = mails.iter().map(|m| m.message_id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 2, "two messages, each once");
    let health = app.send(None, reqwest::Method::GET, "/health/", None).await;
    assert_eq!(health.body["mail"]["queued"], 0);
}

#[tokio::test]
async fn a_crash_between_sending_and_marking_sends_the_mail_again_under_the_same_message_id() {
    let smtp = MailServer::start().await;
    // The service writes the outbox; the test plays the senders (the service runs none).
    let app = TestApp::spawn_with(|c| {
        smtp.configure(c);
        c.mail.transport = MailTransportConfig::Queue;
    })
    .await;
    let (staff, head, admin) =
        tokio::join!(app.user(&[Role::Staff]), app.user(&[Role::DepartmentHead]), app.user(&[Role::Admin]));
    let fund = app.fund(&admin, "10000").await;
    let id = app.submitted(&staff, fund, "100").await;
    wait_for_projections(&app.pool, &["notifications"]).await;

    let settings = SmtpSettings {
        host: "127.0.0.1".into(),
        port: smtp.port(),
        starttls: false,
        credentials: None,
        timeout: Duration::from_secs(10),
    };
    let transport: Arc<dyn MailTransport> = Arc::new(Smtp::new(&settings).unwrap());
    let from: pettycash_commands::mail::Mailbox = "Petty Cash <cash@example.com>".parse().unwrap();
    // A sender whose claims end at once: as if its process died and the claim ran out.
    let doomed = Sender::new(
        app.pool.clone(),
        transport.clone(),
        from.clone(),
        pettycash_commands::mail::sender::SenderOptions { claim_for: Duration::ZERO, ..fast_sender() },
    );
    let claimed = doomed.claim().await.unwrap().expect("a due mail");
    doomed.send(&claimed).await.expect("sent");
    drop(doomed); // the crash: sent, never marked

    let survivor = Sender::new(app.pool.clone(), transport, from, fast_sender());
    let pass = survivor.deliver_due().await.unwrap();
    assert_eq!((pass.sent, pass.failed), (1, 0));
    assert!(survivor.deliver_due().await.unwrap().sent == 0, "marked: not sent a third time");

    let mails = smtp.received();
    assert_eq!(mails.len(), 2, "a duplicate");
    assert_eq!(mails[0].message_id, mails[1].message_id, "recognisable as one message");
    assert_eq!(mails[0].message_id, format!("<outbox-{}@example.com>", claimed.id));
    assert_eq!(mails[0].from_header, "\"Petty Cash\" <cash@example.com>");
    assert!(mails.iter().all(|m| m.to == [head.email.clone()]));
    links_to(&mails[1], id);
    let (attempts, sent): (i32, bool) =
        sqlx::query_as("SELECT attempts, sent_at IS NOT NULL FROM mail_outbox WHERE id = $1")
            .bind(claimed.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((attempts, sent), (2, true));
}

#[tokio::test]
async fn the_projection_first_started_on_a_store_with_history_mails_nothing_about_it() {
    let smtp = MailServer::start().await;
    // A store written before mail existed: no projection workers, no sender.
    let app = TestApp::spawn_with(|c| c.run_projections = false).await;
    let (staff, head, gfm, admin) = tokio::join!(
        app.user(&[Role::Staff]),
        app.user(&[Role::DepartmentHead]),
        app.user(&[Role::GroupFinanceManager]),
        app.user(&[Role::Admin])
    );
    app.user(&[Role::Treasury]).await;
    let fund = app.fund(&admin, "100000").await;
    let old = app.submitted(&staff, fund, "5000").await;
    app.approve_by(old, &[&head]).await;
    let _pending = app.submitted(&staff, fund, "100").await;
    let last: i64 =
        sqlx::query_scalar("SELECT max(global_position) FROM events").fetch_one(&app.pool).await.unwrap();

    // The release with mail starts: its workers and sender.
    let links = Links::new(PUBLIC_URL);
    let engine = Engine::new(app.pool.clone(), pettycash_projections::all(&links), EngineOptions::default());
    engine.catch_up().await.unwrap();
    let transport: Arc<dyn MailTransport> = Arc::new(
        Smtp::new(&SmtpSettings {
            host: "127.0.0.1".into(),
            port: smtp.port(),
            starttls: false,
            credentials: None,
            timeout: Duration::from_secs(10),
        })
        .unwrap(),
    );
    let sender = Sender::new(app.pool.clone(), transport, "cash@example.com".parse().unwrap(), fast_sender());
    assert_eq!(sender.deliver_due().await.unwrap().sent, 0, "nothing about the history");
    let (position, applied): (i64, i64) = sqlx::query_as(
        "SELECT last_position, events_applied FROM projection_checkpoints WHERE name = 'notifications'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((position, applied), (last, 0), "started after the last event");

    // What happens from now on is mailed.
    app.approve_by(old, &[&gfm]).await;
    engine.catch_up().await.unwrap();
    assert_eq!(sender.deliver_due().await.unwrap().sent, 2);
    let mut subjects: Vec<String> = smtp.received().iter().map(|m| m.subject.clone()).collect();
    subjects.sort();
    assert_eq!(
        subjects,
        ["Approved: 5000.00 KES — Test purchase", "Ready for payment: 5000.00 KES — Test purchase"]
    );
}

#[tokio::test]
async fn health_counts_queued_mail_up_to_a_cap_however_large_the_backlog() {
    // A test app without a mail server sends nothing: mail waits in the outbox.
    let app = TestApp::spawn().await;
    sqlx::query(
        "INSERT INTO mail_outbox (category, recipient_email, subject, body_text, body_html, last_error)
         SELECT 'reminder', 'backlog' || n || '@example.test', 's', 't', '<p>t</p>', 'connection refused'
         FROM generate_series(1, 1005) n",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let health = app.send(None, reqwest::Method::GET, "/health/", None).await;
    assert_eq!(
        (health.body["mail"]["queued"].as_i64(), health.body["mail"]["failing"].as_i64()),
        (Some(1000), Some(1000)),
        "{health:?}"
    );
}
