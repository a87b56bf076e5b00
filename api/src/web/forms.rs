//! Forms and tables of the admin and audit pages, described in Rust and drawn by one template
//! (`templates/form.html`, `templates/table.html`): every control with its label, its hint and
//! the error of the last attempt beside it (`aria-invalid`, `aria-describedby`), the values
//! typed kept when a form is shown again after a refusal.
//!
//! A refusal of the command a form asked for is a [`Failure`]: the form it came from, the
//! field the `ApiError` names (shown beside that control; no field or an unknown one: above
//! the form), the message, and what was sent.

use crate::error::ApiError;

/// One option of a select or a checkbox group.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Choice {
    pub fn new(value: impl Into<String>, label: impl Into<String>) -> Self {
        Self { value: value.into(), label: label.into(), selected: false }
    }
}

/// A control and its label.
pub struct Field {
    /// `{form id}-{name}`: the control's id, the label's `for`.
    pub id: String,
    pub name: String,
    pub label: String,
    /// An `<input type>` (`text`, `email`, `password`, `date`, `datetime-local`, `month`,
    /// `file`, `hidden`, `checkbox`), or `select`, or `checkboxes` (a group of one name), or
    /// `group` and `end`: the start of a `<fieldset>` (its legend, hint and error: a refusal
    /// that names the group, such as `tiers`) and its end, around the fields between them
    /// (see [`Form::group`]).
    pub kind: &'static str,
    pub value: String,
    pub required: bool,
    pub hint: Option<String>,
    pub error: Option<String>,
    pub options: Vec<Choice>,
    /// `inputmode` of a text input (`decimal` for amounts).
    pub inputmode: Option<&'static str>,
}

impl Field {
    pub fn new(name: &str, label: &str, kind: &'static str) -> Self {
        Self {
            id: String::new(),
            name: name.into(),
            label: label.into(),
            kind,
            value: String::new(),
            required: false,
            hint: None,
            error: None,
            options: vec![],
            inputmode: None,
        }
    }

    pub fn text(name: &str, label: &str) -> Self {
        Self::new(name, label, "text")
    }

    /// A text input for an amount (a decimal; `inputmode=decimal` for phones).
    pub fn amount(name: &str, label: &str) -> Self {
        Self { inputmode: Some("decimal"), ..Self::new(name, label, "text") }
    }

    pub fn hidden(name: &str, value: impl Into<String>) -> Self {
        Self { value: value.into(), ..Self::new(name, name, "hidden") }
    }

    pub fn select(name: &str, label: &str, options: Vec<Choice>) -> Self {
        Self { options, ..Self::new(name, label, "select") }
    }

    pub fn checkboxes(name: &str, label: &str, options: Vec<Choice>) -> Self {
        Self { options, ..Self::new(name, label, "checkboxes") }
    }

    /// `fields` between the start and the end of a `<fieldset>` named `name`: a group's rows
    /// (each a group of its own) or a form's group ([`Form::group`]).
    pub fn group(name: &str, legend: &str, hint: Option<&str>, fields: Vec<Field>) -> Vec<Field> {
        let start = Self { hint: hint.map(String::from), ..Self::new(name, legend, "group") };
        std::iter::once(start).chain(fields).chain([Self::new(name, legend, "end")]).collect()
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn value(mut self, value: impl Into<String>) -> Self {
        self.value = value.into();
        for o in &mut self.options {
            o.selected = o.value == self.value;
        }
        self
    }

    /// The ids of its hint and error (`aria-describedby`).
    pub fn described_by(&self) -> String {
        let mut ids = vec![];
        if self.hint.is_some() {
            ids.push(format!("{}-hint", self.id));
        }
        if self.error.is_some() {
            ids.push(format!("{}-error", self.id));
        }
        ids.join(" ")
    }

    fn keeps_value(&self) -> bool {
        !matches!(self.kind, "password" | "file" | "hidden" | "group" | "end")
    }
}

/// A form.
pub struct Form {
    pub id: String,
    pub action: String,
    /// `post` (with the CSRF token) or `get`.
    pub method: &'static str,
    pub submit: String,
    pub fields: Vec<Field>,
    /// A refusal that names none of its fields.
    pub error: Option<String>,
    pub multipart: bool,
    pub csrf_token: String,
    /// Fields side by side (a row's action, a filter), not one under the other.
    pub inline: bool,
}

impl Form {
    pub fn post(id: impl Into<String>, action: impl Into<String>, submit: &str, csrf_token: &str) -> Self {
        Self {
            id: id.into(),
            action: action.into(),
            method: "post",
            submit: submit.into(),
            fields: vec![],
            error: None,
            multipart: false,
            csrf_token: csrf_token.into(),
            inline: false,
        }
    }

