//! An upstream that fails once its response has started: the client gets the bytes the
//! upstream sent and a closed connection, never an error page written into the body (a
//! truncated download must not end in HTML), and the abort is counted.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::gateway::GatewayBuilder;

/// A raw upstream: answers every request with a head announcing `announced` body bytes,
/// sends `sent` of them, then closes the connection.
pub(crate) async fn cut_upstream(announced: usize, sent: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = conn.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                     Content-Length: {announced}\r\n\r\n"
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(&vec![b'x'; sent]).await;
                let _ = conn.flush().await;
                // Dropped: the upstream "crashes" mid-body.
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_mid_body_arrives_truncated_without_html() {
    let (announced, sent) = (1 << 20, 300 * 1024);
    let upstream = cut_upstream(announced, sent).await;
    let gw = GatewayBuilder::new(upstream)
        .extra("[access]\npublic = [\"/**\"]\n")
        .start()
        .await;

    // A raw HTTP/1.1 client, reading until the gateway closes the connection.
    let mut conn = TcpStream::connect(("127.0.0.1", gw.port())).await.unwrap();
    let request = format!(
        "GET /videos/lesson1.mp4 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/html\r\n\r\n",
        gw.port()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        conn.read_to_end(&mut received),
    )
    .await
    .expect("the gateway closed the connection");
    let _ = read;
    let text = String::from_utf8_lossy(&received);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        body.len() <= sent && body.bytes().all(|b| b == b'x'),
        "after {} bytes of the upstream's, the body holds something else: {:?}",
        body.bytes().take_while(|b| *b == b'x').count(),
        &body[body.bytes().take_while(|b| *b == b'x').count()..]
            .chars()
            .take(200)
            .collect::<String>()
    );
    assert!(body.len() < announced, "the body cannot be complete");
    crate::common::poll_until("the abort counted", 100, || async {
        gw.metric("vigile_upstream_aborts_total").await == Some(1.0)
    })
    .await;
}
