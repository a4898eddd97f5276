use proptest::prelude::*;

use super::*;

fn ok(id_type: &str, raw: &str) -> String {
    match CompanyId::parse(id_type, raw) {
        Ok(id) => {
            assert_eq!(id.kind().as_str(), id_type);
            assert_eq!(id.to_string(), id.number());
            id.number().to_owned()
        }
        Err(e) => panic!("{id_type} {raw:?} refused: {e}"),
    }
}

fn err(id_type: &str, raw: &str) -> CompanyIdError {
    match CompanyId::parse(id_type, raw) {
        Ok(id) => panic!("{id_type} {raw:?} accepted as {id:?}"),
        Err(e) => e,
    }
}

#[test]
fn sirets_with_a_valid_key_are_kept_as_14_digits() {
    for raw in [
        "73282932000074",
        "732 829 320 00074",
        " 732\u{A0}829\u{A0}320\u{202F}00074\t",
        // La Poste's head office passes Luhn.
        "35600000000048",
        "356 000 000 00048",
    ] {
        let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
        assert_eq!(ok("siret", raw), digits, "{raw:?}");
    }
}

#[test]
fn la_poste_sirets_may_use_the_sum_of_digits_instead_of_luhn() {
    // 3+5+6+1 = 15: a multiple of 5, but not a Luhn number.
    assert!(!luhn_ok("35600000000010"));
    assert_eq!(ok("siret", "356 000 000 00010"), "35600000000010");
    // The exception is La Poste's only: the same sum elsewhere needs Luhn.
    assert!(!luhn_ok("35600000100000"));
    assert_eq!(err("siret", "35600000100000"), CompanyIdError::Siret);
    // Neither rule: sum 3+5+6+1+1 = 16, not Luhn.
    assert_eq!(err("siret", "35600000000011"), CompanyIdError::Siret);
}

#[test]
fn bad_sirets_are_refused() {
    for raw in [
        "73282932000075",
        "73282932000084",
        "7328293200007",
        "732829320000740",
        "7328293200007A",
        "732.829.320.00074",
        "732-829-320-00074",
        "732829320\u{200B}00074",
        "７３２８２９３２０００７４",
        "FR40303265045",
    ] {
        assert_eq!(err("siret", raw), CompanyIdError::Siret, "{raw:?}");
    }
}

#[test]
fn vat_numbers_of_each_kind_are_normalised() {
    for (raw, stored) in [
        ("FR40303265045", "FR40303265045"),
        ("fr 40 303 265 045", "FR40303265045"),
        ("FR-40.303.265.045", "FR40303265045"),
        ("DE136695976", "DE136695976"),
        ("BE0411905847", "BE0411905847"),
        ("BE 0411.905.847", "BE0411905847"),
        ("IT00743110157", "IT00743110157"),
        ("GB980780684", "GB980780684"),
        ("GB 980 7806 84", "GB980780684"),
        ("GBGD001", "GBGD001"),
        ("XI980780684", "XI980780684"),
        ("NL004495445B01", "NL004495445B01"),
        ("nl004495445b01", "NL004495445B01"),
        ("ESX2482300W", "ESX2482300W"),
        ("esa12345674", "ESA12345674"),
        ("ES12345678Z", "ES12345678Z"),
        ("ATU13585627", "ATU13585627"),
        ("IE6388047V", "IE6388047V"),
        ("IE1234567WA", "IE1234567WA"),
        ("IE8Z49289F", "IE8Z49289F"),
        ("IE7+12345A", "IE7+12345A"),
        ("EL094259216", "EL094259216"),
        ("RO18547290", "RO18547290"),
        ("RO12", "RO12"),
        ("CY10259033P", "CY10259033P"),
        ("CZ699001182", "CZ699001182"),
        ("SE556188840401", "SE556188840401"),
        ("LT119511515", "LT119511515"),
        ("CHE-116.281.710", "CHE116281710"),
        ("CHE-116.281.710 TVA", "CHE116281710"),
        ("CHE116281710MWST", "CHE116281710"),
        ("che-116.281.710 iva", "CHE116281710"),
        ("CHE 116 281 710 TPV", "CHE116281710"),
        ("NO 923 609 016 MVA", "NO923609016"),
        ("NO923609016", "NO923609016"),
        // Alphabetic keys (new-style numbers) are taken on their shape.
        ("FRA1303265045", "FRA1303265045"),
        ("FR 0A 303265045", "FR0A303265045"),
    ] {
        assert_eq!(ok("vat", raw), stored, "{raw:?}");
    }
}

