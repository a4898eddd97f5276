//! `redis+cluster://` URLs: some nodes of a Redis Cluster, from which the `redis` crate's
//! cluster client learns the rest (and follows slots as they move, masters as they fail
//! over), read once at the edge into a [`ClusterUrl`].
//!
//! ```text
//! redis+cluster://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...][/]
//! ```
//!
//! The user and password are the nodes' (as in `redis://`); a port left out is 6379. A
//! Cluster has only database 0, so the URL names none. Every key carries its shard's hash
//! tag there (`keys::Namespace::Cluster`, `store::shard`): the store spreads over the
//! masters, each script within one slot.

use ::redis::cluster::{ClusterClient, ClusterClientBuilder};
use ::redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisResult};

use super::sentinel::{credentials, host_list};

pub const SCHEME: &str = "redis+cluster://";
const REDIS_PORT: u16 = 6379;

#[derive(Clone, PartialEq)]
pub struct ClusterUrl {
    pub nodes: Vec<ConnectionAddr>,
    username: Option<String>,
    password: Option<String>,
}

impl std::fmt::Debug for ClusterUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterUrl")
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

fn invalid(why: String) -> String {
    format!("invalid Cluster URL ({SCHEME}[[USER]:PASSWORD@]HOST:PORT,...): {why}")
}

impl ClusterUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| invalid("not a redis+cluster:// URL".into()))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if !path.is_empty() {
            return Err(invalid(
                "a Cluster has only database 0: nothing may follow the hosts".into(),
            ));
        }
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((user, hosts)) => (Some(user), hosts),
            None => (None, authority),
        };
        let (username, password) = credentials(userinfo, invalid)?;
        let nodes = host_list(hosts, REDIS_PORT, invalid)?;
        Ok(ClusterUrl {
            nodes,
            username,
            password,
        })
    }

    /// How to reach node `addr` (one the cluster named, or one of the URL's) with the
    /// URL's credentials: for the change feed, which subscribes on one node.
    pub fn node(&self, addr: ConnectionAddr) -> RedisResult<ConnectionInfo> {
        let mut info = addr.into_connection_info()?;
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        info = info.set_redis_settings(settings);
        Ok(info)
    }

    /// The crate's cluster client for these nodes. `retries`: how often a command is
    /// tried again after an error (a redirection, a node lost, an answer timed out). The
    /// timeouts are the connection's (`Endpoint::cluster`), which override the client's.
    pub fn client(&self, retries: u32) -> RedisResult<ClusterClient> {
        let nodes = self
            .nodes
            .iter()
            .map(|addr| self.node(addr.clone()))
            .collect::<RedisResult<Vec<_>>>()?;
        let mut builder = ClusterClientBuilder::new(nodes)
            .retries(retries)
            .min_retry_wait(50)
            .max_retry_wait(500);
        if let Some(user) = &self.username {
            builder = builder.username(user);
        }
        if let Some(password) = &self.password {
            builder = builder.password(password);
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
    fn nodes_and_credentials() {
        let u =
            ClusterUrl::parse("redis+cluster://app:s%40cret@h1:7000,10.0.0.2,[::1]:7002/").unwrap();
        assert_eq!(
            u.nodes,
            [tcp("h1", 7000), tcp("10.0.0.2", 6379), tcp("::1", 7002)]
        );
        assert_eq!(u.username.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("s@cret"));
        assert!(!format!("{u:?}").contains("cret"), "{u:?}");
        let info = u.node(tcp("h9", 7009)).unwrap();
        assert_eq!(info.redis_settings().password(), Some("s@cret"));
        assert_eq!(info.redis_settings().username(), Some("app"));
        let plain = ClusterUrl::parse("redis+cluster://h1:7000").unwrap();
        assert_eq!((plain.username, plain.password), (None, None));
    }

    #[test]
    fn malformed_urls_are_refused() {
        for bad in [
            "redis://h1:7000",
            "redis+cluster://",
            "redis+cluster://h1:7000,",
            "redis+cluster://,h1:7000",
            "redis+cluster://h1:notaport",
            "redis+cluster://h1:7000/0",
            "redis+cluster://h1:7000/mymaster",
        ] {
            assert!(ClusterUrl::parse(bad).is_err(), "{bad} accepted");
        }
        let why = ClusterUrl::parse("redis+cluster://:hun/ter2@h1:7000").unwrap_err();
        assert!(!why.contains("hun"), "{why}");
    }
}