    pub fn get(id: impl Into<String>, action: impl Into<String>, submit: &str) -> Self {
        Self { method: "get", inline: true, ..Self::post(id, action, submit, "") }
    }

    pub fn inline(mut self) -> Self {
        self.inline = true;
        self
    }

    pub fn field(mut self, mut field: Field) -> Self {
        field.id = format!("{}-{}", self.id, id_part(&field.name));
        self.fields.push(field);
        self
    }

    /// `fields` in a `<fieldset>` named `name` with its legend and hint: a refusal naming
    /// `name` (the rows as a whole, e.g. `tiers`) is shown under the legend. Groups nest.
    pub fn group(self, name: &str, legend: &str, hint: Option<&str>, fields: Vec<Field>) -> Self {
        Field::group(name, legend, hint, fields).into_iter().fold(self, Form::field)
    }

    /// Shows `failure` if it came from this form: the values sent back in their controls, the
    /// error beside the field it names.
    pub fn with_failure(mut self, failure: Option<&Failure>) -> Self {
        let Some(failure) = failure.filter(|f| f.form == self.id) else { return self };
        let mut placed = false;
        for field in &mut self.fields {
            if field.keeps_value() {
                let sent: Vec<&str> = failure
                    .values
                    .iter()
                    .filter(|(n, _)| *n == field.name)
                    .map(|(_, v)| v.as_str())
                    .collect();
                field.value = sent.first().copied().unwrap_or_default().to_string();
                for o in &mut field.options {
                    o.selected = sent.contains(&o.value.as_str());
                }
            }
            if failure.field.as_deref() == Some(field.name.as_str())
                && !matches!(field.kind, "hidden" | "end")
            {
                field.error = Some(failure.message.clone());
                placed = true;
            }
        }
        if !placed {
            self.error = Some(failure.message.clone());
        }
        self
    }
}

/// A field's name as a part of an id: `tiers[0].up_to` as `tiers-0-up_to` (no brackets or
/// dots, which a CSS selector would have to escape).
fn id_part(name: &str) -> String {
    let mut id = String::new();
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' };
        if !(c == '-' && (id.is_empty() || id.ends_with('-'))) {
            id.push(c);
        }
    }
    id.trim_end_matches('-').to_string()
}

/// A refused form: which form, the field named, the message, what was sent.
#[derive(Debug, Clone)]
pub struct Failure {
    pub form: String,
    pub field: Option<String>,
    pub message: String,
    pub values: Vec<(String, String)>,
}

impl Failure {
    pub fn of(form: &str, error: &ApiError, values: &Pairs) -> Self {
        // Beside its field a message need not name the field again (`reorder_level: must …`).
        let message = error
            .field
            .as_deref()
            .and_then(|f| error.message.strip_prefix(f))
            .and_then(|rest| rest.strip_prefix(": "))
            .unwrap_or(&error.message);
        Self {
            form: form.into(),
            field: error.field.clone(),
            message: super::session::sentence(message),
            values: values.0.iter().filter(|(n, _)| n != super::csrf::FIELD).cloned().collect(),
        }
    }
}

/// A form's fields as sent, in order (a checkbox group sends its name once per box ticked).
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct Pairs(pub Vec<(String, String)>);

