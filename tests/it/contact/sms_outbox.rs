//! The SMS outbox through the real binary, on both backends: a provider answering 500 (or
//! not listening at all) only delays a text, which arrives once it answers, exactly once;
//! a text queued before a gateway restart is delivered after it, once; two instances on
//! one store send each text once; the HTTP transport calls the provider as configured
//! (method, headers, body template with JSON-escaped values); the file transport writes
//! one `<id>.json` per text.

use std::collections::BTreeMap;

use super::*;
use crate::both_backends;
use crate::common::backend::{open_store, Backend};
use crate::common::consts::ANN;
use crate::common::gateway::Gateway;
use crate::common::http::client;
use crate::common::{poll_until, RefusingPort};

/// Failed provider calls the gateway has counted.
async fn sms_retries(gw: &Gateway) -> f64 {
    gw.metric("vigile_sms_total{result=\"retry\"}")
        .await
        .unwrap_or(0.0)
}

/// Texts delivered to each number.
fn delivered_per_number(site: &Site) -> BTreeMap<String, usize> {
    let mut per = BTreeMap::new();
    for sms in site.sms.delivered() {
        *per.entry(sms.to.clone()).or_default() += 1;
    }
    per
}

/// Provider calls (delivered or refused) per number.
fn calls_per_number(site: &Site) -> BTreeMap<String, usize> {
    let mut per = BTreeMap::new();
    for call in site.sms.calls() {
        *per.entry(call.to.clone()).or_default() += 1;
    }
    per
}

/// `n` members (`m0@example.com`...) with confirmed email and no mobile; their numbers.
fn members(gw: &Gateway, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let email = format!("m{i}@example.com");
            confirmed_member(gw, &email, None);
            (email, format!("+3361000000{i}"))
        })
        .collect()
}

async fn provider_errors_delay_but_never_lose_a_text(backend: Backend) {
    let site = site(backend, "").await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, None);
    let c = client();
    login_straight(&c, &gw, ANN).await;
    site.sms.fail_next(3);
    send_ok(&c, &gw, "mobile", MOBILE_E164, RD).await;
    let code = site.sms.code_for(MOBILE_E164).await;
    s.outbox_drained().await;
    assert_eq!(
        site.sms.calls().len(),
        4,
        "three refused calls, then the one delivered"
    );
    assert_eq!(delivered_per_number(&site)[MOBILE_E164], 1);
    assert_eq!(sms_retries(&s.gw).await, 3.0);
    confirm_ok(&c, &gw, "mobile", &code, RD).await;
}
both_backends!(provider_errors_delay_but_never_lose_a_text);

/// The provider not listening at all, and the gateway restarted meanwhile: the text waits
/// in the store and is delivered once the (restarted) gateway reaches the provider.
async fn queued_text_survives_a_gateway_restart(backend: Backend) {
    let refusing = RefusingPort::new();
    let dead = format!("http://127.0.0.1:{}/send", refusing.port);
    let mut site = site(backend, &format!("[sms]\nhttp_url = \"{dead}\"\n")).await;
    let gw = site.gw();
    confirmed_member(&site.s.gw, ANN, None);
    let c = client();
    login_straight(&c, &gw, ANN).await;
    send_ok(&c, &gw, "mobile", MOBILE_E164, RD).await;
    poll_until("a failed SMS attempt", 400, || async {
        sms_retries(&site.s.gw).await >= 1.0
    })
    .await;
    let store = open_store(&site.s);
    assert_eq!(
        store.outbox_list().await.unwrap().len(),
        1,
        "kept in the outbox"
    );

    site.s.gw.kill();
    site.s
        .gw
        .update_config(&format!("[sms]\nhttp_url = \"{}\"\n", site.sms.url()));
    site.s.gw.restart().await;
    let code = site.sms.code_for(MOBILE_E164).await;
    site.s.outbox_drained().await;
    assert_eq!(site.sms.calls().len(), 1);
    assert_eq!(delivered_per_number(&site)[MOBILE_E164], 1);
    // The code texted before the restart confirms after it, in the same browser.
    confirm_ok(&c, &gw, "mobile", &code, RD).await;
}
both_backends!(queued_text_survives_a_gateway_restart);

/// Two instances on one store, the provider refusing the first calls: each text is
/// delivered exactly once, whichever instance queued it and whichever retried it.
async fn two_instances_send_each_text_once(backend: Backend) {
    let site = site(backend, "").await;
    let s = &site.s;
    let second = s.second_instance(&sms_config(&site.sms)).await;
    let people = members(&s.gw, 8);
    site.sms.fail_next(5);
    for (i, (email, number)) in people.iter().enumerate() {
        let gw = if i % 2 == 0 { s.gw.url() } else { second.url() };
        let c = client();
        login_straight(&c, &gw, email).await;
        send_ok(&c, &gw, "mobile", number, RD).await;
    }
    site.sms.wait_delivered(people.len()).await;
    s.outbox_drained().await;
    let delivered = delivered_per_number(&site);
    for (email, number) in &people {
        assert_eq!(
            delivered.get(number),
            Some(&1),
            "{email}'s text delivered {:?} times; all: {delivered:?}",
            delivered.get(number)
        );
    }
    assert_eq!(site.sms.delivered().len(), people.len());
    let calls = calls_per_number(&site);
    assert_eq!(
        calls.values().sum::<usize>(),
        people.len() + 5,
        "one call per text plus the five refused: {calls:?}"
    );
    let retries = sms_retries(&s.gw).await + sms_retries(&second).await;
    assert_eq!(retries, 5.0, "the refused calls, counted once each");
}
both_backends!(two_instances_send_each_text_once);