#[test]
fn vat_numbers_of_the_wrong_shape_or_key_are_refused() {
    for raw in [
        // French key: 40 is right for this SIREN.
        "FR41303265045",
        "FR00303265045",
        "FR4030326504",
        "DE13669597",
        "DE1366959760",
        "DE13669597A",
        "BE2411905847",
        "BE411905847",
        "IT0074311015",
        "GB98078068",
        "GBGD01",
        "NL004495445B1",
        "NL004495445X01",
        "ES123456789",
        "ESX2482300",
        "ATU1358562",
        "AT13585627",
        "RO1",
        "RO12345678901",
        "CHE11628171",
        "CHE116281710XYZ",
        "CHE116281710 TVA MWST",
        "CH116281710",
        "NO923609016MWST",
        // Greece is EL in VIES; GR is not a prefix.
        "GR094259216",
        "US123456789",
        "136695976",
        "DE",
        "D",
        "DE_136695976",
        "DE136695976é",
        "DE\u{200B}136695976",
        "DE136695976\u{0}",
        "ＤＥ136695976",
    ] {
        assert_eq!(err("vat", raw), CompanyIdError::Vat, "{raw:?}");
    }
}

#[test]
fn other_identifications_are_trimmed_free_text() {
    assert_eq!(
        ok("other", "  RCS Paris B 123 456 789 "),
        "RCS Paris B 123 456 789"
    );
    assert_eq!(
        ok("other", "Handelsregister München HRB 1"),
        "Handelsregister München HRB 1"
    );
    let longest = "é".repeat(MAX_OTHER_CHARS);
    assert_eq!(ok("other", &format!(" {longest} ")), longest);
    assert_eq!(
        err("other", &"x".repeat(MAX_OTHER_CHARS + 1)),
        CompanyIdError::Other
    );
    assert_eq!(err("other", &"x".repeat(10_000)), CompanyIdError::Other);
    for raw in [
        "a\u{0}b",
        "a\nb",
        "a\tb",
        "a\u{7F}b",
        "a\u{202E}b",
        "a\u{200B}b",
        "a\u{AD}b",
        "a\u{2028}b",
        "a\u{E000}b",
    ] {
        assert_eq!(err("other", raw), CompanyIdError::Other, "{raw:?}");
    }
}

#[test]
fn empty_numbers_and_unknown_types_have_their_own_keys() {
    for id_type in ["siret", "vat", "other"] {
        assert_eq!(err(id_type, ""), CompanyIdError::Empty);
        assert_eq!(err(id_type, " \t\u{A0}\n"), CompanyIdError::Empty);
    }
    for id_type in ["", "SIRET", "Vat", " vat", "siren", "other\0"] {
        assert_eq!(
            err(id_type, "73282932000074"),
            CompanyIdError::Type,
            "{id_type:?}"
        );
    }
    assert_eq!(CompanyIdError::Empty.key(), "org-id-empty");
    assert_eq!(CompanyIdError::Type.key(), "org-id-type-invalid");
    assert_eq!(CompanyIdError::Siret.key(), "org-id-siret-invalid");
    assert_eq!(CompanyIdError::Vat.key(), "org-id-vat-invalid");
    assert_eq!(CompanyIdError::Other.key(), "org-id-other-invalid");
}

