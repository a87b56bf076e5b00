//! Uploaded tables (the organisation import): a CSV or XLSX file read into text, a header and
//! its rows, each row with its number in the file (the header is row 1). What the cells mean
//! is the import's business (`pettycash_commands::import`); here only the file is read.
//!
//! A malformed file is a 4xx naming `file` and, where it can, the row: never a 500. Limits: the
//! body limit of every request (`startup::BODY_LIMIT`, 413), [`MAX_COLUMNS`] columns, the
//! import's row limit (counted here too, so that reading stops there), and for XLSX (a zip)
//! [`XLSX_UNPACKED_MAX`] bytes unpacked, checked from the archive's directory before anything
//! is unpacked (the zip reader refuses an entry that unpacks to more than it declares). The
//! XLSX sheet is read cell by cell: a sheet that claims a vast range is never laid out in
//! memory.

use crate::error::ApiError;
use axum::http::StatusCode;
use calamine::{DataRef, Reader, Xlsx};
use pettycash_commands::import::{Table, TableRow, MAX_ROWS};
use std::collections::BTreeMap;
use std::io::Cursor;

/// The media type of a CSV file.
pub const CSV: &str = "text/csv";
/// The media type of an XLSX workbook.
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
/// Most columns a file may have.
pub const MAX_COLUMNS: usize = 32;
/// Most bytes the parts of an XLSX file may unpack to, together.
pub const XLSX_UNPACKED_MAX: u64 = 32 * 1024 * 1024;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_file", message).with_field("file")
}

/// Reads `bytes` as the file type `media_type` says (`text/csv` or the XLSX media type); 415
/// for another.
pub fn read(media_type: &str, bytes: &[u8]) -> Result<Table, ApiError> {
    let table = match media_type {
        CSV => read_csv(bytes)?,
        XLSX => read_xlsx(bytes)?,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("send the file as `Content-Type: {CSV}` or `Content-Type: {XLSX}`"),
            ))
        }
    };
    if table.columns.is_empty() {
        return Err(invalid("the file is empty: its first row names the columns"));
    }
    Ok(table)
}

/// Rows are taken up to one past the import's limit, which then refuses the file.
fn enough(rows: &[TableRow]) -> bool {
    rows.len() > MAX_ROWS
}

fn blank(cells: &[String]) -> bool {
    cells.iter().all(|c| c.trim().is_empty())
}

fn read_csv(bytes: &[u8]) -> Result<Table, ApiError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
    let mut table = Table::default();
    let mut record = csv::ByteRecord::new();
    let mut number = 0;
    loop {
        number += 1;
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(invalid(format!("row {number}: not valid CSV: {e}"))),
        }
        let cells = record
            .iter()
            .map(|cell| String::from_utf8(cell.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| invalid(format!("row {number}: not UTF-8 text; save the file as UTF-8 CSV")))?;
        if number == 1 {
            if cells.len() > MAX_COLUMNS {
                return Err(invalid(format!("the file has {} columns; at most {MAX_COLUMNS}", cells.len())));
            }
            table.columns = cells;
            continue;
        }
        if cells.len() > table.columns.len() && !blank(&cells[table.columns.len()..]) {
            return Err(invalid(format!(
                "row {number} has {} cells, more than the {} columns the first row names",
                cells.len(),
                table.columns.len()
            )));
        }
        if !blank(&cells) {
            table.rows.push(TableRow { number, cells });
            if enough(&table.rows) {
                break;
            }
        }
    }
    Ok(table)
}

