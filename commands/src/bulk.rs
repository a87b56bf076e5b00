//! Bulk payment files (issue #14 [treasury]): the batch file treasury uploads to the mobile
//! money provider's portal (CSV or XLSX: mobile number, amount, reference, name), and the
//! provider's result file read back line by line.
//!
//! Pure: bytes out, a parsed [`Table`] in (reading CSV or XLSX into a table is the API's
//! `upload` module, shared with the organisation import). Matching the lines to payments and
//! applying them is [`crate::CommandService`]'s business.

use crate::import::{Table, TableRow};
use rust_decimal::Decimal;
use serde::Serialize;
use std::str::FromStr;
use utoipa::ToSchema;
use uuid::Uuid;

/// The columns of a batch file, in order.
pub const BATCH_COLUMNS: [&str; 4] = ["MobileNumber", "Amount", "Reference", "Name"];

/// One payment of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchLine {
    /// `2547XXXXXXXX`: [`normalise_msisdn`].
    pub mobile_number: String,
    pub amount: Decimal,
    /// Our reference: the payment's id, which the result file carries back.
    pub reference: Uuid,
    pub name: String,
}

/// A Kenyan mobile number as providers take it, `254` and nine digits, from the ways people
/// write it (`0712 345 678`, `+254712345678`, `254-712-345678`, `712345678`); `None` for
/// anything else.
pub fn normalise_msisdn(text: &str) -> Option<String> {
    let digits: String = text.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')')).collect();
    let digits = digits.strip_prefix('+').unwrap_or(&digits);
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let national = if let Some(rest) = digits.strip_prefix("254") {
        rest
    } else if let Some(rest) = digits.strip_prefix('0') {
        rest
    } else {
        digits
    };
    (national.len() == 9 && matches!(national.as_bytes()[0], b'1' | b'7')).then(|| format!("254{national}"))
}

/// A cell as a spreadsheet will not run it as a formula: text starting with `=`, `+`, `-` or
/// `@` (or a tab or carriage return) gets a leading apostrophe.
pub fn neutralise(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_string()
    }
}

/// The batch as CSV (a header row, then one row per line).
pub fn batch_csv(lines: &[BatchLine]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(BATCH_COLUMNS).expect("writing to memory");
    for l in lines {
        w.write_record([
            l.mobile_number.clone(),
            l.amount.to_string(),
            l.reference.to_string(),
            neutralise(&l.name),
        ])
        .expect("writing to memory");
    }
    w.into_inner().expect("writing to memory")
}

/// The batch as an XLSX workbook: a header row, the amount as a number, column widths.
pub fn batch_xlsx(lines: &[BatchLine]) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("Payments")?;
    let bold = Format::new().set_bold();
    let money = Format::new().set_num_format("#,##0.00");
    for (c, title) in BATCH_COLUMNS.iter().enumerate() {
        sheet.write_string_with_format(0, c as u16, *title, &bold)?;
    }
    for (i, l) in lines.iter().enumerate() {
        let r = i as u32 + 1;
        sheet.write_string(r, 0, &l.mobile_number)?;
        let amount = f64::from_str(&l.amount.to_string()).unwrap_or_default();
        sheet.write_number_with_format(r, 1, amount, &money)?;
        sheet.write_string(r, 2, l.reference.to_string())?;
        sheet.write_string(r, 3, &l.name)?;
    }
    for (c, width) in [14.0, 14.0, 38.0, 32.0].into_iter().enumerate() {
        sheet.set_column_width(c as u16, width)?;
    }
    book.save_to_buffer()
}

/// The provider's verdict on one line of a result file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineOutcome {
    /// The money reached the recipient; the provider's receipt (transaction id).
    Succeeded { receipt: String },
    /// It did not; the provider's result code and reason.
    Failed { result_code: String, reason: String },
}

