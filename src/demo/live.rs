//! The demo course site's live part: a lesson chat over a WebSocket ([`CHAT`]) and a
//! course progress feed in server-sent events ([`PROGRESS`]), served by a small axum server
//! on its own loopback port. The demo's configuration routes `/live/**` to it as a members'
//! path, so an operator sees long-lived connections work through the gateway.
//!
//! It believes the identity headers because only the gateway reaches it (a loopback port
//! behind a members' route; the gateway strips forged identity headers). It must never take
//! a sender's name from a client's message, and it refuses (403) a request that arrives
//! with no identity at all: something other than the gateway reached it. A browser's
//! chat handshake from another site's page (cross-site WebSocket hijacking, with the
//! member's cookies) is refused too: its `Origin` must name the `Host` it was sent to.

use std::future::IntoFuture;
use std::net::TcpListener as StdListener;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::Stream;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

/// The lesson chat's WebSocket.
pub const CHAT: &str = "/live/chat";
/// The progress feed (`text/event-stream`).
pub const PROGRESS: &str = "/live/progress";
/// The largest chat message (and frame) a member may send; a bigger one closes their
/// connection (the codec refuses it before it is buffered whole).
pub const MAX_MESSAGE_BYTES: usize = 2048;
/// How often the progress feed reports.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// A comment line on a quiet feed, so nothing between the browser and the site takes the
/// stream for dead.
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(15);
/// Chat lines kept for a member who reads slowly; past that they miss the oldest ones.
const ROOM_BACKLOG: usize = 64;
/// The longest name shown in front of a chat line, in characters.
const MAX_NAME_CHARS: usize = 64;
/// Lessons in the simulated course, and the step its progress feed advances by.
const LESSONS: u32 = 5;
const WATCHED_STEP: u32 = 20;

/// The identity headers to read (the gateway's `[headers]` names).
#[derive(Clone)]
pub struct IdentityHeaders {
    pub email: HeaderName,
    pub name: HeaderName,
}

/// Who sent a request, as the gateway vouches for it.
#[derive(Debug, PartialEq, Eq)]
struct Member {
    email: String,
    /// The display name, or the email when the account has none.
    name: String,
}

impl Member {
    /// The member the gateway named, or `None` when it named nobody. Values are account
    /// data (UTF-8, control characters already dropped by the gateway): read losslessly,
    /// control characters dropped again, the name bounded.
    fn from_headers(headers: &HeaderMap, names: &IdentityHeaders) -> Option<Member> {
        let read = |name: &HeaderName| {
            headers.get(name).map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .chars()
                    .filter(|c| !c.is_control())
                    .collect::<String>()
                    .trim()
                    .to_string()
            })
        };
        let email = read(&names.email).filter(|e| !e.is_empty())?;
        let name: String = read(&names.name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| email.clone())
            .chars()
            .take(MAX_NAME_CHARS)
            .collect();
        Some(Member { email, name })
    }
}

#[derive(Clone)]
struct Live {
    names: IdentityHeaders,
    /// Every chat line, to every connected member.
    room: broadcast::Sender<Utf8Bytes>,
}

/// The live server's listener on a free loopback port, bound before the gateway's
/// configuration is written (it names the port) and served once the server starts.
pub fn bind() -> std::io::Result<StdListener> {
    let listener = StdListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The live server as a Pingora background service.
pub struct LiveSite {
    listener: Mutex<Option<StdListener>>,
    app: Router,
}

impl LiveSite {
    /// Serves `listener` (from [`bind`]), reading the identity from `names`.
    pub fn new(listener: StdListener, names: IdentityHeaders) -> LiveSite {
        LiveSite {
            listener: Mutex::new(Some(listener)),
            app: router(names),
        }
    }
}

fn router(names: IdentityHeaders) -> Router {
    let (room, _) = broadcast::channel(ROOM_BACKLOG);
    Router::new()
        .route(CHAT, get(chat))
        .route(PROGRESS, get(progress))
        .with_state(Live { names, room })
}

#[async_trait]
impl BackgroundService for LiveSite {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let taken = self
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(listener) = taken else {
            return;
        };
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "demo live server: cannot listen");
                return;
            }
        };
        // Open chats and feeds never end by themselves: stop with the demo, not after them.
        tokio::select! {
            served = axum::serve(listener, self.app.clone()).into_future() => {
                if let Err(e) = served {
                    tracing::error!(error = %e, "demo live server stopped");
                }
            }
            _ = shutdown.changed() => {}
        }
    }
}

