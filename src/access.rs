//! Which paths need what: the `[access]` rules, compiled once.
//!
//! Rules are checked most restrictive first (admin, then member, then public) and the first
//! match wins, so an overlap between lists can never expose a protected path; a path no rule
//! names needs a member session (deny by default).
//!
//! Matching happens on a normalised path (percent-decoded, repeated slashes collapsed).
//! Paths an upstream could read differently from us (dot segments, encoded slashes or
//! backslashes, NUL) are refused outright rather than guessed at.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Member,
    Admin,
}

/// One compiled set per list: a single automaton pass per list on the hot path instead
/// of one regex per pattern.
#[derive(Debug, Clone)]
pub struct AccessRules {
    rules: Vec<(GlobSet, Access)>,
}

impl AccessRules {
    /// Compiles the three lists. On error returns (list name, reason).
    pub fn new(
        public: &[String],
        member: &[String],
        admin: &[String],
    ) -> Result<Self, (&'static str, String)> {
        let mut rules = Vec::with_capacity(3);
        for (name, list, access) in [
            ("admin", admin, Access::Admin),
            ("member", member, Access::Member),
            ("public", public, Access::Public),
        ] {
            let mut set = GlobSetBuilder::new();
            for pattern in list {
                if !pattern.starts_with('/') {
                    return Err((name, format!("pattern must start with `/`: {pattern}")));
                }
                // Protected lists match in any case: Express, IIS and case-insensitive file
                // systems serve `/ADMIN` as `/admin`. Public ones stay exact.
                let nocase = access != Access::Public;
                add(&mut set, pattern, nocase).map_err(|e| (name, e))?;
                // `/catalog/**` also covers `/catalog` itself, as operators expect.
                if let Some(base) = pattern.strip_suffix("/**") {
                    if !base.is_empty() {
                        add(&mut set, base, nocase).map_err(|e| (name, e))?;
                    }
                }
            }
            if !list.is_empty() {
                let set = set.build().map_err(|e| (name, e.to_string()))?;
                rules.push((set, access));
            }
        }
        Ok(Self { rules })
    }

    /// Access needed for an already normalised path (see [`normalize_path`]).
    ///
    /// A path with `;` parameters is also classified without them (Tomcat, Jetty and
    /// Spring route `/admin;x/users` to `/admin/users`), and the stricter answer wins.
    pub fn classify(&self, path: &str) -> Access {
        let access = self.classify_exact(path);
        if !path.contains(';') {
            return access;
        }
        let bare: String = path
            .split('/')
            .map(|seg| seg.split(';').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("/");
        match (access, self.classify_exact(&bare)) {
            (Access::Admin, _) | (_, Access::Admin) => Access::Admin,
            (Access::Member, _) | (_, Access::Member) => Access::Member,
            _ => Access::Public,
        }
    }

    fn classify_exact(&self, path: &str) -> Access {
        self.rules
            .iter()
            .find(|(glob, _)| glob.is_match(path))
            .map(|(_, access)| *access)
            .unwrap_or(Access::Member)
    }
}

fn add(set: &mut GlobSetBuilder, pattern: &str, nocase: bool) -> Result<(), String> {
    let glob = GlobBuilder::new(pattern)
        .literal_separator(true)
        .case_insensitive(nocase)
        .build()
        .map_err(|e| format!("invalid glob `{pattern}`: {e}"))?;
    set.add(glob);
    Ok(())
}

/// Percent-decodes the path part of a request target and collapses repeated slashes.
/// `None` for targets that must be refused (not absolute, dot segments, encoded `/` or `\`,
/// NUL): they are where proxies and applications disagree about what a path means.
pub fn normalize_path(target: &str) -> Option<String> {
    let raw = target.split(['?', '#']).next().unwrap_or("");
    if !raw.starts_with('/') {
        return None;
    }
    let lower = raw.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%00") {
        return None;
    }
    let decoded: Vec<u8> = percent_decode(raw.as_bytes())?;
    let decoded = String::from_utf8(decoded).ok()?;
    if decoded.contains('\\') || decoded.contains('\0') {
        return None;
    }
    let mut out = String::with_capacity(decoded.len());
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        if segment == "." || segment == ".." {
            return None;
        }
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || decoded.ends_with('/') {
        out.push('/');
    }
    Some(out)
}

fn percent_decode(input: &[u8]) -> Option<Vec<u8>> {
    // form_urlencoded would turn `+` into a space; paths keep `+` literally.
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            let hex = input.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> AccessRules {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        AccessRules::new(
            &s(&["/", "/catalog/**", "/static/**", "/favicon.ico"]),
            &s(&["/catalog/premium/**"]),
            &s(&["/admin/**"]),
        )
        .unwrap()
    }

    #[test]
    fn first_match_most_restrictive_first() {
        let r = rules();
        assert_eq!(r.classify("/"), Access::Public);
        assert_eq!(r.classify("/catalog"), Access::Public);
        assert_eq!(r.classify("/catalog/rust/intro"), Access::Public);
        assert_eq!(r.classify("/catalog/premium/x"), Access::Member);
        assert_eq!(r.classify("/admin"), Access::Admin);
        assert_eq!(r.classify("/admin/users/1"), Access::Admin);
        assert_eq!(r.classify("/courses/1"), Access::Member);
        assert_eq!(r.classify("/favicon.ico"), Access::Public);
        assert_eq!(r.classify("/favicon.icox"), Access::Member);
    }

    #[test]
    fn case_and_path_params_cannot_dodge_a_protected_rule() {
        let r = rules();
        assert_eq!(r.classify("/ADMIN/users"), Access::Admin);
        assert_eq!(r.classify("/Admin"), Access::Admin);
        assert_eq!(r.classify("/catalog/PREMIUM/x"), Access::Member);
        assert_eq!(r.classify("/admin;x/users"), Access::Admin);
        assert_eq!(
            r.classify("/catalog/premium;jsessionid=1/x"),
            Access::Member
        );
        assert_eq!(r.classify("/catalog/a;b"), Access::Public);
        // Public rules stay exact: `/CATALOG` is not the public `/catalog`.
        assert_eq!(r.classify("/CATALOG/x"), Access::Member);
    }

    #[test]
    fn star_does_not_cross_segments() {
        let r = AccessRules::new(&["/a/*".into()], &[], &[]).unwrap();
        assert_eq!(r.classify("/a/b"), Access::Public);
        assert_eq!(r.classify("/a/b/c"), Access::Member);
    }

    #[test]
    fn normalisation_refuses_ambiguous_paths() {
        assert_eq!(normalize_path("/a//b?x=1").as_deref(), Some("/a/b"));
        assert_eq!(normalize_path("//admin").as_deref(), Some("/admin"));
        assert_eq!(normalize_path("/%61dmin/").as_deref(), Some("/admin/"));
        assert_eq!(normalize_path("/").as_deref(), Some("/"));
        for bad in [
            "/catalog/../admin",
            "/catalog/%2e%2e/admin",
            "/a%2fb",
            "/a%5cb",
            "/a\\b",
            "/x%00",
            "admin",
            "/%zz",
            "/./x",
        ] {
            assert_eq!(normalize_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_patterns_are_reported() {
        assert!(AccessRules::new(&["nope".into()], &[], &[]).is_err());
        assert!(AccessRules::new(&["/[".into()], &[], &[]).is_err());
    }
}
