//! Which paths need what: the `[access]` rules, compiled once.
//!
//! Rules are checked most restrictive first (admin, then the organisation roles from
//! super-admin down, then member, then public) and the first match wins, so an overlap
//! between lists can never expose a protected path; a path no rule names needs a member
//! session (deny by default). Site admin counts as the strictest: a path both an `admin`
//! and an `org_admin` rule name is for site admins only.
//!
//! Matching happens on the [`CanonicalPath`] (percent-decoded; paths an upstream could read
//! differently from us were already refused by the canonicaliser).

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::edge::path::CanonicalPath;

/// Ordered from least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Public,
    Member,
    /// A member of any organisation.
    OrgMember,
    /// An organisation's admin or super-admin.
    OrgAdmin,
    OrgSuperAdmin,
    Admin,
}

impl Access {
    /// Whether a member with these roles may pass.
    pub fn admits(self, admin: bool, org: Option<crate::store::OrgRole>) -> bool {
        use crate::store::OrgRole;
        match self {
            Access::Public | Access::Member => true,
            Access::OrgMember => org.is_some(),
            Access::OrgAdmin => matches!(org, Some(OrgRole::Admin | OrgRole::SuperAdmin)),
            Access::OrgSuperAdmin => org == Some(OrgRole::SuperAdmin),
            Access::Admin => admin,
        }
    }
}

/// One compiled set per list: a single automaton pass per list on the hot path instead
/// of one regex per pattern.
#[derive(Debug, Clone)]
pub struct AccessRules {
    rules: Vec<(GlobSet, Access)>,
    /// `[access] twofactor`: paths that need a session which passed the second factor.
    second_factor: Option<GlobSet>,
}

impl AccessRules {
    /// Compiles every list of `[access]`. On error returns (list name, reason).
    pub fn from_section(a: &crate::config::AccessSection) -> Result<Self, (&'static str, String)> {
        let mut rules = Self::build(&[
            ("admin", &a.admin, Access::Admin),
            ("org_super_admin", &a.org_super_admin, Access::OrgSuperAdmin),
            ("org_admin", &a.org_admin, Access::OrgAdmin),
            ("org_member", &a.org_member, Access::OrgMember),
            ("member", &a.member, Access::Member),
            ("public", &a.public, Access::Public),
        ])?;
        // Compiled like a protected list (any case, the same variants), kept apart: it adds
        // a condition to whatever role rule the path has.
        let second = Self::build(&[("twofactor", &a.twofactor, Access::Member)])?;
        rules.second_factor = second.rules.into_iter().next().map(|(set, _)| set);
        Ok(rules)
    }

    /// Compiles the public, member and admin lists alone.
    pub fn new(
        public: &[String],
        member: &[String],
        admin: &[String],
    ) -> Result<Self, (&'static str, String)> {
        Self::build(&[
            ("admin", admin, Access::Admin),
            ("member", member, Access::Member),
            ("public", public, Access::Public),
        ])
    }