impl Pairs {
    /// The first value of `name`, trimmed (`""` when absent).
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.trim())
    }

    /// The first value of `name`, trimmed, or `None` when absent or blank.
    pub fn opt(&self, name: &str) -> Option<&str> {
        Some(self.get(name)).filter(|v| !v.is_empty())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(n, _)| n == name).map(|(_, v)| v.trim()).collect()
    }

    /// `name` as an amount, as the API reads one (`extract::Amount`); blank: `None`. Not a
    /// number: 422 naming the field.
    pub fn amount(&self, name: &str) -> Result<Option<rust_decimal::Decimal>, ApiError> {
        self.opt(name)
            .map(|v| {
                serde_json::from_value::<crate::extract::Amount>(serde_json::Value::String(v.into()))
                    .map(|a| a.0)
                    .map_err(|e| ApiError::unprocessable(name, e.to_string()))
            })
            .transpose()
    }

    /// `name` as an id; blank: `None`. Not an id: 422 naming the field.
    pub fn id(&self, name: &str) -> Result<Option<uuid::Uuid>, ApiError> {
        self.opt(name)
            .map(|v| {
                uuid::Uuid::parse_str(v)
                    .map_err(|_| ApiError::unprocessable(name, format!("`{v}` is not an id")))
            })
            .transpose()
    }
}

/// A cell of a table.
pub struct Cell {
    pub text: String,
    /// `num` (right-aligned figures), `status ok` …, or empty.
    pub class: &'static str,
}

impl Cell {
    pub fn new(text: impl Into<String>) -> Self {
        Self { text: text.into(), class: "" }
    }

    pub fn num(text: impl Into<String>) -> Self {
        Self { text: text.into(), class: "num" }
    }
}

/// A row: its cells and the forms acting on it (deactivate, close, …).
pub struct Row {
    pub cells: Vec<Cell>,
    pub actions: Vec<Form>,
}

/// A table with a caption, scrolling inside its box on a narrow screen.
pub struct Table {
    pub id: String,
    pub caption: String,
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
    /// Shown instead of an empty table.
    pub empty: String,
}

impl Table {
    pub fn new(id: &str, caption: &str, headers: &[&str], empty: &str) -> Self {
        Self {
            id: id.into(),
            caption: caption.into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: vec![],
            empty: empty.into(),
        }
    }

    pub fn has_actions(&self) -> bool {
        self.rows.iter().any(|r| !r.actions.is_empty())
    }
}

/// A part of a page: a heading, a paragraph, a table, a form, in that order.
#[derive(Default)]
pub struct Block {
    pub heading: Option<String>,
    pub text: Option<String>,
    pub table: Option<Table>,
    pub form: Option<Form>,
    /// A paragraph in the error style (something the page must say loudly).
    pub alert: Option<String>,
    /// Preformatted text (a command to run).
    pub code: Option<String>,
}

impl Block {
    pub fn heading(text: impl Into<String>) -> Self {
        Self { heading: Some(text.into()), ..Self::default() }
    }

    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    pub fn table(mut self, table: Table) -> Self {
        self.table = Some(table);
        self
    }

    pub fn form(mut self, form: Form) -> Self {
        self.form = Some(form);
        self
    }

    pub fn alert(mut self, text: impl Into<String>) -> Self {
        self.alert = Some(text.into());
        self
    }

    pub fn code(mut self, text: impl Into<String>) -> Self {
        self.code = Some(text.into());
        self
    }
}

/// A link of an area's own navigation (the admin pages, the audit pages).
pub struct SectionLink {
    pub label: &'static str,
    pub href: String,
    pub current: bool,
}