/// A line of a result file that reads correctly (whether it matches a payment is decided
/// against the batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultLine {
    /// The line's number in the file (the header is 1).
    pub row: usize,
    pub reference: Uuid,
    pub amount: Decimal,
    pub mobile_number: Option<String>,
    pub outcome: LineOutcome,
}

/// A line that was not applied, and why (reported, never applied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LineProblem {
    pub row: usize,
    /// The column at fault, when one is.
    pub column: Option<String>,
    pub message: String,
}

/// The columns a result file must have (any order, case-insensitive), and those it may.
pub const RESULT_COLUMNS: [&str; 3] = ["Reference", "Status", "Amount"];
pub const RESULT_OPTIONAL_COLUMNS: [&str; 4] = ["ReceiptNumber", "ResultCode", "Reason", "MobileNumber"];

/// Reads a provider's result file: each line either reads (a [`ResultLine`]) or is a
/// [`LineProblem`]. `Err` when the file lacks a required column (nothing is applied then).
pub fn read_results(table: &Table) -> Result<Vec<Result<ResultLine, LineProblem>>, LineProblem> {
    let find = |name: &str| table.columns.iter().position(|c| c.trim().eq_ignore_ascii_case(name));
    let mut required = Vec::new();
    for name in RESULT_COLUMNS {
        required.push(find(name).ok_or_else(|| LineProblem {
            row: 1,
            column: Some(name.to_string()),
            message: format!("the file has no `{name}` column (it needs {})", RESULT_COLUMNS.join(", ")),
        })?);
    }
    let (reference, status, amount) = (required[0], required[1], required[2]);
    let receipt = find("ReceiptNumber");
    let result_code = find("ResultCode");
    let reason = find("Reason");
    let mobile = find("MobileNumber");
    Ok(table
        .rows
        .iter()
        .map(|r| read_line(r, reference, status, amount, receipt, result_code, reason, mobile))
        .collect())
}

