//! Reading the CSV file into checked rows: the header, then each field by the parser the
//! forms use, then addresses given twice. Nothing here looks at the store.

use std::collections::{BTreeMap, HashMap};

use super::report::{Field, FileError, FileReason, Line, Outcome, Problem, Reason};
use super::{COLUMNS, MAX_NAME};
use crate::edge::email::Email;
use crate::edge::phone::{Phone, Region};
use crate::i18n::Lang;
use crate::store::OrgId;

/// Longest organisation id looked up. Ids are 22 URL-safe characters; anything longer
/// or with other characters is a typo, refused before it reaches a store key.
const MAX_ORG_ID: usize = 64;

/// Which field of which column, once the header is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Columns {
    email: usize,
    name: Option<usize>,
    lang: Option<usize>,
    mobile: Option<usize>,
    org: Option<usize>,
    width: usize,
}

/// A row whose every field passed its parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Row {
    pub(super) line: u64,
    pub(super) email: Email,
    pub(super) name: String,
    pub(super) lang: Option<Lang>,
    pub(super) mobile: Option<Phone>,
    pub(super) org: Option<OrgId>,
}

impl Row {
    pub(super) fn report(&self, outcome: Outcome) -> Line {
        Line {
            line: self.line,
            email: self.email.to_string(),
            name: self.name.clone(),
            org: self
                .org
                .as_ref()
                .map(|o| o.as_str().to_string())
                .unwrap_or_default(),
            outcome,
        }
    }
}

/// What the file holds: good rows, and refused ones already reported, in file order.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    pub(super) rows: Vec<Row>,
    pub(super) refused: Vec<Line>,
}

/// Spreadsheets and documents that are sometimes uploaded for a CSV: their first bytes.
const BINARY_MAGIC: [&[u8]; 4] = [
    b"PK\x03\x04",                       // xlsx, ods (zip)
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", // xls (OLE)
    b"%PDF-",
    b"\x89PNG",
];

/// Content that is no text at all: a known binary format, or a NUL byte (which no CSV
/// export writes in UTF-8, and which UTF-16 text is full of).
fn is_binary(bytes: &[u8]) -> bool {
    BINARY_MAGIC.iter().any(|m| bytes.starts_with(m)) || bytes.contains(&0)
}

/// Reads the header: each column named once, `email` among them, nothing else.
fn columns(line: u64, header: &csv::ByteRecord) -> Result<Columns, FileError> {
    let refuse = |reason: FileReason| FileError { line, reason };
    let mut at: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (i, raw) in header.iter().enumerate() {
        let name = std::str::from_utf8(raw)
            .map_err(|_| refuse(FileReason::ColumnNotUtf8 { column: i + 1 }))?
            .trim()
            .to_ascii_lowercase();
        let Some(known) = COLUMNS.iter().copied().find(|c| *c == name) else {
            return Err(refuse(if name.is_empty() {
                FileReason::ColumnUnnamed { column: i + 1 }
            } else {
                FileReason::UnknownColumn { name }
            }));
        };
        if at.insert(known, i).is_some() {
            return Err(refuse(FileReason::ColumnTwice { name: known }));
        }
    }
    let Some(&email) = at.get("email") else {
        return Err(refuse(FileReason::NoEmailColumn));
    };
    Ok(Columns {
        email,
        name: at.get("name").copied(),
        lang: at.get("lang").copied(),
        mobile: at.get("mobile").copied(),
        org: at.get("org").copied(),
        width: header.len(),
    })
}

/// A name: any text of at most [`MAX_NAME`] characters on one line.
fn check_name(raw: &str) -> Result<String, Reason> {
    if raw.chars().count() > MAX_NAME {
        return Err(Reason::NameTooLong);
    }
    if raw.chars().any(crate::edge::name::is_hidden) {
        return Err(Reason::NameHidden);
    }
    Ok(raw.to_string())
}

/// An organisation id as `vigile org list` and the console show it.
fn check_org(raw: &str) -> Result<OrgId, Reason> {
    let shaped = raw.len() <= MAX_ORG_ID
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if shaped {
        Ok(OrgId::from_string(raw))
    } else {
        Err(Reason::OrgShape {
            raw: raw.to_string(),
        })
    }
}

