//! The reference receiver: `POST /v1/messages` verified against the
//! enrolled devices, each accepted message stored exactly once (a retry of
//! a message already stored is answered 200 and not stored again). A
//! summary's signed history head is checked against the device's key and
//! kept; `GET /v1/heads`, signed by a device, answers that device's heads.
//! Every refusal gets the same generic body; the precise reason goes to
//! the log (and to the event callback).

use crate::heads::{HEADS_PATH, HeadBook, HeadList, SignedHead};
use crate::httpsig::{Rejection, RequestParts, Verified, Verifier};
use crate::message::{MAX_BODY, MESSAGES_PATH, Message, MessageKind};
use crate::{BackendError, MessageStoreError};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use twinshield_shield_macros::diversify;

/// The store's file name in its directory.
const STORE_FILE: &str = "messages.jsonl";
/// Longest stored line read back, bytes.
const MAX_LINE: u64 = 2 * MAX_BODY as u64;

/// Accepted messages: a JSON-lines file (one `{"received_at", "message"}`
/// object per line, appended and synced before the answer), the set of
/// ids already stored and each device's newest signed history heads (from
/// its summaries), both rebuilt from the file on open.
#[derive(Debug)]
pub struct MessageStore {
    file: Option<File>,
    path: Option<PathBuf>,
    ids: HashSet<String>,
    heads: HashMap<String, HeadBook>,
}

/// The signed history head a summary message carries, if it carries one
/// (`body.head`); `Err` if it carries one that is not a signed head.
#[diversify]
fn head_of(msg: &Message) -> Result<Option<SignedHead>, serde_json::Error> {
    match msg.body.get("head") {
        Some(h) if msg.kind == MessageKind::Summary => serde_json::from_value(h.clone()).map(Some),
        _ => Ok(None),
    }
}

#[diversify]
impl MessageStore {
    /// Opens (creating) `DIR/messages.jsonl` and reads the ids stored.
    pub fn open(dir: &Path) -> Result<Self, BackendError> {
        let st = |source| {
            BackendError::Store(MessageStoreError::Open {
                path: dir.to_path_buf(),
                source,
            })
        };
        std::fs::create_dir_all(dir).map_err(st)?;
        let path = dir.join(STORE_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(st)?;
        let mut store = MessageStore::empty(&path);
        store.read_lines(&file).map_err(st)?;
        // A line cut short by a crash: end it, so the next one starts clean.
        let len = file.seek(SeekFrom::End(0)).map_err(st)?;
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::End(-1)).map_err(st)?;
            file.read_exact(&mut last).map_err(st)?;
            if last != [b'\n'] {
                file.write_all(b"\n").map_err(st)?;
            }
        }
        store.file = Some(file);
        Ok(store)
    }

    /// Reads `DIR/messages.jsonl` without creating, repairing or locking
    /// anything (a backend may be appending to it): for exporting what
    /// is stored. Messages stored into it stay in memory.
    pub fn read_only(dir: &Path) -> Result<Self, BackendError> {
        let path = dir.join(STORE_FILE);
        let file = File::open(&path).map_err(|source| {
            BackendError::Store(MessageStoreError::Open {
                path: path.clone(),
                source,
            })
        })?;
        let mut store = MessageStore::empty(&path);
        store.read_lines(&file).map_err(|source| {
            BackendError::Store(MessageStoreError::Open {
                path: path.clone(),
                source,
            })
        })?;
        Ok(store)
    }

    /// A store of nothing yet, for the file at `path`.
    fn empty(path: &Path) -> Self {
        MessageStore {
            file: None,
            path: Some(path.to_path_buf()),
            ids: HashSet::new(),
            heads: HashMap::new(),
        }
    }

    /// Reads every stored line of `file`, remembering its message (a line
    /// that does not read as one is skipped, with a warning).
    fn read_lines(&mut self, file: &File) -> std::io::Result<()> {
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line)?;
            if n == 0 {
                return Ok(());
            }
            let line = serde_json::from_slice::<serde_json::Value>(&line).ok();
            let msg = line.and_then(|mut v| {
                let at = v["received_at"].as_f64().unwrap_or(0.0);
                serde_json::from_value::<Message>(v["message"].take())
                    .ok()
                    .map(|m| (m, at))
            });
            match msg {
                Some((msg, at)) => self.remember(&msg, at),
                None => tracing::warn!("unreadable line in the store skipped"),
            }
        }
    }

    /// Notes a message stored at `received_at`: its id, and its head if it
    /// carries one.
    fn remember(&mut self, msg: &Message, received_at: f64) {
        if let Ok(Some(head)) = head_of(msg) {
            let book = self.heads.entry(msg.device.clone()).or_default();
            if let Some(last) = book.last()
                && (head.seq < last.seq || (head.seq == last.seq && head.hash != last.hash))
            {
                tracing::warn!(
                    device = %msg.device,
                    seq = head.seq,
                    last = last.seq,
                    "history head does not extend the last one kept: rolled back or rebuilt"
                );
            }
            book.add(received_at, head);
        }
        self.ids.insert(msg.id.clone());
    }

    /// The signed history heads of `device` kept (the newest 100 and the
    /// last one of each of the last 30 days' hours), in the order
    /// received.
    pub fn heads(&self, device: &str) -> HeadList {
        HeadList {
            device: device.to_owned(),
            heads: self
                .heads
                .get(device)
                .map(HeadBook::list)
                .unwrap_or_default(),
        }
    }

    /// Whether a message with `id` is stored.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// How many messages are stored.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The file, if on disk.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Stores `msg` unless stored already; whether it was new. Durable
    /// (synced) when this returns `Ok(true)`.
    pub fn store(&mut self, msg: &Message, received_at: f64) -> Result<bool, BackendError> {
        if self.ids.contains(&msg.id) {
            return Ok(false);
        }
        if let Some(f) = self.file.as_mut() {
            let mut line = serde_json::to_vec(&json!({"received_at": received_at, "message": msg}))
                .map_err(|e| BackendError::Store(MessageStoreError::Encode(e)))?;
            line.push(b'\n');
            f.write_all(&line)
                .and_then(|()| f.sync_data())
                .map_err(|e| BackendError::Store(MessageStoreError::Append(e)))?;
        }
        self.remember(msg, received_at);
        Ok(true)
    }
}

