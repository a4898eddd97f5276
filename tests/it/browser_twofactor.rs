//! Passkeys (WebAuthn) in a real Chromium, with the browser's virtual authenticator (the
//! WebDriver WebAuthn extension that chromedriver implements: a CTAP2 platform
//! authenticator that holds discoverable credentials and verifies its user). WebAuthn
//! wants a domain name as relying-party id, never an IP address, so every origin here is
//! `http://localhost:PORT` (a secure context for browsers).
//!
//! - [`passkey_ceremonies_in_chromium`]: `vigile::auth::passkeys` and
//!   `templates/static/passkeys.js` on their own, behind a tiny relying party served from
//!   this test (the script under Vigile's CSP): registration, authentication on a click
//!   and automatically (`data-auto`), the counter kept up to date in the stored JSON, an
//!   answer verified for another origin or replayed on a new challenge refused, and the
//!   page's error shown with nothing posted when the authenticator refuses (a second
//!   passkey on the same authenticator, a user not verified).
//! - [`passkey_enrolment_and_login_through_the_gateway`]: the real `vigile` binary, the
//!   two-factor contract (`/work/notes/twofactor-contract.md`): a member enrols a passkey
//!   on `/_vigile/account/2fa` (password re-entered first), gets the ten recovery codes,
//!   signs out, signs in with the password, passes `/_vigile/2fa` with the passkey (after
//!   one refused try) and reaches the page they wanted, which the upstream serves with
//!   `Remote-Auth-Level: 2fa`.
//!
//! Failures leave a screenshot in `test-artifacts/<test>/` (see `common::browser`).

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{json, Value};
use vigile::auth::passkeys::{user_handle, PasskeyError, Passkeys, StoredPasskey};

use crate::common::browser::{Browser, WAIT};
use crate::common::consts::{ANN, PW};
use crate::common::gateway::{Gateway, GatewayBuilder};
use crate::common::smtp::SmtpSink;
use crate::common::upstream::Upstream;
use crate::common::{free_port, poll_for, poll_until, POLL_INTERVAL};

/// The pages' Content-Security-Policy (src/pages/handlers/mod.rs): the harness serves its
/// pages under it too, so the script is proven to need nothing inline.
const CSP: &str = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";
const SCRIPT: &str = include_str!("../../templates/static/passkeys.js");
const LOGIN_SUBMIT: &str = "main form[action='/_vigile/login'] button[type='submit']";

// ---------------------------------------------------------------------------------------
// The virtual authenticator (WebDriver WebAuthn extension, W3C WebAuthn level 2 §11)
// ---------------------------------------------------------------------------------------

/// A WebDriver extension command on the current session: `path` under
/// `/session/{id}/`, with a JSON body for POST.
#[derive(Debug)]
struct Extension {
    method: http::Method,
    path: String,
    body: Option<Value>,
}

impl WebDriverCompatibleCommand for Extension {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.expect("a WebDriver session");
        base_url.join(&format!("session/{session}/{}", self.path))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(Value::to_string),
        )
    }
}

/// One virtual authenticator in a browser: internal (platform) transport, CTAP2,
/// discoverable credentials, user verification (a fingerprint that always matches, until
/// told otherwise).
struct Authenticator<'a> {
    b: &'a Browser,
    id: String,
}

impl<'a> Authenticator<'a> {
    async fn add(b: &'a Browser) -> Authenticator<'a> {
        let options = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserConsenting": true,
            "isUserVerified": true,
        });
        let answer = run(
            b,
            http::Method::POST,
            "webauthn/authenticator",
            Some(options),
        )
        .await;
        let id = answer
            .as_str()
            .unwrap_or_else(|| panic!("addVirtualAuthenticator answered {answer}"))
            .to_string();
        Authenticator { b, id }
    }

    /// The credentials it holds (`credentialId` base64url, `signCount`, ...).
    async fn credentials(&self) -> Vec<Value> {
        let path = format!("webauthn/authenticator/{}/credentials", self.id);
        let answer = run(self.b, http::Method::GET, &path, None).await;
        answer
            .as_array()
            .unwrap_or_else(|| panic!("getCredentials answered {answer}"))
            .clone()
    }

    /// Whether the user's verification (PIN, fingerprint) succeeds from now on.
    async fn set_user_verified(&self, verified: bool) {
        let path = format!("webauthn/authenticator/{}/uv", self.id);
        let body = json!({ "isUserVerified": verified });
        run(self.b, http::Method::POST, &path, Some(body)).await;
    }
}

