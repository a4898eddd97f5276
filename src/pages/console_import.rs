//! The console's import page (`/_vigile/admin/import`, reached from Members): a CSV file
//! is uploaded, every row is shown with what would become of it, and a second form does
//! it (`/_vigile/admin/import/confirm`, which checks the file again from scratch). The
//! work is [`crate::auth::import`]'s, as for `vigile user import`; this module words its
//! typed report in the reader's language and sets the upload's limits.
//!
//! The preview carries the file back to the confirm form in a hidden field (base64url),
//! so nothing is kept on the server between the two steps and any instance can take the
//! second; the file is parsed and checked again there, never trusted.

use std::time::Duration;

use askama::Template;

use super::console::Nav;
use super::render::Chrome;
use crate::auth::import::{Counts, Field, FileError, FileReason, Line, Outcome, Reason, Report};
use crate::auth::import::{COLUMNS, MAX_NAME};
use crate::i18n::{Lang, Tr};
use crate::routes::Route;
use crate::store::Millis;

/// Largest file imported from the console (`vigile user import` has no limit).
pub const MAX_FILE: usize = 1024 * 1024;
/// Most rows of one file: each created account costs a password hash, and the page
/// answers when all are done.
pub const MAX_ROWS: usize = 2000;
/// Largest request body read for the upload and the confirm form: the file (base64url in
/// the confirm form: 4/3 of it) and the form's few fields.
pub const MAX_BODY: usize = 2 * 1024 * 1024;
/// A larger body is still read and thrown away up to this size, so the browser gets the
/// page saying the file is too large rather than a reset connection.
pub const MAX_DRAIN: usize = 32 * 1024 * 1024;
/// How long the upload may take to arrive (at least: `server.header_timeout` if longer).
pub const UPLOAD_DEADLINE: Duration = Duration::from_secs(60);

/// "1 MiB", as the form states the limit.
pub fn max_file_label() -> String {
    format!("{} MiB", MAX_FILE / (1024 * 1024))
}

/// Which step the page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The upload form (again, with an error, after a refused file).
    Form,
    /// What would become of each row, and the form that does it.
    Preview,
    /// What became of each row.
    Done,
}

/// One row as the page shows it.
pub struct RowView {
    pub line: u64,
    pub email: String,
    pub name: String,
    pub org: String,
    /// `create`, `invite`, `exists`, `invited`, `refused` or `not-applied` (a CSS class).
    pub class: &'static str,
    /// What happens (or happened) to it, in the reader's language.
    pub status: String,
    /// Each refused field and why, in the reader's language.
    pub problems: Vec<String>,
}

/// One figure of the summary.
pub struct Figure {
    /// The element's id (`import-create`...).
    pub id: &'static str,
    pub value: u64,
    pub label: String,
}

#[derive(Template)]
#[template(path = "pages/admin_import.html")]
pub struct ImportPage {
    pub c: Chrome,
    pub nav: Nav,
    pub step: Step,
    pub invite: bool,
    pub confirmed: bool,
    /// Why the file was not imported at all, in the reader's language.
    pub error: Option<String>,
    pub rows: Vec<RowView>,
    pub figures: Vec<Figure>,
    /// The import stopped part-way: why, and what to do.
    pub stopped: Option<String>,
    /// Imported addresses will be unconfirmed: what that means.
    pub note: Option<String>,
    /// The file, base64url, for the confirm form.
    pub data: String,
    /// The confirm button ("Create these 3 accounts"); `None` when nothing would be done.
    pub confirm: Option<String>,
    /// The file field's label, with the size limit.
    pub file_label: String,
}

impl ImportPage {
    /// The upload form, with the choices made and an error, if any.
    pub fn form(c: Chrome, invite: bool, confirmed: bool, error: Option<String>) -> Self {
        let file_label = c.t.with("import-file", &[("max", max_file_label())]);
        ImportPage {
            c,
            nav: Nav::new(super::console::Section::Members),
            step: Step::Form,
            invite,
            confirmed,
            error,
            rows: Vec::new(),
            figures: Vec::new(),
            stopped: None,
            note: None,
            data: String::new(),
            confirm: None,
            file_label,
        }
    }