#[test]
fn input_is_capped_before_any_work() {
    let padded = format!("{}73282932000074", " ".repeat(MAX_NUMBER_INPUT));
    assert_eq!(err("siret", &padded), CompanyIdError::Siret);
    let padded = format!("{}DE136695976", " ".repeat(MAX_NUMBER_INPUT));
    assert_eq!(err("vat", &padded), CompanyIdError::Vat);
    assert_eq!(err("vat", &"9".repeat(1_000_000)), CompanyIdError::Vat);
}

#[test]
fn id_types_round_trip() {
    for kind in [IdType::Siret, IdType::Vat, IdType::Other] {
        assert_eq!(IdType::parse(kind.as_str()), Some(kind));
        assert_eq!(kind.to_string(), kind.as_str());
    }
}

#[test]
fn the_vat_table_is_well_formed() {
    assert_eq!(VAT_FORMATS.len(), 27 + 4, "EU 27, XI, GB, CH, NO");
    let mut prefixes: Vec<&str> = VAT_FORMATS.iter().map(|(p, _)| *p).collect();
    prefixes.sort_unstable();
    prefixes.dedup();
    assert_eq!(prefixes.len(), VAT_FORMATS.len(), "a prefix twice");
    for (prefix, shapes) in VAT_FORMATS {
        assert!(
            prefix.len() == 2 && prefix.bytes().all(|b| b.is_ascii_uppercase()),
            "{prefix}"
        );
        assert!(!shapes.is_empty(), "{prefix}");
        for shape in *shapes {
            assert!(shape_items(shape).is_some(), "{prefix}: {shape:?}");
        }
    }
    for (prefix, _) in VAT_SUFFIXES {
        assert!(prefixes.contains(prefix), "{prefix}");
    }
}

#[test]
fn the_shape_language_reads_what_it_documents() {
    let items = |s| shape_items(s).unwrap_or_else(|| panic!("{s:?}"));
    assert_eq!(
        items("U8d"),
        vec![
            Item {
                min: 1,
                max: 1,
                class: Class::Exactly(b'U')
            },
            Item {
                min: 8,
                max: 8,
                class: Class::Digit
            },
        ]
    );
    assert_eq!(
        items("2-10x[+*]"),
        vec![
            Item {
                min: 2,
                max: 10,
                class: Class::LetterOrDigit
            },
            Item {
                min: 1,
                max: 1,
                class: Class::OneOf(b"+*")
            },
        ]
    );
    for bad in ["0d", "3-2d", "2-d", "9", "9q", "[]", "[+", "d-", "é"] {
        assert_eq!(shape_items(bad), None, "{bad:?}");
    }
    assert!(shape_matches("2-4d", b"12"));
    assert!(shape_matches("2-4d", b"1234"));
    assert!(!shape_matches("2-4d", b"1"));
    assert!(!shape_matches("2-4d", b"12345"));
    // Backing off: the range gives its last digit to the next item.
    assert!(shape_matches("2-4dd", b"1234"));
    assert!(shape_matches("9dB2d", b"004495445B01"));
    assert!(!shape_matches("9dB2d", b"004495445C01"));
    assert!(!shape_matches("9d", b""));
    assert!(shape_matches("", b""));
}

/// A Luhn-valid SIRET from 13 digits.
fn with_luhn_key(first13: &str) -> String {
    (0..10u8)
        .map(|d| format!("{first13}{d}"))
        .find(|s| luhn_ok(s))
        .unwrap_or_default()
}

/// A string of the shape, characters chosen from `seed`.
fn sample(shape: &str, seed: &[u8]) -> String {
    let mut next = seed.iter().copied().cycle();
    let mut pick = |n: usize| usize::from(next.next().unwrap_or(0)) % n;
    let mut out = String::new();
    for item in shape_items(shape).unwrap_or_default() {
        let n = item.min + pick(item.max - item.min + 1);
        for _ in 0..n {
            let b = match item.class {
                Class::Digit => b'0' + pick(10) as u8,
                Class::Letter => b'A' + pick(26) as u8,
                Class::LetterOrDigit => b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[pick(36)],
                Class::OneOf(set) => set[pick(set.len())],
                Class::Exactly(b) => b,
            };
            out.push(char::from(b));
        }
    }
    out
}