fn read_xlsx(bytes: &[u8]) -> Result<Table, ApiError> {
    let not_xlsx = || invalid("not an XLSX workbook (save it as Excel Workbook .xlsx, or send CSV)");
    // What its parts unpack to, as the archive declares it (the zip reader holds each part to
    // its declared size), before calamine unpacks anything.
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|_| not_xlsx())?;
    let mut unpacked: u64 = 0;
    for i in 0..archive.len() {
        let part = archive.by_index_raw(i).map_err(|_| not_xlsx())?;
        unpacked = unpacked.saturating_add(part.size());
    }
    if unpacked > XLSX_UNPACKED_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the workbook unpacks to {unpacked} bytes; at most {XLSX_UNPACKED_MAX}"),
        )
        .with_field("file"));
    }
    let mut workbook: Xlsx<_> =
        Xlsx::new(Cursor::new(bytes)).map_err(|e| invalid(format!("{}: {e}", not_xlsx().message)))?;
    let sheet =
        workbook.sheet_names().into_iter().next().ok_or_else(|| invalid("the workbook has no sheet"))?;
    let mut cells = workbook
        .worksheet_cells_reader(&sheet)
        .map_err(|e| invalid(format!("the first sheet cannot be read: {e}")))?;
    // Rows by number (1-based), cells by column; the first row with anything in it is the
    // header.
    let mut rows: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    while let Some(cell) =
        cells.next_cell().map_err(|e| invalid(format!("the first sheet cannot be read: {e}")))?
    {
        let (row, column) = cell.get_position();
        let (row, column) = (row.saturating_add(1), column as usize);
        let text = match cell.get_value() {
            DataRef::Empty => continue,
            DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
            DataRef::SharedString(s) => s.to_string(),
            DataRef::Int(i) => i.to_string(),
            // A code typed as a number (101) is the text `101`, not `101.0`.
            DataRef::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
            DataRef::Float(f) => f.to_string(),
            DataRef::Bool(b) => b.to_string(),
            DataRef::DateTime(d) => d.as_f64().to_string(),
            DataRef::Error(e) => {
                return Err(invalid(format!(
                    "row {row}, column {}: the cell holds the error {e}",
                    column + 1
                )))
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        if column >= MAX_COLUMNS {
            return Err(invalid(format!(
                "row {row} has a value in column {}; at most {MAX_COLUMNS} columns",
                column + 1
            )));
        }
        if !rows.contains_key(&row) && rows.len() > MAX_ROWS + 1 {
            break; // the header and one row past the limit: the import refuses the file
        }
        let cells = rows.entry(row).or_default();
        if cells.len() <= column {
            cells.resize(column + 1, String::new());
        }
        cells[column] = text;
    }
    let mut rows = rows.into_iter();
    let Some((_, columns)) = rows.next() else { return Ok(Table::default()) };
    let width = columns.len();
    let mut table = Table { columns, rows: Vec::new() };
    for (number, mut cells) in rows {
        if cells.len() > width {
            return Err(invalid(format!(
                "row {number} has a value in column {}, right of the columns the first row names",
                cells.len()
            )));
        }
        cells.resize(width, String::new());
        table.rows.push(TableRow { number: number as usize, cells });
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_keep_their_numbers_and_blank_rows_are_left_out() {
        let table = read(CSV, b"\xEF\xBB\xBFname,code\r\nAcme,ACME\r\n,\r\n\"Globex, Inc\",GLX\n").unwrap();
        assert_eq!(table.columns, ["name", "code"]);
        let rows: Vec<(usize, Vec<String>)> = table.rows.into_iter().map(|r| (r.number, r.cells)).collect();
        assert_eq!(
            rows,
            [
                (2, vec!["Acme".to_string(), "ACME".into()]),
                (4, vec!["Globex, Inc".to_string(), "GLX".into()])
            ]
        );
    }

    #[test]
    fn malformed_files_are_refused_naming_the_file_and_the_row() {
        for (media_type, bytes, status) in [
            (CSV, &b""[..], 422),
            (CSV, b"name,code\nA,B,C\n", 422),
            (CSV, b"name,code\n\xff\xfe,B\n", 422),
            (CSV, b"name,code\n\"unterminated,B\n", 200),
            (XLSX, b"name,code\n", 422),
            (XLSX, b"PK\x03\x04 not really", 422),
            ("application/json", b"{}", 415),
        ] {
            match read(media_type, bytes) {
                Ok(_) => assert_eq!(status, 200, "{media_type}: {:?}", String::from_utf8_lossy(bytes)),
                Err(e) => {
                    assert_eq!(e.status.as_u16(), status, "{media_type}: {e:?}");
                    if status == 422 {
                        assert_eq!(e.field.as_deref(), Some("file"));
                    }
                }
            }
        }
    }
}