#[allow(clippy::too_many_arguments)]
fn read_line(
    r: &TableRow,
    reference: usize,
    status: usize,
    amount: usize,
    receipt: Option<usize>,
    result_code: Option<usize>,
    reason: Option<usize>,
    mobile: Option<usize>,
) -> Result<ResultLine, LineProblem> {
    let cell = |i: usize| r.cells.get(i).map(|c| c.trim()).unwrap_or("");
    let opt = |i: Option<usize>| i.map(cell).filter(|c| !c.is_empty());
    let problem =
        |column: &str, message: String| LineProblem { row: r.number, column: Some(column.into()), message };
    let reference = Uuid::parse_str(cell(reference))
        .map_err(|_| problem("Reference", format!("`{}` is not one of our references", cell(reference))))?;
    let amount = Decimal::from_str(cell(amount))
        .ok()
        .filter(|a| *a > Decimal::ZERO)
        .ok_or_else(|| problem("Amount", format!("`{}` is not a positive amount", cell(amount))))?;
    let mobile_number = match opt(mobile) {
        None => None,
        Some(m) => Some(
            normalise_msisdn(m)
                .ok_or_else(|| problem("MobileNumber", format!("`{m}` is not a mobile number")))?,
        ),
    };
    let outcome = match cell(status).to_ascii_lowercase().as_str() {
        "completed" | "success" | "succeeded" | "paid" => LineOutcome::Succeeded {
            receipt: opt(receipt)
                .ok_or_else(|| {
                    problem("ReceiptNumber", "a completed payment needs the provider's receipt".into())
                })?
                .to_string(),
        },
        "failed" | "failure" | "rejected" => LineOutcome::Failed {
            result_code: opt(result_code).unwrap_or("unknown").to_string(),
            reason: opt(reason).unwrap_or("").to_string(),
        },
        other => {
            return Err(problem("Status", format!("`{other}` is neither Completed nor Failed")));
        }
    };
    Ok(ResultLine { row: r.number, reference, amount, mobile_number, outcome })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobile_numbers_are_normalised_to_the_international_form_or_refused() {
        for given in ["0712 345 678", "+254712345678", "254-712-345678", "712345678", "0112345678"] {
            assert!(
                normalise_msisdn(given).is_some_and(|n| n.len() == 12 && n.starts_with("254")),
                "{given}"
            );
        }
        assert_eq!(normalise_msisdn("0712345678").as_deref(), Some("254712345678"));
        for bad in ["", "12345", "07123456789", "0812345678", "+1 202 555 0100", "07l2345678", "=1+2"] {
            assert_eq!(normalise_msisdn(bad), None, "{bad}");
        }
    }

    fn line(name: &str) -> BatchLine {
        BatchLine {
            mobile_number: "254712345678".into(),
            amount: Decimal::from_str("1500.50").unwrap(),
            reference: Uuid::nil(),
            name: name.into(),
        }
    }

    #[test]
    fn the_csv_batch_has_the_providers_columns_and_no_formula_runs() {
        let text = String::from_utf8(batch_csv(&[line("Jane Doe"), line("=HYPERLINK(\"x\")")])).unwrap();
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows[0], "MobileNumber,Amount,Reference,Name");
        assert_eq!(rows[1], format!("254712345678,1500.50,{},Jane Doe", Uuid::nil()));
        assert!(rows[2].ends_with(",\"'=HYPERLINK(\"\"x\"\")\""), "{}", rows[2]);
    }

    #[test]
    fn the_xlsx_batch_reads_back_with_typed_amounts() {
        use calamine::{Data, Reader, Xlsx};
        let bytes = batch_xlsx(&[line("Jane Doe")]).unwrap();
        let mut book: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
        let sheet = book.worksheet_range("Payments").unwrap();
        let rows: Vec<_> = sheet.rows().collect();
        assert_eq!(rows[0][0], Data::String("MobileNumber".into()));
        assert_eq!(rows[1][1], Data::Float(1500.5));
        assert_eq!(rows[1][3], Data::String("Jane Doe".into()));
    }

    fn table(columns: &[&str], rows: &[&[&str]]) -> Table {
        Table {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: rows
                .iter()
                .enumerate()
                .map(|(i, r)| TableRow { number: i + 2, cells: r.iter().map(|c| c.to_string()).collect() })
                .collect(),
        }
    }

    #[test]
    fn result_lines_read_or_say_what_is_wrong() {
        let id = Uuid::now_v7();
        let t = table(
            &["reference", "Status", "Amount", "ReceiptNumber", "ResultCode", "Reason"],
            &[
                &[&id.to_string(), "Completed", "100.00", "QKX1", "", ""],
                &[&id.to_string(), "Failed", "100", "", "2001", "Invalid initiator"],
                &["PCV-12", "Completed", "100", "QKX2", "", ""],
                &[&id.to_string(), "Completed", "-3", "QKX3", "", ""],
                &[&id.to_string(), "Pending", "100", "", "", ""],
                &[&id.to_string(), "Completed", "100", "", "", ""],
            ],
        );
        let lines = read_results(&t).unwrap();
        assert_eq!(
            lines[0],
            Ok(ResultLine {
                row: 2,
                reference: id,
                amount: Decimal::from_str("100.00").unwrap(),
                mobile_number: None,
                outcome: LineOutcome::Succeeded { receipt: "QKX1".into() },
            })
        );
        assert!(
            matches!(&lines[1], Ok(ResultLine { outcome: LineOutcome::Failed { result_code, .. }, .. }) if result_code == "2001")
        );
        let columns: Vec<Option<String>> =
            lines[2..].iter().map(|l| l.as_ref().unwrap_err().column.clone()).collect();
        assert_eq!(
            columns,
            ["Reference", "Amount", "Status", "ReceiptNumber"].map(|c| Some(c.to_string())).to_vec()
        );
        let missing = read_results(&table(&["Reference", "Amount"], &[])).unwrap_err();
        assert_eq!(missing.column.as_deref(), Some("Status"));
    }
}