    /// `lists` most restrictive first.
    fn build(lists: &[(&'static str, &[String], Access)]) -> Result<Self, (&'static str, String)> {
        let mut rules = Vec::with_capacity(lists.len());
        for &(name, list, access) in lists {
            // Protected lists match in any case: Express, IIS and case-insensitive file
            // systems serve `/ADMIN` as `/admin`. Public ones stay exact.
            let nocase = access != Access::Public;
            let set = compile_globs(list, nocase).map_err(|e| (name, e))?;
            if !list.is_empty() {
                rules.push((set, access));
            }
        }
        Ok(Self {
            rules,
            second_factor: None,
        })
    }

    /// Access needed for a canonical path.
    ///
    /// The path is also classified in the form some servers route it as, and the stricter
    /// answer wins: without `;` parameters (Tomcat, Jetty and Spring route `/admin;x/users`
    /// to `/admin/users`), without trailing dots and spaces on segments (IIS and Windows
    /// file systems serve `/admin./x` and `/admin%20/x` as `/admin/x`), cut at a decoded
    /// `?` or `#` (a hop that decodes and splits again reads `/admin%3F.css` as `/admin`),
    /// without a trailing slash (Express serves `/settings/` from `/settings`), and without
    /// a format suffix (Rails serves `/settings.json` from `/settings`; only rules that
    /// name a protected path count for that one, so `/style.css` stays public).
    pub fn classify(&self, path: &CanonicalPath) -> Access {
        let path = path.as_str();
        let access = self.classify_exact(path);
        let trailing_slash = path.len() > 1 && path.ends_with('/');
        if !trailing_slash && !path.contains([';', '.', ' ', '?', '#']) {
            return access;
        }
        let bare = bare_form(path);
        let mut access = access.max(self.classify_exact(&bare));
        if let Some(stem) = without_format(&bare) {
            access = access.max(self.classify_protected(stem));
        }
        access
    }

    /// Whether `[access] twofactor` names the path, in any of the forms [`Self::classify`]
    /// reads it (a path that needs it also needs a member session).
    pub fn needs_second_factor(&self, path: &CanonicalPath) -> bool {
        let Some(set) = &self.second_factor else {
            return false;
        };
        let path = path.as_str();
        if set.is_match(path) {
            return true;
        }
        let bare = bare_form(path);
        set.is_match(&bare) || without_format(&bare).is_some_and(|stem| set.is_match(stem))
    }

    /// Like `classify_exact`, but only explicit admin and member rules count.
    fn classify_protected(&self, path: &str) -> Access {
        // One candidate for every list (`is_match` would prepare the path for each).
        let candidate = Candidate::new(path);
        self.rules
            .iter()
            .filter(|(_, access)| *access != Access::Public)
            .find(|(glob, _)| glob.is_match_candidate(&candidate))
            .map_or(Access::Public, |(_, access)| *access)
    }

    fn classify_exact(&self, path: &str) -> Access {
        let candidate = Candidate::new(path);
        self.rules
            .iter()
            .find(|(glob, _)| glob.is_match_candidate(&candidate))
            .map(|(_, access)| *access)
            .unwrap_or(Access::Member)
    }
}

/// Compiles `patterns` as the `[access]` lists are (each must start with `/`; `/x/**`,
/// `/x/*` and `/x/` also cover `/x`), in any letter case when `nocase`. `[[route]] path`
/// uses it too, so both read one glob syntax.
pub fn compile_globs(patterns: &[String], nocase: bool) -> Result<GlobSet, String> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        if !pattern.starts_with('/') {
            return Err(format!("pattern must start with `/`: {pattern}"));
        }
        for variant in variants(pattern) {
            add(&mut set, variant, nocase)?;
        }
    }
    set.build().map_err(|e| e.to_string())
}

/// A pattern and the spellings of the same route frameworks treat as one: `/catalog/**`
/// and `/docs/*` also cover `/catalog` and `/docs`, `/panel/` also covers `/panel`
/// (Express and Spring route both to one handler).
fn variants(pattern: &str) -> Vec<&str> {
    let mut all = vec![pattern];
    for suffix in ["/**", "/*", "/"] {
        if let Some(base) = pattern.strip_suffix(suffix) {
            if !base.is_empty() {
                all.push(base);
            }
            break;
        }
    }
    all
}

/// `path` cut at a decoded `?` or `#`, segments without `;` parameters or trailing dots
/// and spaces, and without a trailing slash.
fn bare_form(path: &str) -> String {
    let cut = path.find(['?', '#']).map_or(path, |at| &path[..at]);
    let bare: String = cut
        .split('/')
        .map(|seg| {
            let name = seg.split(';').next().unwrap_or("");
            name.trim_end_matches(['.', ' '])
        })
        .collect::<Vec<_>>()
        .join("/");
    match bare.strip_suffix('/') {
        Some(b) if !b.is_empty() => b.to_string(),
        _ => bare,
    }
}

