//! Expense categories with their general-ledger codes: one catalogue per company (one stream,
//! aggregate type `category_catalogue`, id the company's; [`catalogue_id`]), managed by that
//! company's admins (create, rename, deactivate). A category's `code` is unique within its
//! company, inactive ones included (a code once used keeps meaning the same category in
//! reports); codes are upper-cased like unit codes.
//!
//! Requisitions choose a category by id (`category_id`). The free text of the first
//! requisitions (`category`, issue [core]) stays what it was: a label, shown as it was given.
//! How a text given today maps ([`Catalogue::resolve`]): to the company's active category whose
//! code or name it is (case-insensitive); a text that names none is refused once the company
//! has active categories, and kept as a label only while it has none. Stored events are never
//! mapped: the upcaster cannot know the catalogue, and mapping by today's catalogue would make
//! a replay depend on today's configuration.
//!
//! Cost centres are the organisation's `cost_centre` units (`crate::organisation`): code, name
//! and owning department are theirs, so there is one list of them, not two.

use crate::error::{clean_text, DomainError};
use crate::role::Role;
use crate::{Actor, Id};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

pub const CODE_MAX: usize = 32;
pub const NAME_MAX: usize = 200;
pub const GL_CODE_MAX: usize = 32;

/// The catalogue stream of `company` (`None`: the organisation with no units, the nil id).
pub fn catalogue_id(company: Option<Id>) -> Id {
    company.unwrap_or(Id::nil())
}

/// One expense category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub id: Id,
    pub code: String,
    pub name: String,
    /// The general-ledger account its spending is booked to.
    pub gl_code: String,
    pub active: bool,
}

/// A company's categories, in the order they were created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalogue {
    pub company: Option<Id>,
    pub categories: Vec<Category>,
}

/// What a requisition records about its category: the chosen category (`None`: none chosen)
/// and the free-text label (`category`, kept as given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chosen {
    pub category_id: Option<Id>,
    pub label: Option<String>,
}

impl Catalogue {
    pub fn get(&self, id: Id) -> Option<&Category> {
        self.categories.iter().find(|c| c.id == id)
    }

    /// True when the company has a category to choose: then every requisition needs one.
    pub fn has_active(&self) -> bool {
        self.categories.iter().any(|c| c.active)
    }

    /// The active category `id`, or 422 on `field` (another company's category is not in this
    /// catalogue, so it is "no category" here, like an unknown id).
    pub fn active(&self, id: Id, field: &'static str) -> Result<&Category, DomainError> {
        match self.get(id) {
            Some(c) if c.active => Ok(c),
            Some(_) => Err(DomainError::invalid(field, "this category is inactive")),
            None => Err(DomainError::invalid(field, "no category of your company has this id")),
        }
    }

    /// The active category whose code or name `text` is (case-insensitive, trimmed).
    pub fn by_text(&self, text: &str) -> Option<&Category> {
        let text = text.trim();
        self.categories
            .iter()
            .filter(|c| c.active)
            .find(|c| c.code.eq_ignore_ascii_case(text) || c.name.to_lowercase() == text.to_lowercase())
    }

    /// What a new requisition records, from the `category_id` and the free-text `category`
    /// its requester gave (see the module's documentation for the mapping).
    pub fn resolve(&self, category_id: Option<Id>, text: Option<&str>) -> Result<Chosen, DomainError> {
        let label = text.map(str::trim).filter(|t| !t.is_empty()).map(str::to_string);
        if let Some(id) = category_id {
            self.active(id, "category_id")?;
            return Ok(Chosen { category_id: Some(id), label });
        }
        match &label {
            Some(text) => match self.by_text(text) {
                Some(c) => Ok(Chosen { category_id: Some(c.id), label }),
                None if self.has_active() => Err(DomainError::invalid(
                    "category",
                    "no active category of your company has this code or name; choose one by `category_id`",
                )),
                None => Ok(Chosen { category_id: None, label }),
            },
            None if self.has_active() => {
                Err(DomainError::invalid("category_id", "choose the expense category (GET /api/categories)"))
            }
            None => Ok(Chosen::default()),
        }
    }

