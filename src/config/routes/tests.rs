use super::*;

fn route(toml_text: &str) -> Result<UpstreamRoute, KeyError> {
    let r: RouteSection = toml::from_str(toml_text).unwrap();
    check_route(&r)
}

fn target(raw: &str) -> Target {
    Target::parse(raw.as_bytes()).unwrap()
}

#[test]
fn strip_then_prefix_on_whole_segments() {
    let r = route(
        "path = \"/videos/**\"\nupstream = \"http://127.0.0.1:8081/media/\"\nstrip_prefix = \"/videos\"",
    )
    .unwrap();
    assert_eq!(r.prefix(), "/media");
    let t = |raw: &str| r.rewrite(&target(raw)).unwrap();
    assert_eq!(t("/videos/a.mp4"), "/media/a.mp4");
    assert_eq!(t("/videos"), "/media/");
    assert_eq!(t("/videos/"), "/media/");
    assert_eq!(t("/videos/x/y?q=1&r=%2F"), "/media/x/y?q=1&r=%2F");
    // Escapes in the stripped segment do not hide it.
    assert_eq!(t("/vide%6Fs/a"), "/media/a");
    assert!(r.matches(&target("/videos").path));
    assert!(!r.matches(&target("/videosx/a").path));
    assert!(!r.matches(&target("/VIDEOS/a").path));

    let plain = route("path = \"/api/**\"\nupstream = \"http://h:1\"").unwrap();
    assert_eq!(plain.rewrite(&target("/api/x?y")), None);
    let strip_only =
        route("path = \"/api/**\"\nupstream = \"http://h:1\"\nstrip_prefix = \"/api\"").unwrap();
    assert_eq!(strip_only.rewrite(&target("/api")).unwrap(), "/");
    assert_eq!(strip_only.rewrite(&target("/api/v1?x")).unwrap(), "/v1?x");
    assert_eq!(strip_only.forwarded_prefix.as_deref(), Some("/api"));
    let deep = route(
        "path = \"/a/b/**\"\nupstream = \"http://h:1/p\"\nstrip_prefix = \"/a/b\"\nforwarded_prefix = false",
    )
    .unwrap();
    assert_eq!(deep.rewrite(&target("/a/b/c/d")).unwrap(), "/p/c/d");
    assert_eq!(deep.forwarded_prefix, None);
}

#[test]
fn main_upstream_prefix_joins_without_double_slashes() {
    let up = parse_upstream("http://h:8080/app/").unwrap();
    let t = |raw: &str| upstream_target(None, &up.prefix, &target(raw)).unwrap();
    assert_eq!(t("/x"), "/app/x");
    assert_eq!(t("/"), "/app/");
    assert_eq!(t("/x/?a=b"), "/app/x/?a=b");
    let root = parse_upstream("http://h:8080/").unwrap();
    assert_eq!(upstream_target(None, &root.prefix, &target("/x")), None);
}

#[test]
fn upstream_urls() {
    let u = parse_upstream("https://App.Example:8443/base").unwrap();
    assert_eq!(u.address, "app.example:8443");
    assert!(u.tls);
    assert_eq!(u.sni, "app.example");
    assert_eq!(u.prefix, "/base");
    assert_eq!(u.label, "https://app.example:8443/base");
    let d = parse_upstream("http://h").unwrap();
    assert_eq!(d.address, "h:80");
    assert_eq!(d.origin, parse_upstream("http://h:80/x").unwrap().origin);
    for bad in [
        "ftp://h",
        "http://h/?q=1",
        "http://h/#f",
        "http://u:p@h/",
        "nope",
        "http://h/a%2Fb",
    ] {
        assert!(parse_upstream(bad).is_err(), "{bad}");
    }
}

#[test]
fn invalid_routes_name_the_key() {
    let key = |t: &str| route(t).unwrap_err().0;
    assert_eq!(key("path = \"/a/**\""), "upstream");
    assert_eq!(
        key("path = \"/a/**\"\nupstream = \"http://h:1\"\nupstreams = [\"http://h:2\"]"),
        "upstreams"
    );
    assert_eq!(
        key("path = \"/a/**\"\nupstreams = [\"http://h:1\", \"http://h:1/\"]"),
        "upstreams"
    );
    assert_eq!(
        key("path = \"/a/**\"\nupstreams = [\"http://h:1/x\", \"http://h:2/y\"]"),
        "upstreams"
    );
    assert_eq!(key("path = \"a/**\"\nupstream = \"http://h:1\""), "path");
    for strip in ["/vid", "/b", "/a/", "/", "a", "/a*", "/a/b"] {
        assert_eq!(
            key(&format!(
                "path = \"/a/**\"\nupstream = \"http://h:1\"\nstrip_prefix = \"{strip}\""
            )),
            "strip_prefix",
            "{strip}"
        );
    }
    assert_eq!(
        key("path = \"/a/**\"\nupstream = \"http://h:1\"\nhealth_check = \"/h\""),
        "health_check"
    );
    assert_eq!(
        key("path = \"/a/**\"\nupstreams = [\"http://h:1\"]\nhealth_check = \"h\""),
        "health_check"
    );
    assert_eq!(
        key("path = \"/a/**\"\nupstreams = [\"http://h:1\"]\nhealth_check_interval = \"0s\""),
        "health_check_interval"
    );
    assert_eq!(
        key("path = \"/a/**\"\nupstream = \"http://h:1\"\n[access]\nadmin = [\"x\"]"),
        "access.admin"
    );
    let ok = route(
        "path = \"/a/**\"\nupstreams = [\"http://h:1\", \"http://h:2\"]\nhealth_check = \"/healthz\"\n[access]\npublic = [\"/a/free/**\"]",
    )
    .unwrap();
    assert_eq!(ok.upstreams.len(), 2);
    let rules = ok.access.unwrap();
    let p = |s: &str| CanonicalPath::parse(s).unwrap();
    assert_eq!(
        rules.classify(&p("/a/free/x")),
        crate::access::Access::Public
    );
    // Lists not given are empty, not [access]'s defaults: `/` is not public here.
    assert_eq!(rules.classify(&p("/a/x")), crate::access::Access::Member);
    assert_eq!(rules.classify(&p("/")), crate::access::Access::Member);
}

#[test]
fn the_commented_example_route_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/vigile.example.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("\n# [[route]]\n").unwrap() + 1;
    let end = start + text[start..].find("\n[store]").unwrap();
    let block: String = text[start..end]
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(l)))
        .collect();
    let config = format!("[upstream]\nurl = \"http://127.0.0.1:8080\"\n{block}");
    let c = crate::config::from_str(&config, "example", std::iter::empty()).unwrap();
    assert_eq!(c.routes.len(), 1);
    assert_eq!(c.routes[0].forwarded_prefix.as_deref(), Some("/videos"));
    assert!(c.routes[0].access.is_some());
}

#[test]
fn first_matching_route_wins() {
    let routes = vec![
        route("path = \"/api/admin/**\"\nupstream = \"http://h:1\"").unwrap(),
        route("path = \"/api/**\"\nupstream = \"http://h:2\"").unwrap(),
    ];
    let p = |s: &str| CanonicalPath::parse(s).unwrap();
    assert_eq!(route_for(&routes, &p("/api/admin/x")), Some(0));
    assert_eq!(route_for(&routes, &p("/api/x")), Some(1));
    assert_eq!(route_for(&routes, &p("/api")), Some(1));
    assert_eq!(route_for(&routes, &p("/other")), None);
}
