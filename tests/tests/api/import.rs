//! The organisation import over HTTP (`POST /api/org/import/{what}`): CSV and XLSX files with
//! good and bad rows, all-or-nothing unless bad rows are skipped, dry runs, idempotent
//! re-imports, users invited into units (they choose their password), and malformed files answered
//! with a 4xx naming what is wrong.

use pettycash_domain::Role;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{Reply, TestApp, TestUser, PASSWORD};
use reqwest::{Method, StatusCode};
use rust_xlsxwriter::Workbook;
use uuid::Uuid;

const CSV: &str = "text/csv";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

async fn import(
    app: &TestApp,
    admin: &TestUser,
    what: &str,
    query: &str,
    content_type: &str,
    body: &[u8],
) -> Reply {
    let path = format!("/api/org/import/{what}{query}");
    app.send_raw(admin, Method::POST, &path, content_type, body.to_vec()).await
}

/// Each row's (row number, status, fields in error).
fn verdicts(report: &Value) -> Vec<(u64, String, Vec<String>)> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let fields =
                r["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_string());
            (r["row"].as_u64().unwrap(), r["status"].as_str().unwrap().to_string(), fields.collect())
        })
        .collect()
}

fn v(row: u64, status: &str, fields: &[&str]) -> (u64, String, Vec<String>) {
    (row, status.to_string(), fields.iter().map(|f| f.to_string()).collect())
}

/// Codes of the units `user` lists.
async fn unit_codes(app: &TestApp, user: &TestUser) -> Vec<String> {
    let r = app.get(user, "/api/org/units/").await;
    r.body["items"].as_array().unwrap().iter().map(|u| u["code"].as_str().unwrap().to_string()).collect()
}

const COMPANIES: &str = "name,code\nAcme Ltd,acme\nGlobex,GLOBEX\n,NONAME\nBad Code,BAD CODE\n";

#[tokio::test]
async fn a_csv_with_bad_rows_records_nothing_unless_bad_rows_are_skipped_and_a_second_import_changes_nothing()
{
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let before = app.event_count().await;

    // All or nothing: 422 naming the rows, nothing recorded.
    let r = import(&app, &admin, "companies", "", CSV, COMPANIES.as_bytes()).await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "import_rejected", "rows"),
        "{r:?}"
    );
    assert!(r.body["error"]["message"].as_str().unwrap().contains("rows 4, 5"), "{r:?}");
    let report = &r.body["report"];
    assert_eq!(
        verdicts(report),
        [
            v(2, "created", &[]),
            v(3, "created", &[]),
            v(4, "rejected", &["name"]),
            v(5, "rejected", &["code"])
        ]
    );
    assert_eq!(report["imported"], false);
    assert_eq!(report["totals"], json!({"created": 2, "unchanged": 0, "rejected": 2}));
    assert_eq!(app.event_count().await, before, "nothing recorded");
    assert!(unit_codes(&app, &admin).await.is_empty());

    // A dry run answers the same and records nothing either.
    let r =
        import(&app, &admin, "companies", "?dry_run=true&skip_invalid=true", CSV, COMPANIES.as_bytes()).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!((r.body["imported"].as_bool(), r.body["dry_run"].as_bool()), (Some(false), Some(true)));
    assert_eq!(app.event_count().await, before);

    // Skipping bad rows records the good ones, with their ids.
    let r = import(&app, &admin, "companies", "?skip_invalid=true", CSV, COMPANIES.as_bytes()).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["imported"], true);
    let ids: Vec<Option<&str>> =
        r.body["rows"].as_array().unwrap().iter().map(|row| row["id"].as_str()).collect();
    assert!(ids[0].is_some() && ids[1].is_some() && ids[2].is_none(), "{ids:?}");
    assert!(r.body["position"].as_i64().unwrap() > 0);
    assert_eq!(r.headers["x-event-position"], r.body["position"].to_string().as_str());
    assert_eq!(unit_codes(&app, &admin).await, ["ACME", "GLOBEX"]);
    let after = app.event_count().await;
    assert_eq!(after, before + 2);

    // The same file again: the good rows are unchanged, with the same ids; no new events.
    let again = import(&app, &admin, "companies", "?skip_invalid=true", CSV, COMPANIES.as_bytes()).await;
    assert_eq!(
        verdicts(&again.body),
        [
            v(2, "unchanged", &[]),
            v(3, "unchanged", &[]),
            v(4, "rejected", &["name"]),
            v(5, "rejected", &["code"])
        ]
    );
    assert_eq!(again.body["rows"][0]["id"], r.body["rows"][0]["id"]);
    let good = "name,code\nAcme Ltd,ACME\nGlobex,globex\n";
    let again = import(&app, &admin, "companies", "", CSV, good.as_bytes()).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.body["totals"], json!({"created": 0, "unchanged": 2, "rejected": 0}));
    assert_eq!(app.event_count().await, after, "importing the same file twice changes nothing");

    // A code taken by another unit, a row twice, an unknown parent: each named.
    let regions = "name,code,company_code\nEast,EAST,ACME\nWest,WEST,acme\nEast again,EAST,ACME\nNowhere,NOWHERE,NOPE\n\
                   Not a region,GLOBEX,GLOBEX\n";
    let r = import(&app, &admin, "regions", "?skip_invalid=true", CSV, regions.as_bytes()).await;
    assert_eq!(
        verdicts(&r.body),
        [
            v(2, "created", &[]),
            v(3, "created", &[]),
            v(4, "rejected", &["code"]),
            v(5, "rejected", &["company_code"]),
            v(6, "rejected", &["code"]),
        ],
        "{r:?}"
    );
}