/// `/settings.json` → `/settings`: the last segment without a format suffix, if it has one.
fn without_format(path: &str) -> Option<&str> {
    let dot = path.rfind('.')?;
    let (stem, ext) = (&path[..dot], &path[dot + 1..]);
    let named = !stem.ends_with('/') && !stem.is_empty();
    (named && !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(stem)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(raw: &str) -> CanonicalPath {
        CanonicalPath::parse(raw).unwrap()
    }

    #[test]
    fn second_factor_paths_match_in_every_form_the_role_rules_read() {
        let section = crate::config::AccessSection {
            twofactor: vec!["/admin/**".into(), "/billing".into()],
            ..Default::default()
        };
        let r = AccessRules::from_section(&section).unwrap();
        for yes in [
            "/admin",
            "/admin/x",
            "/ADMIN/x",
            "/admin;x/y",
            "/admin./y",
            "/billing",
            "/billing/",
            "/billing.json",
        ] {
            assert!(r.needs_second_factor(&p(yes)), "{yes}");
        }
        for no in ["/", "/administrator", "/catalog/admin", "/billingx"] {
            assert!(!r.needs_second_factor(&p(no)), "{no}");
        }
        let none = AccessRules::from_section(&Default::default()).unwrap();
        assert!(!none.needs_second_factor(&p("/admin/x")));
    }

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
        assert_eq!(r.classify(&p("/")), Access::Public);
        assert_eq!(r.classify(&p("/catalog")), Access::Public);
        assert_eq!(r.classify(&p("/catalog/rust/intro")), Access::Public);
        assert_eq!(r.classify(&p("/catalog/premium/x")), Access::Member);
        assert_eq!(r.classify(&p("/admin")), Access::Admin);
        assert_eq!(r.classify(&p("/admin/users/1")), Access::Admin);
        assert_eq!(r.classify(&p("/courses/1")), Access::Member);
        assert_eq!(r.classify(&p("/favicon.ico")), Access::Public);
        assert_eq!(r.classify(&p("/favicon.icox")), Access::Member);
    }

    #[test]
    fn case_and_path_params_cannot_dodge_a_protected_rule() {
        let r = rules();
        assert_eq!(r.classify(&p("/ADMIN/users")), Access::Admin);
        assert_eq!(r.classify(&p("/Admin")), Access::Admin);
        assert_eq!(r.classify(&p("/catalog/PREMIUM/x")), Access::Member);
        assert_eq!(r.classify(&p("/admin;x/users")), Access::Admin);
        assert_eq!(
            r.classify(&p("/catalog/premium;jsessionid=1/x")),
            Access::Member
        );
        assert_eq!(r.classify(&p("/catalog/a;b")), Access::Public);
        assert_eq!(r.classify(&p("/admin./x")), Access::Admin);
        assert_eq!(r.classify(&p("/admin%20/x")), Access::Admin);
        assert_eq!(r.classify(&p("/admin.%20")), Access::Admin);
        assert_eq!(r.classify(&p("/catalog/file.")), Access::Public);
        let exact =
            AccessRules::new(&["/**".into()], &[], &["/settings".into(), "/a/*".into()]).unwrap();
        for path in [
            "/settings/",
            "/SETTINGS/",
            "/settings;x/",
            "/Settings./",
            "/a/x/",
        ] {
            assert_eq!(exact.classify(&p(path)), Access::Admin, "{path}");
        }
        assert_eq!(exact.classify(&p("/other/")), Access::Public);
        // Rules written with a trailing slash or a star cover the bare path too, both ways.
        let slash = AccessRules::new(
            &["/**".into(), "/about/".into(), "/docs/*".into()],
            &["/account/".into()],
            &["/panel/".into(), "/c/*/".into()],
        )
        .unwrap();
        for (path, want) in [
            ("/panel", Access::Admin),
            ("/PANEL", Access::Admin),
            ("/panel;x", Access::Admin),
            ("/c/1", Access::Admin),
            ("/account", Access::Member),
        ] {
            assert_eq!(slash.classify(&p(path)), want, "{path}");
        }
        let deny = AccessRules::new(
            &["/about/".into(), "/docs/*".into(), "/*.css".into()],
            &[],
            &["/settings".into()],
        )
        .unwrap();
        for path in [
            "/about/",
            "/about",
            "/docs/",
            "/docs/x",
            "/style.css",
            "/tags%23",
        ] {
            assert_eq!(
                deny.classify(&p(path)),
                if path == "/tags%23" {
                    Access::Member
                } else {
                    Access::Public
                },
                "{path}"
            );
        }
        // Format suffixes and a decoded `?` / `#` meet the protected rule they hide.
        for path in [
            "/settings.json",
            "/SETTINGS.css",
            "/settings%3F.css",
            "/settings%23.css",
        ] {
            assert_eq!(deny.classify(&p(path)), Access::Admin, "{path}");
        }
        // Public rules stay exact: `/CATALOG` is not the public `/catalog`.
        assert_eq!(r.classify(&p("/CATALOG/x")), Access::Member);
    }

    #[test]
    fn star_does_not_cross_segments() {
        let r = AccessRules::new(&["/a/*".into()], &[], &[]).unwrap();
        assert_eq!(r.classify(&p("/a/b")), Access::Public);
        assert_eq!(r.classify(&p("/a/b/c")), Access::Member);
    }

    #[test]
    fn bad_patterns_are_reported() {
        assert!(AccessRules::new(&["nope".into()], &[], &[]).is_err());
        assert!(AccessRules::new(&["/[".into()], &[], &[]).is_err());
    }
}
