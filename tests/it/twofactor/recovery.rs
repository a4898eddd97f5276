//! A recovery code stands in for the app once: the second step links to it, it signs in
//! (audited as `recovery_code_used` with the codes left, never the code), and the same code
//! is refused the next time while another one still works.

use super::*;
use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::{ANN, PW};
use crate::common::http::{client, login_ok};
use crate::contact::{logout, merged, site};

/// The `left` field of a `recovery_code_used` line (a number, or a number as a string).
fn left(line: &Value) -> Option<u64> {
    let v = &line["left"];
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

async fn a_recovery_code_signs_in_once(backend: Backend) {
    let site = site(backend, &merged(&[NO_IP_LIMIT, AUDIT])).await;
    let (s, gw) = (&site.s, site.gw());
    s.gw.add_user(ANN, PW, false);
    let c = client();
    login_ok(&c, &gw, ANN, PW).await;
    let (_app, codes) = enrol_totp(&c, &gw).await;
    logout(&c, &gw).await;

    // The second step links to the recovery codes.
    password_step(&c, &gw, ANN, RD).await;
    let second = page(&c, &gw, TWOFA).await;
    assert!(
        method_link(&second, "recovery").is_some(),
        "{TWOFA} has no link to use a recovery code (href with method=recovery):\n{second}"
    );
    let resp = verify(&c, &gw, TWOFA, "recovery", &codes[3], false).await;
    assert_signed_in(resp, RD, "a recovery code").await;
    assert_level(s, &c, &gw, RD, "2fa").await;
    let used = audit_events(&s.gw, "recovery_code_used", 1).await;
    assert_eq!(used.len(), 1, "{used:?}");
    assert!(used[0]["user"].is_string(), "whose? {}", used[0]);
    assert_eq!(left(&used[0]), Some(9), "codes left: {}", used[0]);

    // Used: refused the next time; another code still works.
    logout(&c, &gw).await;
    password_step(&c, &gw, ANN, RD).await;
    let resp = verify(&c, &gw, TWOFA, "recovery", &codes[3], false).await;
    assert_refused(resp, "a recovery code used before").await;
    assert_no_session(&c, &gw, "after a used recovery code").await;
    let resp = verify(&c, &gw, TWOFA, "recovery", &codes[7], false).await;
    assert_signed_in(resp, RD, "another recovery code").await;
    let used = audit_events(&s.gw, "recovery_code_used", 2).await;
    assert_eq!(used.len(), 2, "one line per code used: {used:?}");
    assert_eq!(left(&used[1]), Some(8), "codes left: {}", used[1]);

    let (text, _) = audit_lines(&s.gw);
    for code in &codes {
        assert!(
            !text.contains(code.as_str()),
            "recovery code {code} in the audit log"
        );
    }
}
both_backends!(a_recovery_code_signs_in_once);
