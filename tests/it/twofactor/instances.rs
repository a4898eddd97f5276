//! Two instances on one store: an app enrolled through instance A is asked for by instance
//! B at the next login there (even though B had let the member in with the password alone
//! a moment before), and B accepts its code: the factor and its secret's key are shared
//! through the store, not kept by the instance that enrolled it.

use super::*;
use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::{ANN, PW};
use crate::common::http::{client, login_ok};
use crate::contact::{logout, site};

async fn a_second_instance_asks_for_a_factor_enrolled_on_the_first(backend: Backend) {
    let site = site(backend, NO_IP_LIMIT).await;
    let s = &site.s;
    let a = s.gw.url();
    let second = s.second_instance(NO_IP_LIMIT).await;
    let b = second.url();
    s.gw.add_user(ANN, PW, false);

    // On B, before the enrolment: the password alone.
    let on_b = client();
    login_straight(&on_b, &b, ANN).await;
    logout(&on_b, &b).await;

    // Enrolled on A.
    let on_a = client();
    login_ok(&on_a, &a, ANN, PW).await;
    let (mut app, _) = enrol_totp(&on_a, &a).await;

    // B asks for it, and takes its code.
    password_step(&on_b, &b, ANN, RD).await;
    let code = app.fresh_code().await;
    let resp = verify(&on_b, &b, TWOFA, "totp", &code, false).await;
    assert_signed_in(resp, RD, "a code on the second instance").await;
    assert_level(s, &on_b, &b, RD, "2fa").await;
}
both_backends!(a_second_instance_asks_for_a_factor_enrolled_on_the_first);
