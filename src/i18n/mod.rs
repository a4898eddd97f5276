//! Languages and message catalogs. Every user-facing string lives in `locales/{en,fr}/*.ftl`
//! (Fluent), never in Rust or template literals; a test checks both catalogs have the same
//! keys. Bidi isolation marks are turned off: they would leak into HTML and mail text.

use std::borrow::Cow;
use std::collections::HashMap;

use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{langid, static_loader, LanguageIdentifier, Loader};

static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "en",
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

static EN: LanguageIdentifier = langid!("en");
static FR: LanguageIdentifier = langid!("fr");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    Fr,
    En,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::Fr, Lang::En];

    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fr" => Some(Lang::Fr),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    fn id(self) -> &'static LanguageIdentifier {
        match self {
            Lang::Fr => &FR,
            Lang::En => &EN,
        }
    }

    /// Picks the language: the `vigile_lang` cookie, else the best `Accept-Language`
    /// entry we ship, else the configured default.
    pub fn negotiate(cookie: Option<&str>, accept_language: Option<&str>, default: Lang) -> Lang {
        if let Some(lang) = cookie.and_then(Lang::parse) {
            return lang;
        }
        let Some(header) = accept_language else {
            return default;
        };
        let mut best: Option<(f32, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let primary = tag.split('-').next().unwrap_or("");
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if let Some(lang) = Lang::parse(primary) {
                if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                    best = Some((q, lang));
                }
            }
        }
        best.map(|(_, l)| l).unwrap_or(default)
    }

    pub fn tr(self) -> Tr {
        Tr { lang: self }
    }
}

/// A catalog bound to one language; templates call `t.get("key")`.
/// A placeholder value: integers as numbers, so plural selectors (`[one]`) work; any
/// other text (including "007") as is.
fn arg(v: &str) -> FluentValue<'static> {
    match v.parse::<i64>() {
        Ok(n) if n.to_string() == v => FluentValue::from(n),
        _ => FluentValue::from(v.to_string()),
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Tr {
    pub lang: Lang,
}

impl Tr {
    pub fn get(&self, key: &str) -> String {
        LOCALES.try_lookup(self.lang.id(), key).unwrap_or_else(|| {
            tracing::warn!(key, lang = self.lang.code(), "missing catalog entry");
            key.to_string()
        })
    }

    /// A message with `{ $name }` placeholders.
    pub fn with(&self, key: &str, args: &[(&'static str, String)]) -> String {
        let map: HashMap<Cow<'static, str>, FluentValue> = args
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), arg(v)))
            .collect();
        LOCALES
            .try_lookup_with_args(self.lang.id(), key, &map)
            .unwrap_or_else(|| key.to_string())
    }

    pub fn code(&self) -> &'static str {
        self.lang.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn keys(lang: &str) -> BTreeSet<String> {
        let dir = format!("{}/locales/{lang}", env!("CARGO_MANIFEST_DIR"));
        let mut out = BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for line in text.lines() {
                if let Some((k, _)) = line.split_once(" =") {
                    if !k.starts_with(['#', ' ', '.']) && !k.is_empty() {
                        out.insert(k.to_string());
                    }
                }
            }
        }
        out
    }

    #[test]
    fn catalogs_have_the_same_keys() {
        let (fr, en) = (keys("fr"), keys("en"));
        assert!(!en.is_empty());
        let only_en: Vec<_> = en.difference(&fr).collect();
        let only_fr: Vec<_> = fr.difference(&en).collect();
        assert!(
            only_en.is_empty() && only_fr.is_empty(),
            "en only: {only_en:?}, fr only: {only_fr:?}"
        );
    }

    #[test]
    fn lookups_differ_by_language() {
        assert_ne!(
            Lang::Fr.tr().get("login-title"),
            Lang::En.tr().get("login-title")
        );
        assert!(!Lang::En
            .tr()
            .with("hello-name", &[("name", "Ann".into())])
            .contains('\u{2068}'));
    }

    #[test]
    fn negotiation() {
        assert_eq!(Lang::negotiate(Some("en"), Some("fr"), Lang::Fr), Lang::En);
        assert_eq!(
            Lang::negotiate(None, Some("de-DE,en;q=0.8,fr;q=0.9"), Lang::En),
            Lang::Fr
        );
        assert_eq!(Lang::negotiate(None, Some("en-GB"), Lang::Fr), Lang::En);
        assert_eq!(Lang::negotiate(None, Some("de"), Lang::Fr), Lang::Fr);
        assert_eq!(Lang::negotiate(Some("xx"), None, Lang::En), Lang::En);
    }
}
