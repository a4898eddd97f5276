//! Vigile's own pages: login answers, CSRF, languages, `api/me`.

use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::PW;
use crate::common::http::{self, client, get, get_page, header, login, post_form};

/// Unknown account and wrong password: same status, same page (the typed address aside).
async fn one_answer_for_unknown_user_and_wrong_password(backend: Backend) {
    let s = backend.stack("").await;
    s.gw.add_user("ann@example.com", PW, false);
    let c = client();
    let wrong = login(&c, &s.gw.url(), "ann@example.com", "Wrong-password-1").await;
    let unknown = login(&c, &s.gw.url(), "nobody@example.com", "Wrong-password-1").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), wrong.status());
    assert!(http::set_cookies(&wrong)
        .iter()
        .all(|c| !c.starts_with("vigile_session")));
    let wrong = wrong
        .text()
        .await
        .unwrap()
        .replace("ann@example.com", "EMAIL");
    let unknown = unknown
        .text()
        .await
        .unwrap()
        .replace("nobody@example.com", "EMAIL");
    assert_eq!(wrong, unknown);
    assert!(
        wrong.contains("Incorrect email address or password."),
        "{wrong}"
    );
    assert!(
        wrong.contains("/_vigile/password/forgot"),
        "a forgot-password link is offered"
    );
    let m =
        s.gw.metric("vigile_logins_total{result=\"bad_credentials\"}")
            .await;
    assert_eq!(m, Some(2.0));
}
both_backends!(one_answer_for_unknown_user_and_wrong_password);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_a_valid_csrf_token_change_nothing() {
    let s = Backend::Sqlite.stack("").await;
    s.gw.add_user("ann@example.com", PW, false);
    let c = client();
    get_page(&c, &format!("{}/_vigile/login", s.gw.url())).await;
    for csrf in ["", "forged-token"] {
        let r = post_form(
            &c,
            &format!("{}/_vigile/login", s.gw.url()),
            &[
                ("email", "ann@example.com"),
                ("password", PW),
                ("csrf", csrf),
            ],
        )
        .await;
        assert_eq!(r.status(), 403, "csrf={csrf:?}");
        assert!(http::set_cookies(&r)
            .iter()
            .all(|c| !c.starts_with("vigile_session")));
        assert!(r.text().await.unwrap().contains("This form has expired"));
    }
    // A token from another browser (another device cookie) is refused too.
    let other = client();
    let page = get_page(&other, &format!("{}/_vigile/login", s.gw.url())).await;
    let stolen = http::csrf_from(&page);
    let r = post_form(
        &c,
        &format!("{}/_vigile/login", s.gw.url()),
        &[
            ("email", "ann@example.com"),
            ("password", PW),
            ("csrf", &stolen),
        ],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        s.gw.metric("vigile_logins_total{result=\"success\"}").await,
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_speak_french_and_english() {
    let s = Backend::Sqlite.stack("[i18n]\ndefault = \"fr\"\n").await;
    let c = client();
    // The configured default, then Accept-Language, then the switch (a cookie) decides.
    let page = http::bare_client()
        .get(format!("{}/_vigile/login", s.gw.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<html lang=\"fr\">") && page.contains("Connexion"),
        "{page}"
    );
    let page = http::bare_client()
        .get(format!("{}/_vigile/login", s.gw.url()))
        .header("Accept-Language", "en-GB,en;q=0.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Sign in"), "{page}");
    assert!(
        page.contains("/_vigile/lang/fr?rd=%2F_vigile%2Flogin"),
        "switch link on the page"
    );

    let r = get(
        &c,
        &format!("{}/_vigile/lang/en?rd=%2F_vigile%2Flogin", s.gw.url()),
        true,
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location").as_deref(), Some("/_vigile/login"));
    assert!(http::set_cookies(&r)
        .iter()
        .any(|c| c.starts_with("vigile_lang=en")));
    let page = get_page(&c, &format!("{}/_vigile/login", s.gw.url())).await;
    assert!(page.contains("<html lang=\"en\">") && page.contains("Sign in"));
    get(&c, &format!("{}/_vigile/lang/fr", s.gw.url()), true).await;
    let page = get_page(&c, &format!("{}/_vigile/login", s.gw.url())).await;
    assert!(page.contains("Mot de passe"));
    // Error pages follow the language too.
    s.gw.add_user("ann@example.com", PW, false);
    let r = login(&c, &s.gw.url(), "ann@example.com", "nope").await;
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Adresse e-mail ou mot de passe incorrect."));
    let r = get(&c, &format!("{}/_vigile/lang/de", s.gw.url()), true).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_set_security_headers_and_cookie_attributes() {
    let s = Backend::Sqlite.stack("").await;
    s.gw.add_user("ann@example.com", PW, false);
    let c = client();
    let r = get(&c, &format!("{}/_vigile/login", s.gw.url()), true).await;
    assert_eq!(header(&r, "x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(header(&r, "cache-control").as_deref(), Some("no-store"));
    assert!(header(&r, "content-security-policy")
        .unwrap()
        .contains("frame-ancestors 'none'"));
    let device = http::set_cookies(&r);
    assert!(device.iter().any(|c| c.starts_with("vigile_device=")
        && c.contains("HttpOnly")
        && c.contains("SameSite=Lax")));
    let r = login(&c, &s.gw.url(), "ann@example.com", PW).await;
    let session = http::set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("vigile_session="))
        .unwrap();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attr), "{session}");
    }
    let css = get(
        &c,
        &format!("{}/_vigile/static/vigile.css", s.gw.url()),
        true,
    )
    .await;
    assert_eq!(css.status(), 200);
    assert!(header(&css, "content-type")
        .unwrap()
        .starts_with("text/css"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_public_url_uses_host_prefixed_secure_cookies() {
    let s = Backend::Sqlite
        .stack("[server]\npublic_url = \"https://courses.example.com\"\n")
        .await;
    let r = get(
        &http::bare_client(),
        &format!("{}/_vigile/login", s.gw.url()),
        true,
    )
    .await;
    let cookies = http::set_cookies(&r);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-vigile_device=") && c.contains("Secure")),
        "{cookies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_me_describes_the_current_identity() {
    let s = Backend::Sqlite.stack("").await;
    let c = client();
    let r = get(&c, &format!("{}/_vigile/api/me", s.gw.url()), false).await;
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthenticated");
    s.gw.add_user("boss@example.com", PW, true);
    http::login_ok(&c, &s.gw.url(), "boss@example.com", PW).await;
    let body: serde_json::Value = get(&c, &format!("{}/_vigile/api/me", s.gw.url()), false)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["email"], "boss@example.com");
    assert_eq!(body["groups"], serde_json::json!(["member", "admin"]));
    assert!(body["user"].as_str().is_some_and(|u| !u.is_empty()));
}

/// `/_vigile/dev/mail` lists every mail's links (activation, password reset): with the
/// default configuration it does not exist, for a visitor or an admin, whatever the
/// method; `server.dev_mode` opens it (the control, so the 404 is the setting's doing).
async fn dev_mail_is_not_found_by_default(backend: Backend) {
    let mut s = backend.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user("boss@example.com", PW, true);
    // A mail with a link exists to be shown.
    http::signup(&client(), &gw, "new@example.com", PW, PW, "en").await;
    s.smtp
        .wait_for_to("new@example.com", "Activate your account")
        .await;
    let admin = client();
    http::login_ok(&admin, &gw, "boss@example.com", PW).await;
    let url = format!("{gw}/_vigile/dev/mail");
    for (who, c) in [("visitor", client()), ("admin", admin.clone())] {
        for resp in [
            get(&c, &url, true).await,
            c.head(&url).send().await.unwrap(),
            post_form(&c, &url, &[]).await,
        ] {
            let status = resp.status();
            let body = resp.text().await.unwrap();
            assert_eq!(status, 404, "{who}: {body}");
            assert!(!body.contains("/_vigile/activate?token="), "{who}: {body}");
        }
    }

    s.gw.update_config("[server]\ndev_mode = true\n");
    s.gw.restart().await;
    http::signup(&client(), &gw, "other@example.com", PW, PW, "en").await;
    s.smtp
        .wait_for_to("other@example.com", "Activate your account")
        .await;
    let page = http::decode_entities(&get_page(&admin, &url).await);
    assert!(page.contains("/_vigile/activate?token="), "{page}");
}
both_backends!(dev_mail_is_not_found_by_default);
