use proptest::prelude::*;

use super::*;

fn region(s: &str) -> Region {
    Region::parse(s).unwrap_or_else(|| panic!("region {s:?}"))
}

fn ok(raw: &str, in_region: &str) -> String {
    match Phone::parse(raw, region(in_region)) {
        Ok(p) => {
            assert_eq!(p.to_string(), p.as_str());
            p.into_string()
        }
        Err(e) => panic!("{raw:?} in {in_region} refused: {e}"),
    }
}

#[test]
fn french_numbers_in_every_usual_spelling() {
    for raw in [
        "06 12 34 56 78",
        "0612345678",
        "06.12.34.56.78",
        "06-12-34-56-78",
        "06/12/34/56/78",
        " 06 12 34 56 78\n",
        "06\u{A0}12\u{A0}34\u{202F}56\u{202F}78",
        "+33 6 12 34 56 78",
        "+33-6-12-34-56-78",
        "+336-12-34-56-78",
        "+33612345678",
        "+33 (0)6 12 34 56 78",
        "(+33) 6 12 34 56 78",
        "0033 6 12 34 56 78",
        "33 6 12 34 56 78",
    ] {
        assert_eq!(ok(raw, "FR"), "+33612345678", "{raw:?}");
    }
    assert_eq!(ok("01 42 68 53 00", "FR"), "+33142685300");
}

#[test]
fn international_input_is_the_same_in_every_region() {
    for r in ["FR", "GB", "US", "IT", "DE", "CI", "JP"] {
        assert_eq!(ok("+44 20 7946 0958", r), "+442079460958", "{r}");
        assert_eq!(ok("+33 6 12 34 56 78", r), "+33612345678", "{r}");
        assert_eq!(ok("+1 (242) 357-1234", r), "+12423571234", "{r}");
        // Numbers whose national part starts with 0 keep it, whatever the region's own
        // national prefix.
        assert_eq!(ok("+39 06 6981 2345", r), "+390669812345", "{r}");
        assert_eq!(ok("+225 07 07 12 34 56", r), "+2250707123456", "{r}");
    }
    assert_eq!(ok("020 7946 0958", "GB"), "+442079460958");
    // The crate alone refuses these: a dash in the first group makes them RFC 3966.
    assert_eq!(ok("+4420-7946-0958", "FR"), "+442079460958");
    assert_eq!(ok("+79-123456789", "FR"), "+79123456789");
    assert_eq!(ok("06 6981 2345", "IT"), "+390669812345");
    assert_eq!(ok("0039 06 6981 2345", "FR"), "+390669812345");
    assert_eq!(ok("011 39 06 6981 2345", "US"), "+390669812345");
    assert_eq!(ok("00 44 20 7946 0958", "FR"), "+442079460958");
    assert_eq!(ok("0692 12 34 56", "RE"), "+262692123456");
    assert_eq!(ok("+262 692 12 34 56", "FR"), "+262692123456");
}

#[test]
fn letters_extensions_and_uris_are_refused_not_read() {
    for raw in [
        // A letter O is the 6 key to libphonenumber.
        "06 12 34 56 7O",
        "1-800-FLOWERS",
        "06 12 34 56 78 ext. 12",
        "06 12 34 56 78 x12",
        "06 12 34 56 78;ext=12",
        "06 12 34 56 78#12",
        "tel:+33612345678",
        "+33-6-12;phone-context=+33",
        "+33 6 12 34 56 78+",
        "6+33 12 34 56 78",
        "++33612345678",
        "+33+612345678",
        "０６１２３４５６７８",
        "٠٦١٢٣٤٥٦٧٨",
        "06 12 34 56 78\u{0}",
        "06\t12 34 56 78",
        "06\u{200B}12345678",
        "06_12_34_56_78",
        "+",
        "()",
        "-",
    ] {
        assert_eq!(
            Phone::parse(raw, Region::FR),
            Err(PhoneError::Invalid),
            "{raw:?}"
        );
    }
}

