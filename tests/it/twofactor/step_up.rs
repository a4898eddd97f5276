//! Step-up on `[access] twofactor` paths: a session opened with the password alone (here,
//! before the admin enrolled) is asked for the second factor at `/admin/**` instead of
//! being refused: a browser is sent to `/_vigile/2fa?rd=...` and, after the code, lands on
//! the page at level `2fa` with a new session cookie (the old one dead, no extra device);
//! an API client gets a 401 it can act on. Other paths stay at level `password`.

use serde_json::Value;

use super::*;
use crate::both_backends;
use crate::common::backend::{open_store, Backend};
use crate::common::consts::{BOSS, PW};
use crate::common::http::{bare_client, client_with_jar, jar_cookie, login_ok, UA_CHROME_WINDOWS};
use crate::contact::{merged, site};

const STEP_UP: &str = "[access]\ntwofactor = [\"/admin/**\"]\n";
const ADMIN_PAGE: &str = "/admin/x";

async fn a_password_session_is_asked_the_second_factor_on_admin_paths(backend: Backend) {
    let site = site(backend, &merged(&[NO_IP_LIMIT, STEP_UP])).await;
    let (s, gw) = (&site.s, site.gw());
    s.gw.add_user(BOSS, PW, true);
    let (c, jar) = client_with_jar(UA_CHROME_WINDOWS);
    login_ok(&c, &gw, BOSS, PW).await;
    let (mut app, _) = enrol_totp(&c, &gw).await;

    // Outside the list: forwarded at level password.
    assert_level(s, &c, &gw, RD, "password").await;

    // An API client: 401 saying what to do.
    let resp = get(&c, &format!("{gw}{ADMIN_PAGE}"), false).await;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(
        status, 401,
        "{ADMIN_PAGE} for an API client at level password:\n{body}"
    );
    let json: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("the 401 is not JSON ({e}):\n{body}"));
    assert_eq!(json["error"], "second_factor_required", "{json}");
    assert_eq!(json["url"], TWOFA, "{json}");

    // A browser: sent to the second step, with where it was going.
    let (status, location) =
        crate::contact::redirect(get(&c, &format!("{gw}{ADMIN_PAGE}"), true).await).await;
    assert_eq!(
        status, 302,
        "{ADMIN_PAGE} at level password answered:\n{location}"
    );
    let target = Target::parse(&location);
    assert!(
        target.path == TWOFA && target.param("rd") == Some(ADMIN_PAGE),
        "{ADMIN_PAGE} at level password answered {status} {location} \
         (expected 302 to {TWOFA}?rd={ADMIN_PAGE})"
    );
    assert!(
        s.upstream.requests().iter().all(|r| r.path != ADMIN_PAGE),
        "{ADMIN_PAGE} reached the upstream before the second factor"
    );

    // The code: back on the page, at level 2fa, with a new session cookie.
    let old = jar_cookie(&jar, &gw, "vigile_session").expect("a session cookie");
    let code = app.fresh_code().await;
    let resp = verify(&c, &gw, &location, "totp", &code, false).await;
    assert_signed_in(resp, ADMIN_PAGE, "the step-up code").await;
    let new = jar_cookie(&jar, &gw, "vigile_session").expect("a session cookie");
    assert_ne!(new, old, "the session cookie was not replaced");
    assert_level(s, &c, &gw, ADMIN_PAGE, "2fa").await;
    assert_level(s, &c, &gw, RD, "2fa").await;

    // The old cookie opens nothing; the device holds one session.
    let resp = bare_client()
        .get(format!("{gw}{RD}"))
        .header("cookie", format!("vigile_session={old}"))
        .header("accept", crate::common::http::ACCEPT_HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        302,
        "the replaced session cookie still opens {RD}"
    );
    let store = open_store(s);
    let boss = store.user_by_email(BOSS).await.unwrap().unwrap();
    let sessions = store
        .sessions_of(&boss.id, vigile::clock::now_ms())
        .await
        .unwrap();
    assert_eq!(
        sessions.len(),
        1,
        "one session for the one device: {sessions:?}"
    );
}
both_backends!(a_password_session_is_asked_the_second_factor_on_admin_paths);
