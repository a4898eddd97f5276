//! `redis+sentinel://` URLs: the Sentinel set that knows where the master of a named
//! service is, read once at the edge into a [`SentinelUrl`].
//!
//! ```text
//! redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER_NAME[/DB]
//!     [?sentinel_username=U&sentinel_password=P]
//! ```
//!
//! The user and password are the Redis servers' (as in `redis://`); Sentinels that ask for
//! their own take them from the query. A port left out is Sentinel's, 26379. Each host
//! and the credentials are read by the `redis` crate's own URL parsing, as `redis://`
//! would be: this module only splits the list.

use ::redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use ::redis::{ConnectionAddr, IntoConnectionInfo, RedisResult};

pub const SCHEME: &str = "redis+sentinel://";
const SENTINEL_PORT: u16 = 26379;

#[derive(Clone, PartialEq)]
pub struct SentinelUrl {
    pub sentinels: Vec<ConnectionAddr>,
    pub service: String,
    pub db: i64,
    username: Option<String>,
    password: Option<String>,
    sentinel_username: Option<String>,
    sentinel_password: Option<String>,
}

impl std::fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelUrl")
            .field("sentinels", &self.sentinels)
            .field("service", &self.service)
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

fn invalid(why: String) -> String {
    format!(
        "invalid Sentinel URL ({SCHEME}[[USER]:PASSWORD@]HOST:PORT,.../MASTER_NAME[/DB]): {why}"
    )
}

/// `host` or `host:port` (`[v6]`, `[v6]:port`), with `port` when none is given.
fn with_port(host: &str, port: u16) -> String {
    let has_port = match host.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => host.contains(':'),
    };
    if has_port {
        host.to_string()
    } else {
        format!("{host}:{port}")
    }
}

/// The user and password of `USER:PASSWORD@` (percent-decoded), read by the `redis`
/// crate as in a `redis://` URL. Shared with `redis+cluster://` (`redis/cluster.rs`).
pub(super) fn credentials(
    userinfo: Option<&str>,
    invalid: fn(String) -> String,
) -> Result<(Option<String>, Option<String>), String> {
    let Some(user) = userinfo else {
        return Ok((None, None));
    };
    // Never echoed: a mistyped URL may have part of the password anywhere.
    let info = format!("redis://{user}@127.0.0.1/")
        .into_connection_info()
        .map_err(|_| invalid("the user or password (percent-encode / ? # @)".into()))?;
    let redis = info.redis_settings();
    Ok((
        redis.username().map(str::to_string),
        redis.password().map(str::to_string),
    ))
}

/// `HOST[:PORT],HOST[:PORT]...`, each read by the `redis` crate, `port` when left out.
/// Hosts are named by their place in the list, never echoed (see [`credentials`]).
pub(super) fn host_list(
    hosts: &str,
    port: u16,
    invalid: fn(String) -> String,
) -> Result<Vec<ConnectionAddr>, String> {
    hosts
        .split(',')
        .enumerate()
        .map(|(i, host)| {
            let bad = || invalid(format!("host {} of the list is not HOST[:PORT]", i + 1));
            if host.is_empty() || host.contains(['/', '@', '?', '#']) {
                return Err(bad());
            }
            format!("redis://{}", with_port(host, port))
                .into_connection_info()
                .map(|info| info.addr().clone())
                .map_err(|_| bad())
        })
        .collect()
}

