//! The publisher against the reference receiver over real loopback HTTP:
//! delivery, retries while the receiver is down, exactly-once storage of
//! retried messages, what the receiver refuses, and the signed history
//! heads it keeps and serves back.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use ed25519_dalek::SigningKey;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use twinshield_backend::{
    HeadList, Message, MessageKind, MessageStore, Outbox, Publisher, PublisherConfig,
    PublisherHandle, Receiver, ReceiverEvent, SignRefused, SignedHead, Signer, Verifier,
};
use twinshield_store::ChainHead;
use zeroize::Zeroizing;

const DEVICE: &str = "00112233aabbccdd";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("twinshield-backend-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn verifier() -> Verifier {
    Verifier::from_keys([(DEVICE.to_owned(), key().verifying_key().to_bytes())]).unwrap()
}

/// The test device's publisher to `http://addr` through `outbox`.
fn device_publisher(addr: impl std::fmt::Display, outbox: Outbox) -> PublisherHandle {
    Publisher::start_with(
        &format!("http://{addr}"),
        Signer::from_signing_key(DEVICE, key()),
        outbox,
        fast(),
    )
    .unwrap()
}

fn fast() -> PublisherConfig {
    PublisherConfig {
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        request_timeout: Duration::from_secs(2),
        queue: 64,
        tls: None,
    }
}

/// A receiver serving on `addr` (port 0: any), storing in `dir`, with
/// every event's kind recorded; stopped by the returned sender.
async fn receiver(
    addr: &str,
    dir: &std::path::Path,
) -> (
    SocketAddr,
    Arc<Receiver>,
    Arc<Mutex<Vec<String>>>,
    oneshot::Sender<()>,
) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let rx = Arc::new(
        Receiver::new(verifier(), MessageStore::open(dir).unwrap()).on_event(move |e| {
            let what = match e {
                ReceiverEvent::Stored(m) => format!("stored {}", m.id),
                ReceiverEvent::Duplicate(m) => format!("duplicate {}", m.id),
                ReceiverEvent::Rejected { reason, .. } => format!("rejected {reason}"),
                ReceiverEvent::Invalid { reason, .. } => format!("invalid {reason}"),
                ReceiverEvent::StoreFailed(e) => format!("failed {e}"),
            };
            seen.lock().unwrap().push(what);
        }),
    );
    let listener = TcpListener::bind(addr).await.unwrap();
    let local = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(Arc::clone(&rx).serve(listener, async move {
        let _ = stopped.await;
    }));
    (local, rx, events, stop)
}