/// An XLSX workbook whose first sheet holds `rows` (strings; a cell that parses as a whole
/// number is written as a number, as spreadsheets keep codes like 101).
fn workbook(rows: &[&[&str]]) -> Vec<u8> {
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            match cell.parse::<u32>() {
                Ok(n) => sheet.write_number(r as u32, c as u16, n).unwrap(),
                Err(_) => sheet.write_string(r as u32, c as u16, *cell).unwrap(),
            };
        }
    }
    book.save_to_buffer().unwrap()
}

#[tokio::test]
async fn an_xlsx_of_branches_and_a_csv_of_users_import_into_the_right_units() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let ok = |r: &Reply| assert_eq!(r.status, StatusCode::OK, "{r:?}");
    ok(&import(&app, &admin, "companies", "", CSV, b"name,code\nAcme,ACME\nGlobex,GLOBEX\n").await);
    ok(&import(
        &app,
        &admin,
        "regions",
        "",
        CSV,
        b"name,code,company_code\nEast,EAST,ACME\nGEast,EAST,GLOBEX\n",
    )
    .await);

    let branches = workbook(&[
        &["Name", "Code", "Region Code", "Company Code", "Phone"],
        &["Nairobi", "NBI", "EAST", "ACME", "+254 20 123456"],
        &["Branch 101", "101", "EAST", "ACME", ""],
        &["Lost", "LOST", "WEST", "ACME", ""],
        &[],
        &["Bad phone", "BP", "EAST", "ACME", "call us"],
        &["Globex Nairobi", "NBI", "EAST", "GLOBEX", ""],
    ]);
    let r = import(&app, &admin, "branches", "", XLSX, &branches).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(
        verdicts(&r.body["report"]),
        [
            v(2, "created", &[]),
            v(3, "created", &[]),
            v(4, "rejected", &["region_code"]),
            v(6, "rejected", &["phone"]),
            v(7, "created", &[]),
        ]
    );
    let r = import(&app, &admin, "branches", "?skip_invalid=1", XLSX, &branches).await;
    ok(&r);
    let r = import(&app, &admin, "branches", "?skip_invalid=yes", XLSX, &branches).await;
    assert_eq!(r.body["totals"], json!({"created": 0, "unchanged": 3, "rejected": 2}), "{r:?}");
    let units = app.get(&admin, "/api/org/units/").await;
    let branch_101 =
        units.body["items"].as_array().unwrap().iter().find(|u| u["code"] == "101").cloned().unwrap();
    assert_eq!(branch_101["kind"], "branch");
    let nairobi =
        units.body["items"].as_array().unwrap().iter().find(|u| u["phone"].is_string()).cloned().unwrap();
    assert_eq!(nairobi["phone"], "+254 20 123456");

    ok(&import(
        &app,
        &admin,
        "departments",
        "",
        CSV,
        b"name,code,branch_code,company_code\nOps,NBI-OPS,NBI,ACME\n",
    )
    .await);
    let r = import(
        &app,
        &admin,
        "cost-centres",
        "",
        CSV,
        b"name,code,department_code,company_code\nFleet,CC-FLEET,NBI-OPS,ACME\nWrong,CC-X,NBI,ACME\n",
    )
    .await;
    assert_eq!(verdicts(&r.body["report"]), [v(2, "created", &[]), v(3, "rejected", &["department_code"])]);

    // Users: in a unit, at the company, of no unit; bad rows named.
    let users = "email,name,roles,unit_code,company_code\n\
                 ada@acme.example,Ada,staff,NBI-OPS,ACME\n\
                 bo@acme.example,Bo,treasury; staff,,ACME\n\
                 cy@example.example,Cy,staff,,\n\
                 not-an-email,Dee,staff,NBI-OPS,ACME\n\
                 ed@acme.example,Ed,staff;king,NBI-OPS,ACME\n\
                 fay@acme.example,Fay,staff,NOWHERE,ACME\n\
                 ADA@acme.example,Ada Again,staff,NBI-OPS,ACME\n\
                 gus@acme.example,Gus,staff,NBI-OPS,\n";
    let r = import(&app, &admin, "users", "?skip_invalid=true", CSV, users.as_bytes()).await;
    ok(&r);
    assert_eq!(
        verdicts(&r.body),
        [
            v(2, "created", &[]),
            v(3, "created", &[]),
            v(4, "created", &[]),
            v(5, "rejected", &["email"]),
            v(6, "rejected", &["roles"]),
            v(7, "rejected", &["unit_code"]),
            v(8, "rejected", &["email"]),
            v(9, "rejected", &["company_code"]),
        ]
    );
    // Invited, not registered: each gets a mail with a link, and chooses a password there.
    let ada_invitation = r.body["rows"][0]["id"].clone();
    let invitations = app.get(&admin, "/api/invitations/").await;
    let invited: Vec<&str> =
        invitations.body["items"].as_array().unwrap().iter().map(|i| i["email"].as_str().unwrap()).collect();
    assert_eq!(invited, ["cy@example.example", "bo@acme.example", "ada@acme.example"], "{invitations:?}");
    assert_eq!(invitations.body["items"][2]["id"], ada_invitation);
    let mails: i64 = sqlx::query_scalar("SELECT count(*) FROM mail_outbox WHERE category = 'invitation'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(mails, 3);
    let login = json!({"email": "ada@acme.example", "password": PASSWORD});
    let r = app.send(None, Method::POST, "/api/auth/login", Some(login.clone())).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "no user before the invitation is accepted");
    // Again: unchanged (open invitations), no new events, no new mail.
    let before = app.event_count().await;
    let r = import(&app, &admin, "users", "?skip_invalid=true", CSV, users.as_bytes()).await;
    assert_eq!(r.body["totals"], json!({"created": 0, "unchanged": 3, "rejected": 5}), "{r:?}");
    assert_eq!(r.body["rows"][0]["id"], ada_invitation);
    assert_eq!(app.event_count().await, before);
    // Ada accepts: a user in NBI-OPS with her roles, sponsored by whoever imported her.
    let token = app.invitation_token("ada@acme.example").await;
    let r = app.accept_invitation(&token, PASSWORD).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let ada: Uuid = r.body["user"]["id"].as_str().unwrap().parse().unwrap();
    let nbi_ops = units_by_code(&app, &admin).await["NBI-OPS"];
    assert_eq!(r.body["user"]["unit_id"], json!(nbi_ops));
    let r = app.send(None, Method::POST, "/api/auth/login", Some(login)).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let registered_by: Option<String> = sqlx::query_scalar(
        "SELECT payload->'UserRegistered'->>'registered_by' FROM events WHERE aggregate_id = $1 AND sequence = 1",
    )
    .bind(ada.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(registered_by, Some(admin.id.to_string()));
    // Again once she is a user: still unchanged (now her user's id), nothing recorded.
    let before = app.event_count().await;
    let r = import(&app, &admin, "users", "?skip_invalid=true", CSV, users.as_bytes()).await;
    assert_eq!(r.body["totals"], json!({"created": 0, "unchanged": 3, "rejected": 5}), "{r:?}");
    assert_eq!(r.body["rows"][0]["id"], json!(ada));
    assert_eq!(app.event_count().await, before);
    // A row for an open invitation with other roles is rejected, not changed behind the admin.
    let r = import(
        &app,
        &admin,
        "users",
        "",
        CSV,
        b"email,name,roles,unit_code,company_code\nbo@acme.example,Bo,staff,,ACME\n",
    )
    .await;
    assert_eq!(verdicts(&r.body["report"]), [v(2, "rejected", &["email"])], "{r:?}");
}

