//! The advance account's rules with given/when/then (issue #14 [treasury]).

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use pettycash_domain::advance::{AdvanceAccount, AdvanceCommand, AdvanceEvent, Reimbursement};
use pettycash_domain::{Actor, Currency, DomainError, Id, Role};
use rust_decimal::Decimal;
use std::str::FromStr;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}
fn kes() -> Currency {
    Currency::parse("KES").unwrap()
}
fn holder() -> Actor {
    Actor::new(Id::from_u128(1), [Role::Staff])
}
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
}
fn req(n: u128) -> Id {
    Id::from_u128(100 + n)
}

fn requested(n: u128, amount: &str) -> AdvanceEvent {
    AdvanceEvent::AdvanceRequested {
        holder_id: holder().user_id,
        requisition_id: req(n),
        fund_id: Id::from_u128(9),
        currency: kes(),
        amount: d(amount),
    }
}
fn issued(n: u128) -> AdvanceEvent {
    AdvanceEvent::AdvanceIssued {
        requisition_id: req(n),
        payment_id: Id::from_u128(50 + n),
        paid_at: t0(),
        due_at: t0() + Duration::days(7),
    }
}
fn settled(n: u128, spent: &str, returned: &str, after: &str) -> AdvanceEvent {
    AdvanceEvent::AdvanceSettled {
        requisition_id: req(n),
        settlement_id: Id::from_u128(70),
        spent: d(spent),
        returned: d(returned),
        outstanding_after: d(after),
        receipt_ids: vec![],
        note: None,
        reimbursement_requisition_id: None,
        extra_owed: None,
        settled_by: holder().user_id,
        at: t0() + Duration::days(1),
    }
}
fn settle(n: u128, spent: &str, returned: &str) -> AdvanceCommand {
    AdvanceCommand::Settle {
        requisition_id: req(n),
        settlement_id: Id::from_u128(70),
        spent: d(spent),
        returned: d(returned),
        currency: None,
        receipt_ids: vec![],
        note: None,
        reimbursement: None,
        actor: holder(),
        now: t0() + Duration::days(1),
    }
}
fn request(n: u128, block: bool) -> AdvanceCommand {
    AdvanceCommand::Request {
        requisition_id: req(n),
        fund_id: Id::from_u128(9),
        currency: kes(),
        amount: d("500"),
        holder: holder(),
        block_while_unsettled: block,
    }
}

#[test]
fn a_settlement_records_what_remains() {
    TestFramework::<AdvanceAccount>::with(())
        .given(vec![requested(1, "1000.00"), issued(1)])
        .when(settle(1, "600", "0"))
        .then_expect_events(vec![settled(1, "600.00", "0.00", "400.00")]);
}

#[test]
fn never_more_than_is_outstanding_nor_before_payment() {
    TestFramework::<AdvanceAccount>::with(())
        .given(vec![requested(1, "1000.00"), issued(1), settled(1, "600.00", "0.00", "400.00")])
        .when(settle(1, "0", "400.01"))
        .then_expect_error(DomainError::SettlementTooLarge { field: "returned", outstanding: d("400.00") });
    TestFramework::<AdvanceAccount>::with(())
        .given(vec![requested(1, "1000.00"), issued(1), settled(1, "600.00", "0.00", "400.00")])
        .when(settle(1, "300", "100.01"))
        .then_expect_error(DomainError::SettlementTooLarge { field: "spent", outstanding: d("400.00") });
    TestFramework::<AdvanceAccount>::with(())
        .given(vec![requested(1, "1000.00")])
        .when(settle(1, "1", "0"))
        .then_expect_error(DomainError::AdvanceNotIssued);
}

#[test]
fn only_the_holder_settles_and_only_in_the_advances_currency() {
    let mut other = settle(1, "1", "0");
    if let AdvanceCommand::Settle { actor, .. } = &mut other {
        *actor = Actor::new(Id::from_u128(2), [Role::Treasury]);
    }
    TestFramework::<AdvanceAccount>::with(())
        .given(vec![requested(1, "1000.00"), issued(1)])
        .when(other)
        .then_expect_error(DomainError::NotRequester { action: "settle" });
    let mut usd = settle(1, "1", "0");
    if let AdvanceCommand::Settle { currency, .. } = &mut usd {
        *currency = Some(Currency::parse("USD").unwrap());
    }
    TestFramework::<AdvanceAccount>::with(())
        .given(vec![requested(1, "1000.00"), issued(1)])
        .when(usd)
        .then_expect_error(DomainError::CurrencyMismatch { expected: "KES".into(), got: "USD".into() });
}

