//! What an import reports: why a file or a row was refused and what became of each row,
//! as typed values. The command line words them in English (`Display`); the console in
//! the reader's language, from the catalogs.

use std::fmt;

use super::{COLUMNS, MAX_NAME};
use crate::edge::email::{Email, EmailError};
use crate::edge::phone::PhoneError;
use crate::store::{Millis, OrgId};

/// Why a file cannot be imported at all: nothing of it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileReason {
    /// Binary content (a workbook, a PDF, an image), not text.
    NotText,
    /// No line names the columns.
    Empty,
    /// More rows than [`Options::max_rows`].
    TooManyRows {
        max: usize,
    },
    /// A header column (1-based) is not UTF-8.
    ColumnNotUtf8 {
        column: usize,
    },
    /// A header column (1-based) is empty.
    ColumnUnnamed {
        column: usize,
    },
    UnknownColumn {
        name: String,
    },
    ColumnTwice {
        name: &'static str,
    },
    NoEmailColumn,
    /// The CSV reader gave up (its message).
    Unreadable {
        error: String,
    },
}

/// A file that cannot be imported at all, and the line where that shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub line: u64,
    pub reason: FileReason,
}

/// The command line's wording (the console has its own, in both languages).
impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = COLUMNS.join(", ");
        write!(f, "line {}: header: ", self.line)?;
        match &self.reason {
            FileReason::NotText => write!(
                f,
                "this is not a CSV text file (a spreadsheet? save it as \"CSV UTF-8\"); \
                 nothing imported"
            ),
            FileReason::Empty => write!(
                f,
                "the file is empty; its first line names the columns ({}); nothing imported",
                COLUMNS.join(",")
            ),
            FileReason::TooManyRows { max } => {
                write!(f, "more than {max} rows; nothing imported")
            }
            FileReason::ColumnNotUtf8 { column } => {
                write!(f, "column {column} is not UTF-8 text")
            }
            FileReason::ColumnUnnamed { column } => write!(
                f,
                "column {column} has no name (the columns are {columns}); nothing imported"
            ),
            FileReason::UnknownColumn { name } => write!(
                f,
                "unknown column {name:?} (the columns are {columns}); nothing imported"
            ),
            FileReason::ColumnTwice { name } => {
                write!(f, "column {name:?} appears twice; nothing imported")
            }
            FileReason::NoEmailColumn => write!(f, "no \"email\" column; nothing imported"),
            FileReason::Unreadable { error } => write!(f, "unreadable: {error}; nothing imported"),
        }
    }
}

/// The field a problem is in (or the row as a whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Row,
    Email,
    Name,
    Lang,
    Mobile,
    Org,
}

impl Field {
    /// As the command line reports it (the column's name, or `row`).
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Row => "row",
            Field::Email => "email",
            Field::Name => "name",
            Field::Lang => "lang",
            Field::Mobile => "mobile",
            Field::Org => "org",
        }
    }
}

/// Why a field (or a row) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The row has `found` fields where the header names `expected`.
    Width {
        found: usize,
        expected: usize,
    },
    NotUtf8,
    Email {
        raw: String,
        error: EmailError,
    },
    NameTooLong,
    NameHidden,
    Lang {
        raw: String,
    },
    Mobile {
        raw: String,
        error: PhoneError,
    },
    OrgShape {
        raw: String,
    },
    /// The address is on an earlier line of the file.
    Duplicate {
        email: Email,
        first: u64,
    },
    NoOrg {
        id: OrgId,
    },
    /// Members and pending invitations fill the organisation's `seats`.
    OrgFull {
        id: OrgId,
        company: String,
        seats: u32,
    },
    /// The seat's invitation was withdrawn between the two steps of the join.
    SeatWithdrawn,
}

