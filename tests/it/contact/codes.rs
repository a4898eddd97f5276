//! Codes and their limits on both backends: a wrong code says so with the tries left,
//! five wrong tries spend the code (410 even for the right one) and a new code works;
//! tries racing each other are counted atomically (never more than five compared); a
//! confirm with no code pending is 410; a code lives `contact.code_ttl` (planted with past
//! and future instants, no sleeping); codes sent per member and channel are limited per
//! hour (429 with Retry-After, nothing sent) independently for mail and SMS.

use futures_util::future::join_all;
use vigile::store::{Channel, ContactCode};

use super::*;
use crate::both_backends;
use crate::common::backend::{open_store, Backend};
use crate::common::consts::{ANN, MINUTE};
use crate::common::http::{self, client};

const BOB: &str = "bob@example.com";

/// A code other than `right`.
fn wrong_for(right: &str) -> &'static str {
    if right == "000000" {
        "111111"
    } else {
        "000000"
    }
}

async fn five_wrong_tries_spend_the_code(backend: Backend) {
    let site = site(backend, "").await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, Some(MOBILE_E164));
    campaign_start(&s.gw, &["--all"]).await;
    let c = client();
    login_asked(&c, &gw, ANN).await;

    // Nothing sent yet: nothing to confirm.
    let (status, body) = text(confirm(&c, &gw, "email", "123456", RD).await).await;
    assert_eq!(status, 410, "a code never sent:\n{body}");

    send_ok(&c, &gw, "email", ANN, RD).await;
    let right = email_code(s, ANN, 1).await;
    let wrong = wrong_for(&right);
    let mut wording = Deferred::default();
    let form = confirm_form(&c, &gw, "email", RD).await;
    for attempt in 1..=5u32 {
        let resp = submit(&c, &gw, &form, &[("channel", "email"), ("code", wrong)]).await;
        let (status, body) = text(resp).await;
        // The last wrong try is checked at the end, so the rest of the journey still runs.
        if attempt < 5 {
            assert_eq!(status, 400, "wrong try #{attempt}:\n{body}");
        } else {
            wording.check(
                status == 400,
                format!(
                    "wrong try #5 answered {status}, not 400 (contract: wrong → 400):\n{}",
                    visible(&body)
                ),
            );
        }
        let left = 5 - attempt;
        if left > 0 {
            let seen = visible(&body);
            let says = match left {
                1 => seen.contains("One try left"),
                n => seen.contains(&format!("{n} tries left")),
            };
            wording.check(
                says && error_next_to(&body, "code"),
                format!("wrong try #{attempt}: no error beside the code saying {left} tries left:\n{seen}"),
            );
        }
    }
    let (status, body) = text(confirm(&c, &gw, "email", &right, RD).await).await;
    assert_eq!(
        status, 410,
        "the right code after five wrong tries:\n{body}"
    );
    assert_eq!(
        contact_page(&c, &gw, RD).await.state("email"),
        "unconfirmed"
    );

    // A new code works.
    send_ok(&c, &gw, "email", ANN, RD).await;
    let fresh = email_code(s, ANN, 2).await;
    confirm_ok(&c, &gw, "email", &fresh, RD).await;
    assert_eq!(contact_page(&c, &gw, RD).await.state("email"), "confirmed");
    // Used: gone.
    let (status, _) = text(confirm(&c, &gw, "email", &fresh, RD).await).await;
    assert_eq!(status, 410, "a code used once");

    // The same on the mobile: the SMS code.
    send_ok(&c, &gw, "mobile", MOBILE_E164, RD).await;
    site.sms.wait_delivered(1).await;
    let right = site.sms.code_for(MOBILE_E164).await;
    let form = confirm_form(&c, &gw, "mobile", RD).await;
    for attempt in 1..=5 {
        let fields = [("channel", "mobile"), ("code", wrong_for(&right))];
        let status = submit(&c, &gw, &form, &fields).await.status();
        if attempt < 5 {
            assert_eq!(status, 400, "wrong SMS code #{attempt}");
        } else {
            wording.check(
                status == 400,
                format!("wrong SMS code #5 answered {status}, not 400"),
            );
        }
    }
    let fields = [("channel", "mobile"), ("code", right.as_str())];
    assert_eq!(
        submit(&c, &gw, &form, &fields).await.status(),
        410,
        "the right SMS code after five wrong tries"
    );
    assert_eq!(
        contact_page(&c, &gw, RD).await.state("mobile"),
        "unconfirmed"
    );
    wording.assert_none();
}
both_backends!(five_wrong_tries_spend_the_code);

/// Ten wrong codes posted at once: five are compared (400), the others find the code
/// spent (410), and the right one after them too.
async fn racing_tries_are_counted_atomically(backend: Backend) {
    let site = site(backend, "").await;
    let (s, gw) = (&site.s, site.gw());
    add_member(&s.gw, ANN, &[]);
    let c = client();
    login_straight(&c, &gw, ANN).await;
    send_ok(&c, &gw, "email", ANN, RD).await;
    let right = email_code(s, ANN, 1).await;
    let page = contact_page(&c, &gw, RD).await;
    let form = forms(&page.html)
        .into_iter()
        .find(|f| f.action == "/_vigile/contact/confirm")
        .expect("a confirm form");
    let wrong = wrong_for(&right);
    let answers = join_all((0..10).map(|_| {
        let (c, gw, form) = (c.clone(), gw.clone(), form.clone());
        async move {
            submit(&c, &gw, &form, &[("channel", "email"), ("code", wrong)])
                .await
                .status()
                .as_u16()
        }
    }))
    .await;
    let (compared, spent) = (
        answers.iter().filter(|&&a| a == 400).count(),
        answers.iter().filter(|&&a| a == 410).count(),
    );
    assert_eq!((compared, spent), (5, 5), "answers: {answers:?}");
    assert_eq!(confirm(&c, &gw, "email", &right, RD).await.status(), 410);
}
both_backends!(racing_tries_are_counted_atomically);