    /// A submission of a requisition with category `chosen`: one is needed while the company
    /// has active categories, and it must still be active.
    pub fn check_submission(&self, chosen: Option<Id>) -> Result<(), DomainError> {
        match chosen {
            Some(id) => self.active(id, "category_id").map(|_| ()),
            None if self.has_active() => Err(DomainError::invalid(
                "category_id",
                "choose the expense category before submitting (GET /api/categories)",
            )),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CategoryCommand {
    Create { category_id: Id, code: String, name: String, gl_code: String, actor: Actor },
    Rename { category_id: Id, name: String, actor: Actor },
    Deactivate { category_id: Id, actor: Actor },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CategoryEvent {
    CategoryCreated {
        category_id: Id,
        /// The catalogue's company (`None`: unscoped).
        company: Option<Id>,
        code: String,
        name: String,
        gl_code: String,
        created_by: Id,
    },
    CategoryRenamed {
        category_id: Id,
        name: String,
        renamed_by: Id,
    },
    CategoryDeactivated {
        category_id: Id,
        deactivated_by: Id,
    },
}

impl DomainEvent for CategoryEvent {
    fn event_type(&self) -> String {
        match self {
            CategoryEvent::CategoryCreated { .. } => "CategoryCreated",
            CategoryEvent::CategoryRenamed { .. } => "CategoryRenamed",
            CategoryEvent::CategoryDeactivated { .. } => "CategoryDeactivated",
        }
        .into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

/// Upper-cased, trimmed, letters, digits, `-`, `_`, `.` only.
fn clean_code(field: &'static str, value: &str, max: usize) -> Result<String, DomainError> {
    let code = clean_text(field, value, max, true)?.to_uppercase();
    if !code.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(DomainError::invalid(field, "letters, digits, `-`, `_` and `.` only"));
    }
    Ok(code)
}

fn require_admin(actor: &Actor) -> Result<(), DomainError> {
    if actor.has(Role::Admin) {
        Ok(())
    } else {
        Err(DomainError::MissingRole { required: Role::Admin })
    }
}

impl Aggregate for Catalogue {
    const TYPE: &'static str = "category_catalogue";
    type Command = CategoryCommand;
    type Event = CategoryEvent;
    type Error = DomainError;
    type Services = ();

    /// The caller loads the catalogue of the actor's company: an admin manages their own
    /// company's categories only.
    async fn handle(
        &mut self,
        command: CategoryCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        match command {
            CategoryCommand::Create { category_id, code, name, gl_code, actor } => {
                require_admin(&actor)?;
                let code = clean_code("code", &code, CODE_MAX)?;
                let name = clean_text("name", &name, NAME_MAX, true)?;
                let gl_code = clean_code("gl_code", &gl_code, GL_CODE_MAX)?;
                if self.get(category_id).is_some() {
                    return Err(DomainError::AlreadyExists { what: "category" });
                }
                if self.categories.iter().any(|c| c.code == code) {
                    return Err(DomainError::CodeTaken);
                }
                let event = CategoryEvent::CategoryCreated {
                    category_id,
                    company: actor.company(),
                    code,
                    name,
                    gl_code,
                    created_by: actor.user_id,
                };
                sink.write(event, self).await;
            }
            CategoryCommand::Rename { category_id, name, actor } => {
                require_admin(&actor)?;
                self.get(category_id).ok_or(DomainError::NotFound { what: "category" })?;
                let name = clean_text("name", &name, NAME_MAX, true)?;
                sink.write(
                    CategoryEvent::CategoryRenamed { category_id, name, renamed_by: actor.user_id },
                    self,
                )
                .await;
            }
            CategoryCommand::Deactivate { category_id, actor } => {
                require_admin(&actor)?;
                let category = self.get(category_id).ok_or(DomainError::NotFound { what: "category" })?;
                if !category.active {
                    return Err(DomainError::CategoryInactive);
                }
                sink.write(
                    CategoryEvent::CategoryDeactivated { category_id, deactivated_by: actor.user_id },
                    self,
                )
                .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: CategoryEvent) {
        match event {
            CategoryEvent::CategoryCreated { category_id, company, code, name, gl_code, .. } => {
                self.company = company;
                self.categories.push(Category { id: category_id, code, name, gl_code, active: true });
            }
            CategoryEvent::CategoryRenamed { category_id, name, .. } => {
                if let Some(c) = self.categories.iter_mut().find(|c| c.id == category_id) {
                    c.name = name;
                }
            }
            CategoryEvent::CategoryDeactivated { category_id, .. } => {
                if let Some(c) = self.categories.iter_mut().find(|c| c.id == category_id) {
                    c.active = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    fn admin() -> Actor {
        Actor::new(Id::nil(), [Role::Admin])
    }

    fn created(id: u128, code: &str, name: &str) -> CategoryEvent {
        CategoryEvent::CategoryCreated {
            category_id: Id::from_u128(id),
            company: None,
            code: code.into(),
            name: name.into(),
            gl_code: "6100".into(),
            created_by: Id::nil(),
        }
    }

    fn create(id: u128, code: &str) -> CategoryCommand {
        CategoryCommand::Create {
            category_id: Id::from_u128(id),
            code: code.into(),
            name: "Office supplies".into(),
            gl_code: " 6100 ".into(),
            actor: admin(),
        }
    }

    #[test]
    fn admin_creates_a_category_with_an_upper_cased_code_and_its_gl_code() {
        TestFramework::<Catalogue>::with(())
            .given_no_previous_events()
            .when(create(1, " office "))
            .then_expect_events(vec![created(1, "OFFICE", "Office supplies")]);
    }

    #[test]
    fn a_code_is_unique_within_the_company_even_after_deactivation() {
        TestFramework::<Catalogue>::with(())
            .given(vec![
                created(1, "OFFICE", "Office"),
                CategoryEvent::CategoryDeactivated {
                    category_id: Id::from_u128(1),
                    deactivated_by: Id::nil(),
                },
            ])
            .when(create(2, "Office"))
            .then_expect_error(DomainError::CodeTaken);
    }

    #[test]
    fn only_admins_manage_categories() {
        let mut command = create(1, "OFFICE");
        if let CategoryCommand::Create { actor, .. } = &mut command {
            *actor = Actor::new(Id::nil(), [Role::Cfo]);
        }
        TestFramework::<Catalogue>::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(DomainError::MissingRole { required: Role::Admin });
    }

    #[test]
    fn a_category_is_renamed_and_deactivated_once() {
        let id = Id::from_u128(1);
        TestFramework::<Catalogue>::with(())
            .given(vec![created(1, "OFFICE", "Office")])
            .when(CategoryCommand::Rename { category_id: id, name: " Stationery ".into(), actor: admin() })
            .then_expect_events(vec![CategoryEvent::CategoryRenamed {
                category_id: id,
                name: "Stationery".into(),
                renamed_by: Id::nil(),
            }]);
        TestFramework::<Catalogue>::with(())
            .given(vec![
                created(1, "OFFICE", "Office"),
                CategoryEvent::CategoryDeactivated { category_id: id, deactivated_by: Id::nil() },
            ])
            .when(CategoryCommand::Deactivate { category_id: id, actor: admin() })
            .then_expect_error(DomainError::CategoryInactive);
    }

    fn catalogue(events: Vec<CategoryEvent>) -> Catalogue {
        let mut c = Catalogue::default();
        for e in events {
            c.apply(e);
        }
        c
    }

    #[test]
    fn a_text_maps_to_the_active_category_of_that_code_or_name() {
        let c = catalogue(vec![created(1, "OFFICE", "Office supplies"), created(2, "FUEL", "Fuel")]);
        let office = Some(Id::from_u128(1));
        assert_eq!(c.resolve(None, Some("office")).unwrap().category_id, office);
        assert_eq!(c.resolve(None, Some(" Office Supplies ")).unwrap().category_id, office);
        assert_eq!(c.resolve(None, Some("office")).unwrap().label.as_deref(), Some("office"));
        let unknown = c.resolve(None, Some("travel")).unwrap_err();
        assert!(matches!(unknown, DomainError::Invalid { field: "category", .. }));
        let missing = c.resolve(None, None).unwrap_err();
        assert!(matches!(missing, DomainError::Invalid { field: "category_id", .. }));
        let foreign = c.resolve(Some(Id::from_u128(9)), None).unwrap_err();
        assert!(matches!(foreign, DomainError::Invalid { field: "category_id", .. }));
    }

    #[test]
    fn without_active_categories_a_text_stays_a_label_and_none_is_needed() {
        let empty = Catalogue::default();
        let chosen = empty.resolve(None, Some("office")).unwrap();
        assert_eq!(chosen, Chosen { category_id: None, label: Some("office".into()) });
        assert_eq!(empty.resolve(None, None).unwrap(), Chosen::default());
        assert!(empty.check_submission(None).is_ok());
        let inactive = catalogue(vec![
            created(1, "OFFICE", "Office"),
            created(2, "FUEL", "Fuel"),
            CategoryEvent::CategoryDeactivated { category_id: Id::from_u128(1), deactivated_by: Id::nil() },
        ]);
        let refused = inactive.check_submission(Some(Id::from_u128(1))).unwrap_err();
        assert!(matches!(refused, DomainError::Invalid { field: "category_id", .. }));
        assert!(inactive.check_submission(None).is_err(), "FUEL is active: a category is needed");
    }
}