fn stored_ids(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("messages.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["message"]["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_delivered_signed_and_stored_once() {
    let d = scratch("deliver");
    let (addr, rx, events, stop) = receiver("127.0.0.1:0", &d.join("store")).await;
    let outbox = Outbox::open(&d.join("outbox.redb"), &Zeroizing::new([3; 32])).unwrap();
    let h = device_publisher(addr, outbox);
    h.alarm(serde_json::json!({"event": "raised", "id": 1}))
        .unwrap();
    h.summary(serde_json::json!({"samples": 10})).unwrap();
    let report = h.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        (report.sent, report.pending, report.dropped),
        (2, 0, 0),
        "{report:?}"
    );
    assert_eq!(rx.stored(), 2);
    let ids = stored_ids(&d.join("store"));
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(|i| i.starts_with(DEVICE)));
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .all(|e| e.starts_with("stored"))
    );
    // Stopped publishers refuse new messages.
    assert!(h.alarm(serde_json::json!({})).is_err());
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_wait_while_the_receiver_is_down_and_arrive_once_it_is_back() {
    let d = scratch("down");
    // A port nobody listens on yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let outbox_path = d.join("outbox.redb");
    let key32 = Zeroizing::new([4; 32]);
    let h = device_publisher(&addr, Outbox::open(&outbox_path, &key32).unwrap());
    for i in 0..5 {
        h.alarm(serde_json::json!({"event": "raised", "id": i}))
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = h.report();
    assert_eq!(r.sent, 0);
    assert!(r.failed_attempts >= 2, "{r:?}");
    assert_eq!(r.pending, 5);
    assert!(
        h.last_error()
            .is_some_and(|e| e.starts_with("backend unreachable")),
        "{:?}",
        h.last_error()
    );
    // A restart of the twin: the outbox is reopened, nothing is lost.
    let r = h.shutdown(Duration::from_millis(50)).await;
    assert_eq!((r.sent, r.pending), (0, 5), "{r:?}");
    let outbox = Outbox::open(&outbox_path, &key32).unwrap();
    assert_eq!(outbox.len().unwrap(), 5);
    let h = device_publisher(&addr, outbox);
    h.alarm(serde_json::json!({"event": "raised", "id": 5}))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, rx, _, stop) = receiver(&addr, &d.join("store")).await;
    let r = h.shutdown(Duration::from_secs(5)).await;
    assert_eq!((r.sent, r.pending), (6, 0), "{r:?}");
    assert_eq!(rx.stored(), 6);
    let ids = stored_ids(&d.join("store"));
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 6, "{ids:?}");
    // Sent in order.
    let seqs: Vec<u64> = ids
        .iter()
        .map(|i| i.rsplit('-').next().unwrap().parse().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_signer_keeps_messages_in_the_outbox() {
    let d = scratch("refuse");
    let (addr, rx, events, stop) = receiver("127.0.0.1:0", &d.join("store")).await;
    let signer = Signer::new(DEVICE, |_| Err(SignRefused("shield degraded".into())));
    let h = Publisher::start_with(
        &format!("http://{addr}"),
        signer,
        Outbox::open(&d.join("outbox.redb"), &Zeroizing::new([1; 32])).unwrap(),
        fast(),
    )
    .unwrap();
    h.alarm(serde_json::json!({"event": "raised"})).unwrap();
    let r = h.shutdown(Duration::from_millis(300)).await;
    assert_eq!((r.sent, r.pending), (0, 1), "{r:?}");
    assert!(r.failed_attempts >= 1);
    let why = h.last_error().unwrap_or_default();
    assert!(why.contains("shield degraded"), "{why}");
    assert_eq!(rx.stored(), 0);
    assert!(
        events.lock().unwrap().is_empty(),
        "nothing may reach the receiver"
    );
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&d);
}