/// Codes per member and channel: `max_codes_per_hour` (3) sends, then a 429 page with
/// `Retry-After` and nothing sent; the other channel and other members are not limited
/// by it.
async fn resends_are_limited_per_hour(backend: Backend) {
    let site = site(backend, "").await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, Some(MOBILE_E164));
    confirmed_member(&s.gw, BOB, Some(MOBILE2_E164));
    campaign_start(&s.gw, &["--all"]).await;
    let c = client();
    login_asked(&c, &gw, ANN).await;

    for _ in 0..3 {
        send_ok(&c, &gw, "email", ANN, RD).await;
    }
    let resp = send(&c, &gw, "email", ANN, RD).await;
    let retry_after = header(&resp, "retry-after");
    let (status, body) = text(resp).await;
    assert_eq!(status, 429, "a 4th email code within the hour:\n{body}");
    let secs: u64 = retry_after
        .as_deref()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("Retry-After {retry_after:?} is not a number of seconds"));
    assert!((1..=3600).contains(&secs), "Retry-After: {secs}");
    nth_code_mail(s, ANN, 3).await;
    s.outbox_drained().await;
    assert_eq!(
        code_mails(s, ANN, CONFIRM_SUBJECT).len(),
        3,
        "a code was mailed past the limit"
    );
    // The last code sent still works.
    let last = email_code(s, ANN, 3).await;
    confirm_ok(&c, &gw, "email", &last, RD).await;

    // The mobile has its own count.
    for _ in 0..3 {
        send_ok(&c, &gw, "mobile", MOBILE_E164, RD).await;
    }
    let resp = send(&c, &gw, "mobile", MOBILE_E164, RD).await;
    assert!(
        header(&resp, "retry-after").is_some(),
        "no Retry-After on the 429"
    );
    assert_eq!(resp.status(), 429, "a 4th SMS code within the hour");
    site.sms.wait_delivered(3).await;

    // Another member is not limited by Ann's count; once their SMS has come, Ann's
    // refused one would have too.
    let b = client();
    login_asked(&b, &gw, BOB).await;
    send_ok(&b, &gw, "mobile", MOBILE2_E164, RD).await;
    site.sms.code_for(MOBILE2_E164).await;
    site.sms.wait_delivered(4).await;
    assert_eq!(
        site.sms.delivered().len(),
        4,
        "3 SMS to Ann and 1 to Bob, nothing past the limit"
    );
    assert_eq!(site.sms.calls().len(), 4);
}
both_backends!(resends_are_limited_per_hour);

/// A code lives `contact.code_ttl` (2 h here): the one sent expires 2 h after it was sent.
/// The same code moved to an end a minute ago is refused (410), typed or by the mailed
/// link; moved to an end a minute ahead, it is accepted (the control, so the refusal is
/// the expiry's doing). No sleeping: the store record is rewritten with those instants.
async fn codes_expire_after_code_ttl(backend: Backend) {
    let site = site(backend, "[contact]\ncode_ttl = \"2h\"\n").await;
    let (s, gw) = (&site.s, site.gw());
    add_member(&s.gw, ANN, &[]);
    let store = open_store(s);
    let user = store.user_by_email(ANN).await.unwrap().unwrap();
    let c = client();
    login_straight(&c, &gw, ANN).await;
    let before = vigile::clock::now_ms();
    send_ok(&c, &gw, "email", ANN, RD).await;
    let after = vigile::clock::now_ms();
    let mail = nth_code_mail(s, ANN, 1).await;
    let (code, link) = (mail_code(&mail), mail.link_containing(CONTACT_LINK));
    let sent = store
        .contact_code_get(&user.id, Channel::Email, after)
        .await
        .unwrap()
        .expect("the code sent is stored");
    let hours2 = 120 * MINUTE;
    assert!(
        (before + hours2..=after + hours2).contains(&sent.expires_at),
        "the code expires {} ms after it was sent, not 2 h",
        sent.expires_at - before
    );
    assert_eq!(sent.value, ANN);
    assert_eq!(sent.attempts, 0);

    let ending = |expires_at: i64| {
        let (store, id, sent) = (store.clone(), user.id.clone(), sent.clone());
        async move {
            let moved = ContactCode { expires_at, ..sent };
            assert!(store.contact_code_put(&id, &moved).await.unwrap());
        }
    };
    let form = confirm_form(&c, &gw, "email", RD).await;
    ending(vigile::clock::now_ms() - MINUTE).await;
    let resp = submit(&c, &gw, &form, &[("channel", "email"), ("code", &code)]).await;
    let (status, body) = text(resp).await;
    assert_eq!(status, 410, "an expired code:\n{body}");
    let (status, body) = text(http::get(&client(), &link, true).await).await;
    assert_eq!(status, 410, "the link of an expired code:\n{body}");
    assert_eq!(
        contact_page(&c, &gw, RD).await.state("email"),
        "unconfirmed"
    );

    ending(vigile::clock::now_ms() + MINUTE).await;
    confirm_ok(&c, &gw, "email", &code, RD).await;
    assert_eq!(contact_page(&c, &gw, RD).await.state("email"), "confirmed");
}
both_backends!(codes_expire_after_code_ttl);