async fn run(b: &Browser, method: http::Method, path: &str, body: Option<Value>) -> Value {
    let cmd = Extension {
        method,
        path: path.to_string(),
        body,
    };
    b.client().issue_cmd(cmd).await.unwrap_or_else(|e| {
        panic!(
            "chromedriver refused the WebAuthn extension command {path}: {e} \
             (the virtual authenticator needs chromedriver >= 84)"
        )
    })
}

/// A credential id as the WebDriver extension gives it (base64url, padded or not) in the
/// unpadded form `StoredPasskey::id` uses.
fn unpadded(id: &str) -> String {
    id.trim_end_matches('=').replace('+', "-").replace('/', "_")
}

/// Waits until the element matching `css` is displayed (an error paragraph losing its
/// `hidden` attribute).
async fn wait_displayed(b: &Browser, css: &str) {
    let tries = (WAIT.as_millis() / POLL_INTERVAL.as_millis()) as u32;
    poll_until(&format!("{css} to be displayed"), tries, || async {
        match b.client().find(fantoccini::Locator::Css(css)).await {
            Ok(e) => e.is_displayed().await.unwrap_or(false),
            Err(_) => false,
        }
    })
    .await
}

async fn displayed(b: &Browser, css: &str) -> bool {
    b.find(css).await.is_displayed().await.unwrap_or(false)
}

// ---------------------------------------------------------------------------------------
// A tiny relying party: the module and the script, without the gateway
// ---------------------------------------------------------------------------------------

/// What the harness keeps: the ceremony state between a page and its form, and the
/// member's passkeys as the store would (their JSON).
struct Rp {
    passkeys: Passkeys,
    /// The same relying-party id, another origin (port): must refuse every answer.
    other_origin: Passkeys,
    state: Mutex<Option<String>>,
    keys: Mutex<Vec<String>>,
    /// Every form the browser posted, as "register" / "login".
    posts: Mutex<Vec<String>>,
    /// The last authentication answer and its state, to try them again.
    last_login: Mutex<Option<(String, String)>>,
}

impl Rp {
    fn keys(&self) -> Vec<StoredPasskey> {
        let stored = self.keys.lock().unwrap().clone();
        stored
            .iter()
            .map(|k| serde_json::from_str(k).expect("a stored passkey reads back"))
            .collect()
    }

    fn posts(&self) -> usize {
        self.posts.lock().unwrap().len()
    }

    fn counter(&self, index: usize) -> u64 {
        let stored: Value = serde_json::from_str(&self.keys.lock().unwrap()[index]).unwrap();
        stored
            .pointer("/passkey/cred/counter")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("no counter in the stored passkey: {stored}"))
    }
}

fn page(body: String) -> Response {
    (
        [(header::CONTENT_SECURITY_POLICY, CSP)],
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>passkeys</title></head><body>{body}\
             <script src=\"/passkeys.js\" defer></script></body></html>"
        )),
    )
        .into_response()
}

fn ceremony_page(options: &str, action: &str, kind: &str, auto: bool) -> Response {
    let auto = if auto { " data-auto" } else { "" };
    page(format!(
        "<script type=\"application/json\" id=\"webauthn-options\">{options}</script>\
         <form method=\"post\" action=\"{action}\" data-webauthn=\"{kind}\"{auto}>\
         <input type=\"hidden\" name=\"response\" value=\"\">\
         <input id=\"name\" name=\"name\" value=\"\">\
         <p id=\"failed\" data-webauthn-error hidden>The passkey did not work.</p>\
         <p id=\"unsupported\" data-webauthn-error=\"unsupported\" hidden>No passkeys here.</p>\
         <button id=\"go\" type=\"submit\" name=\"action\" value=\"confirm\">Go</button>\
         </form>"
    ))
}

fn outcome(text: String) -> Response {
    page(format!("<p id=\"outcome\">{text}</p>"))
}

fn fields(body: &str) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

