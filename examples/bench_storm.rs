//! Open-loop login storm for `bench/compare` and `bench/login_storm`: POSTs wrong
//! passwords to the login form at a fixed rate whatever the gateway answers (wrk waits for
//! each answer, so it can only offer what the gateway already serves). Every request is
//! waited for (up to TIMEOUT), so the program ends once the gateway has answered the whole
//! storm.
//!
//! Usage: `bench_storm URL RATE SECONDS` with, in the environment, `CSRF` and `DEVICE`
//! (a login form's token and the device cookie it is bound to), and optionally:
//! - `STORM_EMAIL` (the account attacked, default `storm@example.com`), or `STORM_EMAILS`
//!   (a comma-separated list, used in turn: an account and an unknown address, say);
//! - `SOURCES` (default 1): the number of client addresses the storm comes from, in turn,
//!   127.0.0.2 and up (at most 250; any 127.0.0.0/8 address reaches a gateway on
//!   127.0.0.1), so per-address rules see a storm from many clients;
//! - `LEGIT_EMAIL` and `LEGIT_PASSWORD`: one correct login sent halfway through, whose
//!   wait is reported, from 127.0.0.1 with `LEGIT_DEVICE` and `LEGIT_CSRF` if given (a
//!   device that signed in to that account before: a known device), else the storm's;
//! - `TIMEOUT` (seconds, default 300).
//!
//! Prints one line of `key=value` pairs: requests sent and the offered rate; answers by
//! status; answers received during the sending window and after it; latency p50/p99/max
//! of the storm's requests; how long after the start the last answer came (`drained_s`);
//! per storm address typed, its answers by status and the median wait of those checked
//! (`email_N=ADDRESS[STATUS:COUNT,...]` and `email_N_checked_p50_ms`); the correct
//! login's status and wait.
// A load generator measures real latency on the wall clock.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Answer {
    status: Option<u16>,
    latency: Duration,
    at: Duration,
    /// Index in the storm's list of addresses typed.
    email: usize,
}

fn form(email: &str, password: &str, csrf: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("email", email)
        .append_pair("password", password)
        .append_pair("csrf", csrf)
        .finish()
}

async fn post(client: reqwest::Client, url: String, cookie: String, body: String) -> Option<u16> {
    let res = client
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Cookie", cookie)
        .body(body)
        .send()
        .await
        .ok()?;
    let status = res.status().as_u16();
    // Read the page so the connection can be reused.
    let _ = res.bytes().await;
    Some(status)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn client(timeout: u64, source: Option<std::net::IpAddr>) -> Result<reqwest::Client, Error> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(timeout))
        .local_address(source)
        .build()?)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let usage = || -> Error { "usage: bench_storm URL RATE SECONDS (env CSRF, DEVICE)".into() };
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or_else(usage)?;
    let rate: f64 = args.next().ok_or_else(usage)?.parse()?;
    let seconds: f64 = args.next().ok_or_else(usage)?.parse()?;
    let csrf = std::env::var("CSRF")?;
    let cookie = format!("vigile_device={}", std::env::var("DEVICE")?);
    let one = env_or("STORM_EMAIL", "storm@example.com");
    let emails: Vec<String> = env_or("STORM_EMAILS", &one)
        .split(',')
        .map(str::to_string)
        .collect();
    let timeout: u64 = env_or("TIMEOUT", "300").parse()?;
    let sources: u8 = env_or("SOURCES", "1").parse::<u8>()?.clamp(1, 250);

    // One client per source address, so each keeps its own connections.
    let clients: Vec<reqwest::Client> = if sources == 1 {
        vec![client(timeout, None)?]
    } else {
        (0..sources)
            .map(|i| {
                client(
                    timeout,
                    Some(std::net::Ipv4Addr::new(127, 0, 0, 2 + i).into()),
                )
            })
            .collect::<Result<_, _>>()?
    };
    let wrong: Vec<String> = emails
        .iter()
        .map(|e| form(e, "Wrong-password-1", &csrf))
        .collect();
    let window = Duration::from_secs_f64(seconds);
    let legit_task = match (
        std::env::var("LEGIT_EMAIL"),
        std::env::var("LEGIT_PASSWORD"),
    ) {
        (Ok(e), Ok(p)) => {
            let legit_csrf = env_or("LEGIT_CSRF", &csrf);
            let legit_cookie = match std::env::var("LEGIT_DEVICE") {
                Ok(d) => format!("vigile_device={d}"),
                Err(_) => cookie.clone(),
            };
            let (c, u, body) = (
                client(timeout, None)?,
                url.clone(),
                form(&e, &p, &legit_csrf),
            );
            Some(tokio::spawn(async move {
                tokio::time::sleep(window / 2).await;
                let t0 = Instant::now();
                (post(c, u, legit_cookie, body).await, t0.elapsed())
            }))
        }
        _ => None,
    };
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);

    let start = Instant::now();
    let mut storm = JoinSet::new();
    let mut sent = 0usize;
    while start.elapsed() < window {
        ticker.tick().await;
        let email = sent % wrong.len();
        let c = clients[sent % clients.len()].clone();
        let (u, k, b) = (url.clone(), cookie.clone(), wrong[email].clone());
        storm.spawn(async move {
            let t0 = Instant::now();
            let status = post(c, u, k, b).await;
            Answer {
                status,
                latency: t0.elapsed(),
                at: start.elapsed(),
                email,
            }
        });
        sent += 1;
    }
    let sending = start.elapsed();

    let mut answers = Vec::new();
    while let Some(a) = storm.join_next().await {
        answers.push(a?);
    }
    let drained = start.elapsed();
    let legit = match legit_task {
        Some(t) => {
            let (status, wait) = t.await?;
            format!(
                " legit_status={} legit_wait_ms={:.0}",
                status.map_or("error".to_string(), |s| s.to_string()),
                wait.as_secs_f64() * 1000.0
            )
        }
        None => String::new(),
    };

    let by_status = |answers: &[&Answer]| {
        let mut counts = std::collections::BTreeMap::<String, u64>::new();
        for a in answers {
            let key = a.status.map_or("error".to_string(), |s| s.to_string());
            *counts.entry(key).or_default() += 1;
        }
        let listed: Vec<String> = counts.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        listed.join(",")
    };
    let all: Vec<&Answer> = answers.iter().collect();
    let mut per_email = String::new();
    for (i, e) in emails.iter().enumerate() {
        let mine: Vec<&Answer> = answers.iter().filter(|a| a.email == i).collect();
        let mut checked: Vec<Duration> = mine
            .iter()
            .filter(|a| a.status.is_some_and(|s| s != 503))
            .map(|a| a.latency)
            .collect();
        checked.sort();
        per_email.push_str(&format!(
            " email_{i}={e}[{}] email_{i}_checked_p50_ms={:.0}",
            by_status(&mine),
            percentile(&checked, 0.5)
        ));
    }
    let in_window = answers
        .iter()
        .filter(|a| a.status.is_some() && a.at <= sending)
        .count();
    let mut lat: Vec<Duration> = answers
        .iter()
        .filter(|a| a.status.is_some())
        .map(|a| a.latency)
        .collect();
    lat.sort();
    println!(
        "sent={sent} offered_rps={:.1} sources={sources} answered_in_window={in_window} \
         answered_rps_in_window={:.1} statuses={} p50_ms={:.0} p99_ms={:.0} max_ms={:.0} \
         drained_s={:.1}{per_email}{legit}",
        sent as f64 / sending.as_secs_f64(),
        in_window as f64 / sending.as_secs_f64(),
        by_status(&all),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        drained.as_secs_f64(),
    );
    Ok(())
}
