//! Limits whoever asks, on both backends (the contract's changes after the security
//! review): one number gets at most `sms.max_per_number` texts an hour and one address at
//! most `mail.max_per_address` codes per `mail.address_window`, even from different
//! members; the site sends at most `sms.max_per_hour` texts an hour; `sms.countries`
//! restricts where texts go. Past a limit: 429 with Retry-After, nothing sent; outside
//! the countries: 400 beside the mobile.

use super::*;
use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::ANN;
use crate::common::http::client;

const BOB: &str = "bob@example.com";
/// Belgian mobile, national form "0470 12 34 56".
const BELGIAN: &str = "+32470123456";

/// Signs `who` in (confirmed, no campaign) in a fresh browser.
async fn member(site: &Site, who: &str) -> reqwest::Client {
    confirmed_member(&site.s.gw, who, None);
    let c = client();
    login_straight(&c, &site.gw(), who).await;
    c
}

/// Asserts a 429 page with a Retry-After in seconds.
async fn assert_too_many(resp: reqwest::Response, what: &str) {
    let retry = header(&resp, "retry-after");
    let (status, body) = text(resp).await;
    assert_eq!(status, 429, "{what}:\n{body}");
    assert!(
        retry
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
            .is_some(),
        "{what}: Retry-After {retry:?}"
    );
}

async fn one_number_gets_at_most_max_per_number_texts(backend: Backend) {
    let site = site(backend, "[sms]\nmax_per_number = 2\n").await;
    let gw = site.gw();
    let ann = member(&site, ANN).await;
    let bob = member(&site, BOB).await;
    send_ok(&ann, &gw, "mobile", MOBILE_E164, RD).await;
    send_ok(&bob, &gw, "mobile", MOBILE, RD).await;
    let resp = send(&ann, &gw, "mobile", MOBILE_E164, RD).await;
    assert_too_many(resp, "a third text to one number, from two members").await;
    let resp = send(&bob, &gw, "mobile", MOBILE_E164, RD).await;
    assert_too_many(resp, "and from the other").await;
    // Another number is fine.
    send_ok(&ann, &gw, "mobile", MOBILE2_E164, RD).await;
    site.sms.code_for(MOBILE2_E164).await;
    site.s.outbox_drained().await;
    let to_number = site
        .sms
        .delivered()
        .iter()
        .filter(|m| m.to == MOBILE_E164)
        .count();
    assert_eq!(to_number, 2, "texts to {MOBILE_E164}");
}
both_backends!(one_number_gets_at_most_max_per_number_texts);

async fn one_address_gets_at_most_max_per_address_codes(backend: Backend) {
    let site = site(backend, "[mail]\nmax_per_address = 2\n").await;
    let (s, gw) = (&site.s, site.gw());
    let ann = member(&site, ANN).await;
    let bob = member(&site, BOB).await;
    let target = "someone@example.org";
    change_email(&ann, &gw, target, RD).await;
    change_email(&bob, &gw, target, RD).await;
    let resp = send_with(&ann, &gw, "email", target, RD, &[("password", PW)]).await;
    assert_too_many(resp, "a third code to one address, from two members").await;
    // The members' own addresses are not limited by it.
    send_ok(&ann, &gw, "email", ANN, RD).await;
    nth_code_mail(s, ANN, 1).await;
    s.outbox_drained().await;
    assert_eq!(s.smtp.count_to(target), 2, "codes to {target}");
}
both_backends!(one_address_gets_at_most_max_per_address_codes);

async fn the_site_sends_at_most_max_per_hour_texts(backend: Backend) {
    let site = site(backend, "[sms]\nmax_per_hour = 3\n").await;
    let gw = site.gw();
    let mut numbers = Vec::new();
    for i in 0..4 {
        let c = member(&site, &format!("m{i}@example.com")).await;
        let number = format!("+3361000000{i}");
        let resp = send(&c, &gw, "mobile", &number, RD).await;
        if i < 3 {
            let (status, location) = redirect(resp).await;
            assert_eq!(status, 303, "text #{}: {location}", i + 1);
            numbers.push(number);
        } else {
            assert_too_many(resp, "the site's 4th text within the hour").await;
        }
    }
    site.sms.wait_delivered(3).await;
    site.s.outbox_drained().await;
    assert_eq!(site.sms.delivered().len(), 3);
}
both_backends!(the_site_sends_at_most_max_per_hour_texts);

