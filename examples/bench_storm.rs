//! Open-loop login storm for `bench/compare`: POSTs wrong passwords to the login form at a
//! fixed rate whatever the gateway answers (wrk waits for each answer, so it can only
//! offer what the gateway already serves). Every request is waited for (up to TIMEOUT),
//! so the program ends once the gateway has answered the whole storm.
//!
//! Usage: `bench_storm URL RATE SECONDS` with, in the environment, `CSRF` and `DEVICE`
//! (a login form's token and the device cookie it is bound to), `STORM_EMAIL` (the account
//! attacked, default `storm@example.com`), optionally `LEGIT_EMAIL` and `LEGIT_PASSWORD`:
//! one correct login sent halfway through the storm, whose wait is reported, and
//! `TIMEOUT` (seconds, default 300).
//!
//! Prints one line of `key=value` pairs: requests sent and the offered rate; answers by
//! status; answers received during the sending window and after it; latency p50/p99/max
//! of the storm's requests; how long after the start the last answer came (`drained_s`);
//! the correct login's status and wait.
// A load generator measures real latency on the wall clock.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Answer {
    status: Option<u16>,
    latency: Duration,
    at: Duration,
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

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let usage = || -> Error { "usage: bench_storm URL RATE SECONDS (env CSRF, DEVICE)".into() };
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or_else(usage)?;
    let rate: f64 = args.next().ok_or_else(usage)?.parse()?;
    let seconds: f64 = args.next().ok_or_else(usage)?.parse()?;
    let csrf = std::env::var("CSRF")?;
    let cookie = format!("vigile_device={}", std::env::var("DEVICE")?);
    let email = std::env::var("STORM_EMAIL").unwrap_or_else(|_| "storm@example.com".into());
    let legit = match (
        std::env::var("LEGIT_EMAIL"),
        std::env::var("LEGIT_PASSWORD"),
    ) {
        (Ok(e), Ok(p)) => Some(form(&e, &p, &csrf)),
        _ => None,
    };
    let timeout: u64 = std::env::var("TIMEOUT")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(300);

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(timeout))
        .build()?;
    let wrong = form(&email, "Wrong-password-1", &csrf);
    let window = Duration::from_secs_f64(seconds);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);

    let start = Instant::now();
    let mut storm = JoinSet::new();
    let mut legit_task = None;
    let mut sent = 0u64;
    while start.elapsed() < window {
        ticker.tick().await;
        if let (Some(body), None) = (&legit, &legit_task) {
            if start.elapsed() >= window / 2 {
                let (c, u, k, b) = (client.clone(), url.clone(), cookie.clone(), body.clone());
                legit_task = Some(tokio::spawn(async move {
                    let t0 = Instant::now();
                    (post(c, u, k, b).await, t0.elapsed())
                }));
            }
        }
        let (c, u, k, b) = (client.clone(), url.clone(), cookie.clone(), wrong.clone());
        storm.spawn(async move {
            let t0 = Instant::now();
            let status = post(c, u, k, b).await;
            Answer {
                status,
                latency: t0.elapsed(),
                at: start.elapsed(),
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

    let mut by_status = std::collections::BTreeMap::<String, u64>::new();
    for a in &answers {
        let key = a.status.map_or("error".to_string(), |s| s.to_string());
        *by_status.entry(key).or_default() += 1;
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
    let statuses: Vec<String> = by_status.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    println!(
        "sent={sent} offered_rps={:.1} answered_in_window={in_window} answered_rps_in_window={:.1} \
         statuses={} p50_ms={:.0} p99_ms={:.0} max_ms={:.0} drained_s={:.1}{legit}",
        sent as f64 / sending.as_secs_f64(),
        in_window as f64 / sending.as_secs_f64(),
        statuses.join(","),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        drained.as_secs_f64(),
    );
    Ok(())
}