#[test]
fn extra_spending_is_claimed_only_by_the_settlement_that_settles_the_rest() {
    let with_claim = |spent: &str| {
        let mut c = settle(1, spent, "0");
        if let AdvanceCommand::Settle { reimbursement, .. } = &mut c {
            *reimbursement = Some(Reimbursement { requisition_id: req(9), amount: d("250") });
        }
        c
    };
    let result = TestFramework::<AdvanceAccount>::with(())
        .given(vec![requested(1, "1000.00"), issued(1)])
        .when(with_claim("500"))
        .inspect_result();
    assert!(matches!(result, Err(DomainError::Invalid { field: "extra_owed", .. })), "{result:?}");
    let events = TestFramework::<AdvanceAccount>::with(())
        .given(vec![requested(1, "1000.00"), issued(1)])
        .when(with_claim("1000"))
        .inspect_result()
        .unwrap();
    assert!(matches!(
        &events[0],
        AdvanceEvent::AdvanceSettled { reimbursement_requisition_id: Some(r), extra_owed: Some(x), .. }
            if *r == req(9) && *x == d("250.00")
    ));
}

#[test]
fn an_unsettled_advance_blocks_another_unless_the_setting_allows_it() {
    TestFramework::<AdvanceAccount>::with(())
        .given(vec![requested(1, "1000.00"), issued(1)])
        .when(request(2, true))
        .then_expect_error(DomainError::AdvanceOutstanding { requisition_id: req(1) });
    TestFramework::<AdvanceAccount>::with(())
        .given(vec![requested(1, "1000.00"), issued(1)])
        .when(request(2, false))
        .then_expect_events(vec![requested(2, "500.00")]);
    // Settled in full, it blocks nothing.
    TestFramework::<AdvanceAccount>::with(())
        .given(vec![requested(1, "1000.00"), issued(1), settled(1, "900.00", "100.00", "0.00")])
        .when(request(2, true))
        .then_expect_events(vec![requested(2, "500.00")]);
    // Paying a second while the first is unsettled is blocked too.
    TestFramework::<AdvanceAccount>::with(())
        .given(vec![requested(1, "1000.00"), requested(2, "500.00"), issued(1)])
        .when(AdvanceCommand::Issue {
            requisition_id: req(2),
            payment_id: Id::from_u128(52),
            paid_at: t0(),
            due_days: 7,
            block_while_unsettled: true,
        })
        .then_expect_error(DomainError::AdvanceOutstanding { requisition_id: req(1) });
}

#[test]
fn overdue_is_recorded_once_after_the_due_date_while_something_is_outstanding() {
    let overdue = |days: i64| AdvanceCommand::RecordOverdue {
        requisition_id: req(1),
        now: t0() + Duration::days(days),
    };
    TestFramework::<AdvanceAccount>::with(())
        .given(vec![requested(1, "1000.00"), issued(1)])
        .when(overdue(6))
        .then_expect_error(DomainError::NotDueYet);
    TestFramework::<AdvanceAccount>::with(())
        .given(vec![requested(1, "1000.00"), issued(1), settled(1, "600.00", "0.00", "400.00")])
        .when(overdue(8))
        .then_expect_events(vec![AdvanceEvent::AdvanceOverdue {
            requisition_id: req(1),
            due_at: t0() + Duration::days(7),
            outstanding: d("400.00"),
            at: t0() + Duration::days(8),
        }]);
    TestFramework::<AdvanceAccount>::with(())
        .given(vec![requested(1, "1000.00"), issued(1), settled(1, "1000.00", "0.00", "0.00")])
        .when(overdue(8))
        .then_expect_error(DomainError::NotDueYet);
}