async fn texts_only_to_the_listed_countries(backend: Backend) {
    let site = site(backend, "[sms]\ncountries = [\"FR\"]\n").await;
    let gw = site.gw();
    let ann = member(&site, ANN).await;
    for typed in [BELGIAN, "+32 470 12 34 56"] {
        let (status, body) = text(send(&ann, &gw, "mobile", typed, RD).await).await;
        assert_eq!(
            status, 400,
            "a Belgian number with countries = [\"FR\"]:\n{body}"
        );
        assert!(
            error_next_to(&body, "mobile"),
            "no error beside mobile:\n{body}"
        );
        assert_kept(&body, "mobile", typed);
    }
    send_ok(&ann, &gw, "mobile", MOBILE, RD).await;
    site.sms.code_for(MOBILE_E164).await;
    site.s.outbox_drained().await;
    assert_eq!(site.sms.calls().len(), 1, "only the French text was sent");
}
both_backends!(texts_only_to_the_listed_countries);

/// Refused requests (a wrong password for a new address) spend no allowance of the
/// address they name, and the contact codes' count of an address is its own: the forgot
/// page's per-address mail limit can neither be used up from the contact page nor read
/// through it (a 429 there told whether the address had an account).
async fn refused_sends_spend_nothing_and_counts_stay_apart(backend: Backend) {
    let site = site(
        backend,
        "[mail]\nmax_per_address = 2\n[contact]\nmax_codes_per_hour = 10\n",
    )
    .await;
    let (s, gw) = (&site.s, site.gw());
    let ann = member(&site, ANN).await;
    confirmed_member(&s.gw, BOB, None);
    // Five wrong passwords naming Bob's address: refused, nothing mailed.
    for _ in 0..5 {
        let resp = send_with(&ann, &gw, "email", BOB, RD, &[("password", "wrong")]).await;
        assert_eq!(resp.status(), 400, "a wrong password");
    }
    // Bob's own reset mails still go (the forgot page's count is untouched)...
    for _ in 0..2 {
        let resp = post_from(
            &client(),
            &gw,
            "/_vigile/password/forgot",
            "/_vigile/password/forgot",
            &[("email", BOB)],
        )
        .await;
        assert_eq!(resp.status(), 200);
    }
    let resets = |s: &crate::common::backend::Stack| {
        s.smtp
            .mails()
            .iter()
            .filter(|m| {
                m.to.iter().any(|t| t == BOB) && m.text.contains("/_vigile/password/reset?token=")
            })
            .count()
    };
    // The forgot page answers before its mail is queued (the same time whether or not the
    // address has an account), so an empty outbox alone does not mean it was sent.
    s.smtp
        .wait_for("both reset mails to reach Bob", |_| resets(s) >= 2)
        .await;
    s.outbox_drained().await;
    assert_eq!(resets(s), 2, "both reset mails reached Bob, once each");
    // ...and the forgot page's full count does not show on the contact page: an address
    // of a member answers like any other (303, a code goes out).
    let resp = send_with(&ann, &gw, "email", BOB, RD, &[("password", PW)]).await;
    assert_eq!(
        resp.status(),
        303,
        "a code to an address whose reset mails are used up"
    );
    let resp = send_with(
        &ann,
        &gw,
        "email",
        "nobody@example.org",
        RD,
        &[("password", PW)],
    )
    .await;
    assert_eq!(resp.status(), 303, "and to an address without an account");
}
both_backends!(refused_sends_spend_nothing_and_counts_stay_apart);