/// A page of the admin or audit area: a heading, the area's own navigation, an introduction,
/// then its blocks.
#[derive(askama::Template)]
#[template(path = "area.html")]
pub struct AreaPage {
    pub layout: super::layout::Layout,
    /// The area's name (the label of its navigation).
    pub area: &'static str,
    pub heading: String,
    pub sections: Vec<SectionLink>,
    pub intro: Option<String>,
    pub blocks: Vec<Block>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_goes_beside_the_field_it_names_and_keeps_what_was_typed() {
        let sent = Pairs(vec![
            ("csrf_token".into(), "t".into()),
            ("name".into(), "Till".into()),
            ("roles".into(), "staff".into()),
            ("roles".into(), "treasury".into()),
        ]);
        let error = ApiError::unprocessable("name", "name: is taken");
        let failure = Failure::of("f", &error, &sent);
        let roles = vec![
            Choice::new("staff", "Staff"),
            Choice::new("auditor", "Auditor"),
            Choice::new("treasury", "T"),
        ];
        let form = Form::post("f", "/x", "Go", "t")
            .field(Field::text("name", "Name"))
            .field(Field::checkboxes("roles", "Roles", roles))
            .with_failure(Some(&failure));
        assert_eq!(form.fields[0].error.as_deref(), Some("Is taken."), "the field's name not repeated");
        assert_eq!(form.fields[0].value, "Till");
        assert_eq!(form.fields[0].described_by(), "f-name-error");
        let ticked: Vec<_> = form.fields[1].options.iter().map(|o| o.selected).collect();
        assert_eq!(ticked, [true, false, true]);
        assert!(form.error.is_none());

        let other =
            Form::post("g", "/x", "Go", "t").field(Field::text("name", "Name")).with_failure(Some(&failure));
        assert!(other.fields[0].error.is_none() && other.error.is_none(), "another form's failure");
        let unnamed = Failure { field: Some("nothing-here".into()), ..failure.clone() };
        let form =
            Form::post("f", "/x", "Go", "t").field(Field::text("name", "Name")).with_failure(Some(&unnamed));
        assert_eq!(form.error.as_deref(), Some("Is taken."), "above the form");
    }

    #[test]
    fn a_failure_naming_a_group_goes_under_its_legend_and_the_rows_keep_what_was_typed() {
        let sent =
            Pairs(vec![("tiers[1].up_to".into(), "100".into()), ("tiers[1].chain".into(), "cfo".into())]);
        let rows = |i: usize| {
            vec![
                Field::amount(&format!("tiers[{i}].up_to"), "Up to"),
                Field::text(&format!("tiers[{i}].chain"), "Roles"),
            ]
        };
        let form = |error: ApiError| {
            Form::post("p", "/x", "Go", "t")
                .group(
                    "tiers",
                    "Tiers",
                    Some("Smallest first."),
                    rows(0).into_iter().chain(rows(1)).collect(),
                )
                .with_failure(Some(&Failure::of("p", &error, &sent)))
        };
        let whole = form(ApiError::unprocessable("tiers", "tier bounds must be positive and increasing"));
        let ids: Vec<_> = whole.fields.iter().map(|f| (f.kind, f.id.as_str())).collect();
        assert_eq!(ids[0], ("group", "p-tiers"));
        assert_eq!(ids[3], ("text", "p-tiers-1-up_to"), "an id a selector takes as it is");
        assert_eq!(ids[5], ("end", "p-tiers"));
        assert_eq!(whole.fields[0].error.as_deref(), Some("Tier bounds must be positive and increasing."));
        assert_eq!(whole.fields[0].described_by(), "p-tiers-hint p-tiers-error");
        assert!(whole.fields[5].error.is_none() && whole.error.is_none(), "once, under the legend");
        assert_eq!((whole.fields[3].value.as_str(), whole.fields[4].value.as_str()), ("100", "cfo"));
        assert_eq!(whole.fields[1].value, "", "a row not sent stays empty");

        let one = form(ApiError::unprocessable("tiers[1].chain", "`boss` is not a role"));
        assert_eq!(one.fields[4].error.as_deref(), Some("`boss` is not a role."));
        assert!(one.fields[0].error.is_none());
    }
}
