//! The OpenAPI document, generated from the handlers' annotations (utoipa).

use crate::routes::{
    advances, alerts, auth, budgets, bulk_payments, delegations, fund_ops, funds, invitations, mail, meta,
    org, payments, policy, reads, receipts, reports, requisitions, review, settings, users,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Petty Cash API", description = "Event-sourced petty cash management. Amounts are decimal strings."),
    paths(
        meta::index, meta::health,
        auth::login, auth::logout, auth::me, mail::get_preferences, mail::put_preferences,
        users::create_user, users::grant_role, users::revoke_role, users::list_users,
        users::assign_unit, users::deactivate, users::reactivate,
        invitations::invite, invitations::list, invitations::resend, invitations::revoke,
        invitations::lookup, invitations::accept,
        delegations::grant, delegations::list, delegations::revoke,
        org::open_unit, org::list_units, org::rename_unit, org::close_unit, org::import,
        funds::open_fund, funds::get_fund,
        fund_ops::change_settings, fund_ops::request_replenishment, fund_ops::approve_replenishment,
        fund_ops::reject_replenishment, fund_ops::fund_replenishment, fund_ops::record_count,
        fund_ops::close_period, fund_ops::approve_variance, fund_ops::reject_variance, fund_ops::close_fund,
        policy::get_policy, policy::put_policy, policy::put_thresholds,
        settings::get_settings, settings::put_setting,
        requisitions::create, requisitions::get_one, requisitions::edit, requisitions::history,
        requisitions::submit, requisitions::approve, requisitions::reject, requisitions::request_changes,
        requisitions::cancel, requisitions::confirm_urgency, requisitions::deny_urgency,
        requisitions::revert_fast_track, requisitions::override_approval,
        review::dismiss_duplicate, review::review, review::flag,
        payments::pay, payments::request_code, payments::get_payment, payments::reconcile,
        payments::provider_callback,
        bulk_payments::request_code, bulk_payments::create, bulk_payments::list, bulk_payments::get_one,
        bulk_payments::file, bulk_payments::import_results,
        advances::settle, advances::get_one, advances::list,
        alerts::list, alerts::get_one, alerts::acknowledge, alerts::resolve,
        receipts::upload, receipts::download,
        reads::list_requisitions, reads::approvals, reads::list_payments, reads::list_funds,
        reads::fund_ledger, reads::dashboard,
        budgets::list_categories, budgets::create_category, budgets::rename_category,
        budgets::deactivate_category, budgets::list_cost_centres, budgets::set_budget, budgets::budget_report,
        reports::list, reports::run,
    ),
    modifiers(&Security),
    security(("bearer" = []), ("cookie" = [])),
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::extract::SESSION_COOKIE))),
        );
    }
}