fn request(msg: &Message, created: i64) -> (HeaderMap, Vec<u8>) {
    let body = serde_json::to_vec(msg).unwrap();
    let h = Signer::from_signing_key(DEVICE, key())
        .sign_request("POST", "/v1/messages", &body, created)
        .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-digest",
        HeaderValue::from_str(&h.content_digest).unwrap(),
    );
    headers.insert(
        "signature-input",
        HeaderValue::from_str(&h.signature_input).unwrap(),
    );
    headers.insert("signature", HeaderValue::from_str(&h.signature).unwrap());
    (headers, body)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn a_retried_message_is_answered_200_and_stored_once_even_after_a_restart() {
    let d = scratch("dedup");
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let msg = Message {
        id: Message::id_for(DEVICE, 42),
        device: DEVICE.into(),
        seq: 42,
        kind: MessageKind::Alarm,
        time: 1.0,
        body: serde_json::json!({"event": "raised"}),
    };
    let rx = Receiver::new(verifier(), MessageStore::open(&d).unwrap());
    let (h1, b1) = request(&msg, now());
    assert_eq!(
        rx.handle(peer, "POST", "/v1/messages", &h1, &b1).0,
        StatusCode::OK
    );
    // The retry after a lost response: fresh nonce and signature, same id.
    let (h2, b2) = request(&msg, now());
    let (status, body) = rx.handle(peer, "POST", "/v1/messages", &h2, &b2);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "duplicate");
    assert_eq!(rx.stored(), 1);
    // The very same request again is a replay: refused, generically.
    let (status, body) = rx.handle(peer, "POST", "/v1/messages", &h2, &b2);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, serde_json::json!({"error": "unauthorized"}));
    drop(rx);
    // After a restart of the receiver the id is still known.
    let rx = Receiver::new(verifier(), MessageStore::open(&d).unwrap());
    let (h3, b3) = request(&msg, now());
    let (status, body) = rx.handle(peer, "POST", "/v1/messages", &h3, &b3);
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );
    assert_eq!(stored_ids(&d), vec![msg.id.clone()]);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_device_cannot_post_messages_in_another_devices_name() {
    let d = scratch("impersonate");
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let rx = Receiver::new(verifier(), MessageStore::open(&d).unwrap());
    let other = "ffffffffffffffff";
    let msg = Message {
        id: Message::id_for(other, 1),
        device: other.into(),
        seq: 1,
        kind: MessageKind::Summary,
        time: 1.0,
        body: serde_json::json!({}),
    };
    let (h, b) = request(&msg, now());
    assert_eq!(
        rx.handle(peer, "POST", "/v1/messages", &h, &b).0,
        StatusCode::BAD_REQUEST
    );
    // An id that does not match device and sequence.
    let msg = Message {
        id: Message::id_for(DEVICE, 2),
        seq: 3,
        device: DEVICE.into(),
        ..msg
    };
    let (h, b) = request(&msg, now());
    assert_eq!(
        rx.handle(peer, "POST", "/v1/messages", &h, &b).0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(rx.stored(), 0);
    let _ = std::fs::remove_dir_all(&d);
}

/// Signed headers of a request with `method`, `path` and `body` from the
/// test device.
fn signed(method: &str, path: &str, body: &[u8]) -> HeaderMap {
    let h = Signer::from_signing_key(DEVICE, key())
        .sign_request(method, path, body, now())
        .unwrap();
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("content-digest", h.content_digest),
        ("signature-input", h.signature_input),
        ("signature", h.signature),
    ] {
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
    }
    headers
}

/// A summary `seq` carrying `head` (JSON).
fn summary_with(seq: u64, head: serde_json::Value) -> Message {
    Message {
        id: Message::id_for(DEVICE, seq),
        device: DEVICE.into(),
        seq,
        kind: MessageKind::Summary,
        time: 1.0,
        body: serde_json::json!({"samples": 1, "head": head}),
    }
}