async fn register_page(State(rp): State<Arc<Rp>>) -> Response {
    let keys = rp.keys();
    let (options, state) = rp
        .passkeys
        .start_registration(user_handle("member-1"), ANN, "Ann <Example>", &keys)
        .expect("registration starts");
    *rp.state.lock().unwrap() = Some(state);
    ceremony_page(&options, "/register", "create", false)
}

async fn register_post(State(rp): State<Arc<Rp>>, body: String) -> Response {
    rp.posts.lock().unwrap().push("register".into());
    let form = fields(&body);
    let response = form.get("response").cloned().unwrap_or_default();
    let state = rp.state.lock().unwrap().take().unwrap_or_default();
    let elsewhere = rp.other_origin.finish_registration(&response, &state).err();
    match rp.passkeys.finish_registration(&response, &state) {
        Ok(key) => {
            let id = key.id();
            let json = serde_json::to_string(&key).expect("a passkey serialises");
            rp.keys.lock().unwrap().push(json);
            outcome(format!(
                "registered {id} name={} action={} other-origin={elsewhere:?}",
                form.get("name").map_or("", String::as_str),
                form.get("action").map_or("", String::as_str),
            ))
        }
        Err(e) => outcome(format!("refused {e:?}")),
    }
}

async fn login_page(State(rp): State<Arc<Rp>>, uri: axum::http::Uri) -> Response {
    let keys = rp.keys();
    let (options, state) = rp
        .passkeys
        .start_authentication(&keys)
        .expect("authentication starts");
    *rp.state.lock().unwrap() = Some(state);
    let auto = uri.query().is_some_and(|q| q.contains("auto=1"));
    ceremony_page(&options, "/login", "get", auto)
}