/// A VAT number the table accepts: any country, any of its shapes; French numeric keys
/// computed.
fn table_vat() -> impl Strategy<Value = String> {
    (
        any::<proptest::sample::Index>(),
        any::<proptest::sample::Index>(),
        proptest::collection::vec(any::<u8>(), 1..32),
    )
        .prop_map(|(country, shape, seed)| {
            let (prefix, shapes) = *country.get(VAT_FORMATS);
            let mut rest = sample(shape.get::<&str>(shapes), &seed);
            if prefix == "FR" && rest.bytes().take(2).all(|b| b.is_ascii_digit()) {
                let siren: u64 = rest[2..].parse().unwrap_or(0);
                rest = format!("{:02}{}", (12 + 3 * (siren % 97)) % 97, &rest[2..]);
            }
            format!("{prefix}{rest}")
        })
}

/// Spellings of `s` a person might type: separators anywhere, any case.
fn spelling(s: &str, seps: &[(usize, char)], lower: &[bool]) -> String {
    let mut out = String::new();
    for (i, (c, low)) in s.chars().zip(lower.iter().cycle()).enumerate() {
        for (_, sep) in seps.iter().filter(|(at, _)| *at == i) {
            out.push(*sep);
        }
        out.push(if *low { c.to_ascii_lowercase() } else { c });
    }
    out
}

fn space() -> impl Strategy<Value = char> {
    proptest::sample::select(vec![' ', '\u{A0}', '\u{202F}'])
}

fn separator() -> impl Strategy<Value = char> {
    proptest::sample::select(vec![' ', '.', '-', '\u{A0}', '\u{202F}'])
}

/// Characters from which near-VAT and near-SIRET inputs are made.
fn number_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => proptest::char::range('0', '9'),
        2 => proptest::char::range('A', 'Z'),
        1 => proptest::char::range('a', 'z'),
        2 => proptest::sample::select(vec![
            ' ', '.', '-', '+', '*', '\u{A0}', '\u{202F}', '\u{200B}', '\t', '_', 'é', '\u{FF10}',
        ]),
    ]
}

fn near_number() -> impl Strategy<Value = String> {
    (
        proptest::sample::select(
            VAT_FORMATS
                .iter()
                .map(|(p, _)| *p)
                .chain(["", "GR", "fr", "cHe", "35600000"])
                .collect::<Vec<_>>(),
        ),
        proptest::collection::vec(number_char(), 0..24),
    )
        .prop_map(|(prefix, chars)| format!("{prefix}{}", chars.into_iter().collect::<String>()))
}

