//! Reports (issue #15): the list per role, the cash book in every format against a history the
//! test writes through the API and computes itself (JSON; CSV parsed back; XLSX read back
//! with calamine; PDF through `pdftotext`), formula injection, markup in the PDF, byte-stable
//! output for a closed period, parameter errors, and the same figures from the events
//! (`reports::replay`).

use calamine::{Data, Reader, Xlsx};
use chrono::{DateTime, Duration, Utc};
use pettycash_api::reports::{render, Format};
use pettycash_domain::fund::MovementKind;
use pettycash_domain::report::{Json, ReportName, ReportParams, ReportScope, UnitFilter};
use pettycash_domain::{Actor, Role};
use pettycash_projections::reports::cash_book::{self, Line};
use pettycash_projections::reports::ReportContext;
use pettycash_tests::pdf::pdf_text;
use pettycash_tests::serde_json::{json, Value};
use pettycash_tests::{Cast, Reply, TestApp, TestUser};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use std::io::Cursor;
use uuid::Uuid;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn dec(v: &Value) -> Decimal {
    v.as_str().unwrap_or_else(|| panic!("not a decimal string: {v}")).parse().unwrap()
}

/// Percent-encodes a query value (RFC 3339 times carry `+` and `:`).
fn enc(s: &str) -> String {
    s.replace('%', "%25").replace('+', "%2B").replace(':', "%3A")
}

/// The database's clock (what `recorded_at` is written with).
async fn db_now(app: &TestApp) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT clock_timestamp()").fetch_one(&app.pool).await.unwrap()
}

fn event_position(r: &Reply) -> i64 {
    r.headers["x-event-position"].to_str().unwrap().parse().unwrap()
}

