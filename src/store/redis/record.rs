//! A flat `HGETALL` reply read field by field: every record kept as a Redis hash (sessions,
//! device challenges, outbox mails) is rebuilt through this, so a missing or unparsable
//! field is always a `Corrupt` error naming the record and the field.

use std::collections::HashMap;
use std::str::FromStr;

use crate::store::{StoreError, StoreResult};

pub(super) struct HashRecord {
    what: &'static str,
    map: HashMap<String, String>,
}

impl HashRecord {
    /// `what` names the record in errors ("session", "outbox mail"…).
    pub fn new(what: &'static str, flat: Vec<String>) -> Self {
        let mut map = HashMap::with_capacity(flat.len() / 2);
        let mut it = flat.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            map.insert(k, v);
        }
        Self { what, map }
    }

    pub fn text(&mut self, name: &str) -> StoreResult<String> {
        self.map
            .remove(name)
            .ok_or_else(|| StoreError::Corrupt(format!("{} without {name}", self.what)))
    }

    /// A field that may be absent.
    pub fn optional(&mut self, name: &str) -> Option<String> {
        self.map.remove(name)
    }

    pub fn number<T: FromStr>(&mut self, name: &str) -> StoreResult<T> {
        self.text(name)?
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("{}: bad {name}", self.what)))
    }
}