/// The HTTP transport as configured: method, URL, headers plus JSON content type, and
/// the body template filled with JSON-escaped values (no quotes added).
async fn http_transport_calls_the_provider_as_configured(backend: Backend) {
    let site = site(
        backend,
        "[sms]\nhttp_method = \"PUT\"\n\
         http_headers = { Authorization = \"Bearer t0k3n\", X-Account = \"school-42\" }\n\
         http_body = '{\"recipient\":\"{to}\",\"message\":\"{text}\",\"sender\":\"Vigile\"}'\n",
    )
    .await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, None);
    let c = client();
    login_straight(&c, &gw, ANN).await;
    send_ok(&c, &gw, "mobile", MOBILE, RD).await;
    // The body is not the default one: the sink reads no `to` from it.
    let calls = site.sms.wait_delivered(1).await;
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.method, "PUT");
    assert_eq!(call.header("authorization"), Some("Bearer t0k3n"));
    assert_eq!(call.header("x-account"), Some("school-42"));
    assert!(
        call.header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "{:?}",
        call.header("content-type")
    );
    let body: serde_json::Value = serde_json::from_str(&call.body)
        .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", call.body));
    assert_eq!(body["recipient"], MOBILE_E164);
    assert_eq!(body["sender"], "Vigile");
    let text = body["message"].as_str().expect("message is a string");
    let codes = six_digits(text);
    assert_eq!(codes.len(), 1, "{text}");
    let code = codes[0].clone();
    confirm_ok(&c, &gw, "mobile", &code, RD).await;
}
both_backends!(http_transport_calls_the_provider_as_configured);

/// The file transport: one `<id>.json` per text in `file_dir`, `{"to": ..., "text": ...}`.
async fn file_transport_writes_one_file_per_text(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let site = site(
        backend,
        &format!(
            "[sms]\ntransport = \"file\"\nfile_dir = \"{}\"\n",
            dir.path().display()
        ),
    )
    .await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, None);
    let c = client();
    login_straight(&c, &gw, ANN).await;
    send_ok(&c, &gw, "mobile", MOBILE_E164, RD).await;
    s.outbox_drained().await;
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let path = &files[0];
    assert_eq!(
        path.extension().and_then(|e| e.to_str()),
        Some("json"),
        "{path:?}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(json["to"], MOBILE_E164);
    let text = json["text"].as_str().unwrap();
    let codes = six_digits(text);
    assert_eq!(codes.len(), 1, "{text}");
    assert_eq!(site.sms.calls().len(), 0, "the provider was called");
    confirm_ok(&c, &gw, "mobile", &codes[0], RD).await;
}
both_backends!(file_transport_writes_one_file_per_text);

/// A text that waited in the outbox longer than its code lives is dropped unsent
/// (`vigile_sms_total{result="expired"}`); a fresh one is delivered (the control). The
/// provider is down while the member asks; the waiting text is then moved back in time in
/// the store (no sleeping) before the provider comes up.
async fn a_text_older_than_its_code_is_dropped(backend: Backend) {
    let refusing = RefusingPort::new();
    let dead = format!("http://127.0.0.1:{}/send", refusing.port);
    let mut site = site(backend, &format!("[sms]\nhttp_url = \"{dead}\"\n")).await;
    let gw = site.gw();
    confirmed_member(&site.s.gw, ANN, None);
    let c = client();
    login_straight(&c, &gw, ANN).await;
    send_ok(&c, &gw, "mobile", MOBILE_E164, RD).await;
    poll_until("a failed SMS attempt", 400, || async {
        sms_retries(&site.s.gw).await >= 1.0
    })
    .await;
    site.s.gw.kill();
    let store = open_store(&site.s);
    let waiting = store.outbox_list().await.unwrap();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    let text = waiting[0].clone();
    // code_ttl (10 min) and a minute ago.
    let long_ago = vigile::clock::now_ms() - 11 * crate::common::consts::MINUTE;
    assert!(store.outbox_done(&text.id).await.unwrap());
    store
        .outbox_push(&vigile::store::OutboxMail {
            created_at: long_ago,
            next_attempt: 0,
            ..text
        })
        .await
        .unwrap();

    site.s
        .gw
        .update_config(&format!("[sms]\nhttp_url = \"{}\"\n", site.sms.url()));
    site.s.gw.restart().await;
    site.s.outbox_drained().await;
    assert_eq!(
        site.s
            .gw
            .metric("vigile_sms_total{result=\"expired\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(site.sms.calls().len(), 0, "an expired code was texted");
    // The control: a text asked now is delivered.
    send_ok(&c, &gw, "mobile", MOBILE_E164, RD).await;
    let code = site.sms.code_for(MOBILE_E164).await;
    confirm_ok(&c, &gw, "mobile", &code, RD).await;
}
both_backends!(a_text_older_than_its_code_is_dropped);
