//! XLSX (rust_xlsxwriter): a "Summary" sheet (title, period, filters, generation time and the
//! summary figures), then one worksheet per section with a bold header row that stays in view
//! and prints on every page.
//!
//! Cells are typed: money, integers, numbers and percentages are numbers with a number format
//! (a spreadsheet number is a binary double, so amounts are converted at this edge only; the
//! exact decimal is in JSON and CSV), dates and times are dates. Text is written as text
//! cells, which a spreadsheet never evaluates: `=HYPERLINK(…)` typed into a purpose stays that
//! text. The file's creation time is the report's generation time (rust_xlsxwriter's zip
//! entries carry a fixed time), so the same report gives the same bytes.

use super::{generated_text, period_text};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use pettycash_domain::report::{Cell, CellKind, Column, Report};
use rust_decimal::prelude::ToPrimitive;
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook, Worksheet, XlsxError};

struct Formats {
    bold: Format,
    title: Format,
    money: Format,
    integer: Format,
    number: Format,
    percent: Format,
    date: Format,
    datetime: Format,
}

impl Formats {
    fn new() -> Self {
        Self {
            bold: Format::new().set_bold(),
            title: Format::new().set_bold().set_font_size(14),
            money: Format::new().set_num_format("#,##0.00"),
            integer: Format::new().set_num_format("0"),
            number: Format::new().set_num_format("#,##0.##"),
            percent: Format::new().set_num_format("0.0\"%\""),
            date: Format::new().set_num_format("yyyy-mm-dd"),
            datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
        }
    }
}

fn date(d: NaiveDate) -> Result<ExcelDateTime, XlsxError> {
    ExcelDateTime::from_ymd(d.year() as u16, d.month() as u8, d.day() as u8)
}

fn datetime(t: DateTime<Utc>) -> Result<ExcelDateTime, XlsxError> {
    ExcelDateTime::from_timestamp(t.timestamp())
}

fn write_cell(sheet: &mut Worksheet, f: &Formats, row: u32, col: u16, cell: &Cell) -> Result<(), XlsxError> {
    let number = |d: &rust_decimal::Decimal| d.to_f64().unwrap_or_default();
    match cell {
        Cell::Empty => {}
        Cell::Text(t) => {
            sheet.write_string(row, col, t)?;
        }
        Cell::Money(d) => {
            sheet.write_number_with_format(row, col, number(d), &f.money)?;
        }
        Cell::Integer(i) => {
            sheet.write_number_with_format(row, col, *i as f64, &f.integer)?;
        }
        Cell::Number(d) => {
            sheet.write_number_with_format(row, col, number(d), &f.number)?;
        }
        Cell::Percent(d) => {
            sheet.write_number_with_format(row, col, number(d), &f.percent)?;
        }
        Cell::Date(d) => {
            sheet.write_datetime_with_format(row, col, date(*d)?, &f.date)?;
        }
        Cell::DateTime(t) => {
            sheet.write_datetime_with_format(row, col, datetime(*t)?, &f.datetime)?;
        }
    }
    Ok(())
}

/// A column's width in characters: its title's or its widest cell's, within bounds.
fn width(column: &Column, index: usize, rows: &[Vec<Cell>]) -> f64 {
    let typical = match column.kind {
        CellKind::Money | CellKind::Number => 14,
        CellKind::Integer | CellKind::Percent => 10,
        CellKind::Date => 12,
        CellKind::DateTime => 20,
        CellKind::Text => 10,
    };
    let widest =
        rows.iter().filter_map(|r| r.get(index)).map(|c| c.to_string().chars().count()).max().unwrap_or(0);
    (column.title.chars().count().max(typical).max(widest) + 2).min(60) as f64
}

/// A sheet name Excel accepts: at most 31 characters, none of `[]:*?/\`, unique.
fn sheet_name(title: &str, taken: &[String]) -> String {
    let clean: String =
        title.chars().map(|c| if "[]:*?/\\".contains(c) { ' ' } else { c }).take(28).collect::<String>();
    let clean = clean.trim().trim_matches('\'').to_string();
    let clean = if clean.is_empty() { "Sheet".to_string() } else { clean };
    let mut name = clean.clone();
    let mut n = 2;
    while taken.iter().any(|t| t.eq_ignore_ascii_case(&name)) {
        name = format!("{clean} {n}");
        n += 1;
    }
    name
}

pub fn workbook(report: &Report) -> anyhow::Result<Vec<u8>> {
    let f = Formats::new();
    let mut book = Workbook::new();
    book.set_properties(
        &DocProperties::new().set_title(&report.title).set_creation_datetime(&datetime(report.generated_at)?),
    );
    let mut names = vec!["Summary".to_string()];

    let summary = book.add_worksheet();
    summary.set_name("Summary")?;
    summary.write_string_with_format(0, 0, &report.title, &f.title)?;
    let mut row = 2;
    let label = |sheet: &mut Worksheet, row: u32, text: &str, value: &str| -> Result<(), XlsxError> {
        sheet.write_string_with_format(row, 0, text, &f.bold)?;
        sheet.write_string(row, 1, value)?;
        Ok(())
    };
    label(summary, row, "Period", &period_text(report))?;
    row += 1;
    for (name, value) in &report.filters {
        label(summary, row, name, value)?;
        row += 1;
    }
    summary.write_string_with_format(row, 0, "Generated", &f.bold)?;
    summary.write_datetime_with_format(row, 1, datetime(report.generated_at)?, &f.datetime)?;
    summary.write_string(row, 2, format!("{} (UTC)", generated_text(report)))?;
    row += 2;
    if !report.summary.is_empty() {
        for (col, title) in ["Figure", "Currency", "Value"].into_iter().enumerate() {
            summary.write_string_with_format(row, col as u16, title, &f.bold)?;
        }
        row += 1;
        for figure in &report.summary {
            summary.write_string(row, 0, &figure.title)?;
            if let Some(currency) = &figure.currency {
                summary.write_string(row, 1, currency)?;
            }
            write_cell(summary, &f, row, 2, &figure.value)?;
            row += 1;
        }
    }
    summary.set_column_width(0, 24)?;
    summary.set_column_width(1, 36)?;
    summary.set_column_width(2, 24)?;

    for section in &report.sections {
        let name = sheet_name(&section.title, &names);
        names.push(name.clone());
        let sheet = book.add_worksheet();
        sheet.set_name(&name)?;
        for (col, column) in section.columns.iter().enumerate() {
            sheet.write_string_with_format(0, col as u16, column.title, &f.bold)?;
            sheet.set_column_width(col as u16, width(column, col, &section.rows))?;
        }
        for (r, cells) in section.rows.iter().enumerate() {
            for (col, cell) in cells.iter().enumerate() {
                write_cell(sheet, &f, r as u32 + 1, col as u16, cell)?;
            }
        }
        sheet.set_freeze_panes(1, 0)?;
        sheet.set_repeat_rows(0, 0)?;
        sheet.set_landscape();
    }
    Ok(book.save_to_buffer()?)
}
