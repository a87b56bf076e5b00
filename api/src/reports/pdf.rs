//! PDF through typst, used as a library: the report is written as a small typst document and
//! laid out with the fonts compiled into the binary (`typst-assets`: Libertinus Serif, New
//! Computer Modern, DejaVu Sans Mono), embedded in the PDF. Nothing is read from the file
//! system or the network at run time: the [`World`] below knows one source file and those
//! fonts, and refuses every other file (so no `#import` of a package can fetch anything).
//!
//! Every text that comes from data (titles, filter values, cells) enters the document as a
//! typst *string literal* ([`literal`]), never as markup: `#`, `*`, `$`, `]`, `_` or `@` in a
//! purpose print as themselves and cannot run code or change the layout.
//!
//! Tables repeat their header row on every page (`table.header(repeat: true)`); every page's
//! footer has the title, the generation time and the page number. The PDF's creation date
//! is the report's generation time and its identifier a hash of the report's name and
//! parameters (typst has no other clock or randomness), so the same report gives the same
//! bytes.

use super::{generated_text, period_text};
use chrono::{DateTime, Datelike, Timelike, Utc};
use pettycash_domain::report::{Cell, CellKind, Column, Report};
use std::fmt::Write as _;
use std::sync::LazyLock;
use typst::diag::{FileError, FileResult};
use typst::foundations::{Bytes, Datetime, Smart};
use typst::syntax::{FileId, Source};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};
use typst_layout::PagedDocument;
use typst_pdf::{PdfOptions, Timestamp};

/// The fonts compiled into the binary, parsed once.
struct Fonts {
    book: LazyHash<FontBook>,
    fonts: Vec<Font>,
}

static FONTS: LazyLock<Fonts> = LazyLock::new(|| {
    let fonts: Vec<Font> = typst_assets::fonts().flat_map(|data| Font::iter(Bytes::new(data))).collect();
    Fonts { book: LazyHash::new(FontBook::from_fonts(&fonts)), fonts }
});

static LIBRARY: LazyLock<LazyHash<Library>> = LazyLock::new(|| LazyHash::new(Library::default()));

/// One document: its source and nothing else.
struct Document {
    source: Source,
}

impl World for Document {
    fn library(&self) -> &LazyHash<Library> {
        &LIBRARY
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &FONTS.book
    }

    fn main(&self) -> FileId {
        self.source.id()
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.source.id() {
            Ok(self.source.clone())
        } else {
            Err(FileError::AccessDenied)
        }
    }

    fn file(&self, _id: FileId) -> FileResult<Bytes> {
        Err(FileError::AccessDenied)
    }

    fn font(&self, index: usize) -> Option<Font> {
        FONTS.fonts.get(index).cloned()
    }

    /// No clock: `datetime.today()` fails rather than make the output depend on the day.
    fn today(&self, _offset: Option<typst::foundations::Duration>) -> Option<Datetime> {
        None
    }
}

/// `text` as a typst string literal: `"` and `\` escaped, control characters as `\u{…}`.
pub fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn numeric(kind: CellKind) -> bool {
    matches!(kind, CellKind::Money | CellKind::Integer | CellKind::Number | CellKind::Percent)
}

fn cell_text(cell: &Cell) -> String {
    match cell {
        Cell::Percent(d) => format!("{d} %"),
        Cell::DateTime(t) => t.format("%Y-%m-%d %H:%M").to_string(),
        other => other.to_string(),
    }
}

/// A table of `columns` and `rows`, the header repeated on every page.
fn table(out: &mut String, columns: &[Column], rows: &[Vec<Cell>]) {
    let align: Vec<&str> = columns.iter().map(|c| if numeric(c.kind) { "right" } else { "left" }).collect();
    let _ = writeln!(out, "#table(\n  columns: {},\n  align: ({},),", columns.len(), align.join(", "));
    let titles: Vec<String> = columns.iter().map(|c| format!("strong({})", literal(c.title))).collect();
    let _ = writeln!(out, "  table.header(repeat: true, {}),", titles.join(", "));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| literal(&cell_text(c))).collect();
        let _ = writeln!(out, "  {},", cells.join(", "));
    }
    out.push_str(")\n");
}