/// What the receiver did with one request.
#[derive(Debug)]
pub enum ReceiverEvent<'a> {
    /// A message was verified and stored.
    Stored(&'a Message),
    /// A verified message was already stored: answered 200, not stored again.
    Duplicate(&'a Message),
    /// The request was refused (answered 401).
    Rejected {
        /// Who sent it.
        peer: SocketAddr,
        /// Why.
        reason: &'a Rejection,
    },
    /// A verified request's body is not a message of its device (400).
    Invalid {
        /// Who sent it.
        peer: SocketAddr,
        /// What is wrong.
        reason: &'a str,
    },
    /// The store failed (answered 503; the device retries).
    StoreFailed(&'a BackendError),
}

type EventFn = dyn Fn(&ReceiverEvent<'_>) + Send + Sync;

/// The reference receiver.
pub struct Receiver {
    verifier: Verifier,
    store: Mutex<MessageStore>,
    on_event: Box<EventFn>,
}

#[diversify]
impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Receiver({:?})", self.verifier)
    }
}

#[diversify]
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One header's value: absent, repeated or not visible ASCII is `None`.
#[diversify]
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut all = headers.get_all(name).iter();
    let v = all.next()?;
    if all.next().is_some() {
        return None;
    }
    v.to_str().ok().map(str::trim)
}

#[diversify]
impl Receiver {
    /// A receiver checking with `verifier` and storing into `store`.
    pub fn new(verifier: Verifier, store: MessageStore) -> Self {
        Receiver {
            verifier,
            store: Mutex::new(store),
            on_event: Box::new(|_| {}),
        }
    }

    /// Calls `f` for every request handled (after logging it).
    pub fn on_event(mut self, f: impl Fn(&ReceiverEvent<'_>) + Send + Sync + 'static) -> Self {
        self.on_event = Box::new(f);
        self
    }

    /// How many messages are stored.
    pub fn stored(&self) -> usize {
        self.store.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Handles one request: what [`Receiver::router`] serves, without HTTP.
    pub fn handle(
        &self,
        peer: SocketAddr,
        method: &str,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> (StatusCode, serde_json::Value) {
        let parts = RequestParts {
            method,
            path,
            signature_input: single(headers, "signature-input"),
            signature: single(headers, "signature"),
            content_digest: single(headers, "content-digest"),
            body,
        };
        let Some(verified) = self.authenticate(peer, &parts) else {
            return (StatusCode::UNAUTHORIZED, json!({"error": "unauthorized"}));
        };
        let invalid = |reason: &str| {
            tracing::warn!(%peer, device = %verified.keyid, reason, "invalid message");
            (self.on_event)(&ReceiverEvent::Invalid { peer, reason });
            (StatusCode::BAD_REQUEST, json!({"error": "bad request"}))
        };
        let Ok(msg) = serde_json::from_slice::<Message>(body) else {
            return invalid("body is not a message");
        };
        if msg.device != verified.keyid || !msg.id_consistent() {
            return invalid("message id does not belong to the signing device");
        }
        if let Err(reason) = self.check_head(&msg) {
            return invalid(reason);
        }
        let stored = match self.store.lock() {
            Ok(mut s) => s.store(&msg, unix_now()),
            Err(_) => Err(BackendError::Store(MessageStoreError::Poisoned)),
        };
        match stored {
            Ok(true) => {
                tracing::info!(id = %msg.id, kind = msg.kind.name(), "message stored");
                (self.on_event)(&ReceiverEvent::Stored(&msg));
                (StatusCode::OK, json!({"status": "stored"}))
            }
            Ok(false) => {
                tracing::info!(id = %msg.id, "duplicate message: already stored");
                (self.on_event)(&ReceiverEvent::Duplicate(&msg));
                (StatusCode::OK, json!({"status": "duplicate"}))
            }
            Err(e) => {
                tracing::error!(error = %e, "message not stored");
                (self.on_event)(&ReceiverEvent::StoreFailed(&e));
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "unavailable"}),
                )
            }
        }
    }