    /// The preview of `report` (nothing written), or what `report` did (`done`).
    pub fn report(
        c: Chrome,
        lang: Lang,
        report: &Report,
        invite: bool,
        confirmed: bool,
        done: bool,
    ) -> Self {
        let t = lang.tr();
        let counts = report.counts();
        let mut page = ImportPage::form(c, invite, confirmed, None);
        page.step = if done { Step::Done } else { Step::Preview };
        page.rows = report
            .lines
            .iter()
            .map(|l| row(t, l, done && report.applied(l), done))
            .collect();
        page.figures = figures(t, counts, done);
        let acting = counts.created + counts.invited;
        if !done && acting > 0 {
            let key = if invite {
                "import-confirm-invite"
            } else {
                "import-confirm-create"
            };
            page.confirm = Some(t.with(key, &[("count", acting.to_string())]));
        }
        if !invite && !confirmed && acting > 0 {
            let key = if done {
                "import-note-unconfirmed-done"
            } else {
                "import-note-unconfirmed"
            };
            page.note = Some(t.get(key));
        }
        page.stopped = report
            .stopped
            .as_ref()
            .map(|s| t.with("import-stopped", &[("line", s.line.to_string())]));
        page
    }
}

/// The summary's figures: planned in a preview, done after.
fn figures(t: Tr, c: Counts, done: bool) -> Vec<Figure> {
    let (create, invite) = if done {
        ("import-count-created", "import-count-invited")
    } else {
        ("import-count-create", "import-count-invite")
    };
    let mut out = vec![
        Figure {
            id: "import-create",
            value: c.created,
            label: t.get(create),
        },
        Figure {
            id: "import-invite",
            value: c.invited,
            label: t.get(invite),
        },
        Figure {
            id: "import-unchanged",
            value: c.unchanged,
            label: t.get("import-count-unchanged"),
        },
        Figure {
            id: "import-refused",
            value: c.refused,
            label: t.get("import-count-refused"),
        },
    ];
    if c.not_applied > 0 {
        out.push(Figure {
            id: "import-not-applied",
            value: c.not_applied,
            label: t.get("import-count-not-applied"),
        });
    }
    out
}

/// When an invitation ends, as the console writes times.
fn when(ms: Millis) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    let s = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} UTC", s.get(..16).unwrap_or(&s).replace('T', " "))
}

/// One line of the report; `applied`: its outcome happened (after the import, and before
/// any stop).
fn row(t: Tr, l: &Line, applied: bool, done: bool) -> RowView {
    let (class, status) = match &l.outcome {
        Outcome::Create | Outcome::Invite if done && !applied => {
            ("not-applied", t.get("import-not-applied"))
        }
        Outcome::Create if done => ("create", t.get("import-created")),
        Outcome::Create => ("create", t.get("import-will-create")),
        Outcome::Invite if done => ("invite", t.get("import-invited")),
        Outcome::Invite => ("invite", t.get("import-will-invite")),
        Outcome::Exists { pending: false } => ("exists", t.get("import-exists")),
        Outcome::Exists { pending: true } => ("exists", t.get("import-exists-pending")),
        Outcome::Invited { until } => (
            "invited",
            t.with("import-already-invited", &[("until", when(*until))]),
        ),
        Outcome::Refused(_) => ("refused", t.get("import-refused")),
    };
    let problems = match &l.outcome {
        Outcome::Refused(problems) => problems
            .iter()
            .map(|p| format!("{}: {}", field(t, p.field), reason(t, &p.reason)))
            .collect(),
        _ => Vec::new(),
    };
    RowView {
        line: l.line,
        email: l.email.clone(),
        name: l.name.clone(),
        org: l.org.clone(),
        class,
        status,
        problems,
    }
}

/// A column as the file names it; the whole row in the reader's language.
fn field(t: Tr, f: Field) -> String {
    match f {
        Field::Row => t.get("import-field-row"),
        f => f.as_str().to_string(),
    }
}

