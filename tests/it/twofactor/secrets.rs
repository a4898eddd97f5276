//! Secrets at rest: after an enrolment, the store's data (every SQLite file, or every key
//! and value of Redis) holds neither the TOTP secret (as text or as bytes) nor any of the
//! recovery codes in clear — while it does hold the account, so the search looked at the
//! right data.

use super::*;
use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::{ANN, PW};
use crate::common::http::{client, login_ok};
use crate::contact::site;

/// Every byte of the store's data: the SQLite files, or Redis keys and values.
async fn store_bytes(s: &Stack) -> Vec<u8> {
    let mut out = Vec::new();
    match &s.redis {
        None => {
            let url = s.gw.store_url();
            let path = std::path::PathBuf::from(
                url.strip_prefix("sqlite://")
                    .unwrap_or_else(|| panic!("not a SQLite URL: {url}")),
            );
            let dir = path.parent().expect("the database's directory");
            let name = path
                .file_name()
                .expect("a file")
                .to_string_lossy()
                .into_owned();
            for entry in std::fs::read_dir(dir).expect("read the store's directory") {
                let file = entry.unwrap().path();
                let is_db = file
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&name));
                if is_db {
                    out.extend(std::fs::read(&file).unwrap_or_default());
                }
            }
        }
        Some(redis) => {
            let client = redis::Client::open(redis.url()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
                .arg("*")
                .query_async(&mut conn)
                .await
                .unwrap();
            for key in keys {
                let kind: String = redis::cmd("TYPE")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                let values: Vec<Vec<u8>> = match kind.as_str() {
                    "string" => {
                        let value: Option<Vec<u8>> = redis::cmd("GET")
                            .arg(&key)
                            .query_async(&mut conn)
                            .await
                            .unwrap();
                        value.into_iter().collect()
                    }
                    "hash" => redis::cmd("HGETALL")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .unwrap(),
                    "set" => redis::cmd("SMEMBERS")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .unwrap(),
                    "zset" => redis::cmd("ZRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut conn)
                        .await
                        .unwrap(),
                    "list" => redis::cmd("LRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut conn)
                        .await
                        .unwrap(),
                    // The audit trail: every entry's fields and values.
                    "stream" => {
                        let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
                            .arg(&key)
                            .arg("-")
                            .arg("+")
                            .query_async(&mut conn)
                            .await
                            .unwrap();
                        entries.into_iter().flat_map(|(_, f)| f).collect()
                    }
                    other => panic!(
                        "a Redis key of type {other}: {}",
                        String::from_utf8_lossy(&key)
                    ),
                };
                out.extend_from_slice(&key);
                for value in values {
                    out.push(b'\n');
                    out.extend(value);
                }
            }
        }
    }
    out
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

async fn the_store_keeps_no_totp_secret_or_recovery_code_in_clear(backend: Backend) {
    let site = site(backend, NO_IP_LIMIT).await;
    let (s, gw) = (&site.s, site.gw());
    s.gw.add_user(ANN, PW, false);
    let c = client();
    login_ok(&c, &gw, ANN, PW).await;
    let (app, codes) = enrol_totp(&c, &gw).await;

    let data = store_bytes(s).await;
    assert!(
        holds(&data, ANN.as_bytes()),
        "the account is not in the data read"
    );
    let mut clear: Vec<(String, Vec<u8>)> = vec![
        ("the secret (base32)".into(), app.secret.as_bytes().to_vec()),
        (
            "the secret (base32, lowercase)".into(),
            app.secret.to_ascii_lowercase().into_bytes(),
        ),
        ("the secret's bytes".into(), app.secret_bytes()),
    ];
    for code in &codes {
        clear.push((format!("recovery code {code}"), code.as_bytes().to_vec()));
        clear.push((
            format!("recovery code {code} (no dashes)"),
            code.replace('-', "").into_bytes(),
        ));
        clear.push((
            format!("recovery code {code} (uppercase)"),
            code.to_ascii_uppercase().into_bytes(),
        ));
    }
    for (what, bytes) in clear {
        assert!(!holds(&data, &bytes), "{what} is in the store in clear");
    }
}
both_backends!(the_store_keeps_no_totp_secret_or_recovery_code_in_clear);
