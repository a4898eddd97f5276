//! Recovery codes: ten single-use codes `xxxx-xxxx-xxxx` shown once when the first
//! second factor is enrolled. Twelve characters of a 32-letter alphabet are 60 random
//! bits, too many to guess online behind the lockout.
//!
//! They are stored as keyed hashes (HMAC-SHA256 under a server key): 60 bits would not
//! resist an offline search of a stolen store through a plain hash, and cannot be
//! searched at all without the key.

/// Crockford's base32 in lower case: digits and letters without i, l, o and u, so that
/// what is read aloud or copied by hand comes back the same ([`normalise`] maps the
/// look-alikes i, l -> 1 and o -> 0).
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const GROUPS: usize = 3;
const GROUP_LEN: usize = 4;
pub const COUNT: usize = 10;
/// Longer input is refused before any work (a code with generous spacing fits easily).
const MAX_INPUT: usize = 64;

/// Ten fresh codes, in display form.
pub fn generate() -> Vec<String> {
    (0..COUNT).map(|_| one()).collect()
}

fn one() -> String {
    let mut bytes = [0u8; GROUPS * GROUP_LEN];
    crate::crypto::fill_random(&mut bytes);
    // 32 divides 256: the low five bits of a random byte are uniform over the alphabet.
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
        .collect();
    grouped(&chars)
}

fn grouped(chars: &[char]) -> String {
    chars
        .chunks(GROUP_LEN)
        .map(|g| g.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// A typed code in display form, or `None` if it cannot be one: case, spaces and dashes
/// do not matter, and the look-alikes o, i, l read as 0, 1, 1.
pub fn normalise(input: &str) -> Option<String> {
    if input.len() > MAX_INPUT {
        return None;
    }
    let mut chars = Vec::with_capacity(GROUPS * GROUP_LEN);
    for c in input.chars() {
        if c.is_whitespace() || c == '-' {
            continue;
        }
        let c = match c.to_ascii_lowercase() {
            'o' => '0',
            'i' | 'l' => '1',
            c => c,
        };
        if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
            return None;
        }
        chars.push(c);
    }
    (chars.len() == GROUPS * GROUP_LEN).then(|| grouped(&chars))
}

/// What is stored for a code: HMAC-SHA256 under `key` of its display form, base64url.
/// `code` is normalised first (a code that is not one is hashed as given, and so
/// matches no stored code).
pub fn hash(key: &[u8], code: &str) -> String {
    let code = normalise(code).unwrap_or_else(|| code.to_owned());
    // The label keeps these hashes apart from other HMACs under the same key.
    crate::crypto::hmac_b64(key, &["vigile recovery code v1", &code])
}

/// The index in `hashes` of the code typed as `input`, if it is one. Every stored hash is
/// compared, in constant time, whatever matches.
pub fn find(key: &[u8], input: &str, hashes: &[String]) -> Option<usize> {
    let code = normalise(input)?;
    let typed = hash(key, &code);
    let mut found = None;
    for (i, stored) in hashes.iter().enumerate() {
        if crate::crypto::ct_eq(&typed, stored) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn is_display_form(code: &str) -> bool {
        let groups: Vec<&str> = code.split('-').collect();
        groups.len() == GROUPS
            && groups
                .iter()
                .all(|g| g.len() == GROUP_LEN && g.bytes().all(|b| ALPHABET.contains(&b)))
    }

    #[test]
    fn ten_distinct_codes_in_display_form() {
        let codes = generate();
        assert_eq!(codes.len(), 10);
        for c in &codes {
            assert!(is_display_form(c), "{c}");
            assert_eq!(normalise(c).as_deref(), Some(c.as_str()));
        }
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 10);
        assert!(ALPHABET.iter().all(|b| !b"ilou".contains(b)));
        assert_eq!(ALPHABET.len(), 32); // 12 characters x 5 bits = 60 bits
    }

    #[test]
    fn normalise_forgives_case_spacing_and_look_alikes() {
        let c = Some("ab12-cd34-ef56".to_owned());
        for typed in [
            "ab12-cd34-ef56",
            "AB12-CD34-EF56",
            "ab12cd34ef56",
            " ab12 cd34 ef56 ",
            "ab-12-cd-34-ef-56",
            "aB12\tCD34-eF56\n",
        ] {
            assert_eq!(normalise(typed), c, "{typed:?}");
        }
        assert_eq!(
            normalise("Oo1I-lL00-0000").as_deref(),
            Some("0011-1100-0000")
        );
        for bad in [
            "",
            "ab12-cd34-ef5",
            "ab12-cd34-ef567",
            "ab12-cd34-ef5u",
            "ab12_cd34_ef56",
            "ab12-cd34-ef5é",
            &format!("ab12cd34ef56{}", " ".repeat(60)),
        ] {
            assert_eq!(normalise(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hashes_are_keyed_and_take_any_typed_form() {
        let h = hash(KEY, "ab12-cd34-ef56");
        assert_eq!(h, hash(KEY, "AB12 CD34 EF56"));
        assert_ne!(h, hash(b"another key", "ab12-cd34-ef56"));
        assert_ne!(h, hash(KEY, "ab12-cd34-ef57"));
        assert!(!h.contains("ab12"));
    }

    #[test]
    fn find_returns_the_matching_index_only() {
        let codes = generate();
        let hashes: Vec<String> = codes.iter().map(|c| hash(KEY, c)).collect();
        for (i, c) in codes.iter().enumerate() {
            assert_eq!(
                find(KEY, &c.to_uppercase().replace('-', " "), &hashes),
                Some(i)
            );
            assert_eq!(find(b"wrong key", c, &hashes), None);
        }
        assert_eq!(find(KEY, "not a code", &hashes), None);
        assert_eq!(find(KEY, &codes[0], &[]), None);
        // A used code is removed by the caller; what is left no longer matches it.
        assert_eq!(
            find(KEY, &codes[3], &[&hashes[..3], &hashes[4..]].concat()),
            None
        );
    }

    proptest! {
        #[test]
        fn normalise_is_idempotent_and_display_shaped(input in "\\PC{0,80}") {
            if let Some(n) = normalise(&input) {
                prop_assert!(is_display_form(&n));
                prop_assert_eq!(normalise(&n), Some(n.clone()));
            }
        }

        #[test]
        fn any_typing_of_a_stored_code_is_found(
            chars in proptest::collection::vec(proptest::sample::select(ALPHABET.to_vec()), 12),
            upper in proptest::collection::vec(any::<bool>(), 12),
            gaps in proptest::collection::vec(proptest::sample::select(vec!["", " ", "-", "  "]), 12),
            others in proptest::collection::vec("[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}", 0..10),
            at in 0usize..10,
        ) {
            let code = grouped(&chars.iter().map(|&b| char::from(b)).collect::<Vec<_>>());
            let mut typed = String::new();
            for ((b, up), gap) in chars.iter().zip(&upper).zip(&gaps) {
                let c = char::from(*b);
                typed.push(if *up { c.to_ascii_uppercase() } else { c });
                typed.push_str(gap);
            }
            let mut hashes: Vec<String> = others
                .iter()
                .filter(|o| normalise(o).as_deref() != Some(code.as_str()))
                .map(|o| hash(KEY, o))
                .collect();
            let at = at.min(hashes.len());
            hashes.insert(at, hash(KEY, &code));
            prop_assert_eq!(find(KEY, &typed, &hashes), Some(at));
        }
    }
}
