use super::*;

const MINIMAL: &str = "[upstream]\nurl = \"http://127.0.0.1:8080\"\n";

fn parse(text: &str) -> Result<Config, ConfigError> {
    from_str(text, "test.toml", std::iter::empty())
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.file.sessions.max_per_member, 3);
    assert_eq!(
        c.file.sessions.idle_timeout,
        std::time::Duration::from_secs(14 * 86400)
    );
    assert_eq!(c.file.lockout.account_max_failures, 6);
    assert_eq!(c.upstream.address, "127.0.0.1:8080");
    assert!(!c.secure_cookies);
}

#[test]
fn example_file_matches_the_defaults() {
    // The example documents every key with its default: parse it and compare with a
    // minimal file carrying the same upstream, key by key through serialization.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/vigile.example.toml");
    let example = load(std::path::Path::new(path), std::iter::empty()).unwrap();
    let minimal = parse(MINIMAL).unwrap();
    assert_eq!(example.to_redacted_toml(), minimal.to_redacted_toml());
    // And it names every key the structs know.
    let text = std::fs::read_to_string(path).unwrap();
    let rendered: toml::Table = minimal.to_redacted_toml().parse().unwrap();
    for (section, keys) in rendered {
        assert!(
            text.contains(&format!("[{section}]")),
            "section {section} undocumented"
        );
        for key in keys.as_table().unwrap().keys() {
            assert!(
                text.contains(&format!("\n{key} =")) || text.contains(&format!("# {key} =")),
                "key {section}.{key} undocumented"
            );
        }
    }
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let err = parse(&format!("{MINIMAL}[sessions]\nmax_per_membr = 2\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("test.toml") && err.contains("max_per_membr"),
        "{err}"
    );
    let err = parse(&format!("{MINIMAL}[sesions]\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("sesions"), "{err}");
}

#[test]
fn bad_values_name_file_key_and_reason() {
    let err = parse(&format!("{MINIMAL}[sessions]\nidle_timeout = \"14x\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("test.toml") && err.contains("sessions.idle_timeout"),
        "{err}"
    );
    let err = parse("[upstream]\nurl = \"ftp://x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("upstream.url") && err.contains("ftp"), "{err}");
    let err = parse(&format!("{MINIMAL}[store]\nurl = \"mysql://x\"\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("store.url"), "{err}");
    let err = parse("[server]\n").unwrap_err().to_string();
    assert!(err.contains("upstream"), "{err}");
    let err = parse(&format!("{MINIMAL}[access]\npublic = [\"nope\"]\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("access.public"), "{err}");
}

#[test]
fn environment_overrides_keys() {
    let c = from_str(
        MINIMAL,
        "test.toml",
        env(&[
            ("VIGILE_STORE__URL", "redis://127.0.0.1:6390/2"),
            ("VIGILE_SESSIONS__MAX_PER_MEMBER", "5"),
            ("VIGILE_ACCESS__PUBLIC", "[\"/\", \"/open/**\"]"),
            ("VIGILE_SERVER__LISTEN", "127.0.0.1:9000"),
            ("VIGILE_CONFIG", "ignored.toml"),
            ("HOME", "/root"),
        ]),
    )
    .unwrap();
    assert_eq!(
        c.store_url,
        StoreUrl::Redis("redis://127.0.0.1:6390/2".into())
    );
    assert_eq!(c.file.sessions.max_per_member, 5);
    assert_eq!(c.file.server.listen, "127.0.0.1:9000");
    assert_eq!(
        c.access
            .classify(&crate::edge::path::CanonicalPath::parse("/open/x").unwrap()),
        crate::access::Access::Public
    );

    let err = from_str(MINIMAL, "test.toml", env(&[("VIGILE_SESSIONS__NOPE", "1")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("VIGILE_SESSIONS__NOPE") || err.contains("nope"),
        "{err}"
    );
    let err = from_str(
        MINIMAL,
        "test.toml",
        env(&[("VIGILE_SESSIONS__MAX_PER_MEMBER", "many")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("VIGILE_SESSIONS__MAX_PER_MEMBER"), "{err}");
}

#[test]
fn secrets_are_redacted_in_output_and_debug() {
    let c = parse(&format!(
        "{MINIMAL}[store]\nurl = \"redis://:hunter2@127.0.0.1:6379/0\"\n[mail]\nsmtp_url = \"smtp://me:pa55word@mail.example:587\"\n"
    ))
    .unwrap();
    let shown = c.to_redacted_toml();
    assert!(
        !shown.contains("hunter2") && !shown.contains("pa55word"),
        "{shown}"
    );
    assert!(shown.contains("****"));
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2") && !debug.contains("pa55word"));
}

#[test]
fn https_public_url_makes_cookies_secure() {
    let c = parse(&format!(
        "{MINIMAL}[server]\npublic_url = \"https://courses.example.com\"\n"
    ))
    .unwrap();
    assert!(c.secure_cookies);
}

#[test]
fn public_url_with_a_path_is_refused() {
    for url in ["https://courses.example.com/members", "http://h/app/"] {
        let e = parse(&format!("{MINIMAL}[server]\npublic_url = \"{url}\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "public_url: a path is not supported; Vigile's pages live at /_vigile/ on the site's host"
            ),
            "{e}"
        );
    }
    parse(&format!(
        "{MINIMAL}[server]\npublic_url = \"https://courses.example.com/\"\n"
    ))
    .unwrap();
}

#[test]
fn support_email_is_checked_once_as_an_address() {
    let with = |value: &str| parse(&format!("{MINIMAL}[site]\nsupport_email = \"{value}\"\n"));
    assert!(with("").unwrap().support_email.is_none());
    let parsed = with(" Help@School.Example ")
        .unwrap()
        .support_email
        .unwrap();
    assert_eq!(parsed.as_str(), "help@school.example");
    for bad in [
        "help",
        "<b>x</b>@school.example",
        "help@localhost",
        "a b@school.example",
    ] {
        let err = with(bad).unwrap_err().to_string();
        assert!(
            err.contains("site.support_email") && err.contains("not a mail address"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn site_name_is_one_line() {
    let with = |value: &str| parse(&format!("{MINIMAL}[site]\nname = \"{value}\"\n"));
    assert_eq!(
        with("École Example").unwrap().file.site.name,
        "École Example"
    );
    let err = with("two\\nlines").unwrap_err().to_string();
    assert!(err.contains("site.name"), "{err}");
}

#[test]
fn identity_header_names_must_be_their_own() {
    // Two identity headers in two spellings of one name, a framing header, one Vigile
    // sets: each refused, naming the key.
    for (headers, key) in [
        ("email = \"remote_user\"", "headers.email"),
        ("name = \"Transfer-Encoding\"", "headers.name"),
        ("org = \"x.forwarded.for\"", "headers.org"),
        ("session = \"Cookie\"", "headers.session"),
        ("groups = \"Host\"", "headers.groups"),
    ] {
        let err = parse(&format!("{MINIMAL}[headers]\n{headers}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{headers}: {err}");
    }
    let renamed = "user = \"X-Portal-User\"\nemail = \"X-Portal-Email\"\n";
    assert!(parse(&format!("{MINIMAL}[headers]\n{renamed}")).is_ok());
}
