use proptest::prelude::*;

use super::*;

fn ok(raw: &str) -> CanonicalPath {
    CanonicalPath::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
}

#[test]
fn plain_paths_are_kept() {
    for raw in [
        "/",
        "/a",
        "/a/",
        "/catalog/rust/intro",
        "/a;jsessionid=1/b",
        "/x.html",
    ] {
        let p = ok(raw);
        assert_eq!(p.wire(), raw);
        assert_eq!(p.as_str(), raw);
    }
}

#[test]
fn encoding_is_normalised() {
    // Composed (NFC) accents are fine.
    assert_eq!(ok("/caf%C3%A9").as_str(), "/caf\u{e9}");
    let p = ok("/%61dmin/%7e%2b/caf%c3%a9");
    assert_eq!(p.as_str(), "/admin/~+/café");
    assert_eq!(p.wire(), "/admin/~%2B/caf%C3%A9");
    // Raw bytes that must be escaped are escaped; decoding gives the same path.
    let p = ok("/caf\u{e9}/{x}|");
    assert_eq!(p.wire(), "/caf%C3%A9/%7Bx%7D%7C");
    assert_eq!(p.as_str(), "/caf\u{e9}/{x}|");
}

#[test]
fn the_reported_bypasses_are_refused() {
    for raw in [
        "/catalog/..;/admin/x",
        "/catalog/%2e%2e;/admin/x",
        "/catalog/..;jsessionid=1/admin/x",
        "/catalog/x/..;/..;/admin/x",
        "/;/admin/x",
        "/;x/admin/x",
        "/;jsessionid=1/admin/x",
        "//catalog/admin/x",
        "/catalog//admin",
        "/catalog/../admin",
        "/catalog/%2e%2e/admin",
        "/catalog/..%2fadmin",
        "/catalog/.%2e/admin",
        "/catalog/./admin",
        "/catalog/.../admin",
        "/catalog/.;/admin",
        "/catalog/%2E/admin",
        "/a%2fb",
        "/a%5cb",
        "/a\\b",
        "/a%3bb",
        "/a%252e%252e/b",
        "/x%00",
        "/x%0a",
        "/a#b",
        "/%zz",
        "/%c0%ae%c0%ae/admin",
        "/catalog/\u{ff0e}\u{ff0e}/admin",
        "/catalog\u{ff0f}..\u{ff0f}admin",
        "/catalog/%ef%bc%8e%ef%bc%8e/admin",
        "/\u{ff41}\u{ff44}\u{ff4d}\u{ff49}\u{ff4e}/x",
        "/%EF%BD%81dmin/x",
        "/admin%C2%AD/x",
        "/admin%E2%80%8B/x",
        "/admin%E2%80%AE/x",
        "/admin%C2%A0/x",
        "/%+A",
        "/administration::$INDEX_ALLOCATION/x",
        "/admin:$DATA",
        "/catalog/..%20/admin/x",
        "/catalog/.%20/admin/x",
        "/catalog/..%20;/admin",
        "/catalog/%E2%88%95admin",
        "/admin%C2%A5x",
        "/adm%C4%B1n/x",
        "/ADM%C4%B0N/x",
        "/catalog/%E3%80%82%E3%80%82/admin",
        "/%A+",
        "admin",
        "",
    ] {
        assert!(CanonicalPath::parse(raw).is_err(), "{raw:?} accepted");
    }
}

#[test]
fn targets_in_origin_and_absolute_form() {
    let t = Target::parse(b"/a?x=1&y=%2F").unwrap();
    assert_eq!(t.path.as_str(), "/a");
    assert_eq!(t.query.as_deref(), Some("x=1&y=%2F"));
    assert_eq!(t.wire(), "/a?x=1&y=%2F");
    let t = Target::parse(b"HTTP://h:80/%61?q").unwrap();
    assert_eq!(t.authority.as_deref(), Some("h:80"));
    assert_eq!(t.wire(), "/a?q");
    let t = Target::parse(b"https://h").unwrap();
    assert_eq!(t.wire(), "/");
    for bad in [
        &b"foo:/admin"[..],
        b"*",
        b"",
        b"/a\xff",
        b"mailto:x",
        b"/a?b#c",
    ] {
        assert!(Target::parse(bad).is_err(), "{bad:?}");
    }
}