#[test]
fn numbers_the_metadata_calls_invalid_are_refused() {
    for (raw, r) in [
        ("06 12 34 56 7", "FR"),
        ("06 12 34 56 78 9", "FR"),
        ("+33 6 12 34 56 78 9", "GB"),
        ("0", "FR"),
        ("00 00 00 00 00", "FR"),
        ("+999 123 456 789", "FR"),
        ("+33 1", "FR"),
        ("06 12 34 56 78 06 12 34 56 78", "FR"),
        ("0692 12 34 56", "FR"),
        ("12", "US"),
    ] {
        assert_eq!(
            Phone::parse(raw, region(r)),
            Err(PhoneError::Invalid),
            "{raw:?} in {r}"
        );
    }
}

#[test]
fn empty_and_long_input_have_their_own_keys() {
    assert_eq!(Phone::parse("", Region::FR), Err(PhoneError::Empty));
    assert_eq!(Phone::parse(" \t\n", Region::FR), Err(PhoneError::Empty));
    let padded = format!("{:>width$}", "06 12 34 56 78", width = MAX_INPUT);
    assert_eq!(ok(&padded, "FR"), "+33612345678");
    let padded = format!(" {padded}");
    assert_eq!(Phone::parse(&padded, Region::FR), Err(PhoneError::TooLong));
    assert_eq!(
        Phone::parse(&"6".repeat(1_000_000), Region::FR),
        Err(PhoneError::TooLong)
    );
    assert_eq!(PhoneError::Empty.key(), "phone-empty");
    assert_eq!(PhoneError::TooLong.key(), "phone-too-long");
    assert_eq!(PhoneError::Invalid.key(), "phone-invalid");
}

#[test]
fn regions_are_two_letter_codes_the_metadata_has() {
    assert_eq!(Region::parse("FR"), Some(Region::FR));
    assert_eq!(Region::parse(" fr "), Some(Region::FR));
    assert_eq!(Region::default(), Region::FR);
    assert_eq!(region("gb").to_string(), "GB");
    assert_eq!(region("CI").id(), Id::CI);
    for bad in ["", "F", "FRA", "ZZ", "UK", "001", "F1", "É1", "fr\0"] {
        assert_eq!(Region::parse(bad), None, "{bad:?}");
    }
    // Every region of the metadata can be named, and reads its own example number.
    for meta in DATABASE.iter().filter(|m| m.id() != "001") {
        assert!(Region::parse(meta.id()).is_some(), "{}", meta.id());
    }
}

/// The example numbers of every country in the metadata, written internationally, are read
/// as themselves from any region.
#[test]
fn every_countrys_example_numbers_are_accepted_from_anywhere() {
    let regions = ["FR", "US", "GB", "IT", "RU"].map(region);
    let mut checked = 0;
    for meta in DATABASE.iter() {
        let d = meta.descriptors();
        for example in [d.fixed_line(), d.mobile()]
            .into_iter()
            .flatten()
            .filter_map(|e| e.example())
        {
            let code = meta.country_code();
            let e164 = format!("+{code}{example}");
            for r in regions {
                for raw in [format!("+{code} {example}"), e164.clone()] {
                    assert_eq!(
                        Phone::parse(&raw, r).map(Phone::into_string),
                        Ok(e164.clone()),
                        "{} {raw:?} in {r}",
                        meta.id()
                    );
                }
            }
            assert_eq!(
                Phone::parse(&format!("00 {code} {example}"), Region::FR).map(Phone::into_string),
                Ok(e164.clone()),
                "{} from France",
                meta.id()
            );
            assert_eq!(
                Phone::parse(&format!("011 {code} {example}"), region("US"))
                    .map(Phone::into_string),
                Ok(e164.clone()),
                "{} from the US",
                meta.id()
            );
            checked += 1;
        }
    }
    assert!(checked > 400, "{checked} examples");
}

fn any_region() -> impl Strategy<Value = Region> {
    proptest::sample::select(
        [
            "FR", "GB", "US", "DE", "IT", "BE", "CH", "ES", "CI", "RE", "JP", "BR", "IN", "AU",
            "CN", "RU",
        ]
        .map(region)
        .to_vec(),
    )
}

/// Characters phone numbers are typed with, and some they should not be.
fn phone_char() -> impl Strategy<Value = char> {
    prop_oneof![
        12 => proptest::char::range('0', '9'),
        3 => proptest::sample::select(vec![
            ' ', '+', '(', ')', '-', '.', '/', '\u{A0}', '\u{202F}',
        ]),
        1 => proptest::sample::select(vec![
            'O', 'x', 'e', ';', '#', '*', ':', '=', 't', '\t', '\u{0}', '\u{200B}', '\u{FF10}',
            '\u{660}', 'é',
        ]),
    ]
}

