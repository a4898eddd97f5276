//! `Remote-Auth-Level` is Vigile's word, never the client's: a member who signed in with
//! the password alone is forwarded at `password` even when their browser sends
//! `Remote-Auth-Level: 2fa`, a visitor's forged value never reaches the application, and a
//! member who passed the second factor is forwarded at `2fa` whatever they send.

use super::*;
use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::{ANN, PW};
use crate::common::http::{client_with_headers, login_ok};
use crate::contact::{logout, site};

async fn upstream_hears_the_level_vigile_gave_never_a_forged_one(backend: Backend) {
    let site = site(backend, NO_IP_LIMIT).await;
    let (s, gw) = (&site.s, site.gw());
    s.gw.add_user(ANN, PW, false);

    // A visitor forging the header on a public page: it does not reach the application.
    let visitor = client_with_headers(&[("remote-auth-level", "2fa")]);
    let seen = level_seen(s, &visitor, &gw, "/").await;
    assert!(
        seen.iter().all(|v| v != "2fa"),
        "a visitor's forged Remote-Auth-Level reached the upstream: {seen:?}"
    );

    // A member without a second factor, forging 2fa: forwarded at password, once.
    let forging = client_with_headers(&[("remote-auth-level", "2fa")]);
    login_ok(&forging, &gw, ANN, PW).await;
    assert_level(s, &forging, &gw, RD, "password").await;
    assert_level(s, &forging, &gw, "/course/2?x=1", "password").await;

    // After enrolling and passing the factor, forging password changes nothing either.
    let (mut app, _) = enrol_totp(&forging, &gw).await;
    logout(&forging, &gw).await;
    let lowering = client_with_headers(&[("remote-auth-level", "password")]);
    login_with_totp(&lowering, &gw, ANN, &mut app, false).await;
    assert_level(s, &lowering, &gw, RD, "2fa").await;
}
both_backends!(upstream_hears_the_level_vigile_gave_never_a_forged_one);
