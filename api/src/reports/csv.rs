//! CSV: a header row of the columns' keys, then the rows; numbers as plain decimals (no
//! thousands separators, `.` for the point), dates as ISO 8601.
//!
//! Formula injection: a spreadsheet opening the file treats a cell starting with `=`, `+`,
//! `-`, `@` (and tab or carriage return, which some strip first) as a formula. Text cells
//! (purposes, payees, references: what users typed) that start so get a leading `'`; money and
//! numbers are typed cells, never text, so a negative amount stays `-1250.00`.

use pettycash_domain::report::{Cell, Column, Report};

/// Text that a spreadsheet would not read as a formula: `'` before a leading `=`, `+`, `-`,
/// `@`, tab or carriage return.
pub fn neutralise(text: &str) -> std::borrow::Cow<'_, str> {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}").into(),
        _ => text.into(),
    }
}

/// One cell as CSV text (before quoting).
pub fn field(cell: &Cell) -> std::borrow::Cow<'_, str> {
    match cell {
        Cell::Text(t) => neutralise(t),
        other => other.to_string().into(),
    }
}

/// One CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180).
fn quoted(field: &str, out: &mut Vec<u8>) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(field.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}

fn line<'a>(fields: impl Iterator<Item = std::borrow::Cow<'a, str>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f) in fields.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        quoted(&f, &mut out);
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The header line: the columns' keys.
pub fn header(columns: &[Column]) -> Vec<u8> {
    line(columns.iter().map(|c| c.key.into()))
}

/// One row's line.
pub fn row(cells: &[Cell]) -> Vec<u8> {
    line(cells.iter().map(field))
}

/// A report that is not streamed: each section (header and rows), an empty line between two.
/// No title lines: the first line is a header, as tools that read CSV expect.
pub fn sections(report: &Report) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for (i, section) in report.sections.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend(header(&section.columns));
        for cells in &section.rows {
            out.extend(row(cells));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn formulas_are_neutralised_and_numbers_are_not() {
        for t in ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(field(&Cell::Text(t.into())), format!("'{t}"));
        }
        assert_eq!(field(&Cell::Text("Fuel = 3 l".into())), "Fuel = 3 l");
        assert_eq!(field(&Cell::Money(Decimal::new(-125000, 2))), "-1250.00");
        assert_eq!(row(&[Cell::Text("a,\"b\"".into()), Cell::Integer(1)]), b"\"a,\"\"b\"\"\",1\r\n");
    }
}