/// The typst source of `report`.
pub fn source(report: &Report) -> String {
    let title = literal(&report.title);
    let generated = literal(&format!("{} UTC", generated_text(report)));
    let mut out = String::new();
    let _ = writeln!(out, "#set document(title: {title})");
    let _ = writeln!(
        out,
        "#set page(paper: \"a4\", flipped: true, margin: (x: 1.2cm, top: 1.2cm, bottom: 1.6cm),\n  \
         footer: context text(size: 7pt)[#{title} #h(0.5em) generated #{generated} #h(1fr) \
         page #counter(page).display() of #counter(page).final().first()])"
    );
    out.push_str("#set text(font: \"Libertinus Serif\", size: 8.5pt, lang: \"en\")\n");
    out.push_str("#set table(stroke: 0.4pt + luma(160), inset: (x: 4pt, y: 3pt))\n");
    out.push_str("#show table.cell.where(y: 0): set text(weight: \"bold\")\n");
    let _ = writeln!(out, "#text(size: 15pt, weight: \"bold\", {title})\n");
    out.push_str("#table(columns: 2, stroke: none, inset: (x: 0pt, right: 8pt, y: 2pt),\n");
    let mut facts = vec![("Period".to_string(), period_text(report))];
    facts.extend(report.filters.iter().cloned());
    facts.push(("Generated".into(), format!("{} UTC", generated_text(report))));
    for (label, value) in &facts {
        let _ = writeln!(out, "  strong({}), {},", literal(label), literal(value));
    }
    out.push_str(")\n");
    if !report.summary.is_empty() {
        out.push_str("#heading(level: 2, \"Summary\")\n");
        out.push_str("#table(columns: 3, align: (left, left, right),\n");
        out.push_str("  table.header(strong(\"Figure\"), strong(\"Currency\"), strong(\"Value\")),\n");
        for f in &report.summary {
            let _ = writeln!(
                out,
                "  {}, {}, {},",
                literal(&f.title),
                literal(f.currency.as_deref().unwrap_or("")),
                literal(&cell_text(&f.value))
            );
        }
        out.push_str(")\n");
    }
    for section in &report.sections {
        let _ = writeln!(out, "#heading(level: 2, {})", literal(&section.title));
        if section.rows.is_empty() {
            out.push_str("#emph(\"Nothing in this period.\")\n");
        } else {
            table(&mut out, &section.columns, &section.rows);
        }
    }
    out
}

fn timestamp(t: DateTime<Utc>) -> Option<Timestamp> {
    let d = Datetime::from_ymd_hms(
        t.year(),
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
    )?;
    Some(Timestamp::new_utc(d))
}

/// The report as a PDF.
pub fn document(report: &Report) -> anyhow::Result<Vec<u8>> {
    let world = Document { source: Source::detached(source(report)) };
    let compiled = typst::compile::<PagedDocument>(&world).output;
    // typst memoises layouts across compilations; keep only what recent ones used.
    typst::comemo::evict(10);
    let doc = compiled.map_err(|errors| {
        let messages: Vec<String> = errors.iter().map(|e| e.message.to_string()).collect();
        anyhow::anyhow!("typst: {}", messages.join("; "))
    })?;
    let options = PdfOptions {
        ident: Smart::Custom(format!(
            "pettycash-report:{}:{}",
            report.name,
            serde_json::to_string(&report.params).unwrap_or_default()
        )),
        timestamp: timestamp(report.generated_at),
        ..PdfOptions::default()
    };
    typst_pdf::pdf(&doc, &options).map_err(|errors| {
        let messages: Vec<String> = errors.iter().map(|e| e.message.to_string()).collect();
        anyhow::anyhow!("typst pdf: {}", messages.join("; "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_what_typst_would_read() {
        assert_eq!(literal(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(literal("x\ny\u{7}"), "\"x\\ny\\u{7}\"");
        // Markup characters need nothing inside a string.
        assert_eq!(literal("#set *b* $x$ ]"), "\"#set *b* $x$ ]\"");
    }
}