/// Checks one record's fields at the edge; every refused field is reported.
fn check_row(
    line: u64,
    record: &csv::ByteRecord,
    cols: &Columns,
    region: Region,
) -> Result<Row, Line> {
    let text = |at: Option<usize>| -> String {
        let raw = at.and_then(|i| record.get(i)).unwrap_or_default();
        std::str::from_utf8(raw)
            .map(|t| t.trim().to_string())
            .unwrap_or_default()
    };
    let refused = |problems: Vec<Problem>| Line {
        line,
        email: text(Some(cols.email)),
        name: text(cols.name),
        org: text(cols.org),
        outcome: Outcome::Refused(problems),
    };
    if record.len() != cols.width {
        return Err(refused(vec![Problem {
            field: Field::Row,
            reason: Reason::Width {
                found: record.len(),
                expected: cols.width,
            },
        }]));
    }
    let mut problems = Vec::new();
    let mut field = |name: Field, at: Option<usize>| -> Option<String> {
        let raw = at.and_then(|i| record.get(i)).unwrap_or_default();
        match std::str::from_utf8(raw) {
            Ok(text) => Some(text.trim().to_string()),
            Err(_) => {
                problems.push(Problem {
                    field: name,
                    reason: Reason::NotUtf8,
                });
                None
            }
        }
    };
    let email = field(Field::Email, Some(cols.email));
    let name = field(Field::Name, cols.name);
    let lang = field(Field::Lang, cols.lang);
    let mobile = field(Field::Mobile, cols.mobile);
    let org = field(Field::Org, cols.org);
    let mut refuse = |field: Field, reason: Reason| problems.push(Problem { field, reason });
    let email = email.and_then(|raw| {
        Email::parse(&raw)
            .map_err(|error| refuse(Field::Email, Reason::Email { raw, error }))
            .ok()
    });
    let name = name.and_then(|raw| check_name(&raw).map_err(|e| refuse(Field::Name, e)).ok());
    let lang = lang.and_then(|raw| match raw.as_str() {
        "" => Some(None),
        _ => match Lang::parse(&raw) {
            Some(l) => Some(Some(l)),
            None => {
                refuse(Field::Lang, Reason::Lang { raw });
                None
            }
        },
    });
    let mobile = mobile.and_then(|raw| match raw.as_str() {
        "" => Some(None),
        _ => Phone::parse_mobile(&raw, region)
            .map(Some)
            .map_err(|error| refuse(Field::Mobile, Reason::Mobile { raw, error }))
            .ok(),
    });
    let org = org.and_then(|raw| match raw.as_str() {
        "" => Some(None),
        _ => check_org(&raw)
            .map(Some)
            .map_err(|e| refuse(Field::Org, e))
            .ok(),
    });
    match (email, name, lang, mobile, org) {
        (Some(email), Some(name), Some(lang), Some(mobile), Some(org)) if problems.is_empty() => {
            Ok(Row {
                line,
                email,
                name,
                lang,
                mobile,
                org,
            })
        }
        _ => Err(refused(problems)),
    }
}

/// Line numbers of the file, as an editor shows them (a line ends at `\n`, `\r\n` or a
/// lone `\r`).
///
/// The `csv` crate's own `Position::line` undercounts (a `\r\n` or an empty line before a
/// record is not counted), and a record's `Position::byte` may point into the line breaks
/// before it rather than at its first byte; so lines are counted here from that offset,
/// past those line breaks. Offsets only grow, so the whole file is scanned once.
struct LineCounter<'a> {
    bytes: &'a [u8],
    /// Bytes before this offset are counted.
    at: usize,
    /// The line `at` is on.
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        LineCounter {
            bytes,
            at: 0,
            line: 1,
        }
    }

    /// The line of the record the parser reported at byte `offset`.
    fn record_at(&mut self, offset: u64) -> u64 {
        let mut start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        while matches!(self.bytes.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        while self.at < start {
            let lone_cr =
                self.bytes[self.at] == b'\r' && self.bytes.get(self.at + 1) != Some(&b'\n');
            if self.bytes[self.at] == b'\n' || lone_cr {
                self.line += 1;
            }
            self.at += 1;
        }
        self.line
    }
}

