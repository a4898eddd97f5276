//! A WebSocket client for the stream tests (tokio-tungstenite, the codec axum's upstreams
//! use too): connect through the gateway with a member's cookies, echo a message, and wait
//! for the gateway to close the connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest wait for one echo (a loaded CI box), never a performance claim.
const ECHO_BOUND: Duration = Duration::from_secs(15);

/// Opens a WebSocket to `url` (`ws://127.0.0.1:PORT/path`), sending `cookie` as the
/// `Cookie` header when given. Panics with the handshake's answer when refused.
pub async fn connect(url: &str, cookie: Option<&str>) -> Ws {
    let mut request = url.into_client_request().expect("a WebSocket request");
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert("cookie", cookie.parse().expect("a cookie header value"));
    }
    match tokio::time::timeout(ECHO_BOUND, tokio_tungstenite::connect_async(request)).await {
        Ok(Ok((ws, _response))) => ws,
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            panic!(
                "WebSocket handshake to {url} refused: {}\n{body}",
                response.status()
            )
        }
        Ok(Err(e)) => panic!("WebSocket handshake to {url} failed: {e}"),
        Err(_) => panic!("WebSocket handshake to {url} took over {ECHO_BOUND:?}"),
    }
}

/// Sends `text` and waits for the same text to come back (pings and pongs skipped).
pub async fn echo(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text))
        .await
        .unwrap_or_else(|e| panic!("sending {text:?}: {e}"));
    let deadline = Instant::now() + ECHO_BOUND;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no echo of {text:?} within {ECHO_BOUND:?}"));
        match next {
            Some(Ok(Message::Text(got))) => {
                assert_eq!(got.as_str(), text, "the echo of {text:?}");
                return;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => panic!("waiting for the echo of {text:?}, got {other:?}"),
            Some(Err(e)) => panic!("waiting for the echo of {text:?}: {e}"),
            None => panic!("the WebSocket ended before the echo of {text:?}"),
        }
    }
}

/// Waits up to `bound` for the connection to end (a Close frame, the end of the stream, a
/// reset); `true` if it did. Data frames meanwhile are read and ignored; anything that is
/// not a frame fails the test.
pub async fn closed_within(ws: &mut Ws, bound: Duration) -> bool {
    use tokio_tungstenite::tungstenite::{error::ProtocolError, Error};
    tokio::time::timeout(bound, async {
        loop {
            match ws.next().await {
                None | Some(Ok(Message::Close(_))) => return,
                // Cut: the connection closed or reset, without a closing handshake.
                Some(Err(
                    Error::ConnectionClosed
                    | Error::AlreadyClosed
                    | Error::Io(_)
                    | Error::Protocol(ProtocolError::ResetWithoutClosingHandshake),
                )) => return,
                // Bytes that are not WebSocket frames (an HTTP error page written into
                // the upgraded connection) are not a clean cut.
                Some(Err(e)) => panic!("the WebSocket received what is not a frame: {e}"),
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// `ws://127.0.0.1:PORT` + `path` for a gateway at `http://127.0.0.1:PORT`.
pub fn ws_url(gw_url: &str, path: &str) -> String {
    format!("{}{path}", gw_url.replacen("http://", "ws://", 1))
}