    /// A summary's history head, if it carries one, is well-formed and
    /// signed by the message's device.
    fn check_head(&self, msg: &Message) -> Result<(), &'static str> {
        let head = head_of(msg).map_err(|_| "the summary's head is not a signed head")?;
        let (Some(head), Some(key)) = (head, self.verifier.key(&msg.device)) else {
            return Ok(());
        };
        head.verify_with(key)
            .map(|_| ())
            .map_err(|_| "the summary's head is not signed by its device")
    }

    /// Verifies a request signed by an enrolled device (as for a message),
    /// logging and reporting a refusal.
    fn authenticate(&self, peer: SocketAddr, parts: &RequestParts<'_>) -> Option<Verified> {
        let now = i64::try_from(unix_now() as u64).unwrap_or(i64::MAX);
        match self.verifier.verify(parts, now) {
            Ok(v) => Some(v),
            Err(reason) => {
                tracing::warn!(%peer, %reason, "request rejected");
                (self.on_event)(&ReceiverEvent::Rejected {
                    peer,
                    reason: &reason,
                });
                None
            }
        }
    }

    /// Handles `GET /v1/heads` (the signature covers an empty body): the
    /// signing device's own heads, as [`HeadList`] JSON.
    pub fn handle_heads(
        &self,
        peer: SocketAddr,
        path: &str,
        headers: &HeaderMap,
    ) -> (StatusCode, serde_json::Value) {
        let parts = RequestParts {
            method: "GET",
            path,
            signature_input: single(headers, "signature-input"),
            signature: single(headers, "signature"),
            content_digest: single(headers, "content-digest"),
            body: b"",
        };
        let Some(verified) = self.authenticate(peer, &parts) else {
            return (StatusCode::UNAUTHORIZED, json!({"error": "unauthorized"}));
        };
        let list = match self.store.lock() {
            Ok(s) => s.heads(&verified.keyid),
            Err(_) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "unavailable"}),
                );
            }
        };
        tracing::info!(device = %verified.keyid, heads = list.heads.len(), "heads served");
        (
            StatusCode::OK,
            serde_json::to_value(list).unwrap_or_default(),
        )
    }

    /// The signed history heads kept for `device` (what `GET /v1/heads`
    /// serves it).
    pub fn heads(&self, device: &str) -> HeadList {
        self.store
            .lock()
            .map(|s| s.heads(device))
            .unwrap_or_else(|_| HeadList {
                device: device.to_owned(),
                heads: Vec::new(),
            })
    }

    /// The receiver's routes: `POST /v1/messages` and `GET /v1/heads`. Serve it with
    /// connection info (`into_make_service_with_connect_info::<SocketAddr>`,
    /// as [`Receiver::serve`] does, or a server that puts axum's
    /// `ConnectInfo<SocketAddr>` in each request's extensions, as
    /// `twinshield backend`'s HTTPS listener does).
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route(MESSAGES_PATH, post(post_message))
            .route(HEADS_PATH, get(get_heads))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(self)
    }

    /// Serves the receiver on `listener` until `shutdown` completes.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(
            listener,
            self.router()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }
}

#[diversify]
async fn post_message(
    State(rx): State<Arc<Receiver>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    reply(
        tokio::task::spawn_blocking(move || {
            rx.handle(peer, method.as_str(), &path, &headers, &body)
        })
        .await,
    )
}

#[diversify]
async fn get_heads(
    State(rx): State<Arc<Receiver>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_owned();
    reply(tokio::task::spawn_blocking(move || rx.handle_heads(peer, &path, &headers)).await)
}

/// The response to a request handled on the blocking pool: its status and
/// body, or a 500 should the handler have panicked.
#[diversify]
fn reply(handled: Result<(StatusCode, serde_json::Value), tokio::task::JoinError>) -> Response {
    match handled {
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "internal error"})),
        )
            .into_response(),
    }
}
