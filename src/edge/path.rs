//! The request path, canonicalised once: the one form the access rules match and the
//! upstream receives.
//!
//! Frameworks disagree about what a path means: Tomcat and Jetty drop `;` parameters before
//! resolving dot segments (`/catalog/..;/admin` is `/admin` to them), Node's `new URL` reads
//! `//catalog/admin` as host `catalog`, WHATWG URL resolves `%2e%2e`, IIS and WHATWG read `\`
//! as `/`, some apps decode twice. Rather than model every reader, a path that two of them
//! could read differently is refused ([`PathError`]), in the spirit of Jetty's URI
//! compliance modes and Envoy's path normalisation:
//!
//! - a dot segment (`.`, `..`, `...`, raw or percent-encoded, with or without `;`
//!   parameters);
//! - an empty segment (`//`) anywhere but the trailing slash, or one with `;` parameters;
//! - an encoded separator, dot, parameter mark or percent sign (`%2F`, `%5C`, `%2E`,
//!   `%3B`, `%25`), a backslash, a fragment mark, a control character; a segment of only
//!   dots and spaces (`..%20`); an NTFS stream name (`admin::$INDEX_ALLOCATION`);
//! - percent-encoding that does not decode to UTF-8 (overlong forms included), non-ASCII
//!   text that Unicode compatibility normalisation (NFKC) changes (fullwidth `．．／` or
//!   `ａｄｍｉｎ`, which NFKC-normalising apps read as `../` and `admin`), and invisible
//!   format characters (soft hyphen, zero-width, bidi controls), and characters other
//!   readers fold into `/ \ .` or ASCII letters (`∕`, `¥`, `。`, `ı`; see `BEST_FIT`).
//!
//! What is left has one meaning. Its canonical wire form is RFC 3986 §6.2.2 normalisation
//! of what came: unreserved characters decoded, other escapes upper-cased, bytes that must
//! be escaped (raw UTF-8, `{`, `|`…) escaped. Percent-decoding the wire form and the
//! original gives the same string, so the upstream reads the path the rules matched.
//! [`CanonicalPath::as_str`] is that decoded string.
//!
//! This module must never guess: when in doubt it refuses.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// Why a request path was refused (a 400 for the client; a label for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request target is not an absolute path")]
    NotAbsolute,
    #[error("the path has a dot segment")]
    DotSegment,
    #[error("the path has an empty segment or parameters on one")]
    EmptySegment,
    #[error("the path has an encoded or ambiguous separator")]
    Separator,
    #[error("the path has a control character")]
    Control,
    #[error("the path's percent-encoding is invalid")]
    Encoding,
    #[error("the path is too long")]
    TooLong,
}

/// Longest path accepted (Pingora already caps the whole request head).
const MAX_LEN: usize = 8 * 1024;

/// A path with one meaning (see the module doc).
#[derive(Clone)]
pub struct CanonicalPath {
    /// Percent-decoded: what the rules match and Vigile's own pages route on.
    decoded: String,
    /// RFC 3986-normalised encoding of the same path: what the upstream receives. `None`
    /// when it is `decoded` (a plain path: nothing escaped or to escape).
    wire: Option<String>,
}

impl PartialEq for CanonicalPath {
    fn eq(&self, other: &Self) -> bool {
        self.decoded == other.decoded && self.wire() == other.wire()
    }
}

impl Eq for CanonicalPath {}

impl fmt::Debug for CanonicalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CanonicalPath({:?})", self.wire())
    }
}

