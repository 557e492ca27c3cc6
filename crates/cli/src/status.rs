//! The demo's status page: the twin's latest state as JSON at
//! `/status.json`, and a minimal HTML page at `/` that refreshes itself
//! (no script, so the Content-Security-Policy can forbid all of it). The API
//! issue replaces this with the hardened API and dashboard.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::Value;
use std::future::Future;
use std::sync::{Arc, RwLock};
use tokio::net::TcpListener;

/// The latest status snapshot, written by the sync loop, read by the page.
pub type Board = Arc<RwLock<Value>>;

fn harden(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// The board's snapshot with the shield's status; every request also
/// checks one guard region (a checker in the request path).
fn snapshot(board: &Board) -> Value {
    if let Some(s) = crate::shield::get() {
        s.check_on_request();
    }
    let mut v = board.read().map(|v| v.clone()).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert("shield".to_owned(), crate::shield::status());
    }
    v
}

async fn json(State(board): State<Board>) -> Response {
    harden(Json(snapshot(&board)).into_response())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn page(State(board): State<Board>) -> Response {
    let v = snapshot(&board);
    let pretty = serde_json::to_string_pretty(&v).unwrap_or_default();
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"1\"><title>twinshield demo</title></head>\
         <body><h1>twinshield demo</h1><p>Plant and twin status, refreshed every second \
         (JSON at <a href=\"/status.json\">/status.json</a>).</p><pre>{}</pre></body></html>",
        escape(&pretty)
    );
    harden(Html(body).into_response())
}

/// Serves the status page on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    board: Board,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/", get(page))
        .route("/status.json", get(json))
        .with_state(board);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
