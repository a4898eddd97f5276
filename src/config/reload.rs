//! What a running gateway takes from its configuration file read again (SIGHUP), and
//! what only a restart changes.
//!
//! The sections in [`RESTART_ONLY`] shape what was built once at start: the listening
//! sockets and threads (`server`), the upstream connections, routes' servers and their
//! rewriting (`upstream`, `route` but its `access`), the key sealing two-factor secrets
//! (`twofactor.encryption_key`), the store connection (`store`), the session cache's size
//! (`sessions.cache_size`), the password hasher's pool (`password`), the metrics listener
//! (`metrics`), the identity header names (`headers`) and logging (`log`). A reload keeps
//! their running values and says which of them changed on disk; everything else (access
//! rules, routes' own included, the device cap and what happens over it, the timeouts of
//! new sessions, lockout, sign-up, mail, SMS, contact campaigns, two-factor,
//! organisations, site texts, languages) takes effect for the next request.

use serde::Serialize;

use super::{validate, Config, ConfigError};

/// Sections a reload leaves as they were at start.
pub const RESTART_ONLY: [&str; 10] = [
    "server",
    "upstream",
    "route",
    "twofactor.encryption_key",
    "store",
    "sessions.cache_size",
    "password",
    "metrics",
    "headers",
    "log",
];

/// The configuration to run with after reading `read` while `running` serves: `read`,
/// with the [`RESTART_ONLY`] sections of `running`, validated again as a whole. Also
/// returns the restart-only sections that differ on disk (kept, not applied).
pub fn for_reload(
    running: &Config,
    read: Config,
) -> Result<(Config, Vec<&'static str>), ConfigError> {
    let mut file = read.file;
    let mut kept = Vec::new();
    macro_rules! keep {
        ($($section:ident),*) => {$(
            if !same(&running.file.$section, &file.$section) {
                kept.push(stringify!($section));
                file.$section = running.file.$section.clone();
            }
        )*};
    }
    keep!(server, upstream, store, password, metrics, headers, log);
    // Routes: their servers and pools were built at start, their access rules reload.
    let servers = |routes: &[super::routes::RouteSection]| {
        let mut routes = routes.to_vec();
        routes.iter_mut().for_each(|r| r.access = None);
        routes
    };
    if !same(&servers(&running.file.route), &servers(&file.route)) {
        kept.push("route");
        file.route = running.file.route.clone();
    }
    // Sealed two-factor secrets (TOTP seeds, recovery codes) are read with this key: a
    // new one takes a restart (every instance at once), not a signal to one of them.
    if file.twofactor.encryption_key != running.file.twofactor.encryption_key {
        kept.push("twofactor.encryption_key");
        file.twofactor.encryption_key = running.file.twofactor.encryption_key.clone();
    }
    // The cache is sized once; the device cap and the timeouts of new sessions reload.
    if file.sessions.cache_size != running.file.sessions.cache_size {
        kept.push("sessions.cache_size");
        file.sessions.cache_size = running.file.sessions.cache_size;
    }
    debug_assert!(kept.iter().all(|k| RESTART_ONLY.contains(k)));
    Ok((validate(file, &read.source)?, kept))
}

/// Two sections are the same when they serialize the same, secrets as they are (a
/// rotated password is a change; the values are compared, never printed).
pub(crate) fn same<T: Serialize>(a: &T, b: &T) -> bool {
    super::secret::exposed(
        || match (toml::Value::try_from(a), toml::Value::try_from(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:8080\"\npublic_url = \"http://127.0.0.1:8080\"\n\
             [upstream]\nurl = \"http://127.0.0.1:9000\"\n{extra}"
        );
        super::super::from_str(&text, "test.toml", Vec::new()).unwrap()
    }

    #[test]
    fn rules_and_caps_apply_restart_only_sections_are_kept() {
        let running = config("[sessions]\nmax_per_member = 3\n");
        let read = config(
            "[sessions]\nmax_per_member = 5\ncache_size = 10\nidle_timeout = \"5m\"\n\
             [access]\npublic = [\"/news/**\"]\n[metrics]\nlisten = \"127.0.0.1:1\"\n",
        );
        let (next, kept) = for_reload(&running, read).unwrap();
        assert_eq!(kept, ["metrics", "sessions.cache_size"]);
        assert_eq!(
            next.file.sessions.cache_size,
            running.file.sessions.cache_size
        );
        assert_eq!(next.file.metrics.listen, running.file.metrics.listen);
        assert_eq!(next.file.sessions.max_per_member, 5);
        assert_eq!(next.file.sessions.idle_timeout.as_secs(), 300);
        assert_ne!(
            toml::Value::try_from(&next.file.access).unwrap(),
            toml::Value::try_from(&running.file.access).unwrap()
        );
    }

    #[test]
    fn a_changed_password_alone_is_a_change() {
        let running = config("[store]\nurl = \"redis://:old@127.0.0.1:6379/0\"\n");
        let read = config("[store]\nurl = \"redis://:new@127.0.0.1:6379/0\"\n");
        let mail = |url: &str| config(&format!("[mail]\nsmtp_url = \"{url}\"\n")).file.mail;
        assert!(!same(&mail("smtp://u:p1@h:25"), &mail("smtp://u:p2@h:25")));
        assert!(same(&mail("smtp://u:p1@h:25"), &mail("smtp://u:p1@h:25")));
        let (_, kept) = for_reload(&running, read).unwrap();
        assert_eq!(kept, ["store"]);
    }

    #[test]
    fn a_routes_access_reloads_its_servers_do_not() {
        let route = |server: &str, member: &str| {
            config(&format!(
                "[[route]]\npath = \"/videos/**\"\nupstream = \"{server}\"\n\
                 [route.access]\nmember = [\"{member}\"]\n"
            ))
        };
        let running = route("http://127.0.0.1:9001", "/videos/**");
        let (next, kept) =
            for_reload(&running, route("http://127.0.0.1:9001", "/videos/paid/**")).unwrap();
        assert!(kept.is_empty());
        let access = |c: &Config| toml::Value::try_from(&c.file.route[0].access).unwrap();
        assert_ne!(access(&next), access(&running));
        let (next, kept) =
            for_reload(&running, route("http://127.0.0.1:9002", "/videos/**")).unwrap();
        assert_eq!(kept, ["route"]);
        assert_eq!(
            next.file.route[0].upstream.as_deref(),
            Some("http://127.0.0.1:9001")
        );
    }

    #[test]
    fn an_unchanged_file_keeps_nothing_aside() {
        let (_, kept) = for_reload(&config(""), config("")).unwrap();
        assert!(kept.is_empty());
    }
}