/// Why a field was refused, in the reader's language.
pub fn reason(t: Tr, r: &Reason) -> String {
    let value = |raw: &str, why: String| {
        t.with(
            "import-reason-value",
            &[("value", raw.to_string()), ("reason", why)],
        )
    };
    match r {
        Reason::Width { found, expected } => t.with(
            "import-reason-width",
            &[
                ("found", found.to_string()),
                ("expected", expected.to_string()),
            ],
        ),
        Reason::NotUtf8 => t.get("import-reason-not-utf8"),
        Reason::Email { raw, error } => value(raw, t.get(error.key())),
        Reason::NameTooLong => t.with("import-reason-name-long", &[("max", MAX_NAME.to_string())]),
        Reason::NameHidden => t.get("import-reason-name-hidden"),
        Reason::Lang { raw } => value(raw, t.get("import-reason-lang")),
        Reason::Mobile { raw, error } => value(raw, t.get(error.key())),
        Reason::OrgShape { raw } => value(raw, t.get("import-reason-org-shape")),
        Reason::Duplicate { email, first } => t.with(
            "import-reason-duplicate",
            &[("email", email.to_string()), ("line", first.to_string())],
        ),
        Reason::NoOrg { id } => t.with("import-reason-no-org", &[("id", id.to_string())]),
        Reason::OrgFull { company, seats, .. } => t.with(
            "import-reason-org-full",
            &[("company", company.clone()), ("seats", seats.to_string())],
        ),
        Reason::SeatWithdrawn => t.get("import-reason-seat-withdrawn"),
    }
}

/// Why a file was not imported at all, in the reader's language.
pub fn file_error(t: Tr, e: &FileError) -> String {
    let line = ("line", e.line.to_string());
    let columns = ("columns", COLUMNS.join(", "));
    match &e.reason {
        FileReason::NotText => t.get("import-file-not-csv"),
        FileReason::Empty => t.with("import-file-empty", &[columns]),
        FileReason::TooManyRows { max } => {
            t.with("import-file-too-many", &[("max", max.to_string())])
        }
        FileReason::ColumnNotUtf8 { column } => t.with(
            "import-header-not-utf8",
            &[line, ("column", column.to_string())],
        ),
        FileReason::ColumnUnnamed { column } => t.with(
            "import-header-unnamed",
            &[line, ("column", column.to_string()), columns],
        ),
        FileReason::UnknownColumn { name } => t.with(
            "import-header-unknown",
            &[line, ("name", name.clone()), columns],
        ),
        FileReason::ColumnTwice { name } => {
            t.with("import-header-twice", &[line, ("name", name.to_string())])
        }
        FileReason::NoEmailColumn => t.with("import-header-no-email", &[line]),
        FileReason::Unreadable { error } => {
            t.with("import-file-unreadable", &[line, ("error", error.clone())])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::email::EmailError;

    /// Every reason and file error is worded from the catalogs in both languages, with
    /// its values filled in (a missing key would come back as the key itself).
    #[test]
    fn every_reason_is_worded_in_both_languages() {
        let reasons = [
            Reason::Width {
                found: 2,
                expected: 4,
            },
            Reason::NotUtf8,
            Reason::Email {
                raw: "bad".into(),
                error: EmailError::MissingPart,
            },
            Reason::NameTooLong,
            Reason::NameHidden,
            Reason::Lang { raw: "de".into() },
            Reason::OrgShape { raw: "a/b".into() },
            Reason::NoOrg {
                id: crate::store::OrgId::from_string("Org9"),
            },
            Reason::SeatWithdrawn,
        ];
        let files = [
            FileReason::NotText,
            FileReason::Empty,
            FileReason::TooManyRows { max: 7 },
            FileReason::ColumnNotUtf8 { column: 3 },
            FileReason::ColumnUnnamed { column: 3 },
            FileReason::UnknownColumn {
                name: "phone".into(),
            },
            FileReason::ColumnTwice { name: "email" },
            FileReason::NoEmailColumn,
            FileReason::Unreadable { error: "x".into() },
        ];
        for lang in Lang::ALL {
            let t = lang.tr();
            for r in &reasons {
                let text = reason(t, r);
                assert!(!text.starts_with("import-"), "{lang:?} {r:?}: {text}");
                assert!(!text.contains("{ $"), "{text}");
            }
            for f in &files {
                let text = file_error(
                    t,
                    &FileError {
                        line: 1,
                        reason: f.clone(),
                    },
                );
                assert!(!text.starts_with("import-"), "{lang:?} {f:?}: {text}");
            }
        }
        let fr = reason(
            Lang::Fr.tr(),
            &Reason::Lang {
                raw: "de".to_string(),
            },
        );
        let en = reason(
            Lang::En.tr(),
            &Reason::Lang {
                raw: "de".to_string(),
            },
        );
        assert!(fr.contains("de") && en.contains("de") && fr != en);
    }
}