/// Percent-decodes (no `+` rule): what every framework does to a path before routing.
fn decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn path_strategy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just(";".to_string()),
        Just("\\".to_string()),
        "[a-zA-Z0-9_~-]{1,4}",
        "%[0-9a-fA-F]{2}",
        Just("%2e".to_string()),
        Just("%2F".to_string()),
        Just("\u{ff0e}".to_string()),
        Just("é".to_string()),
        Just("{".to_string()),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|v| format!("/{}", v.concat()))
}

proptest! {
    #[test]
    fn accepted_paths_have_one_meaning(raw in path_strategy()) {
        if let Ok(p) = CanonicalPath::parse(&raw) {
            // The wire form decodes to the matched path, and to what the original decodes to.
            prop_assert_eq!(decode(p.wire()), p.as_str().as_bytes().to_vec());
            prop_assert_eq!(decode(&raw), p.as_str().as_bytes().to_vec());
            // Canonical is a fixed point.
            let again = CanonicalPath::parse(p.wire()).unwrap();
            prop_assert_eq!(again.wire(), p.wire());
            // No segment a resolver could collapse or climb.
            let segs: Vec<&str> = p.as_str()[1..].split('/').collect();
            for (i, s) in segs.iter().enumerate() {
                let name = s.split(';').next().unwrap_or("");
                prop_assert!(name != "." && name != "..", "{}", raw);
                prop_assert!(!name.is_empty() || (i + 1 == segs.len() && !s.contains(';')), "{}", raw);
            }
            prop_assert!(!p.as_str().contains('\\'));
        }
    }

    #[test]
    fn the_plain_path_shortcut_agrees_with_the_general_walk(raw in "/[a-zA-Z0-9._~/%;:-]{0,24}") {
        let walked = CanonicalPath::walk(raw.as_bytes());
        prop_assert_eq!(CanonicalPath::parse(&raw), walked.clone());
        if plain(raw.as_bytes()).is_some() {
            // Taken only where the walk keeps the bytes as they are, both ways.
            let walked = walked.unwrap();
            prop_assert_eq!(walked.as_str(), raw.as_str());
            prop_assert_eq!(walked.wire(), raw.as_str());
        }
    }

    #[test]
    fn is_wire_is_comparing_with_wire(raw in "/[a-z/%.?]{0,12}(\\?[a-z?=%]{0,6})?", other in "/[a-z/?]{0,8}") {
        if let Ok(t) = Target::parse(raw.as_bytes()) {
            for candidate in [raw.as_bytes(), other.as_bytes(), t.wire().as_bytes()] {
                prop_assert_eq!(t.is_wire(candidate), t.wire().as_bytes() == candidate);
            }
        }
    }

    #[test]
    fn the_first_byte_check_agrees_with_the_whole_vigile_test(
        raw in "/(_|%5[fF]|[vV]|%76)?([_vViIgGlLeE.;/ ]|%5[fF]|%20|%2e){0,10}",
    ) {
        // The whole test, without the shortcut on the first byte.
        fn whole(p: &CanonicalPath) -> bool {
            let first = p.as_str()[1..].split('/').next().unwrap_or("");
            let name = first.split(';').next().unwrap_or("");
            name.trim_end_matches(['.', ' ']).eq_ignore_ascii_case("_vigile")
        }
        if let Ok(p) = CanonicalPath::parse(&raw) {
            prop_assert_eq!(p.is_vigile(), whole(&p), "{}", raw);
        }
    }

    #[test]
    fn never_panics_on_bytes(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Target::parse(&raw);
    }
}

#[test]
fn vigile_pages_are_told_in_every_spelling_a_framework_reads_as_them() {
    for (raw, ours) in [
        ("/_vigile", true),
        ("/_vigile/login", true),
        ("/_VIGILE/login", true),
        ("/%5Fvigile/login", true),
        ("/%5fVigile", true),
        ("/_vigile;x/login", true),
        ("/_vigile./login", true),
        ("/_vigile%20/login", true),
        ("/_vigilex", false),
        ("/x/_vigile", false),
        ("/vigile", false),
        ("/", false),
        ("/courses/rust", false),
    ] {
        let p = CanonicalPath::parse(raw).unwrap();
        assert_eq!(p.is_vigile(), ours, "{raw}");
    }
}