async fn units_by_code(app: &TestApp, user: &TestUser) -> std::collections::HashMap<String, Uuid> {
    let r = app.get(user, "/api/org/units/").await;
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["code"].as_str().unwrap().to_string(), u["id"].as_str().unwrap().parse().unwrap()))
        .collect()
}

#[tokio::test]
async fn malformed_files_and_callers_get_a_4xx_naming_what_is_wrong() {
    let app = TestApp::spawn().await;
    let admin = app.user(&[Role::Admin]).await;
    let staff = app.user(&[Role::Staff]).await;
    let before = app.event_count().await;
    let r = import(&app, &staff, "companies", "", CSV, b"name,code\nA,A\n").await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "missing_role"), "{r:?}");
    let cases: [(&str, &str, &[u8], u16, &str); 9] = [
        ("planets", CSV, b"name,code\nA,A\n", 404, ""),
        ("companies", "application/json", b"{}", 415, ""),
        ("companies", CSV, b"", 422, "file"),
        ("companies", CSV, b"name,code,colour\nA,A,red\n", 422, "colour"),
        ("regions", CSV, b"name,code\nA,A\n", 422, "company_code"),
        ("companies", CSV, b"name,code\nA,A,extra\n", 422, "file"),
        ("companies", CSV, b"name,code\n\xff,A\n", 422, "file"),
        ("companies", XLSX, b"PK\x03\x04 no zip here", 422, "file"),
        ("companies", XLSX, b"name,code\nA,A\n", 422, "file"),
    ];
    for (what, content_type, body, status, field) in cases {
        let r = import(&app, &admin, what, "", content_type, body).await;
        assert_eq!(
            r.status.as_u16(),
            status,
            "{what} {content_type} {:?}: {r:?}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(r.field(), field, "{r:?}");
    }
    let r = import(&app, &admin, "companies", "?skip_invalid=maybe", CSV, b"name,code\nA,A\n").await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "skip_invalid"));
    // NUL and other control characters in a cell: the row is rejected, naming the column.
    let r = import(
        &app,
        &admin,
        "companies",
        "?skip_invalid=true",
        CSV,
        b"name,code\nNul\x00Corp,NUL\nTab\tCo,TAB\n",
    )
    .await;
    assert_eq!(verdicts(&r.body), [v(2, "rejected", &["name"]), v(3, "rejected", &["name"])], "{r:?}");
    // Too many rows.
    let mut big = String::from("name,code\n");
    for i in 0..=pettycash_commands::import::MAX_ROWS {
        big.push_str(&format!("C{i},C{i}\n"));
    }
    let r = import(&app, &admin, "companies", "", CSV, big.as_bytes()).await;
    assert_eq!((r.status, r.field()), (StatusCode::UNPROCESSABLE_ENTITY, "file"), "{r:?}");
    assert_eq!(app.event_count().await, before, "nothing recorded");

    // An admin of a company imports into their company only.
    let r = import(&app, &admin, "companies", "", CSV, b"name,code\nAcme,ACME\nGlobex,GLOBEX\n").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let acme = units_by_code(&app, &admin).await["ACME"];
    let acme_admin = app.user_in(&[Role::Admin], Some(acme)).await;
    let r = import(
        &app,
        &acme_admin,
        "regions",
        "?skip_invalid=true",
        CSV,
        b"name,code,company_code\nEast,EAST,ACME\nTheirs,THEIRS,GLOBEX\n",
    )
    .await;
    assert_eq!(verdicts(&r.body), [v(2, "created", &[]), v(3, "rejected", &["company_code"])], "{r:?}");
    let r = import(
        &app,
        &acme_admin,
        "companies",
        "?skip_invalid=true",
        CSV,
        b"name,code\nAcme,ACME\nMine,MINE\n",
    )
    .await;
    assert_eq!(verdicts(&r.body), [v(2, "unchanged", &[]), v(3, "rejected", &["row"])], "{r:?}");
    let r =
        import(&app, &acme_admin, "users", "", CSV, b"email,name,roles\nhq@acme.example,HQ,staff\n").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let invitations = app.get(&acme_admin, "/api/invitations/").await;
    let hq = invitations.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "hq@acme.example")
        .cloned()
        .unwrap();
    assert_eq!(hq["unit_id"], json!(acme), "invited into the importing admin's company");
}
