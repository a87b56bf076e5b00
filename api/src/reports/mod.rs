//! The formats of reports: JSON, CSV (streamed for long reports), XLSX and PDF. The figures
//! are [`pettycash_projections::reports`]'s [`Report`]; this module only writes them, and
//! writes the same report to the same bytes (nothing random, no clock: the only time in a
//! file is the report's `generated_at`), so a report for a closed period differs between two
//! runs only by its generation time.

pub mod csv;
pub mod pdf;
pub mod xlsx;

use pettycash_domain::report::{Json, Report};

/// A format a report can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Xlsx,
    Pdf,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Json, Format::Csv, Format::Xlsx, Format::Pdf];

    /// Its `format=` value and file extension.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Pdf => "pdf",
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::Pdf => "application/pdf",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// The first media type of an `Accept` header that names a format (`None`: none does, e.g.
    /// `*/*`; the caller's default applies).
    pub fn from_accept(accept: &str) -> Option<Self> {
        accept.split(',').find_map(|part| {
            let media = part.split(';').next().unwrap_or("").trim();
            Self::ALL
                .into_iter()
                .find(|f| f.media_type().split(';').next().is_some_and(|m| m.eq_ignore_ascii_case(media)))
        })
    }
}

/// The report written in `format` (CSV: the whole report's sections; long reports stream
/// instead, see [`csv`]).
pub fn render(report: &Report, format: Format) -> anyhow::Result<Vec<u8>> {
    match format {
        Format::Json => Ok(serde_json::to_vec(&Json(report))?),
        Format::Csv => csv::sections(report),
        Format::Xlsx => xlsx::workbook(report),
        Format::Pdf => pdf::document(report),
    }
}

/// The period as people read it: `2026-11-01 to 2026-11-30` (whole days), or the instants.
pub fn period_text(report: &Report) -> String {
    let (from, to) = (report.params.from, report.params.to);
    let midnight = |t: chrono::DateTime<chrono::Utc>| t.time() == chrono::NaiveTime::MIN;
    if midnight(from) && midnight(to) {
        let last = to.date_naive().pred_opt().unwrap_or(to.date_naive());
        format!("{} to {}", from.date_naive(), last)
    } else {
        let f = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        format!("{} to {} (exclusive)", f(from), f(to))
    }
}

/// The generation time as printed on every format.
pub fn generated_text(report: &Report) -> String {
    report.generated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
