//! A small, fast upstream for the benchmarks in `bench/`: answers every request with a
//! fixed 1 KiB HTML page. Usage: `bench_upstream PORT`.

use axum::Router;

const PAGE: &str = concat!(
    "<!doctype html><title>bench</title><p>",
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ",
    "incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud ",
    "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat duis aute irure ",
    "dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur ",
    "excepteur sint occaecat cupidatat non proident sunt in culpa qui officia deserunt ",
    "mollit anim id est laborum lorem ipsum dolor sit amet consectetur adipiscing elit sed ",
    "do eiusmod tempor incididunt ut labore et dolore magna aliqua ut enim ad minim veniam ",
    "quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat duis ",
    "aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla ",
    "pariatur excepteur sint occaecat cupidatat non proident sunt in culpa qui officia ",
    "deserunt mollit anim id est laborum lorem ipsum dolor sit amet consectetur elit sed",
    "</p>"
);

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> std::io::Result<()> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "8081".into());
    // One fallback handler: every path costs the upstream the same, so the benchmark's
    // public and member paths differ only by what the gateway does.
    let app = Router::new().fallback(|| async { axum::response::Html(PAGE) });
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    axum::serve(listener, app).await
}