impl CanonicalPath {
    /// Canonicalises the path part of a request target (no query, no fragment).
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        Self::parse_bytes(raw.as_bytes())
    }

    /// As [`CanonicalPath::parse`], for the raw bytes of a request line.
    pub fn parse_bytes(raw: &[u8]) -> Result<Self, PathError> {
        if raw.first() != Some(&b'/') {
            return Err(PathError::NotAbsolute);
        }
        if raw.len() > MAX_LEN {
            return Err(PathError::TooLong);
        }
        match plain(raw) {
            Some(plain) => Ok(Self {
                decoded: plain.to_owned(),
                wire: None,
            }),
            None => Self::walk(raw),
        }
    }

    /// The general case of [`Self::parse_bytes`], segment by segment.
    fn walk(raw: &[u8]) -> Result<Self, PathError> {
        let mut decoded = Vec::with_capacity(raw.len());
        let mut wire = String::with_capacity(raw.len());
        let segments = raw[1..].split(|&b| b == b'/');
        let count = segments.clone().count();
        for (i, segment) in segments.enumerate() {
            let last = i + 1 == count;
            check_segment(segment, last)?;
            decoded.push(b'/');
            wire.push('/');
            let start = decoded.len();
            canonicalise_segment(segment, &mut decoded, &mut wire)?;
            check_decoded_name(&decoded[start..])?;
        }
        let decoded = String::from_utf8(decoded).map_err(|_| PathError::Encoding)?;
        if !decoded.is_ascii() && !unicode_unambiguous(&decoded) {
            return Err(PathError::Separator);
        }
        let wire = (wire != decoded).then_some(wire);
        Ok(Self { decoded, wire })
    }

    /// The percent-decoded path: what access rules and Vigile's routes match.
    pub fn as_str(&self) -> &str {
        &self.decoded
    }

    /// The canonical encoded path sent upstream.
    pub fn wire(&self) -> &str {
        self.wire.as_deref().unwrap_or(&self.decoded)
    }

    /// Whether this is one of Vigile's own pages (`/_vigile` or below). Any spelling a
    /// framework could read as that prefix counts (`/_VIGILE`, `/_vigile;x`, `/_vigile.`),
    /// so such a path is answered here (a 404 if no page) and never reaches the upstream.
    pub fn is_vigile(&self) -> bool {
        // Nearly every path is not: `_` has no other spelling, so one byte tells.
        if self.decoded.as_bytes().get(1) != Some(&b'_') {
            return false;
        }
        let first = self.decoded[1..].split('/').next().unwrap_or("");
        let name = first.split(';').next().unwrap_or("");
        name.trim_end_matches(['.', ' '])
            .eq_ignore_ascii_case(&crate::routes::BASE[1..])
    }
}

/// `raw` when it is already its one canonical form, the common case, which the general
/// walk below would copy byte by byte into the same text twice: only ASCII letters,
/// digits, `- . _ ~` (unreserved, so decoded and wire forms are the bytes themselves)
/// and `/`, no empty segment but the trailing one, no segment of dots only. Anything else
/// takes the general walk, which accepts or refuses it.
fn plain(raw: &[u8]) -> Option<&str> {
    let unreserved = raw
        .iter()
        .filter(|&&b| !(is_unreserved(b) || b == b'/'))
        .count()
        == 0;
    if !unreserved {
        return None;
    }
    let segments = raw[1..].split(|&b| b == b'/');
    let count = segments.clone().count();
    let one_meaning = segments.enumerate().all(|(i, s)| {
        if s.is_empty() {
            i + 1 == count
        } else {
            s.iter().any(|&b| b != b'.')
        }
    });
    // Only ASCII here, so the bytes are text.
    one_meaning.then(|| std::str::from_utf8(raw).ok()).flatten()
}

/// Refuses dot segments, empty segments (but the trailing one of `/a/`) and `;` parameters
/// on either, judging the segment's name (before its first `;`) after decoding.
fn check_segment(segment: &[u8], last: bool) -> Result<(), PathError> {
    let (name, has_params) = match segment.iter().position(|&b| b == b';') {
        Some(at) => (&segment[..at], true),
        None => (segment, false),
    };
    if name.is_empty() {
        return if last && !has_params {
            Ok(())
        } else {
            Err(PathError::EmptySegment)
        };
    }
    // Encoded dots are refused in `canonicalise_segment`, so raw ones suffice here. Windows
    // reads `...` like `..`, so any all-dot name is refused.
    if name.iter().all(|&b| b == b'.') {
        return Err(PathError::DotSegment);
    }
    Ok(())
}

/// A name of only dots and spaces once decoded (`..%20`, `.%20`) is a dot segment to
/// IIS and Windows, which drop trailing dots and spaces.
/// An NTFS stream suffix (`dir::$INDEX_ALLOCATION`, `file::$DATA`) names the same file to
/// a Windows server.
fn check_decoded_name(segment: &[u8]) -> Result<(), PathError> {
    let name = segment.split(|&b| b == b';').next().unwrap_or(&[]);
    if !name.is_empty() && name.iter().all(|&b| b == b'.' || b == b' ') {
        return Err(PathError::DotSegment);
    }
    if name.windows(2).any(|w| w == b":$") {
        return Err(PathError::Separator);
    }
    Ok(())
}

/// Appends one segment to the decoded and wire forms, refusing what is ambiguous.
fn canonicalise_segment(
    segment: &[u8],
    decoded: &mut Vec<u8>,
    wire: &mut String,
) -> Result<(), PathError> {
    let mut i = 0;
    while i < segment.len() {
        let b = segment[i];
        if b == b'%' {
            let byte = match segment.get(i + 1..i + 3) {
                Some(&[h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                    hex_value(h) << 4 | hex_value(l)
                }
                _ => return Err(PathError::Encoding),
            };
            match byte {
                b'/' | b'\\' | b'.' | b';' | b'%' => return Err(PathError::Separator),
                0..=0x1f | 0x7f => return Err(PathError::Control),
                _ => {}
            }
            decoded.push(byte);
            if is_unreserved(byte) {
                wire.push(byte as char);
            } else {
                push_escaped(wire, byte);
            }
            i += 3;
            continue;
        }
        match b {
            b'\\' | b'#' => return Err(PathError::Separator),
            0..=0x1f | 0x7f => return Err(PathError::Control),
            _ if is_unreserved(b) || is_raw_ok(b) => wire.push(b as char),
            _ => push_escaped(wire, b),
        }
        decoded.push(b);
        i += 1;
    }
    Ok(())
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// RFC 3986 unreserved characters: equivalent escaped or not, so decoded in the wire form.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Sub-delimiters, `:` and `@`: allowed raw in a segment, and kept as they came.
fn is_raw_ok(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@'
    )
}

fn push_escaped(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 0xf)] as char);
}

