//! The notes and coins of each currency a fund may be counted in: what a cash count
//! (`FundCommand::RecordCount`) accepts. A denomination is named by its face value in the
//! currency's major unit (`"1000"`, `"0.50"`); a value issued both as a note and as a coin
//! (1,000 UGX, 500 TZS, 1 USD) is one denomination, counted together.

use crate::error::DomainError;
use crate::money::Currency;
use rust_decimal::Decimal;
use std::str::FromStr;

/// Whether a denomination is a note or a coin (for display; counts do not depend on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Note,
    Coin,
}

use Form::{Coin, Note};

/// `(face value, form)` of each currency, largest first.
const TABLE: &[(&str, &[(&str, Form)])] = &[
    (
        "KES",
        &[
            ("1000", Note),
            ("500", Note),
            ("200", Note),
            ("100", Note),
            ("50", Note),
            ("20", Coin),
            ("10", Coin),
            ("5", Coin),
            ("1", Coin),
            ("0.50", Coin),
        ],
    ),
    (
        "UGX",
        &[
            ("50000", Note),
            ("20000", Note),
            ("10000", Note),
            ("5000", Note),
            ("2000", Note),
            ("1000", Note),
            ("500", Coin),
            ("200", Coin),
            ("100", Coin),
            ("50", Coin),
        ],
    ),
    (
        "TZS",
        &[
            ("10000", Note),
            ("5000", Note),
            ("2000", Note),
            ("1000", Note),
            ("500", Note),
            ("200", Coin),
            ("100", Coin),
            ("50", Coin),
        ],
    ),
    (
        "USD",
        &[
            ("100", Note),
            ("50", Note),
            ("20", Note),
            ("10", Note),
            ("5", Note),
            ("2", Note),
            ("1", Note),
            ("0.50", Coin),
            ("0.25", Coin),
            ("0.10", Coin),
            ("0.05", Coin),
            ("0.01", Coin),
        ],
    ),
    (
        "EUR",
        &[
            ("500", Note),
            ("200", Note),
            ("100", Note),
            ("50", Note),
            ("20", Note),
            ("10", Note),
            ("5", Note),
            ("2", Coin),
            ("1", Coin),
            ("0.50", Coin),
            ("0.20", Coin),
            ("0.10", Coin),
            ("0.05", Coin),
            ("0.02", Coin),
            ("0.01", Coin),
        ],
    ),
    (
        "GBP",
        &[
            ("50", Note),
            ("20", Note),
            ("10", Note),
            ("5", Note),
            ("2", Coin),
            ("1", Coin),
            ("0.50", Coin),
            ("0.20", Coin),
            ("0.10", Coin),
            ("0.05", Coin),
            ("0.02", Coin),
            ("0.01", Coin),
        ],
    ),
    (
        "JPY",
        &[
            ("10000", Note),
            ("5000", Note),
            ("2000", Note),
            ("1000", Note),
            ("500", Coin),
            ("100", Coin),
            ("50", Coin),
            ("10", Coin),
            ("5", Coin),
            ("1", Coin),
        ],
    ),
];

/// The denominations of `currency`, largest first (`None`: no table for it, so it cannot be
/// counted by denomination).
pub fn of(currency: &Currency) -> Option<Vec<(Decimal, Form)>> {
    TABLE.iter().find(|(code, _)| *code == currency.code()).map(|(_, list)| {
        list.iter().map(|(v, form)| (Decimal::from_str(v).expect("a table value"), *form)).collect()
    })
}

/// The currencies with a table.
pub fn currencies() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|(code, _)| *code)
}

/// One line of a count: how many pieces of one denomination.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pieces {
    /// The face value, as the table writes it (`"0.50"`).
    #[serde(with = "rust_decimal::serde::str")]
    pub denomination: Decimal,
    pub count: u64,
}

/// Checks a count given as `(face value as written, pieces)` against `currency`'s table; the
/// lines (face values normalised, largest first, one per denomination) and their total.
/// An unknown denomination is refused naming it (field `counts`).
pub fn total(currency: &Currency, counts: &[(String, u64)]) -> Result<(Vec<Pieces>, Decimal), DomainError> {
    let Some(table) = of(currency) else {
        return Err(DomainError::invalid(
            "currency",
            format!("{currency} has no denomination table: cash in it cannot be counted here"),
        ));
    };
    let names = || table.iter().map(|(v, _)| v.normalize().to_string()).collect::<Vec<_>>().join(", ");
    let mut lines: Vec<Pieces> = Vec::new();
    for (written, count) in counts {
        let value = Decimal::from_str(written.trim())
            .ok()
            .and_then(|v| table.iter().find(|(t, _)| *t == v).map(|(t, _)| *t))
            .ok_or_else(|| {
                DomainError::invalid(
                    "counts",
                    format!("`{written}` is not a {currency} denomination (they are {})", names()),
                )
            })?;
        if *count > 10_000_000 {
            return Err(DomainError::invalid("counts", format!("{count} pieces of {written}: too many")));
        }
        match lines.iter_mut().find(|l| l.denomination == value) {
            Some(line) => line.count += count,
            None => lines.push(Pieces { denomination: value, count: *count }),
        }
    }
    lines.retain(|l| l.count > 0);
    lines.sort_by_key(|l| std::cmp::Reverse(l.denomination));
    let sum: Decimal = lines.iter().map(|l| l.denomination * Decimal::from(l.count)).sum();
    Ok((lines, currency.rescale(sum)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    #[test]
    fn every_required_currency_has_notes_and_coins_valid_in_its_minor_units() {
        for code in ["KES", "UGX", "TZS", "USD", "EUR", "GBP", "JPY"] {
            let table = of(&c(code)).unwrap_or_else(|| panic!("{code} has a table"));
            assert!(table.iter().any(|(_, f)| *f == Form::Note), "{code} notes");
            assert!(table.iter().any(|(_, f)| *f == Form::Coin), "{code} coins");
            for (v, _) in &table {
                assert_eq!(c(code).validate_positive(*v).unwrap(), c(code).rescale(*v), "{code} {v}");
            }
            assert!(table.windows(2).all(|w| w[0].0 > w[1].0), "{code}: largest first, no duplicate");
        }
        assert_eq!(currencies().count(), 7);
    }

    #[test]
    fn a_count_adds_up_its_pieces_and_names_an_unknown_denomination() {
        let (lines, sum) =
            total(&c("KES"), &[("1000".into(), 3), ("0.5".into(), 3), ("0.50".into(), 1), ("20".into(), 0)])
                .unwrap();
        assert_eq!(sum, Decimal::from_str("3002.00").unwrap());
        assert_eq!(lines.len(), 2, "0.5 and 0.50 are one denomination; none of 20 is no line");
        let err = total(&c("KES"), &[("3".into(), 1)]).unwrap_err();
        assert!(matches!(&err, DomainError::Invalid { field: "counts", message } if message.contains("`3`")));
        let err = total(&c("JPY"), &[("0.50".into(), 1)]).unwrap_err();
        assert_eq!(err.field(), Some("counts"));
    }
}