impl SentinelUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| invalid("not a redis+sentinel:// URL".into()))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((user, hosts)) => (Some(user), hosts),
            None => (None, authority),
        };
        let (username, password) = credentials(userinfo, invalid)?;
        let sentinels = host_list(hosts, SENTINEL_PORT, invalid)?;
        let mut parts = path.split('/');
        let service = parts.next().unwrap_or_default().to_string();
        if service.is_empty() {
            return Err(invalid("no master name".into()));
        }
        let db = match parts.next() {
            None | Some("") => 0,
            Some(db) => db
                .parse::<i64>()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| invalid("the database is not a number".into()))?,
        };
        if parts.any(|p| !p.is_empty()) {
            return Err(invalid("more than MASTER_NAME/DB in the path".into()));
        }
        let mut out = SentinelUrl {
            sentinels,
            service,
            db,
            username,
            password,
            sentinel_username: None,
            sentinel_password: None,
        };
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "sentinel_username" => out.sentinel_username = Some(value.into_owned()),
                "sentinel_password" => out.sentinel_password = Some(value.into_owned()),
                other => return Err(invalid(format!("unknown parameter {other:?}"))),
            }
        }
        Ok(out)
    }

    /// A client that asks these Sentinels for the master, checking that the server it
    /// names says it is one.
    pub fn client(&self) -> RedisResult<SentinelClient> {
        let mut builder = SentinelClientBuilder::new(
            self.sentinels.clone(),
            &self.service,
            SentinelServerType::Master,
        )?
        .set_client_to_redis_db(self.db);
        if let Some(user) = &self.username {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = &self.password {
            builder = builder.set_client_to_redis_password(password);
        }
        if let Some(user) = &self.sentinel_username {
            builder = builder.set_client_to_sentinel_username(user);
        }
        if let Some(password) = &self.sentinel_password {
            builder = builder.set_client_to_sentinel_password(password);
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> ConnectionAddr {
        ConnectionAddr::Tcp(host.into(), port)
    }

    #[test]
    fn hosts_master_db_and_credentials() {
        let u = SentinelUrl::parse(
            "redis+sentinel://app:s%40cret@h1:26380,10.0.0.2,[::1]:26381/mymaster/2\
             ?sentinel_password=sp",
        )
        .unwrap();
        assert_eq!(
            u.sentinels,
            [tcp("h1", 26380), tcp("10.0.0.2", 26379), tcp("::1", 26381)]
        );
        assert_eq!((u.service.as_str(), u.db), ("mymaster", 2));
        assert_eq!(u.username.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("s@cret"));
        assert_eq!(u.sentinel_password.as_deref(), Some("sp"));
        assert!(!format!("{u:?}").contains("cret"), "{u:?}");
        let plain = SentinelUrl::parse("redis+sentinel://h1:26379/mymaster").unwrap();
        assert_eq!((plain.db, plain.password), (0, None));
    }

    #[test]
    fn malformed_urls_are_refused() {
        for bad in [
            "redis://h1:26379/mymaster",
            "redis+sentinel://h1:26379",
            "redis+sentinel://h1:26379/",
            "redis+sentinel://h1:26379,/mymaster",
            "redis+sentinel://,h1/mymaster",
            "redis+sentinel://h1:notaport/mymaster",
            "redis+sentinel://h1/mymaster/x",
            "redis+sentinel://h1/mymaster/-1",
            "redis+sentinel://h1/mymaster/0/extra",
            "redis+sentinel://h1/mymaster?unknown=1",
        ] {
            assert!(SentinelUrl::parse(bad).is_err(), "{bad} accepted");
        }
        // A password with an unencoded `/` or `?` is never echoed back.
        for typo in [
            "redis+sentinel://:hun/ter2@h1:26379/mymaster/0",
            "redis+sentinel://:hunter2?x@h1/mymaster",
        ] {
            let why = SentinelUrl::parse(typo).unwrap_err();
            assert!(!why.contains("hun"), "{why}");
        }
    }

    proptest::proptest! {
        /// Whatever the list, every host comes back in order, with its port or 26379.
        #[test]
        fn every_listed_host_is_kept(ports in proptest::collection::vec(proptest::option::of(1u16..), 1..6)) {
            let hosts: Vec<String> = ports
                .iter()
                .enumerate()
                .map(|(i, p)| match p {
                    Some(p) => format!("10.0.0.{i}:{p}"),
                    None => format!("10.0.0.{i}"),
                })
                .collect();
            let u = SentinelUrl::parse(&format!("redis+sentinel://{}/m", hosts.join(","))).unwrap();
            let want: Vec<ConnectionAddr> = ports
                .iter()
                .enumerate()
                .map(|(i, p)| tcp(&format!("10.0.0.{i}"), p.unwrap_or(SENTINEL_PORT)))
                .collect();
            proptest::prop_assert_eq!(u.sentinels, want);
        }
    }
}
