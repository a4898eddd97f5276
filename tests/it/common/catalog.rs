//! The message ids of Vigile's catalogs (`locales/*/*.ftl`), for tests that check no page,
//! mail or text shows a key instead of its words.

use std::collections::BTreeSet;

/// Every message id of the catalogs, less `shown`: words the pages show on purpose (group
/// names, method names as form values) whether or not a catalog also uses them as ids.
pub fn keys_except(shown: &[&str]) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for lang in ["en", "fr"] {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("locales")
            .join(lang);
        for entry in std::fs::read_dir(&dir).expect("read the catalogs") {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "ftl") {
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let starts_entry = line.starts_with(|c: char| c.is_ascii_alphabetic());
                if let Some((key, _)) = line.split_once('=').filter(|_| starts_entry) {
                    keys.insert(key.trim().to_string());
                }
            }
        }
    }
    assert!(keys.len() > 50, "read only {} keys", keys.len());
    for word in shown {
        keys.remove(*word);
    }
    keys
}
