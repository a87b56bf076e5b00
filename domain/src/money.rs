//! Money: `rust_decimal::Decimal` amounts in one ISO 4217 currency. Never a float.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Currencies the service accepts, with their minor units (digits after the decimal point),
/// from ISO 4217. A fund has exactly one currency; everything paid from it is in that currency.
const CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2),
    ("AUD", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("BWP", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("DKK", 2),
    ("EGP", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("GHS", 2),
    ("HKD", 2),
    ("INR", 2),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("MAD", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MZN", 2),
    ("NGN", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PLN", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("TND", 3),
    ("TZS", 2),
    ("UGX", 0),
    ("USD", 2),
    ("VND", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("ZAR", 2),
    ("ZMW", 2),
];

/// The most digits after the decimal point any currency above has (KWD, BHD, ...): amounts in
/// an unknown currency are judged at this unit.
pub const FINEST_MINOR_UNITS: u32 = 3;

/// The largest amount accepted for any single float, requisition or payment.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0); // 1e9

/// An ISO 4217 currency code the service knows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    /// Parses an ISO 4217 code (case-insensitive).
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let upper = code.trim().to_ascii_uppercase();
        CURRENCIES
            .iter()
            .find(|(c, _)| *c == upper)
            .map(|(c, _)| Currency((*c).to_string()))
            .ok_or_else(|| MoneyError::UnknownCurrency(code.to_string()))
    }

    pub fn code(&self) -> &str {
        &self.0
    }

    /// Digits after the decimal point: 2 for USD/EUR/KES, 0 for JPY, 3 for KWD.
    pub fn minor_units(&self) -> u32 {
        CURRENCIES.iter().find(|(c, _)| *c == self.0).map(|(_, m)| *m).unwrap_or(2)
    }

    /// Checks that `amount` is a valid positive amount of this currency and returns it with
    /// exactly the currency's number of decimals (`12.5` USD becomes `12.50`).
    pub fn validate_positive(&self, amount: Decimal) -> Result<Decimal, MoneyError> {
        if amount <= Decimal::ZERO {
            return Err(MoneyError::NotPositive);
        }
        if amount > MAX_AMOUNT {
            return Err(MoneyError::TooLarge(MAX_AMOUNT));
        }
        if amount.normalize().scale() > self.minor_units() {
            return Err(MoneyError::TooManyDecimals { currency: self.0.clone(), digits: self.minor_units() });
        }
        Ok(self.rescale(amount))
    }

    /// `amount` shown with exactly this currency's decimals.
    pub fn rescale(&self, amount: Decimal) -> Decimal {
        let mut a = amount;
        a.rescale(self.minor_units());
        a
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Currency::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How amounts are written for people (mail; the runtime setting `currency_display`). JSON
/// amounts are never affected: they stay decimal strings beside a separate currency code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CurrencyDisplay {
    /// `1500.00 KES`: the amount as stored, then the ISO code (what mail always showed).
    #[default]
    Code,
    /// `KSh 1,500.00`: the local symbol first (the code when there is none), thousands grouped.
    Symbol,
}

impl CurrencyDisplay {
    pub const ALL: [CurrencyDisplay; 2] = [CurrencyDisplay::Code, CurrencyDisplay::Symbol];
    /// The text forms, for error messages.
    pub const NAMES: &'static str = "`code`, `symbol`";

    pub fn as_str(self) -> &'static str {
        match self {
            CurrencyDisplay::Code => "code",
            CurrencyDisplay::Symbol => "symbol",
        }
    }

    /// `amount` of `currency` written this way, with the currency's decimals.
    pub fn format(self, amount: Decimal, currency: &Currency) -> String {
        let amount = currency.rescale(amount);
        match self {
            CurrencyDisplay::Code => format!("{amount} {currency}"),
            CurrencyDisplay::Symbol => {
                let symbol =
                    SYMBOLS.iter().find(|(c, _)| *c == currency.code()).map_or(currency.code(), |(_, s)| s);
                format!("{symbol} {}", grouped(amount))
            }
        }
    }
}

impl std::str::FromStr for CurrencyDisplay {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        CurrencyDisplay::ALL.into_iter().find(|d| d.as_str() == s).ok_or(())
    }
}

/// Local symbols of the currencies that have a well-known one; the others show their code.
const SYMBOLS: &[(&str, &str)] = &[
    ("EUR", "€"),
    ("GBP", "£"),
    ("GHS", "GH₵"),
    ("INR", "₹"),
    ("JPY", "¥"),
    ("KES", "KSh"),
    ("KWD", "KD"),
    ("NGN", "₦"),
    ("RWF", "FRw"),
    ("TZS", "TSh"),
    ("UGX", "USh"),
    ("USD", "$"),
    ("ZAR", "R"),
];

/// `1234567.50` as `1,234,567.50`.
fn grouped(amount: Decimal) -> String {
    let text = amount.abs().to_string();
    let (whole, fraction) = text.split_once('.').map_or((text.as_str(), None), |(w, f)| (w, Some(f)));
    let mut out = String::with_capacity(text.len() + whole.len() / 3 + 1);
    if amount.is_sign_negative() && !amount.is_zero() {
        out.push('-');
    }
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if let Some(f) = fraction {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// Why an amount or currency was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not a supported ISO 4217 currency code")]
    UnknownCurrency(String),
    #[error("amount must be greater than zero")]
    NotPositive,
    #[error("amount must not exceed {0}")]
    TooLarge(Decimal),
    #[error("{currency} amounts have at most {digits} decimal places")]
    TooManyDecimals { currency: String, digits: u32 },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn usd_allows_two_decimals_and_pads() {
        let usd = Currency::parse("usd").unwrap();
        assert_eq!(usd.validate_positive(d("12.5")).unwrap().to_string(), "12.50");
        assert_eq!(usd.validate_positive(d("12.500")).unwrap().to_string(), "12.50");
        assert!(matches!(usd.validate_positive(d("12.505")), Err(MoneyError::TooManyDecimals { .. })));
    }

    #[test]
    fn jpy_allows_no_decimals() {
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(jpy.validate_positive(d("1500")).unwrap().to_string(), "1500");
        assert!(jpy.validate_positive(d("1500.5")).is_err());
    }

    #[test]
    fn zero_negative_and_huge_are_refused() {
        let kes = Currency::parse("KES").unwrap();
        assert_eq!(kes.validate_positive(Decimal::ZERO), Err(MoneyError::NotPositive));
        assert_eq!(kes.validate_positive(d("-1")), Err(MoneyError::NotPositive));
        assert!(matches!(kes.validate_positive(d("1000000000.01")), Err(MoneyError::TooLarge(_))));
    }

    #[test]
    fn amounts_are_written_by_code_or_by_symbol_with_thousands_grouped() {
        let kes = Currency::parse("KES").unwrap();
        assert_eq!(CurrencyDisplay::Code.format(d("1500"), &kes), "1500.00 KES");
        assert_eq!(CurrencyDisplay::Symbol.format(d("1500"), &kes), "KSh 1,500.00");
        assert_eq!(CurrencyDisplay::Symbol.format(d("1234567.5"), &kes), "KSh 1,234,567.50");
        assert_eq!(CurrencyDisplay::Symbol.format(d("999.99"), &kes), "KSh 999.99");
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(CurrencyDisplay::Symbol.format(d("100000"), &jpy), "¥ 100,000");
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(CurrencyDisplay::Symbol.format(d("1000"), &kwd), "KD 1,000.000");
        // No well-known symbol: the code.
        let mwk = Currency::parse("MWK").unwrap();
        assert_eq!(CurrencyDisplay::Symbol.format(d("25000"), &mwk), "MWK 25,000.00");
    }

    #[test]
    fn unknown_currency_is_refused() {
        assert!(Currency::parse("XYZ").is_err());
        assert!(serde_json::from_str::<Currency>("\"ABC\"").is_err());
    }
}