/// No identity: the request did not come through the gateway's members' route.
fn refused() -> Response {
    StatusCode::FORBIDDEN.into_response()
}

/// Whether a handshake comes from a page of this site: a browser always sends `Origin`
/// (its scheme and authority); other clients send none and are not a hijacking risk.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let authority = origin.to_str().ok().and_then(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
    });
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

async fn chat(State(live): State<Live>, headers: HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    let Some(member) = Member::from_headers(&headers, &live.names) else {
        return refused();
    };
    if !same_origin(&headers) {
        return refused();
    }
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| talk(socket, member, live.room))
}

/// One member's chat connection: their text messages go to the room under their name
/// (from the gateway, never from the message), the room's lines come back to them.
/// Binary frames are ignored; an oversized message or a protocol error ends the connection.
async fn talk(mut socket: WebSocket, member: Member, room: broadcast::Sender<Utf8Bytes>) {
    let mut heard = room.subscribe();
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str().trim();
                    if !text.is_empty() {
                        // No receiver is only possible once every member left.
                        let _ = room.send(format!("{}: {text}", member.name).into());
                    }
                }
                Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            line = heard.recv() => match line {
                Ok(line) => {
                    if socket.send(Message::Text(line)).await.is_err() {
                        break;
                    }
                }
                // A slow reader misses the oldest lines, never blocks the room.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
        }
    }
}

/// One progress report: `{"member":…,"lesson":N,"watched":P}` (the page words it in the
/// member's language).
fn report(member: &str, step: u32) -> Event {
    let (lesson, watched) = progress_at(step);
    let data = serde_json::json!({ "member": member, "lesson": lesson, "watched": watched });
    Event::default()
        .event("progress")
        .id(step.to_string())
        .data(data.to_string())
}

/// The simulated course: each lesson watched in steps of [`WATCHED_STEP`] %, then the
/// next one, starting over after the last.
fn progress_at(step: u32) -> (u32, u32) {
    let per_lesson = 100 / WATCHED_STEP + 1;
    let lesson = (step / per_lesson) % LESSONS + 1;
    (lesson, (step % per_lesson) * WATCHED_STEP)
}

async fn progress(State(live): State<Live>, headers: HeaderMap) -> Response {
    let Some(member) = Member::from_headers(&headers, &live.names) else {
        return refused();
    };
    Sse::new(reports(member.email))
        .keep_alive(
            KeepAlive::new()
                .interval(KEEP_ALIVE_EVERY)
                .text("keep-alive"),
        )
        .into_response()
}