/// Parses the whole file: the header, then every row, each checked at the edge. An
/// address given twice is refused on its second line (the first stands). Empty lines,
/// and rows whose every field is empty (a spreadsheet's trailing `,,,,`), are skipped.
pub(super) fn parse(
    bytes: &[u8],
    region: Region,
    max_rows: Option<usize>,
) -> Result<Parsed, FileError> {
    if is_binary(bytes) {
        return Err(FileError {
            line: 1,
            reason: FileReason::NotText,
        });
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::ByteRecord::new();
    let mut cols = None;
    let mut parsed = Parsed::default();
    let mut first_line: HashMap<Email, u64> = HashMap::new();
    let mut lines = LineCounter::new(bytes);
    loop {
        // Reading a byte slice into byte records, flexible about widths: nothing fails
        // today, but the reader's contract allows errors.
        let more = reader
            .read_byte_record(&mut record)
            .map_err(|e| FileError {
                line: lines.record_at(e.position().map_or(0, csv::Position::byte)),
                reason: FileReason::Unreadable {
                    error: e.to_string(),
                },
            })?;
        if !more {
            break;
        }
        let line = lines.record_at(record.position().map_or(0, csv::Position::byte));
        if record.iter().all(|f| f.trim_ascii().is_empty()) {
            continue;
        }
        let Some(cols) = &cols else {
            cols = Some(columns(line, &record)?);
            continue;
        };
        if let Some(max) = max_rows {
            if parsed.rows.len() + parsed.refused.len() >= max {
                return Err(FileError {
                    line,
                    reason: FileReason::TooManyRows { max },
                });
            }
        }
        match check_row(line, &record, cols, region) {
            Err(refused) => parsed.refused.push(refused),
            Ok(row) => match first_line.get(&row.email) {
                Some(&first) => {
                    let twice = Reason::Duplicate {
                        email: row.email.clone(),
                        first,
                    };
                    let problem = Problem {
                        field: Field::Email,
                        reason: twice,
                    };
                    parsed
                        .refused
                        .push(row.report(Outcome::Refused(vec![problem])));
                }
                None => {
                    first_line.insert(row.email.clone(), line);
                    parsed.rows.push(row);
                }
            },
        }
    }
    if cols.is_none() {
        return Err(FileError {
            line: 1,
            reason: FileReason::Empty,
        });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fr() -> Region {
        Region::parse("FR").unwrap()
    }

    fn parse_fr(bytes: &[u8]) -> Result<Parsed, FileError> {
        parse(bytes, fr(), None)
    }

    fn lines(refused: &[Line]) -> Vec<String> {
        refused
            .iter()
            .flat_map(|l| match &l.outcome {
                Outcome::Refused(problems) => problems
                    .iter()
                    .map(|p| format!("line {}: {}: {}", l.line, p.field.as_str(), p.reason))
                    .collect(),
                _ => vec![],
            })
            .collect()
    }

    #[test]
    fn columns_by_name_in_any_order_with_a_bom_and_quotes() {
        let file = "\u{feff}Org,EMAIL,name\r\n\
                    ,ana@example.com,\"Martin, Ana\"\r\n\
                    \r\n\
                    ,bob@example.com,\"Bob \"\"the\"\" builder\"\n\
                    ,,\n";
        let parsed = parse_fr(file.as_bytes()).unwrap();
        assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
        let got: Vec<(u64, &str, &str)> = parsed
            .rows
            .iter()
            .map(|r| (r.line, r.email.as_str(), r.name.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (2, "ana@example.com", "Martin, Ana"),
                (4, "bob@example.com", "Bob \"the\" builder"),
            ]
        );
    }

    #[test]
    fn a_quoted_line_break_keeps_the_line_numbers_of_the_file() {
        let file = "email,name\n\"a@example.com\",\"two\nlines\"\nnot-an-address,x\n";
        let parsed = parse_fr(file.as_bytes()).unwrap();
        assert_eq!(
            lines(&parsed.refused),
            [
                "line 2: name: contains a line break or another control or invisible character",
                "line 4: email: \"not-an-address\": the address has no @, or nothing before or \
                 after it",
            ]
        );
        // A refused row still says what it was, for the console's table.
        assert_eq!(parsed.refused[1].email, "not-an-address");
        assert_eq!(parsed.refused[1].name, "x");
    }

    #[test]
    fn every_field_is_parsed_at_the_edge() {
        let file = "email,lang,mobile,org\n\
                    ANA@Example.COM,FR,06 12 34 56 78,AbC_12-x\n\
                    bad,de,01 23 45 67 89,no/such\n\
                    ana@example.com,,,\n\
                    c@example.com,en\n";
        let parsed = parse_fr(file.as_bytes()).unwrap();
        let row = &parsed.rows[0];
        assert_eq!(
            (
                row.email.as_str(),
                row.lang,
                row.mobile.as_ref().map(Phone::as_str),
                row.org.as_ref().map(OrgId::as_str)
            ),
            (
                "ana@example.com",
                Some(Lang::Fr),
                Some("+33612345678"),
                Some("AbC_12-x")
            )
        );
        let report = lines(&parsed.refused);
        assert_eq!(report.len(), 6, "{report:#?}");
        assert!(
            report[0].starts_with("line 3: email: \"bad\""),
            "{report:#?}"
        );
        assert!(report[1].starts_with("line 3: lang: \"de\""), "{report:#?}");
        assert!(report[2].starts_with("line 3: mobile: \"01 23 45 67 89\""));
        assert!(report[3].starts_with("line 3: org: \"no/such\""));
        assert_eq!(
            report[4],
            "line 4: email: ana@example.com is already on line 2"
        );
        assert!(report[5].starts_with("line 5: row: 2 field(s) where the header names 4"));
    }

    #[test]
    fn lines_are_counted_as_an_editor_shows_them() {
        let cases: [(&str, &[u64]); 6] = [
            ("email\na@x.fr\nb@x.fr\n", &[2, 3]),
            ("email\r\na@x.fr\r\nb@x.fr\r\n", &[2, 3]),
            ("\u{feff}email\r\n\r\n\r\na@x.fr\r\n\nb@x.fr", &[4, 6]),
            ("\n\nemail\na@x.fr\n\n\nb@x.fr\n", &[4, 7]),
            ("email\ra@x.fr\r\rb@x.fr\r", &[2, 4]),
            (
                "email,name\r\na@x.fr,\"a\r\n\r\nb\"\r\nb@x.fr,\r\n",
                &[2, 5],
            ),
        ];
        for (file, want) in cases {
            let parsed = parse_fr(file.as_bytes()).unwrap();
            let mut got: Vec<u64> = parsed
                .rows
                .iter()
                .map(|r| r.line)
                .chain(parsed.refused.iter().map(|r| r.line))
                .collect();
            got.sort_unstable();
            assert_eq!(got, want, "{file:?}");
        }
    }

    #[test]
    fn a_bad_header_refuses_the_whole_file() {
        let unknown = parse_fr(b"email,phone\na@example.com,1\n").unwrap_err();
        assert_eq!(unknown.line, 1);
        assert!(
            unknown
                .to_string()
                .starts_with("line 1: header: unknown column \"phone\""),
            "{unknown}"
        );
        let twice = parse_fr(b"email,Email\n").unwrap_err();
        assert_eq!(twice.reason, FileReason::ColumnTwice { name: "email" });
        assert!(twice.to_string().contains("\"email\" appears twice"));
        let none = parse_fr(b"name\nAna\n").unwrap_err();
        assert_eq!(none.reason, FileReason::NoEmailColumn);
        let empty = parse_fr(b"\n\n").unwrap_err();
        assert_eq!(empty.reason, FileReason::Empty);
        assert!(empty.to_string().contains("the file is empty"), "{empty}");
    }

    #[test]
    fn a_workbook_or_utf16_text_is_not_a_csv_file() {
        for bytes in [
            &b"PK\x03\x04\x14\x00\x06\x00"[..],
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00",
            b"%PDF-1.7\n",
            b"\xff\xfee\x00m\x00a\x00i\x00l\x00\n\x00",
        ] {
            let e = parse_fr(bytes).unwrap_err();
            assert_eq!(e.reason, FileReason::NotText, "{bytes:?}");
        }
    }

    #[test]
    fn a_row_limit_refuses_the_whole_file() {
        let file = "email\na@x.fr\nb@x.fr\nbad\n";
        assert!(parse(file.as_bytes(), fr(), Some(3)).is_ok());
        let e = parse(file.as_bytes(), fr(), Some(2)).unwrap_err();
        assert_eq!((e.line, e.reason), (4, FileReason::TooManyRows { max: 2 }));
    }

    #[test]
    fn text_that_is_not_utf8_is_refused_in_its_field() {
        let parsed = parse_fr(b"email,name\na@example.com,Andr\xe9\n").unwrap();
        assert_eq!(
            lines(&parsed.refused),
            ["line 2: name: not UTF-8 text (save the file as \"CSV UTF-8\")"]
        );
    }
}
