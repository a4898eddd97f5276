//! Reading Vigile's organisation pages as a person reads them: the members, invitations
//! and organisations tables by their `data-*` hooks, and a form's `.field` blocks, to see
//! next to which field an error is shown and what a refused form kept.

use crate::common::http;

/// One row of the members list: `<tr data-member="ID" data-role="ROLE">`, its text.
#[derive(Debug, Clone)]
pub(crate) struct MemberRow {
    pub id: String,
    pub role: String,
    pub text: String,
}

/// The value of attribute `name` in the opening tag `tag` (`<tr ...>`), entities decoded.
fn tag_attr(tag: &str, name: &str) -> Option<String> {
    for quote in ['"', '\''] {
        let needle = format!(" {name}={quote}");
        if let Some(at) = tag.find(&needle) {
            let rest = &tag[at + needle.len()..];
            let value = rest.split(quote).next()?;
            return Some(http::decode_entities(value));
        }
    }
    None
}

/// `(opening tag, text up to </tr>)` of every table row of `page`.
fn rows(page: &str) -> Vec<(String, String)> {
    page.split("<tr")
        .skip(1)
        .map(|row| {
            let tag_end = row.find('>').unwrap_or(row.len());
            let tag = format!(" {}", &row[..tag_end]);
            let body = row[tag_end..].split("</tr>").next().unwrap_or("");
            (tag, http::decode_entities(body))
        })
        .collect()
}

/// The members list of an organisation page.
pub(crate) fn member_rows(page: &str) -> Vec<MemberRow> {
    rows(page)
        .into_iter()
        .filter_map(|(tag, text)| {
            Some(MemberRow {
                id: tag_attr(&tag, "data-member")?,
                role: tag_attr(&tag, "data-role").unwrap_or_default(),
                text,
            })
        })
        .collect()
}

/// The row of the member whose address is `email`.
pub(crate) fn member_row(page: &str, email: &str) -> MemberRow {
    member_rows(page)
        .into_iter()
        .find(|r| r.text.contains(email))
        .unwrap_or_else(|| panic!("no member row for {email} in:\n{page}"))
}

/// The addresses of the pending invitations (`<tr data-invite="EMAIL">`).
pub(crate) fn invite_rows(page: &str) -> Vec<String> {
    rows(page)
        .into_iter()
        .filter_map(|(tag, _)| tag_attr(&tag, "data-invite"))
        .collect()
}

/// `<tr data-org="ID">` rows of the site admin page: (id, text).
pub(crate) fn org_rows(page: &str) -> Vec<(String, String)> {
    rows(page)
        .into_iter()
        .filter_map(|(tag, text)| Some((tag_attr(&tag, "data-org")?, text)))
        .collect()
}

/// Byte offsets of the opening tags whose class list holds `field`.
fn field_starts(page: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = page[from..].find("class=\"") {
        let at = from + pos;
        let value_start = at + "class=\"".len();
        let value = page[value_start..].split('"').next().unwrap_or("");
        if value.split_whitespace().any(|c| c == "field") {
            if let Some(open) = page[..at].rfind('<') {
                out.push(open);
            }
        }
        from = value_start;
    }
    out
}

/// The `.field` block holding the control named `name`: from its opening tag to the next
/// `.field` block (or the end of the form).
pub(crate) fn field_block(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no control named {name:?} in:\n{page}"));
    let starts = field_starts(page);
    let start = starts
        .iter()
        .rev()
        .find(|&&s| s < at)
        .copied()
        .unwrap_or_else(|| panic!("{name:?} is in no .field block:\n{page}"));
    let end = starts
        .iter()
        .find(|&&s| s > at)
        .copied()
        .or_else(|| page[at..].find("</form>").map(|e| at + e))
        .unwrap_or(page.len());
    page[start..end].to_string()
}

/// Whether a `.field-error` is shown in the block of the control named `name`.
pub(crate) fn error_next_to(page: &str, name: &str) -> bool {
    field_block(page, name).contains("field-error")
}

/// Asserts the field error is next to `name` and next to none of `others`.
pub(crate) fn assert_error_only_at(page: &str, name: &str, others: &[&str]) {
    assert!(
        error_next_to(page, name),
        "no .field-error next to {name:?}:\n{}",
        field_block(page, name)
    );
    for other in others {
        assert!(
            !error_next_to(page, other),
            "a .field-error next to {other:?} too:\n{}",
            field_block(page, other)
        );
    }
}

/// Asserts the control named `name` still holds `value` (an input's value, a textarea's
/// text, the selected option or checked radio).
pub(crate) fn assert_kept(page: &str, name: &str, value: &str) {
    let block = field_block(page, name);
    let decoded = http::decode_entities(&block);
    let is_choice = block.contains("<select") || block.contains("type=\"radio\"");
    if is_choice {
        let option = block
            .split('<')
            .find(|tag| tag.contains(&format!("value=\"{value}\"")))
            .unwrap_or_else(|| panic!("no choice {value:?} for {name:?}:\n{block}"));
        assert!(
            option.contains("selected") || option.contains("checked"),
            "{name:?}: {value:?} is not the chosen one:\n{block}"
        );
    } else {
        assert!(
            decoded.contains(&format!("value=\"{value}\""))
                || decoded.contains(&format!(">{value}</textarea>")),
            "{name:?} lost {value:?}:\n{block}"
        );
    }
}

/// The `value` of the first control named `name` in `html`, entities decoded.
pub(crate) fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let open = html[..at].rfind('<')?;
    let close = html[at..].find('>').map_or(html.len(), |e| at + e);
    tag_attr(&format!(" {}", &html[open..close]), "value")
}

/// The inside of the first form posting to `action`.
pub(crate) fn form_html<'a>(page: &'a str, action: &str) -> &'a str {
    let at = page
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form to {action}:\n{page}"));
    let end = page[at..].find("</form>").map_or(page.len(), |e| at + e);
    &page[at..end]
}
