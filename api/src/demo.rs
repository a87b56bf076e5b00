//! The demo organisation: one user per role, two funds, requisitions in every state. Loaded
//! on the first start of the embedded default and by `pettycash demo`.

use anyhow::Context;
use pettycash_commands::service::NewRequisition;
use pettycash_commands::{CommandContext, CommandService, RequestMeta};
use pettycash_domain::fund::PaymentMethod;
use pettycash_domain::{Actor, Role};
use rand::distributions::{Alphanumeric, DistString};
use rust_decimal::Decimal;
use sqlx::PgPool;

pub const DEMO_DOMAIN: &str = "demo.pettycash.local";

/// A demo login, printed once.
#[derive(Debug, Clone)]
pub struct DemoLogin {
    pub role: Role,
    pub email: String,
    pub password: String,
}

/// True when the demo organisation was already loaded.
pub async fn is_loaded(pool: &PgPool) -> anyhow::Result<bool> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email LIKE $1")
        .bind(format!("%@{DEMO_DOMAIN}"))
        .fetch_one(pool)
        .await?;
    Ok(n > 0)
}

/// Loads the demo organisation through the real command service (so every event carries
/// metadata and every rule is checked). Returns the logins.
pub async fn load(service: &CommandService) -> anyhow::Result<Vec<DemoLogin>> {
    if is_loaded(service.store().pool()).await? {
        anyhow::bail!("the demo organisation is already loaded (users @{DEMO_DOMAIN} exist)");
    }
    let operator = CommandContext::operator("demo");
    let mut logins = Vec::new();
    let mut actors = std::collections::HashMap::new();
    for role in Role::ALL {
        // Random, with what the default password policy asks for: upper, lower, digit.
        let password = format!("Pc{}7", Alphanumeric.sample_string(&mut rand::thread_rng(), 14));
        let email = format!("{}@{DEMO_DOMAIN}", role.as_str().replace('_', "."));
        let name = format!("Demo {}", role.as_str().replace('_', " "));
        let user = service
            .register_user(&operator, &email, &name, vec![role], Some(&password))
            .await
            .with_context(|| format!("registering demo {role}"))?;
        actors.insert(role, Actor::new(user.value.id, [role]));
        logins.push(DemoLogin { role, email, password });
    }
    let as_role = |role: Role| {
        CommandContext::user(
            actors[&role].clone(),
            RequestMeta {
                request_id: format!("demo-{}", uuid::Uuid::new_v4()),
                client_ip: None,
                user_agent: None,
            },
        )
    };
    let admin = as_role(Role::Admin);
    let treasury_id = actors[&Role::Treasury].user_id;
    let hq = service
        .open_fund(&admin, "Nairobi HQ float", "KES", Decimal::from(50_000), Some(treasury_id), None)
        .await?;
    service
        .open_fund(&admin, "Mombasa branch float", "KES", Decimal::from(20_000), Some(treasury_id), None)
        .await?;
    let fund_id = hq.value.id;

    let staff = as_role(Role::Staff);
    let new = |amount: i64, purpose: &str, payee: &str, submit: bool| NewRequisition {
        fund_id,
        amount: Decimal::from(amount),
        currency: None,
        purpose: purpose.into(),
        payee: Some(payee.into()),
        category: Some("office".into()),
        submit,
        origin: None,
        advance: false,
        urgent_reason: None,
    };
    let head = as_role(Role::DepartmentHead);
    let gfm = as_role(Role::GroupFinanceManager);

    service.create_requisition(&staff, new(500, "Printer paper (draft)", "Stationers Ltd", false)).await?;
    service
        .create_requisition(&staff, new(800, "Courier to the regional office", "FastCourier", true))
        .await?;

    let changes = service.create_requisition(&staff, new(1_200, "Team lunch", "Java House", true)).await?;
    service
        .request_changes(&head, changes.value.id, "Attach the attendee list and split drinks", None)
        .await?;

    let approved = service
        .create_requisition(&staff, new(2_500, "Replacement office chair", "Furniture Hub", true))
        .await?;
    service.approve_requisition(&head, approved.value.id, None).await?;
    service.approve_requisition(&gfm, approved.value.id, None).await?;

    let paid =
        service.create_requisition(&staff, new(650, "Taxi to client site", "Little Cab", true)).await?;
    service.approve_requisition(&head, paid.value.id, None).await?;
    service
        .pay_without_code(
            &as_role(Role::Treasury),
            paid.value.id,
            PaymentMethod::Cash,
            Some("PV-0001".into()),
        )
        .await?;

    let rejected =
        service.create_requisition(&staff, new(300, "Personal phone airtime", "Safaricom", true)).await?;
    service.reject_requisition(&head, rejected.value.id, "Personal expenses are not covered").await?;

    let cancelled =
        service.create_requisition(&staff, new(150, "Duplicate request", "Stationers Ltd", true)).await?;
    service.cancel_requisition(&staff, cancelled.value.id, Some("Entered twice")).await?;
    Ok(logins)
}

/// The logins as printable lines.
pub fn format_logins(logins: &[DemoLogin]) -> String {
    let mut out = String::from("Demo logins (role, email, password):\n");
    for l in logins {
        out.push_str(&format!("  {:<22} {:<42} {}\n", l.role.as_str(), l.email, l.password));
    }
    out
}
