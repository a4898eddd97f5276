//! What a refused form shows again: every typed value, and each refusal beside its field.

use std::collections::HashMap;

use crate::auth::orgs::Refused;
use crate::i18n::Tr;

/// Values by field name and refusals by field name, in the reader's language.
#[derive(Debug, Default, Clone)]
pub struct Fields {
    values: HashMap<&'static str, String>,
    errors: HashMap<&'static str, String>,
}

/// Longest value shown again, in characters (what was typed may be anything).
const SHOWN: usize = 500;

impl Fields {
    /// Keeps the submitted values of `names` (never passwords: the caller does not ask).
    pub fn keep(form: &super::Form, names: &[&'static str]) -> Self {
        let values = names
            .iter()
            .map(|&n| (n, form.get(n).chars().take(SHOWN).collect()))
            .collect();
        Self {
            values,
            errors: HashMap::new(),
        }
    }

    pub fn set(&mut self, name: &'static str, value: impl Into<String>) {
        self.values.insert(name, value.into());
    }

    pub fn refuse(mut self, refused: &[Refused], t: &Tr) -> Self {
        for r in refused {
            let text = r.text(t);
            self.errors
                .entry(r.field)
                .and_modify(|e| {
                    e.push(' ');
                    e.push_str(&text);
                })
                .or_insert(text);
        }
        self
    }

    /// The value to show in the field (empty if none).
    pub fn v(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }

    /// Why the field was refused, if it was.
    pub fn e(&self, name: &str) -> Option<&str> {
        self.errors.get(name).map(String::as_str)
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }
}