async fn login_post(State(rp): State<Arc<Rp>>, body: String) -> Response {
    rp.posts.lock().unwrap().push("login".into());
    let response = fields(&body).get("response").cloned().unwrap_or_default();
    let state = rp.state.lock().unwrap().take().unwrap_or_default();
    let mut keys = rp.keys();
    let elsewhere = rp
        .other_origin
        .finish_authentication(&response, &state, &mut keys.clone())
        .err();
    let result = rp
        .passkeys
        .finish_authentication(&response, &state, &mut keys);
    *rp.last_login.lock().unwrap() = Some((response, state));
    match result {
        Ok(index) => {
            let json = serde_json::to_string(&keys[index]).expect("a passkey serialises");
            rp.keys.lock().unwrap()[index] = json;
            outcome(format!(
                "authenticated {index} {} other-origin={elsewhere:?}",
                keys[index].id()
            ))
        }
        Err(e) => outcome(format!("refused {e:?}")),
    }
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

/// Serves the relying party on 127.0.0.1 (a free port); the browser calls it `localhost`.
async fn serve_rp() -> (Arc<Rp>, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the relying party");
    let port = listener.local_addr().unwrap().port();
    let other = if port == u16::MAX { port - 1 } else { port + 1 };
    let rp = Arc::new(Rp {
        passkeys: Passkeys::new(&format!("http://localhost:{port}"), "Harness").unwrap(),
        other_origin: Passkeys::new(&format!("http://localhost:{other}"), "Harness").unwrap(),
        state: Mutex::default(),
        keys: Mutex::default(),
        posts: Mutex::default(),
        last_login: Mutex::default(),
    });
    let app = Router::new()
        .route("/register", get(register_page).post(register_post))
        .route("/login", get(login_page).post(login_post))
        .route("/passkeys.js", get(script))
        .with_state(rp.clone());
    tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("relying party server failed");
    });
    (rp, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_ceremonies_in_chromium() {
    let (rp, port) = serve_rp().await;
    let base = format!("http://localhost:{port}");
    let b = Browser::start("passkey_ceremonies_in_chromium").await;
    let authenticator = Authenticator::add(&b).await;
    b.run(async {
        b.step("register");
        b.goto(&format!("{base}/register")).await;
        b.fill("#name", "Laptop").await;
        b.click("#go").await;
        let text = b.wait_text("#outcome", "registered").await;
        let key = rp.keys().pop().expect("a passkey was stored");
        assert!(
            text.contains(&format!("registered {} ", key.id())),
            "{text}"
        );
        // The other fields and the button pressed went with the answer.
        assert!(text.contains("name=Laptop action=confirm"), "{text}");
        // The same answer and state, checked for another origin: refused.
        assert!(
            text.contains(&format!("other-origin={:?}", Some(PasskeyError::Rejected))),
            "{text}"
        );
        let held = authenticator.credentials().await;
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!(
            unpadded(held[0]["credentialId"].as_str().unwrap()),
            key.id(),
            "the authenticator holds the passkey the server stored"
        );

        b.step("sign-in-on-click");
        b.goto(&format!("{base}/login")).await;
        b.click("#go").await;
        let text = b.wait_text("#outcome", "authenticated").await;
        assert!(text.starts_with(&format!("authenticated 0 {}", key.id())), "{text}");
        assert!(
            text.contains(&format!("other-origin={:?}", Some(PasskeyError::Rejected))),
            "{text}"
        );
        let first = rp.counter(0);

        b.step("an-answer-replayed-on-a-new-challenge");
        let (answer, _) = rp.last_login.lock().unwrap().clone().unwrap();
        let mut keys = rp.keys();
        let (_, fresh) = rp.passkeys.start_authentication(&keys).unwrap();
        assert_eq!(
            rp.passkeys
                .finish_authentication(&answer, &fresh, &mut keys)
                .unwrap_err(),
            PasskeyError::Rejected
        );

        b.step("sign-in-automatically");
        let before = rp.posts();
        b.goto(&format!("{base}/login?auto=1")).await;
        b.wait_text("#outcome", "authenticated 0").await;
        assert_eq!(rp.posts(), before + 1);
        let second = rp.counter(0);
        let signs = authenticator.credentials().await[0]["signCount"]
            .as_u64()
            .unwrap();
        assert!(
            second > first || signs == 0,
            "the stored counter follows the authenticator's ({first} then {second}, it says {signs})"
        );
        assert_eq!(second, signs, "stored counter = the authenticator's");

        b.step("a-second-passkey-on-the-same-authenticator");
        let before = rp.posts();
        b.goto(&format!("{base}/register")).await;
        b.click("#go").await;
        wait_displayed(&b, "#failed").await;
        assert!(!displayed(&b, "#unsupported").await);
        assert_eq!(rp.posts(), before, "nothing posted after a refusal");
        assert_eq!(authenticator.credentials().await.len(), 1);
        assert_eq!(rp.keys().len(), 1);

        b.step("a-user-not-verified");
        authenticator.set_user_verified(false).await;
        b.goto(&format!("{base}/login")).await;
        b.click("#go").await;
        wait_displayed(&b, "#failed").await;
        assert_eq!(rp.posts(), before, "nothing posted after a refusal");

        b.step("verified-again");
        authenticator.set_user_verified(true).await;
        b.click("#go").await;
        b.wait_text("#outcome", "authenticated 0").await;
        assert_eq!(rp.posts(), before + 1);
    })
    .await;
    b.close().await;
}

// ---------------------------------------------------------------------------------------
// Through the gateway (the two-factor contract)
// ---------------------------------------------------------------------------------------

/// A gateway whose `server.public_url` is `http://localhost:PORT` on its own port (the
/// relying party must be a name): the port is chosen first and the start tried again on
/// another if it was taken meanwhile.
async fn localhost_gateway(upstream: &Upstream, smtp: &SmtpSink, extra: &str) -> Gateway {
    for _ in 0..5 {
        let port = free_port();
        let gw = GatewayBuilder::new(upstream.url())
            .first_port(port)
            .extra(&format!(
                "[server]\npublic_url = \"http://localhost:{port}\"\n\
                 [mail]\ntransport = \"smtp\"\nsmtp_url = \"{}\"\n\
                 retry_initial = \"200ms\"\nretry_max = \"2s\"\ntimeout = \"2s\"\n",
                smtp.url()
            ))
            .extra(extra)
            .start()
            .await;
        if gw.port() == port {
            return gw;
        }
    }
    panic!("no gateway could start on the port its public_url names (5 tries)");
}

/// The submit button of the form whose `action` field (hidden input or button) is
/// `action`.
fn action_button(action: &str) -> String {
    format!(
        "form:has(input[name='action'][value='{action}']) button[type='submit'], \
         button[name='action'][value='{action}']"
    )
}

async fn sign_in(b: &Browser, base: &str, path: &str) {
    b.goto(&format!("{base}{path}")).await;
    b.wait_path("/_vigile/login").await;
    b.fill("#email", ANN).await;
    b.fill("#password", PW).await;
    b.click(LOGIN_SUBMIT).await;
}

fn seen(upstream: &Upstream, path: &str) -> crate::common::upstream::RecordedRequest {
    upstream
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("{path} never reached the upstream"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_enrolment_and_login_through_the_gateway() {
    let upstream = Upstream::start().await;
    let smtp = SmtpSink::start().await;
    let gw = localhost_gateway(
        &upstream,
        &smtp,
        "[twofactor]\nmethods = [\"totp\", \"webauthn\", \"email\"]\n",
    )
    .await;
    gw.add_user(ANN, PW, false);
    let base = format!("http://localhost:{}", gw.port());

    let b = Browser::start("passkey_enrolment_and_login_through_the_gateway").await;
    let authenticator = Authenticator::add(&b).await;
    b.run(async {
        b.step("password-only");
        sign_in(&b, &base, "/courses/1").await;
        b.wait_path("/courses/1").await;
        b.wait_text("body", "upstream saw /courses/1").await;
        assert_eq!(
            seen(&upstream, "/courses/1").header("remote-auth-level"),
            Some("password")
        );

        b.step("unlock-the-two-factor-page");
        b.goto(&format!("{base}/_vigile/account/2fa")).await;
        let unlock = "form:has(input[name='action'][value='unlock'])";
        b.fill(&format!("{unlock} input[name='password']"), PW)
            .await;
        b.click(&action_button("unlock")).await;

        b.step("enrol-a-passkey");
        b.click(&action_button("enrol-webauthn")).await;
        b.find("script#webauthn-options[type='application/json']")
            .await;
        let create = "form[data-webauthn='create']";
        b.fill(&format!("{create} input[name='name']"), "Laptop")
            .await;
        b.click(&format!("{create} button[type='submit']")).await;

        b.step("recovery-codes-shown-once");
        let tries = (WAIT.as_millis() / POLL_INTERVAL.as_millis()) as u32;
        let codes = poll_for("the ten recovery codes", tries, || async {
            let found = b
                .client()
                .find_all(fantoccini::Locator::Css(".recovery-code"))
                .await
                .ok()?;
            (found.len() == 10).then_some(found.len())
        })
        .await;
        assert_eq!(codes, 10);
        assert_eq!(authenticator.credentials().await.len(), 1);
        assert_eq!(
            gw.metric("vigile_second_factor_total{method=\"webauthn\",result=\"enrolled\"}")
                .await,
            Some(1.0)
        );

        b.step("sign-out");
        b.click("form[action='/_vigile/logout'] button[type='submit']")
            .await;
        poll_for("the sign-out", tries, || async {
            let url = b.client().current_url().await.ok()?;
            (url.path() != "/_vigile/account/2fa").then_some(())
        })
        .await;

        b.step("password-then-the-second-step");
        sign_in(&b, &base, "/courses/2").await;
        let url = b.wait_path("/_vigile/2fa").await;
        assert!(
            !upstream.requests().iter().any(|r| r.path == "/courses/2"),
            "nothing reaches the upstream before the second step ({url})"
        );
        let form = "form[data-webauthn='get']";
        b.find(form).await;

        b.step("a-refused-try-stays-on-the-page");
        authenticator.set_user_verified(false).await;
        b.click(&format!("{form} button[type='submit']")).await;
        wait_displayed(&b, &format!("{form} [data-webauthn-error]")).await;
        assert_eq!(
            b.client().current_url().await.unwrap().path(),
            "/_vigile/2fa"
        );

        b.step("the-passkey");
        authenticator.set_user_verified(true).await;
        b.click(&format!("{form} button[type='submit']")).await;
        b.wait_path("/courses/2").await;
        b.wait_text("body", "upstream saw /courses/2").await;
        let request = seen(&upstream, "/courses/2");
        assert_eq!(request.header("remote-auth-level"), Some("2fa"));
        assert_eq!(request.header("remote-email"), Some(ANN));
        assert_eq!(
            gw.metric("vigile_second_factor_total{method=\"webauthn\",result=\"success\"}")
                .await,
            Some(1.0)
        );
    })
    .await;
    b.close().await;
}