fn separator() -> impl Strategy<Value = char> {
    proptest::sample::select(vec![' ', '-', '.', '/', '\u{A0}', '\u{202F}'])
}

fn phone_like() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(phone_char(), 0..34)
            .prop_map(|cs| cs.into_iter().collect::<String>()),
        // Plausible prefixes, to reach valid numbers more often.
        (
            proptest::sample::select(vec![
                "+33 ", "0", "06", "+44", "+1", "+39 0", "00", "011", "+225 0", "+"
            ]),
            "[0-9 ]{6,16}",
        )
            .prop_map(|(p, rest)| format!("{p}{rest}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn any_input_never_panics(raw in "\\PC{0,48}", r in any_region()) {
        let _ = Phone::parse(&raw, r);
    }

    #[test]
    fn any_unicode_never_panics(raw in any::<String>(), r in any_region()) {
        let _ = Phone::parse(&raw, r);
    }

    #[test]
    fn accepted_numbers_are_e164_and_reparse_to_themselves(
        raw in phone_like(),
        r in any_region(),
        other in any_region(),
    ) {
        if let Ok(phone) = Phone::parse(&raw, r) {
            let s = phone.as_str();
            prop_assert!(s.starts_with('+'), "{s:?}");
            prop_assert!((8..=16).contains(&s.len()), "{s:?}");
            prop_assert!(s[1..].bytes().all(|b| b.is_ascii_digit()), "{s:?}");
            prop_assert_eq!(Phone::parse(s, r), Ok(phone.clone()));
            prop_assert_eq!(Phone::parse(s, other), Ok(phone.clone()), "read in {}", other);
        }
    }

    #[test]
    fn french_national_numbers_become_plus_33(rest in "[1-9][0-9]{8}") {
        if let Ok(phone) = Phone::parse(&format!("0{rest}"), Region::FR) {
            prop_assert_eq!(phone.into_string(), format!("+33{rest}"));
        }
    }

    #[test]
    fn separators_do_not_change_the_reading(
        digits in "[0-9]{6,14}",
        lead in proptest::sample::select(vec!["", "+", "0", "+33 ", "+44 ", "00"]),
        seps in proptest::collection::vec((0usize..16, separator()), 0..4),
        r in any_region(),
    ) {
        let plain = format!("{lead}{digits}");
        let mut spaced = String::from(lead);
        for (i, c) in digits.chars().enumerate() {
            for (_, sep) in seps.iter().filter(|(at, _)| *at == i && i > 0) {
                spaced.push(*sep);
            }
            spaced.push(c);
        }
        prop_assume!(spaced.len() <= MAX_INPUT);
        prop_assert_eq!(Phone::parse(&spaced, r), Phone::parse(&plain, r), "{:?}", spaced);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn very_long_input_is_refused_before_the_crate(raw in "\\PC{33,5000}", r in any_region()) {
        prop_assume!(raw.len() > MAX_INPUT);
        prop_assert_eq!(Phone::parse(&raw, r), Err(PhoneError::TooLong));
    }
}

#[test]
fn mobiles_receive_texts_and_landlines_do_not() {
    let fr = region("FR");
    for mobile in ["06 12 34 56 78", "07 81 23 45 67", "+44 7400 123456"] {
        assert!(Phone::parse_mobile(mobile, fr).is_ok(), "{mobile}");
    }
    // Paris landline, French freephone.
    for landline in ["01 42 68 53 00", "0800 123 456"] {
        assert_eq!(
            Phone::parse_mobile(landline, fr),
            Err(PhoneError::NotMobile),
            "{landline}"
        );
        assert!(Phone::parse(landline, fr).is_ok(), "{landline}");
    }
    assert_eq!(Phone::parse_mobile("12", fr), Err(PhoneError::Invalid));
}

#[test]
fn a_number_knows_its_country() {
    let fr = region("FR");
    let uk = Phone::parse("+44 7400 123456", fr).unwrap();
    assert_eq!(uk.region(), Some(region("GB")));
    assert_eq!(
        Phone::parse("06 12 34 56 78", fr).unwrap().region(),
        Some(fr)
    );
}
