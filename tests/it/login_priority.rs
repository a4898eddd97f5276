//! Logins under attack (issue 17), through the real binary: while wrong passwords from
//! several client addresses fill the hashing queue, a device already known to the account
//! still signs in, and the other attempts are refused at once with 503 and `Retry-After`,
//! counted in `vigile_password_hash_shed_total` and `vigile_logins_total{result="shed"}`,
//! and counted nowhere else.
//!
//! Outcomes only, no timing: the storm guesses the password of an account whose stored
//! hash takes seconds to check, so the single hashing thread (`hash_concurrency = 1`) is
//! busy with one guess while the test looks at what the queue does with the others. The
//! addresses are 127.0.0.2 and up, which reach a gateway listening on 127.0.0.1.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use reqwest::{Client, Response};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use vigile::store::AttemptKey;

use crate::both_backends;
use crate::common::backend::{open_store, Backend};
use crate::common::consts::{ANN, PW, WRONG};
use crate::common::http::{client_from, get_page, header, login, login_ok};
use crate::common::poll_until;
use crate::contact::logout;

/// Storm addresses: 8 of them share the shared lane's 32 places (one hashing thread), 4
/// each.
const ADDRESSES: u8 = 8;
/// Guesses each address sends at once: more than its share and the one running, so every
/// address sees some of its guesses shed (refused, or pushed out by a later address).
const GUESSES: usize = 6;
const VICTIM: &str = "victim@example.com";
/// A stored hash that takes about half a second to check on an idle machine (32 MiB, 30
/// passes; the test gateway's own hashes take a millisecond), longer on a busy one (the
/// hashing thread runs at nice 10), which only widens the test's window. Ann's known
/// device waits for one such check. Its bytes are no one's password.
const SLOW_HASH: &str = "$argon2id$v=19$m=32768,t=30,p=1$c2FsdHNhbHRzYWx0c2FsdA$\
                         AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const BUSY: &str = "Too many passwords are being checked";

fn address(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// A browser from `ip` that already has its device cookie (so parallel posts share one
/// device and their CSRF tokens match it).
async fn browser_from(ip: IpAddr, gw: &str) -> Client {
    let (c, _) = client_from(ip);
    get_page(&c, &format!("{gw}/_vigile/login")).await;
    c
}

/// A 503 with `Retry-After` and the busy page.
async fn assert_shed(resp: Response, what: &str) {
    let (status, retry) = (resp.status(), header(&resp, "retry-after"));
    let body = resp.text().await.unwrap();
    assert_eq!(status, 503, "{what}: {body}");
    assert!(retry.is_some_and(|r| r.parse::<u32>().is_ok()), "{what}");
    assert!(body.contains(BUSY), "{what}: {body}");
}

async fn login_priority_admits_a_known_devices_correct_password_while_unknown_ones_are_shed(
    backend: Backend,
) {
    let s = backend.stack("[password]\nhash_concurrency = 1\n").await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    s.gw.add_user(VICTIM, PW, false);
    let store = open_store(&s);
    let victim = store.user_by_email(VICTIM).await.unwrap().unwrap();
    assert!(store
        .user_set_password(&victim.id, SLOW_HASH)
        .await
        .unwrap());
    // Ann's browser signed in once and out again: its device is known to her account. It
    // shares its address with the storm's first address.
    let (known, _) = client_from(address(2));
    login_ok(&known, &gw, ANN, PW).await;
    logout(&known, &gw).await;

    // The storm: every address sends its guesses at once and reports each answer.
    let (answers, mut answered) = mpsc::unbounded_channel::<(u8, u16)>();
    let mut storm = JoinSet::new();
    for n in 2..2 + ADDRESSES {
        let c = browser_from(address(n), &gw).await;
        for _ in 0..GUESSES {
            let (c, gw, answers) = (c.clone(), gw.clone(), answers.clone());
            storm.spawn(async move {
                let status = login(&c, &gw, VICTIM, WRONG).await.status().as_u16();
                let _ = answers.send((n, status));
            });
        }
    }
    // Every address has had a guess shed: each held its share of the queue then (4
    // places; shedding never leaves an address under its share), and the hashing thread
    // is on a guess that takes a while.
    let mut shed_per_address: HashMap<u8, usize> = HashMap::new();
    let mut answers_per_address: HashMap<u8, usize> = HashMap::new();
    while shed_per_address.len() < usize::from(ADDRESSES) {
        let (n, status) = answered.recv().await.unwrap();
        let answers = answers_per_address.entry(n).or_default();
        *answers += 1;
        // Else a guess checked already (401): on a slow machine, the first ones may be.
        if status == 503 {
            *shed_per_address.entry(n).or_default() += 1;
        }
        assert!(
            *answers < GUESSES || shed_per_address.contains_key(&n),
            "every guess of 127.0.0.{n} was checked: SLOW_HASH is too fast for this machine"
        );
    }

    // Unknown devices, from addresses of the storm, are shed at once: the right
    // password of an account, an unknown address, a guess. Same answer for all three.
    // From the storm's last addresses: addresses take turns in the order they first
    // queued, so these keep all their places longest.
    let last = 1 + ADDRESSES;
    let unknown = [
        (
            last,
            ANN,
            PW,
            "the right password from a device Ann never used",
        ),
        (
            last - 1,
            "nobody@example.com",
            WRONG,
            "an address with no account",
        ),
        (last - 2, VICTIM, WRONG, "one more guess"),
    ];
    for (n, email, password, what) in unknown {
        let c = browser_from(address(n), &gw).await;
        assert_shed(login(&c, &gw, email, password).await, what).await;
    }

    // Ann's known device, from a storm address too, is let in: it waits only for the
    // guess being checked.
    login_ok(&known, &gw, ANN, PW).await;

    // Every shed attempt was counted as shed, and only there: Ann's failures are none.
    let mut shed = 3 + shed_per_address.values().sum::<usize>();
    poll_until("every shed guess to be answered", 400, || {
        // The guess checked while Ann waited answers 401; the others wait their turn.
        while let Ok((_, status)) = answered.try_recv() {
            shed += usize::from(status == 503);
        }
        let (gw, shed) = (&s.gw, shed as f64);
        async move {
            gw.metric("vigile_password_hash_shed_total{lane=\"shared\"}")
                .await
                == Some(shed)
                && gw.metric("vigile_logins_total{result=\"shed\"}").await == Some(shed)
        }
    })
    .await;
    assert_eq!(
        s.gw.metric("vigile_password_hash_shed_total{lane=\"priority\"}")
            .await,
        Some(0.0)
    );
    assert_eq!(
        store.attempts_of(AttemptKey::Account(ANN)).await.unwrap(),
        0
    );
    storm.abort_all();
}
both_backends!(login_priority_admits_a_known_devices_correct_password_while_unknown_ones_are_shed);