/// A report at once, then one every [`PROGRESS_EVERY`], for as long as the member listens.
fn reports(email: String) -> impl Stream<Item = Result<Event, std::convert::Infallible>> {
    let mut every = tokio::time::interval(PROGRESS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    futures_util::stream::unfold((every, 0u32), move |(mut every, step)| {
        let event = report(&email, step);
        async move {
            every.tick().await;
            Some((Ok(event), (every, step.wrapping_add(1))))
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message as WsMessage;

    fn names() -> IdentityHeaders {
        IdentityHeaders {
            email: HeaderName::from_static("remote-email"),
            name: HeaderName::from_static("remote-name"),
        }
    }

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn a_member_is_who_the_gateway_names() {
        let h = headers(&[
            ("remote-email", b"ann@example.org"),
            ("remote-name", "Anne-Ç".as_bytes()),
        ]);
        let m = Member::from_headers(&h, &names()).unwrap();
        assert_eq!(
            (m.email.as_str(), m.name.as_str()),
            ("ann@example.org", "Anne-Ç")
        );
        // No name: the email stands in; a long name is cut.
        let h = headers(&[("remote-email", b"ann@example.org"), ("remote-name", b" ")]);
        assert_eq!(
            Member::from_headers(&h, &names()).unwrap().name,
            "ann@example.org"
        );
        let long = "n".repeat(500);
        let h = headers(&[("remote-email", b"a@b.c"), ("remote-name", long.as_bytes())]);
        assert_eq!(
            Member::from_headers(&h, &names())
                .unwrap()
                .name
                .chars()
                .count(),
            MAX_NAME_CHARS
        );
        // Nobody named: refused.
        assert_eq!(
            Member::from_headers(&headers(&[("remote-name", b"Ann")]), &names()),
            None
        );
        assert_eq!(Member::from_headers(&HeaderMap::new(), &names()), None);
    }

    #[test]
    fn a_chat_handshake_comes_from_this_sites_pages() {
        let site = "127.0.0.1:8080".as_bytes();
        let from = |origin: Option<&'static str>| {
            let mut h = headers(&[("host", site)]);
            if let Some(o) = origin {
                h.insert("origin", HeaderValue::from_static(o));
            }
            same_origin(&h)
        };
        assert!(from(None), "not a browser");
        assert!(from(Some("http://127.0.0.1:8080")));
        assert!(from(Some("https://127.0.0.1:8080")));
        for other in [
            "http://evil.test",
            "http://127.0.0.1:8081",
            "http://127.0.0.1:8080.evil.test",
            "null",
        ] {
            assert!(!from(Some(other)), "{other}");
        }
    }

    #[test]
    fn progress_walks_through_the_lessons() {
        let steps: Vec<_> = (0..8).map(progress_at).collect();
        assert_eq!(
            steps,
            [
                (1, 0),
                (1, 20),
                (1, 40),
                (1, 60),
                (1, 80),
                (1, 100),
                (2, 0),
                (2, 20)
            ]
        );
        assert_eq!(progress_at(6 * LESSONS), (1, 0));
    }

    /// The live server alone on a free port (the gateway in front is tested through
    /// `vigile demo` in tests/it/demo.rs); the identity headers are set by hand here.
    async fn serve() -> u16 {
        let listener = bind().unwrap();
        let port = listener.local_addr().unwrap().port();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        tokio::spawn(axum::serve(listener, router(names())).into_future());
        port
    }

    type Ws = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    async fn member_ws(port: u16, email: &str, name: &str) -> Ws {
        let mut req = format!("ws://127.0.0.1:{port}{CHAT}")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("remote-email", HeaderValue::from_str(email).unwrap());
        req.headers_mut()
            .insert("remote-name", HeaderValue::from_str(name).unwrap());
        tokio_tungstenite::connect_async(req).await.unwrap().0
    }

    /// The next text line, within a few seconds (pings skipped); `None` once closed.
    async fn next_text(ws: &mut Ws) -> Option<String> {
        let wait = Duration::from_secs(10);
        loop {
            match tokio::time::timeout(wait, ws.next()).await.unwrap() {
                Some(Ok(WsMessage::Text(t))) => return Some(t.as_str().to_string()),
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                Some(Ok(WsMessage::Close(_)) | Err(_)) | None => return None,
                Some(Ok(other)) => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn chat_lines_go_to_everyone_under_the_senders_name() {
        let port = serve().await;
        let mut ann = member_ws(port, "ann@example.org", "Ann").await;
        let mut bob = member_ws(port, "bob@example.org", "Bob").await;
        // A binary frame is ignored; the name in a message is just text.
        ann.send(WsMessage::binary(vec![1u8, 2, 3])).await.unwrap();
        ann.send(WsMessage::text("Bob: hello")).await.unwrap();
        for ws in [&mut ann, &mut bob] {
            assert_eq!(next_text(ws).await.as_deref(), Some("Ann: Bob: hello"));
        }
        // An oversized message closes its sender's connection and reaches nobody.
        let big = "x".repeat(MAX_MESSAGE_BYTES + 1);
        ann.send(WsMessage::text(big)).await.unwrap();
        assert_eq!(next_text(&mut ann).await, None);
        bob.send(WsMessage::text("still here")).await.unwrap();
        assert_eq!(
            next_text(&mut bob).await.as_deref(),
            Some("Bob: still here")
        );
    }

    #[tokio::test]
    async fn no_identity_no_chat_and_no_feed() {
        let port = serve().await;
        let req = format!("ws://127.0.0.1:{port}{CHAT}")
            .into_client_request()
            .unwrap();
        match tokio_tungstenite::connect_async(req).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), StatusCode::FORBIDDEN)
            }
            other => panic!("anonymous chat: {other:?}"),
        }
        let r = reqwest::get(format!("http://127.0.0.1:{port}{PROGRESS}"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn the_feed_reports_the_members_progress() {
        let port = serve().await;
        let mut r = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}{PROGRESS}"))
            .header("remote-email", "ann@example.org")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let mut text = String::new();
        while text.matches("event: progress").count() < 2 {
            let chunk = tokio::time::timeout(Duration::from_secs(10), r.chunk())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        assert!(
            text.contains(r#"data: {"lesson":1,"member":"ann@example.org","watched":0}"#)
                && text.contains(r#""watched":20"#),
            "{text}"
        );
    }
}