fn id_type() -> impl Strategy<Value = String> {
    proptest::sample::select(vec!["siret", "vat", "other", "SIRET", ""]).prop_map(String::from)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_input_never_panics(kind in id_type(), raw in "\\PC{0,200}") {
        let _ = CompanyId::parse(&kind, &raw);
    }

    #[test]
    fn any_unicode_never_panics(kind in id_type(), raw in any::<String>()) {
        let _ = CompanyId::parse(&kind, &raw);
    }

    #[test]
    fn accepted_numbers_are_clean_and_reparse_to_themselves(
        kind in id_type(),
        raw in near_number(),
    ) {
        if let Ok(id) = CompanyId::parse(&kind, &raw) {
            let n = id.number();
            match id.kind() {
                IdType::Siret => {
                    prop_assert!(n.len() == 14 && n.bytes().all(|b| b.is_ascii_digit()), "{n:?}");
                }
                IdType::Vat => prop_assert!(
                    n.bytes().all(|b| b.is_ascii_alphanumeric() && !b.is_ascii_lowercase()
                        || b == b'+'
                        || b == b'*'),
                    "{n:?}"
                ),
                IdType::Other => {
                    prop_assert_eq!(n.trim(), n);
                    prop_assert!(!n.chars().any(hidden), "{n:?}");
                }
            }
            prop_assert_eq!(CompanyId::parse(id.kind().as_str(), n), Ok(id.clone()));
        }
    }

    #[test]
    fn every_format_of_the_table_is_accepted_in_any_spelling(
        vat in table_vat(),
        seps in proptest::collection::vec((0usize..20, separator()), 0..6),
        lower in proptest::collection::vec(any::<bool>(), 1..6),
    ) {
        let id = CompanyId::parse("vat", &vat);
        prop_assert_eq!(id.as_ref().map(CompanyId::number), Ok(vat.as_str()));
        let typed = spelling(&vat, &seps, &lower);
        prop_assert_eq!(CompanyId::parse("vat", &typed), id.clone(), "{:?}", typed);
        let stored = id.clone().map(|i| i.to_string()).unwrap_or_default();
        prop_assert_eq!(CompanyId::parse("vat", &stored), id);
    }

    #[test]
    fn a_french_numeric_key_is_the_only_one(siren in 0u64..1_000_000_000, key in 0u64..100) {
        let right = (12 + 3 * (siren % 97)) % 97;
        let vat = format!("FR{key:02}{siren:09}");
        let parsed = CompanyId::parse("vat", &vat);
        if key == right {
            prop_assert_eq!(parsed.map(|id| id.to_string()), Ok(vat));
        } else {
            prop_assert_eq!(parsed, Err(CompanyIdError::Vat));
        }
    }

    #[test]
    fn valid_sirets_are_accepted_in_any_spacing(
        first13 in "[0-9]{13}",
        seps in proptest::collection::vec((0usize..14, space()), 0..5),
    ) {
        let siret = with_luhn_key(&first13);
        let typed = spelling(&siret, &seps, &[false]);
        prop_assert_eq!(CompanyId::parse("siret", &typed).map(|id| id.to_string()), Ok(siret));
    }

    /// Luhn catches every single-digit error. La Poste's numbers are left out: their
    /// sum-of-digits rule only catches the changes that are not a multiple of 5.
    #[test]
    fn a_siret_with_one_digit_changed_is_refused(
        first13 in "[0-9]{13}",
        at in 0usize..14,
        by in 1u8..10,
    ) {
        let siret = with_luhn_key(&first13);
        let mut digits = siret.clone().into_bytes();
        digits[at] = b'0' + (digits[at] - b'0' + by) % 10;
        let changed = String::from_utf8(digits).unwrap_or_default();
        prop_assume!(!siret.starts_with(LA_POSTE_SIREN) && !changed.starts_with(LA_POSTE_SIREN));
        let parsed = CompanyId::parse("siret", &changed);
        prop_assert_eq!(parsed, Err(CompanyIdError::Siret), "{}", changed);
    }

    #[test]
    fn free_text_is_accepted_unless_hidden_or_long(raw in "\\PC{0,120}") {
        match CompanyId::parse("other", &raw) {
            Ok(id) => {
                prop_assert_eq!(id.number(), raw.trim());
                prop_assert!(id.number().chars().count() <= MAX_OTHER_CHARS);
            }
            Err(CompanyIdError::Empty) => prop_assert!(raw.trim().is_empty()),
            Err(e) => {
                prop_assert_eq!(e, CompanyIdError::Other);
                let t = raw.trim();
                prop_assert!(
                    t.chars().count() > MAX_OTHER_CHARS || t.chars().any(hidden),
                    "{:?}",
                    raw
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn very_long_input_never_panics(kind in id_type(), raw in "\\PC{1000,5000}") {
        prop_assert!(CompanyId::parse(&kind, &raw).is_err() || kind == "other");
    }
}
