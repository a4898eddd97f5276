//! The readers these tests rely on, checked on known input: the TOTP codes computed here
//! against RFC 6238's published values, and the forms, secret and recovery codes read from
//! pages written the ways the contract allows.

use super::*;

#[test]
fn totp_codes_are_rfc_6238s() {
    // RFC 6238 appendix B, SHA-1: the secret "12345678901234567890" (base32 below).
    let app = Authenticator::new("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    for (time, eight_digits) in [
        (59u64, "94287082"),
        (1_111_111_109, "07081804"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
    ] {
        assert_eq!(app.code_at(time / 30), &eight_digits[2..], "at {time}");
    }
    // Spaces and lowercase, as a page may group it.
    let grouped = Authenticator::new("gezd gnbv gy3t qojq gezd gnbv gy3t qojq");
    assert_eq!(grouped.code_at(1), app.code_at(1));
    assert_ne!(app.wrong_code(), app.code_at(unix_now() / 30));
}

#[tokio::test]
async fn fresh_codes_move_forward_and_stay_within_a_step_of_now() {
    let mut app = Authenticator::new("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    let before = unix_now() / 30;
    let first = app.fresh_code().await;
    let a = app.last.expect("handed out");
    let second = app.fresh_code().await;
    let b = app.last.expect("handed out");
    let after = unix_now() / 30;
    assert!(a < b, "steps {a}, {b}");
    assert_eq!((app.code_at(a), app.code_at(b)), (first, second.clone()));
    assert!(
        a + 1 >= before && b <= after + 1,
        "steps {a}, {b} around {before}..{after}"
    );
    assert_eq!(app.last_code(), second);
}

#[test]
fn forms_are_told_apart_by_their_action_field() {
    let page = r#"<html><body>
      <form method="post" action="/_vigile/account/2fa">
        <input type="hidden" name="csrf" value="t&amp;1">
        <input type="hidden" name="action" value="unlock">
        <input type="password" name="password">
      </form>
      <form method="post" action="/_vigile/account/2fa">
        <input type="hidden" name="csrf" value="t&amp;1">
        <input type="hidden" name="id" value="f1">
        <button type="submit" name="action" value="rename">Rename</button>
        <button
           name="action" value="remove">Remove</button>
      </form>
      <form method="post"><input type="hidden" name="csrf" value="x">
        <input type="submit" name="action" value="verify"></form>
      <form method="post" action="/_vigile/logout"><input type="hidden" name="action" value="remove"></form>
    </body></html>"#;
    let unlock = find_action(page, ACCOUNT_2FA, "unlock").expect("unlock");
    assert_eq!(unlock.form.hidden_value("csrf"), Some("t&1"));
    let remove = find_action(page, ACCOUNT_2FA, "remove").expect("remove");
    assert_eq!(remove.form.hidden_value("id"), Some("f1"));
    assert_eq!(remove.actions, ["rename", "remove"]);
    // A form without `action` posts to the page it is on.
    let verify = find_action(page, TWOFA, "verify").expect("verify");
    assert_eq!(verify.form.action, TWOFA);
    assert!(find_action(page, ACCOUNT_2FA, "enrol-totp").is_none());
}

#[test]
fn the_secret_and_recovery_codes_are_read_from_their_elements() {
    let page = r#"<p>Secret: <code id="totp-secret">JBSW Y3DP EHPK 3PXP</code></p>
      <ol class="recovery-codes">
        <li class="recovery-code">abcd-ef23-4567</li>
        <li class="x recovery-code"><code>zz99-a1b2-c3d4</code></li>
        <li class="recovery-code">Not-A-Code</li>
      </ol>
      <a href="/_vigile/2fa?rd=%2Fx&amp;method=recovery">Use a recovery code</a>"#;
    assert_eq!(totp_secret(page), "JBSWY3DPEHPK3PXP");
    let input = r#"<input readonly id="totp-secret" value="JBSWY3DPEHPK3PXP">"#;
    assert_eq!(totp_secret(input), "JBSWY3DPEHPK3PXP");
    let codes = recovery_codes(page);
    assert_eq!(codes.len(), 3, "{codes:?}");
    assert_eq!(codes[..2].to_vec(), ["abcd-ef23-4567", "zz99-a1b2-c3d4"]);
    assert!(!is_recovery_code(&codes[2]));
    assert_eq!(
        method_link(page, "recovery").as_deref(),
        Some("/_vigile/2fa?rd=%2Fx&method=recovery")
    );
    assert_eq!(method_link(page, "email"), None);
    assert_eq!(resolve(TWOFA, "?method=totp"), "/_vigile/2fa?method=totp");
}