/// Non-ASCII text is unambiguous when NFKC leaves it as it is (composed accents pass;
/// fullwidth forms, ligatures and no-break spaces do not) and it holds no invisible
/// format character (NFKC keeps U+00AD, U+200B and the bidi controls).
fn unicode_unambiguous(decoded: &str) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    decoded.chars().all(|c| {
        c.is_ascii()
            || !(BEST_FIT.contains(&c)
                || matches!(
                    c.general_category(),
                    GeneralCategory::Format
                        | GeneralCategory::LineSeparator
                        | GeneralCategory::ParagraphSeparator
                ))
    }) && decoded.nfkc().eq(decoded.chars())
}

/// Characters NFKC keeps but other readers fold into ASCII that matters here: Windows
/// "best fit" code pages turn `∕ ⁄ ∖ ⧵` into `/` or `\`, `¥ ₩` into `\` (Japanese and
/// Korean code pages), `。` into `.`; Unicode case folding turns `ı İ` into `i` and `ſ`
/// into `s` (Java's `equalsIgnoreCase`, .NET's invariant culture).
const BEST_FIT: [char; 11] = [
    '\u{2215}', '\u{2044}', '\u{2216}', '\u{29F5}', '\u{FE68}', '\u{00A5}', '\u{20A9}', '\u{3002}',
    '\u{0131}', '\u{0130}', '\u{017F}',
];

/// A request target split into what Vigile needs: the canonical path, the query as sent,
/// and the authority when the target was in absolute form (`GET http://host/x`).
#[derive(Debug, Clone)]
pub struct Target {
    pub path: CanonicalPath,
    /// Without the `?`; forwarded byte for byte.
    pub query: Option<String>,
    pub authority: Option<String>,
}

impl Target {
    /// Parses a raw request-target. Only origin form (`/…`) and absolute form with an
    /// `http`/`https` scheme are accepted: for other forms (`foo:/admin`) Pingora's URI and
    /// the upstream's router disagree. A fragment mark is refused (no client sends one).
    pub fn parse(raw: &[u8]) -> Result<Self, PathError> {
        let raw = std::str::from_utf8(raw).map_err(|_| PathError::Encoding)?;
        // Origin form (`/…`) nearly always; an absolute-form target starts with its scheme.
        let (authority, rest) = if raw.starts_with('/') {
            (None, raw)
        } else {
            match split_absolute(raw) {
                Some((authority, rest)) => (Some(authority.to_string()), rest),
                None => return Err(PathError::NotAbsolute),
            }
        };
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        if query.is_some_and(|q| q.contains('#') || q.bytes().any(|b| b < 0x20 || b == 0x7f)) {
            return Err(PathError::Control);
        }
        let path = if path.is_empty() && authority.is_some() {
            "/"
        } else {
            path
        };
        Ok(Self {
            path: CanonicalPath::parse(path)?,
            query: query.map(str::to_string),
            authority,
        })
    }

    /// Whether `raw` is this target's wire form already (as [`Self::wire`], without
    /// building it).
    pub fn is_wire(&self, raw: &[u8]) -> bool {
        let path = self.path.wire().as_bytes();
        match &self.query {
            None => raw == path,
            Some(q) => {
                raw.len() == path.len() + 1 + q.len()
                    && raw.starts_with(path)
                    && raw[path.len()] == b'?'
                    && raw.ends_with(q.as_bytes())
            }
        }
    }

    /// The canonical path and the query: what the upstream receives as request-target.
    pub fn wire(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path.wire()),
            None => self.path.wire().to_string(),
        }
    }
}

/// `http://authority/rest` → (`authority`, `/rest`); `None` when not absolute http(s).
fn split_absolute(raw: &str) -> Option<(&str, &str)> {
    let scheme = |s: &str| {
        raw.get(..s.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(s))
    };
    let after = if scheme("http://") {
        &raw[7..]
    } else if scheme("https://") {
        &raw[8..]
    } else {
        return None;
    };
    let end = after.find(['/', '?']).unwrap_or(after.len());
    Some((&after[..end], &after[end..]))
}

#[cfg(test)]
mod tests;