/// The command line's wording.
impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Width { found, expected } => write!(
                f,
                "{found} field(s) where the header names {expected} (a missing or extra comma?)"
            ),
            Reason::NotUtf8 => write!(f, "not UTF-8 text (save the file as \"CSV UTF-8\")"),
            Reason::Email { raw, error } => write!(f, "{raw:?}: {error}"),
            Reason::NameTooLong => write!(f, "longer than {MAX_NAME} characters"),
            Reason::NameHidden => write!(
                f,
                "contains a line break or another control or invisible character"
            ),
            Reason::Lang { raw } => write!(f, "{raw:?}: expected fr, en or nothing"),
            Reason::Mobile { raw, error } => write!(f, "{raw:?}: {error}"),
            Reason::OrgShape { raw } => write!(
                f,
                "{raw:?} is not an organisation id (`vigile org list` shows them)"
            ),
            Reason::Duplicate { email, first } => {
                write!(f, "{email} is already on line {first}")
            }
            Reason::NoOrg { id } => {
                write!(f, "no organisation {id} (`vigile org list` shows them)")
            }
            Reason::OrgFull { id, company, seats } => write!(
                f,
                "organisation {id} ({company}) is full: its {seats} seat(s) are taken by \
                 members and pending invitations (`vigile org set --seats N -- {id}` adds some)"
            ),
            Reason::SeatWithdrawn => write!(
                f,
                "the seat was withdrawn from the organisation page meanwhile; import it again"
            ),
        }
    }
}

/// One refused field of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: Field,
    pub reason: Reason,
}

/// What becomes of a row: in a [`preview`], what would be done; after [`apply`], what
/// was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An account is created (active, in its organisation when the row names one).
    Create,
    /// An invitation is mailed (to sign up, or to join the row's organisation).
    Invite,
    /// The address has an account already (`pending`: a sign-up waiting for activation):
    /// nothing is done.
    Exists { pending: bool },
    /// When inviting: an invitation to this address is pending until `until` (to sign
    /// up, or to the row's organisation): nothing is sent again.
    Invited { until: Millis },
    /// Nothing of the row is written, for these reasons.
    Refused(Vec<Problem>),
}

/// One row of the file and what becomes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its line in the file, as an editor shows it.
    pub line: u64,
    /// The address (normalised when it parsed, else as written).
    pub email: String,
    /// The name as written (when it is text).
    pub name: String,
    /// The organisation id as written, if any.
    pub org: String,
    pub outcome: Outcome,
}

/// Every row of a file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub lines: Vec<Line>,
    /// Set by [`apply`] when the store, the hasher or the mail queue failed: that row and
    /// the rows after it that passed the checks were not applied (their outcomes are what
    /// the checks planned).
    pub stopped: Option<Stopped>,
}

/// Where and why [`apply`] stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    pub line: u64,
    /// For the log and the command line (no secret: a store or hasher error).
    pub error: String,
}

/// How many rows of a report came to each outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub created: u64,
    pub invited: u64,
    /// Accounts that exist and invitations pending: left as they are.
    pub unchanged: u64,
    pub refused: u64,
    /// Rows that passed the checks but were not applied: [`apply`] stopped before them.
    pub not_applied: u64,
}

impl Report {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for l in &self.lines {
            match l.outcome {
                Outcome::Create | Outcome::Invite if !self.applied(l) => c.not_applied += 1,
                Outcome::Create => c.created += 1,
                Outcome::Invite => c.invited += 1,
                Outcome::Exists { .. } | Outcome::Invited { .. } => c.unchanged += 1,
                Outcome::Refused(_) => c.refused += 1,
            }
        }
        c
    }

    /// Whether `line`'s outcome happened: false for the rows from the one where [`apply`]
    /// stopped, whose outcome is only what the checks planned.
    pub fn applied(&self, line: &Line) -> bool {
        self.stopped
            .as_ref()
            .is_none_or(|stop| line.line < stop.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_stop_where_the_import_stopped() {
        let line = |line, outcome| Line {
            line,
            email: String::new(),
            name: String::new(),
            org: String::new(),
            outcome,
        };
        let mut report = Report {
            lines: vec![
                line(2, Outcome::Create),
                line(3, Outcome::Exists { pending: false }),
                line(4, Outcome::Refused(vec![])),
                line(5, Outcome::Create),
            ],
            stopped: None,
        };
        assert_eq!(
            report.counts(),
            Counts {
                created: 2,
                invited: 0,
                unchanged: 1,
                refused: 1,
                not_applied: 0,
            }
        );
        report.stopped = Some(Stopped {
            line: 5,
            error: "store unavailable".into(),
        });
        let counts = report.counts();
        assert_eq!((counts.created, counts.not_applied), (1, 1));
    }
}
