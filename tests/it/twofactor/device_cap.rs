//! The second factor comes before the device cap: a member over their cap passes `/2fa`
//! first, then gets the device code and chooses the device to replace; the session that
//! opens at the end is at level `2fa` and goes where the member was going.

use super::*;
use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::{ANN, PW};
use crate::common::http::{client, login_ok};
use crate::contact::{merged, site};
use crate::devices::{code_for, offered, post_on};

const ONE_DEVICE: &str = "[sessions]\nmax_per_member = 1\non_overflow = \"choose\"\n";

async fn over_the_cap_the_second_factor_comes_first_and_the_level_survives(backend: Backend) {
    let site = site(backend, &merged(&[NO_IP_LIMIT, ONE_DEVICE])).await;
    let (s, gw) = (&site.s, site.gw());
    s.gw.add_user(ANN, PW, false);
    let laptop = client();
    login_ok(&laptop, &gw, ANN, PW).await;
    let (mut app, _) = enrol_totp(&laptop, &gw).await;

    // The phone: the password, then the factor; only then the cap stops it.
    let phone = client();
    password_step(&phone, &gw, ANN, RD).await;
    let form = verify_form(&phone, &gw, TWOFA, "totp").await;
    let code = app.fresh_code().await;
    let resp = verify_with(&phone, &gw, &form, "totp", &code, false).await;
    assert!(!sets_session(&resp), "a session past the cap");
    let (status, location) = redirect(resp).await;
    assert_eq!((status, location.as_str()), (303, "/_vigile/verify"));

    let device_code = code_for(s, ANN, 1).await;
    let verify = "/_vigile/verify";
    let resp = post_on(&phone, &gw, verify, verify, &[("code", &device_code)]).await;
    let (_, location) = redirect(resp).await;
    assert_eq!(location, "/_vigile/devices/choose");
    let rows = offered(&phone, &gw).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let choose = "/_vigile/devices/choose";
    let resp = post_on(&phone, &gw, choose, choose, &[("session", &rows[0].0)]).await;
    assert!(sets_session(&resp));
    let (status, location) = redirect(resp).await;
    assert_eq!((status, location.as_str()), (303, RD));
    assert_level(s, &phone, &gw, RD, "2fa").await;
}
both_backends!(over_the_cap_the_second_factor_comes_first_and_the_level_survives);