/// A summary's head is checked against the device's key before anything
/// is stored, kept (across a restart), and served back to the device on a
/// signed `GET /v1/heads` only.
#[test]
fn a_summarys_signed_head_is_checked_kept_and_served_to_its_device() {
    let d = scratch("heads");
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let signer = Signer::from_signing_key(DEVICE, key());
    let head = |seq| {
        let h = ChainHead {
            seq,
            hash: [seq as u8; 32],
            time: 1_764_606_450.25 + seq as f64,
        };
        serde_json::to_value(SignedHead::sign(&h, &signer).unwrap()).unwrap()
    };
    let rx = Receiver::new(verifier(), MessageStore::open(&d).unwrap());
    let post = |rx: &Receiver, msg: &Message| {
        let body = serde_json::to_vec(msg).unwrap();
        rx.handle(
            peer,
            "POST",
            "/v1/messages",
            &signed("POST", "/v1/messages", &body),
            &body,
        )
    };
    assert_eq!(post(&rx, &summary_with(1, head(5))).0, StatusCode::OK);
    assert_eq!(post(&rx, &summary_with(2, head(9))).0, StatusCode::OK);
    // A head signed by someone else, or not a head at all: 400, not stored.
    let mut forged = head(12);
    forged["seq"] = 13.into();
    let (status, body) = post(&rx, &summary_with(3, forged));
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "bad request"})
        )
    );
    assert_eq!(
        post(&rx, &summary_with(4, serde_json::json!("x"))).0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(rx.stored(), 2);
    let seqs = |list: HeadList| list.heads.iter().map(|h| h.seq).collect::<Vec<_>>();
    assert_eq!(seqs(rx.heads(DEVICE)), vec![5, 9]);
    drop(rx);
    // Rebuilt from the store after a restart, and served to the device.
    let rx = Receiver::new(verifier(), MessageStore::open(&d).unwrap());
    let (status, body) = rx.handle_heads(peer, "/v1/heads", &signed("GET", "/v1/heads", b""));
    assert_eq!(status, StatusCode::OK);
    let list: HeadList = serde_json::from_value(body).unwrap();
    assert_eq!(list.device, DEVICE);
    let public = key().verifying_key().to_bytes();
    let verified = list.verify(DEVICE, &public).unwrap();
    assert_eq!(
        verified.iter().map(|h| h.seq).collect::<Vec<_>>(),
        vec![5, 9]
    );
    assert_eq!(
        verified[1].time.to_bits(),
        (1_764_606_450.25f64 + 9.0).to_bits()
    );
    // Unsigned, or signed for another method: refused, generically.
    let (status, body) = rx.handle_heads(peer, "/v1/heads", &HeaderMap::new());
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "unauthorized"})
        )
    );
    let (status, _) = rx.handle_heads(peer, "/v1/heads", &signed("POST", "/v1/heads", b""));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The store read only, as `backend heads` does.
    assert_eq!(
        seqs(MessageStore::read_only(&d).unwrap().heads(DEVICE)),
        vec![5, 9]
    );
    assert!(MessageStore::read_only(&d.join("nothing")).is_err());
    let _ = std::fs::remove_dir_all(&d);
}

/// Summaries published with signed heads are read back over HTTP by the
/// device (`fetch_heads`), and by no one else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_reads_its_heads_back_over_http() {
    let d = scratch("fetch-heads");
    let (addr, rx, _events, stop) = receiver("127.0.0.1:0", &d.join("store")).await;
    let signer = Signer::from_signing_key(DEVICE, key());
    let outbox = Outbox::open(&d.join("outbox.redb"), &Zeroizing::new([3; 32])).unwrap();
    let h = device_publisher(addr, outbox);
    for seq in [3u64, 8] {
        let head = ChainHead {
            seq,
            hash: [7; 32],
            time: 0.1 * seq as f64,
        };
        let head = SignedHead::sign(&head, &signer).unwrap();
        h.summary(serde_json::json!({"samples": seq, "head": head}))
            .unwrap();
    }
    let report = h.shutdown(Duration::from_secs(5)).await;
    assert_eq!((report.sent, report.pending), (2, 0), "{report:?}");
    let url = format!("http://{addr}");
    let list = twinshield_backend::fetch_heads(&url, &signer, None, Duration::from_secs(5))
        .await
        .unwrap();
    let public = key().verifying_key().to_bytes();
    let heads = list.verify(DEVICE, &public).unwrap();
    assert_eq!(heads.iter().map(|h| h.seq).collect::<Vec<_>>(), vec![3, 8]);
    assert_eq!(heads[1].time.to_bits(), 0.8f64.to_bits());
    // Another key under the same id: 401, no heads.
    let stranger = Signer::from_signing_key(DEVICE, SigningKey::from_bytes(&[6; 32]));
    let e = twinshield_backend::fetch_heads(&url, &stranger, None, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("HTTP 401"), "{e}");
    // An https:// backend needs a TLS client.
    assert!(
        twinshield_backend::fetch_heads(
            "https://127.0.0.1:9",
            &signer,
            None,
            Duration::from_secs(1)
        )
        .await
        .is_err()
    );
    assert_eq!(rx.heads(DEVICE).heads.len(), 2);
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&d);
}