/// A raw GET: status, headers and the body's bytes.
async fn get_bytes(
    app: &TestApp,
    user: &TestUser,
    path: &str,
    accept: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = app.client.get(format!("{}{path}", app.address)).bearer_auth(&user.token);
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

/// Number of pages, from `pdfinfo`-free counting of the text's form feeds.
async fn pdf_pages(pdf: &[u8]) -> usize {
    pdf_text(pdf, None).await.matches('\u{c}').count()
}

/// A history: a fund of 10 000 KES; one payment (900) before `from`, three in the period (with
/// references a spreadsheet would run as formulas, and one full of typst markup), then a
/// replenishment back to the float whose bank reference is a formula too.
struct History {
    app: TestApp,
    c: Cast,
    fund: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    position: i64,
    /// (amount, reference) of each movement in the period, in order.
    lines: Vec<(Decimal, String)>,
}

const FORMULA: &str = "=HYPERLINK(\"http://evil.example\",\"x\")";
const PLUS: &str = "+1";
const MARKUP: &str = "#set *bold* $x$ ] \"q\" _u_ @at";
const AT: &str = "@SUM(A1:A2)";

async fn paid(app: &TestApp, c: &Cast, fund: Uuid, amount: &str, reference: &str) -> Reply {
    let id = app.submitted(&c.staff, fund, amount).await;
    app.approve_by(id, &[&c.head]).await;
    let body = json!({"requisition_id": id, "method": "cash", "reference": reference});
    let r = app.post(&c.treasury, "/api/treasury/payments/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "pay: {r:?}");
    r
}

async fn history() -> History {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    app.waive_codes_below(&c.admin, 1_000_000).await;
    let fund = app.fund(&c.admin, "10000").await;
    paid(&app, &c, fund, "900", "V-1").await;
    let from = db_now(&app).await;
    let mut lines = Vec::new();
    for (amount, reference) in [("250.50", FORMULA), ("99.99", PLUS), ("10", MARKUP)] {
        paid(&app, &c, fund, amount, reference).await;
        lines.push((-d(amount), reference.to_string()));
    }
    let raised = app.post(&c.treasury, &format!("/api/funds/{fund}/replenishments"), json!({})).await;
    assert_eq!(raised.status, StatusCode::CREATED, "{raised:?}");
    let path = format!("/api/funds/{fund}/replenishments/{}", raised.id());
    let ok = app.post(&c.cfo, &format!("{path}/approve"), json!({})).await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    let funded = app.post(&c.treasury, &format!("{path}/fund"), json!({"bank_reference": AT})).await;
    assert_eq!(funded.status, StatusCode::OK, "{funded:?}");
    // Back to the float: 10 000 − 900 − 250.50 − 99.99 − 10.
    lines.push((d("1260.49"), AT.to_string()));
    let position = event_position(&funded);
    let to = db_now(&app).await;
    History { app, c, fund, from, to, position, lines }
}

impl History {
    fn query(&self, format: &str) -> String {
        format!(
            "/api/reports/cash-book?fund_id={}&from={}&to={}&min_position={}&format={format}",
            self.fund,
            enc(&self.from.to_rfc3339()),
            enc(&self.to.to_rfc3339()),
            self.position
        )
    }

    fn opening(&self) -> Decimal {
        d("9100")
    }

    /// (amount, balance after, reference) of each line, computed here.
    fn expected(&self) -> Vec<(Decimal, Decimal, String)> {
        let mut balance = self.opening();
        self.lines
            .iter()
            .map(|(amount, reference)| {
                balance += amount;
                (*amount, balance, reference.clone())
            })
            .collect()
    }
}

#[tokio::test]
async fn the_cash_book_in_every_format_has_the_figures_the_history_makes() {
    let h = history().await;
    let expected = h.expected();
    let closing = expected.last().unwrap().1;
    assert_eq!(closing, d("10000"));

    // JSON.
    let (status, headers, body) = get_bytes(&h.app, &h.c.staff, &h.query("json"), None).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/json");
    let report: Value = pettycash_tests::serde_json::from_slice(&body).unwrap();
    assert_eq!(report["name"], "cash-book");
    let figure =
        |key: &str| report["summary"].as_array().unwrap().iter().find(|f| f["key"] == key).unwrap().clone();
    assert_eq!(dec(&figure("opening_balance")["value"]), h.opening());
    assert_eq!(figure("opening_balance")["currency"], "KES");
    assert_eq!(dec(&figure("closing_balance")["value"]), closing);
    assert_eq!(dec(&figure("money_in")["value"]), d("1260.49"));
    assert_eq!(dec(&figure("money_out")["value"]), d("-360.49"));
    assert_eq!(figure("movements")["value"], 4);
    let rows = report["sections"][0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), expected.len() + 2, "brought forward, the movements, carried forward");
    assert_eq!(rows[0]["kind"], "balance brought forward");
    assert_eq!(dec(&rows[0]["balance"]), h.opening());
    for (row, (amount, balance, reference)) in rows[1..=expected.len()].iter().zip(&expected) {
        assert_eq!((dec(&row["amount"]), dec(&row["balance"])), (*amount, *balance), "{row}");
        assert_eq!(row["reference"], json!(reference), "JSON keeps the text as typed");
    }
    assert_eq!(rows[expected.len() + 1]["kind"], "balance carried forward");
    assert_eq!(dec(&rows[expected.len() + 1]["balance"]), closing);
    assert!(report["filters"].as_array().unwrap().iter().any(|f| f["label"] == "Fund"));

    // The same figures from the events alone.
    let auditor = Actor::new(Uuid::nil(), [Role::Auditor]);
    let scope = ReportScope::of(&auditor, ReportName::CashBook).unwrap();
    let params = ReportParams {
        from: report["params"]["from"].as_str().unwrap().parse().unwrap(),
        to: report["params"]["to"].as_str().unwrap().parse().unwrap(),
        units: UnitFilter { fund_id: Some(h.fund), ..Default::default() },
        stuck_days: 7,
        lookback_days: 30,
    };
    let replayed = pettycash_projections::reports::replay(
        ReportName::CashBook,
        &h.app.pool,
        &scope,
        &params,
        Utc::now(),
    )
    .await
    .unwrap();
    let replayed = pettycash_tests::serde_json::to_value(Json(&replayed)).unwrap();
    for part in ["sections", "summary", "title", "filters", "params"] {
        assert_eq!(replayed[part], report[part], "{part}: replay against API");
    }

    // CSV: streamed, parsed back; formulas neutralised, numbers left as numbers.
    let (status, headers, body) = get_bytes(&h.app, &h.c.staff, &h.query("csv"), None).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment; filename=\"cash-book-"), "{disposition}");
    assert!(disposition.ends_with(".csv\""), "{disposition}");
    let mut csv = csv::Reader::from_reader(body.as_slice());
    let header: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, ["position", "at", "kind", "reference", "requisition_id", "amount", "balance"]);
    let records: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), expected.len() + 2);
    assert_eq!(
        (&records[0][2], records[0][6].parse::<Decimal>().unwrap()),
        ("balance brought forward", h.opening())
    );
    for (record, (amount, balance, reference)) in records[1..].iter().zip(&expected) {
        assert_eq!(record[5].parse::<Decimal>().unwrap(), *amount, "{record:?}");
        assert_eq!(record[6].parse::<Decimal>().unwrap(), *balance, "{record:?}");
        let neutral = if reference.starts_with(['=', '+', '-', '@']) {
            format!("'{reference}")
        } else {
            reference.clone()
        };
        assert_eq!(&record[3], neutral, "{record:?}");
    }
    assert_eq!(&records[1][5], "-250.50", "a negative amount stays a number");
    assert_eq!(&records[expected.len() + 1][2], "balance carried forward");

    // The Accept header picks the format too.
    let accept = h.query("csv").replace("&format=csv", "");
    let (_, headers, by_accept) = get_bytes(&h.app, &h.c.staff, &accept, Some("text/csv")).await;
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(by_accept, body);

    // XLSX: typed numbers and dates, the formulas as text.
    let (status, headers, body) = get_bytes(&h.app, &h.c.staff, &h.query("xlsx"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(body)).unwrap();
    assert_eq!(book.sheet_names(), ["Summary", "Movements"]);
    let sheet = book.worksheet_range("Movements").unwrap();
    let cells: Vec<Vec<Data>> = sheet.rows().map(|r| r.to_vec()).collect();
    assert_eq!(cells[0][0], Data::String("Position".into()));
    assert_eq!(cells[0][6], Data::String("Balance".into()));
    assert_eq!(cells[1][6], Data::Float(9100.0));
    for (row, (amount, balance, reference)) in cells[2..].iter().zip(&expected) {
        assert_eq!(row[5], Data::Float(amount.to_string().parse().unwrap()), "{row:?}");
        assert_eq!(row[6], Data::Float(balance.to_string().parse().unwrap()), "{row:?}");
        assert_eq!(row[3], Data::String(reference.clone()), "text, as typed, never a formula: {row:?}");
        assert!(matches!(row[1], Data::DateTime(_)), "a date: {row:?}");
        assert!(matches!(row[0], Data::Float(_)), "a number: {row:?}");
    }
    let formulas = book.worksheet_formula("Movements").unwrap();
    assert!(formulas.used_cells().all(|(_, _, f)| f.is_empty()), "no formula anywhere");
    let summary = book.worksheet_range("Summary").unwrap();
    let text: Vec<String> = summary.rows().flatten().map(|c| c.to_string()).collect();
    assert!(text.iter().any(|t| t == "Generated"), "{text:?}");
    assert!(text.iter().any(|t| t == "Closing balance"), "{text:?}");
    assert!(summary.rows().flatten().any(|c| *c == Data::Float(10000.0)), "{text:?}");

    // PDF: the figures, the references as typed (markup and all), filters and generation time.
    let (status, headers, body) = get_bytes(&h.app, &h.c.staff, &h.query("pdf"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/pdf");
    assert!(body.starts_with(b"%PDF-"));
    let text = pdf_text(&body, None).await;
    for figure in ["9100.00", "10000.00", "-250.50", "8849.50", "8749.51", "8739.51", "1260.49", "-360.49"] {
        assert!(text.contains(figure), "{figure} in\n{text}");
    }
    for reference in [FORMULA, PLUS, AT, MARKUP] {
        assert!(text.contains(reference), "{reference} printed as typed in\n{text}");
    }
    assert!(text.contains("Generated"), "{text}");
    assert!(text.contains("Fund") && text.contains("Test fund"), "{text}");
    assert!(text.contains("Opening balance") && text.contains("Closing balance"), "{text}");
}

#[tokio::test]
async fn a_closed_period_gives_the_same_bytes_apart_from_the_generation_time() {
    let h = history().await;
    // Through the library, with the generation time fixed: identical bytes in every format.
    let auditor = Actor::new(Uuid::nil(), [Role::Auditor]);
    let params = ReportParams {
        from: h.from,
        to: h.to,
        units: UnitFilter { fund_id: Some(h.fund), ..Default::default() },
        stuck_days: 7,
        lookback_days: 30,
    };
    pettycash_tests::wait_for_projections(&h.app.pool, &["cash"]).await;
    let ctx = ReportContext {
        pool: h.app.pool.clone(),
        actor: auditor.clone(),
        scope: ReportScope::of(&auditor, ReportName::CashBook).unwrap(),
        params,
        now: "2030-01-02T03:04:05Z".parse().unwrap(),
    };
    for format in Format::ALL {
        let one =
            render(&pettycash_projections::reports::run(ReportName::CashBook, &ctx).await.unwrap(), format)
                .unwrap();
        let two =
            render(&pettycash_projections::reports::run(ReportName::CashBook, &ctx).await.unwrap(), format)
                .unwrap();
        assert!(one == two, "{format:?} differs between two runs");
    }

    // Through the API, a second later: the same apart from the generation time.
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mut run = Vec::new();
        for format in ["json", "csv", "pdf"] {
            let (status, _, body) = get_bytes(&h.app, &h.c.treasury, &h.query(format), None).await;
            assert_eq!(status, StatusCode::OK);
            run.push(body);
        }
        runs.push(run);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let json = |b: &[u8]| {
        let mut v: Value = pettycash_tests::serde_json::from_slice(b).unwrap();
        assert!(v.as_object_mut().unwrap().remove("generated_at").is_some());
        v
    };
    assert_eq!(json(&runs[0][0]), json(&runs[1][0]));
    assert_eq!(runs[0][1], runs[1][1], "CSV holds no time of its own");
    let without_time = |text: String| -> String {
        text.lines()
            .filter(|l| !l.contains("Generated") && !l.contains("generated"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (a, b) = (pdf_text(&runs[0][2], None).await, pdf_text(&runs[1][2], None).await);
    assert_ne!(a, b, "the generation time is printed");
    assert_eq!(without_time(a), without_time(b));

    // A month's report is named after the month.
    let month = h.to.format("%Y-%m").to_string();
    let path = format!("/api/reports/cash-book?fund_id={}&period={month}&format=csv", h.fund);
    let (status, headers, _) = get_bytes(&h.app, &h.c.treasury, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-disposition"], format!("attachment; filename=\"cash-book-{month}.csv\""));
}

/// A cash book of 150 movements with markup in its references, built by the report's own
/// builder: the PDF has several pages and every page starts its table with the header row.
#[tokio::test]
async fn a_long_pdf_repeats_the_header_row_on_every_page() {
    let from: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
    let mut balance = d("100000");
    let lines: Vec<Line> = (0..150)
        .map(|i| {
            balance -= d("12.34");
            Line {
                position: 1000 + i,
                at: from + Duration::hours(i),
                kind: MovementKind::Disbursement,
                amount: d("-12.34"),
                balance_after: balance,
                reference: Some(format!("#{i} *b* $x$ ] \"q\"")),
                requisition_id: Some(Uuid::from_u128(i as u128)),
            }
        })
        .collect();
    let fund = cash_book::Fund { id: Uuid::nil(), name: "Nairobi [HQ] #1".into(), currency: "KES".into() };
    let params = ReportParams {
        from,
        to: from + Duration::days(30),
        units: UnitFilter { fund_id: Some(fund.id), ..Default::default() },
        stuck_days: 7,
        lookback_days: 30,
    };
    let report =
        cash_book::build(&params, &fund, d("100000"), &lines, "2026-12-01T08:00:00Z".parse().unwrap());
    let pdf = render(&report, Format::Pdf).unwrap();
    let pages = pdf_pages(&pdf).await;
    assert!(pages >= 3, "150 rows take several pages: {pages}");
    for page in 2..=pages as u32 {
        let text = pdf_text(&pdf, Some((page, page))).await;
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
        for title in ["Position", "Time", "Movement", "Reference", "Requisition", "Amount", "Balance"] {
            assert!(first.contains(title), "page {page} starts with the header row: {first:?}");
        }
        assert!(text.contains("2026-12-01T08:00:00Z UTC"), "the footer's generation time on page {page}");
        assert!(text.contains(&format!("page {page} of {pages}")), "page {page}: {text}");
    }
    let all = pdf_text(&pdf, None).await;
    assert!(all.contains("#149 *b* $x$ ] \"q\""), "markup printed as typed");
    assert!(all.contains("Nairobi [HQ] #1"));
    assert!(all.contains("98149.00"), "the last balance: 100000 − 150 × 12.34");
}

#[tokio::test]
async fn the_list_shows_what_each_role_may_run_and_others_are_not_found() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let names = |r: &Reply| -> Vec<String> {
        r.body["reports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect()
    };
    let staff = app.get(&c.staff, "/api/reports/").await;
    assert_eq!(staff.status, StatusCode::OK, "{staff:?}");
    assert_eq!(names(&staff), ["cash-book", "transactions", "spending"]);
    let cash_book = &staff.body["reports"][0];
    assert_eq!(cash_book["formats"], json!(["json", "csv", "xlsx", "pdf"]));
    assert_eq!(cash_book["required"], json!(["fund_id"]));
    assert_eq!(cash_book["title"], "Cash book");
    let head = names(&app.get(&c.head, "/api/reports/").await);
    assert_eq!(head, ["cash-book", "transactions", "spending", "approvals", "exceptions"]);
    let treasury = names(&app.get(&c.treasury, "/api/reports/").await);
    assert!(treasury.contains(&"treasury".to_string()) && !treasury.contains(&"user-activity".to_string()));
    let auditor = names(&app.get(&c.auditor, "/api/reports/").await);
    assert_eq!(auditor.len(), ReportName::ALL.len(), "{auditor:?}");

    let r = app.get(&c.staff, "/api/reports/treasury").await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"), "{r:?}");
    let r = app.get(&c.auditor, "/api/reports/no-such-report").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    let r = app.get(&app.user(&[Role::Staff]).await, "/api/reports/").await;
    assert_eq!(r.status, StatusCode::OK);
    let anonymous = app.send(None, reqwest::Method::GET, "/api/reports/", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_parameters_answer_400_and_unseen_funds_404_naming_the_field() {
    let app = TestApp::spawn().await;
    let c = Cast::new(&app).await;
    let fund = app.fund(&c.admin, "1000").await;
    // The fund is in the read model: a 404 below is visibility, not a lagging projection.
    pettycash_tests::wait_for_projections(&app.pool, &["cash"]).await;
    let base = format!("/api/reports/cash-book?fund_id={fund}");
    for (query, field) in [
        ("/api/reports/cash-book".to_string(), "fund_id"),
        ("/api/reports/cash-book?fund_id=nope".to_string(), "fund_id"),
        (format!("{base}&format=docx"), "format"),
        (format!("{base}&from=2026-11-10&to=2026-11-01"), "to"),
        (format!("{base}&from=yesterday"), "from"),
        (format!("{base}&period=2026-13"), "period"),
        (format!("{base}&period=2026-11&from=2026-11-01"), "period"),
        (format!("{base}&stuck_days=0"), "stuck_days"),
        (format!("{base}&branch_id=x"), "branch_id"),
    ] {
        let r = app.get(&c.treasury, &query).await;
        assert_eq!((r.status, r.field()), (StatusCode::BAD_REQUEST, field), "{query}: {r:?}");
    }
    // The CSV stream answers its errors before any row.
    let r = app.get(&c.treasury, "/api/reports/cash-book?format=csv").await;
    assert_eq!((r.status, r.field()), (StatusCode::BAD_REQUEST, "fund_id"), "{r:?}");

    let r = app.get(&c.treasury, &format!("/api/reports/cash-book?fund_id={}", Uuid::new_v4())).await;
    assert_eq!((r.status, r.field()), (StatusCode::NOT_FOUND, "fund_id"), "{r:?}");
    // A fund of no company is not a company member's.
    let company = app.unit(&c.admin, "company", "ACME", None).await;
    let outsider = app.user_in(&[Role::Treasury], Some(company)).await;
    for format in ["json", "csv", "pdf"] {
        let r = app.get(&outsider, &format!("{base}&format={format}")).await;
        assert_eq!((r.status, r.field()), (StatusCode::NOT_FOUND, "fund_id"), "{format}: {r:?}");
    }
    // The default period: the last 30 days.
    let r = app.get(&c.staff, &base).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
}
