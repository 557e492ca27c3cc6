//! The publisher: a task that takes messages from the sync loop, queues
//! them durably in the [`Outbox`], and delivers them oldest first, each
//! request freshly signed, retrying with capped exponential backoff until
//! the backend answers 2xx.

use crate::heads::{HEADS_PATH, HeadList};
use crate::message::{MESSAGES_PATH, Message, MessageKind};
use crate::outbox::{Outbox, OutboxError};
use crate::{BackendError, BackendTls, Signer, TransportError};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use twinshield_shield_macros::diversify;

/// Longest backend URL accepted, bytes.
const MAX_URL: usize = 2048;
/// Largest response body read (and discarded), bytes.
const MAX_RESPONSE: usize = 64 * 1024;

/// A parsed backend URL: `https://` to any host, or `http://` to a
/// loopback address only. No user information, query or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendUrl {
    https: bool,
    host: String,
    port: u16,
    authority: String,
    path: String,
    base: String,
}

#[diversify]
impl BackendUrl {
    /// Parses and checks `url`.
    pub fn parse(url: &str) -> Result<BackendUrl, BackendError> {
        use BackendError::Url;
        if url.len() > MAX_URL {
            return Err(Url("longer than 2048 bytes"));
        }
        if !url.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(Url("must be visible ASCII without spaces"));
        }
        if url.contains('@') {
            return Err(Url(
                "must not hold user information (no credentials in URLs)",
            ));
        }
        if url.contains('?') || url.contains('#') {
            return Err(Url("must not hold a query or fragment"));
        }
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(Url("must start with http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or(Url("unclosed `[`"))?;
            let port = match after {
                "" => default_port,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or(Url("bad port"))?,
            };
            h.parse::<std::net::Ipv6Addr>()
                .map_err(|_| Url("bad IPv6 address"))?;
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse::<u16>().map_err(|_| Url("bad port"))?),
                None => (authority.to_owned(), default_port),
            }
        };
        if port == 0 {
            return Err(Url("bad port"));
        }
        let valid_name = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        let ip = host.parse::<IpAddr>().ok();
        if ip.is_none() && !valid_name {
            return Err(Url("bad host"));
        }
        let loopback = ip.is_some_and(|i| i.is_loopback()) || host == "localhost";
        if !https && !loopback {
            return Err(Url(
                "http:// only to a loopback address; use https:// for a remote backend",
            ));
        }
        Ok(BackendUrl {
            https,
            authority: authority.to_owned(),
            host,
            port,
            path: format!("{}{MESSAGES_PATH}", path.trim_end_matches('/')),
            base: path.trim_end_matches('/').to_owned(),
        })
    }

    /// Whether it is `https://`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host: a DNS name or an IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The path messages are posted to.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path the device's history heads are read from.
    pub fn heads_path(&self) -> String {
        format!("{}{HEADS_PATH}", self.base)
    }
}

/// Capped exponential backoff: `min`, `2·min`, `4·min`, … up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

#[diversify]
impl Backoff {
    /// Backoff from `min` doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The delay before the next retry (and doubles the one after).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        d
    }

    /// Back to `min` after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// How the publisher behaves.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// First retry delay.
    pub backoff_min: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Time limit of one request, connection included.
    pub request_timeout: Duration,
    /// Messages held in memory on their way into the outbox.
    pub queue: usize,
    /// The TLS client for an `https://` backend; `None`: the system's
    /// trust roots only, loaded when the publisher starts. Unused for
    /// `http://`.
    pub tls: Option<BackendTls>,
}

#[diversify]
impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            queue: 1024,
            tls: None,
        }
    }
}

/// What the publisher did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublisherReport {
    /// Messages delivered (answered 2xx).
    pub sent: u64,
    /// Messages still waiting in the outbox (sent on a later run).
    pub pending: u64,
    /// Delivery attempts that failed.
    pub failed_attempts: u64,
    /// Messages that never reached the outbox (queue or outbox full).
    pub dropped: u64,
}

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    pending: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
}

#[diversify]
impl Stats {
    fn report(&self) -> PublisherReport {
        PublisherReport {
            sent: self.sent.load(Ordering::Relaxed),
            pending: self.pending.load(Ordering::Relaxed),
            failed_attempts: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

enum Command {
    Enqueue {
        kind: MessageKind,
        time: f64,
        body: serde_json::Value,
    },
    Shutdown {
        flush_for: Duration,
        reply: oneshot::Sender<PublisherReport>,
    },
}

/// A handle on the publisher task: queue messages, read its counters,
/// shut it down. Cheap to clone; every clone feeds the same task.
#[derive(Clone)]
pub struct PublisherHandle {
    tx: mpsc::Sender<Command>,
    stats: Arc<Stats>,
}

#[diversify]
impl std::fmt::Debug for PublisherHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublisherHandle({:?})", self.stats.report())
    }
}

#[diversify]
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[diversify]
impl PublisherHandle {
    fn enqueue(&self, kind: MessageKind, body: serde_json::Value) -> Result<(), BackendError> {
        let cmd = Command::Enqueue {
            kind,
            time: unix_now(),
            body,
        };
        self.tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!("publisher queue full: message dropped");
                BackendError::QueueFull
            }
            mpsc::error::TrySendError::Closed(_) => BackendError::Stopped,
        })
    }

    /// Queues an alarm event. Never waits: the message goes to the
    /// publisher task, which commits it to the outbox before sending.
    pub fn alarm(&self, body: serde_json::Value) -> Result<(), BackendError> {
        self.enqueue(MessageKind::Alarm, body)
    }

    /// Queues a state summary (as [`PublisherHandle::alarm`]).
    pub fn summary(&self, body: serde_json::Value) -> Result<(), BackendError> {
        self.enqueue(MessageKind::Summary, body)
    }

    /// The counters so far.
    pub fn report(&self) -> PublisherReport {
        self.stats.report()
    }

    /// Why the latest failed delivery attempt failed, if one did.
    pub fn last_error(&self) -> Option<String> {
        self.stats.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Stops the task: everything queued is committed to the outbox, then
    /// delivery goes on for at most `flush_for` (or until the outbox is
    /// empty). What is left waits in the outbox for the next start.
    pub async fn shutdown(&self, flush_for: Duration) -> PublisherReport {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Command::Shutdown { flush_for, reply })
            .await
            .is_err()
        {
            return self.stats.report();
        }
        rx.await.unwrap_or_else(|_| self.stats.report())
    }
}

/// Starts publisher tasks.
#[derive(Debug)]
pub struct Publisher;

#[diversify]
impl Publisher {
    /// Starts delivering to `url` (the backend's base URL; messages go to
    /// `…/v1/messages`) with the default configuration. Must be called
    /// inside a Tokio runtime.
    pub fn start(
        url: &str,
        signer: Signer,
        outbox: Outbox,
    ) -> Result<PublisherHandle, BackendError> {
        Self::start_with(url, signer, outbox, PublisherConfig::default())
    }

    /// As [`Publisher::start`], with `config`.
    pub fn start_with(
        url: &str,
        signer: Signer,
        outbox: Outbox,
        config: PublisherConfig,
    ) -> Result<PublisherHandle, BackendError> {
        let url = BackendUrl::parse(url)?;
        // The TLS client is built here, once, not per request.
        let link = if url.https {
            let tls = match config.tls.clone() {
                Some(tls) => tls,
                None => BackendTls::new(true, None)?,
            };
            Some((tls, BackendTls::server_name(&url.host)?))
        } else {
            None
        };
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let stats = Arc::new(Stats::default());
        let task = Task {
            url,
            link,
            signer: Arc::new(signer),
            outbox: Arc::new(outbox),
            config,
            stats: Arc::clone(&stats),
            rx,
        };
        tokio::spawn(task.run());
        Ok(PublisherHandle { tx, stats })
    }
}

/// How an `https://` backend is reached: the TLS client and the name its
/// certificate must carry.
type Link = (BackendTls, ServerName<'static>);

struct Task {
    url: BackendUrl,
    link: Option<Link>,
    signer: Arc<Signer>,
    outbox: Arc<Outbox>,
    config: PublisherConfig,
    stats: Arc<Stats>,
    rx: mpsc::Receiver<Command>,
}

/// Runs an outbox operation off the async threads.
#[diversify]
async fn blocking<T: Send + 'static>(
    outbox: &Arc<Outbox>,
    f: impl FnOnce(&Outbox) -> Result<T, OutboxError> + Send + 'static,
) -> Result<T, OutboxError> {
    let o = Arc::clone(outbox);
    tokio::task::spawn_blocking(move || f(&o))
        .await
        .unwrap_or_else(|e| Err(OutboxError::Task(e)))
}

/// A pending shutdown: when delivery stops, and whom to tell.
type Stop = (Instant, oneshot::Sender<PublisherReport>);

#[diversify]
impl Task {
    async fn accept(&mut self, cmd: Command, stop: &mut Option<Stop>) {
        match cmd {
            Command::Enqueue { kind, time, body } => {
                let device = self.signer.key_id().to_owned();
                match blocking(&self.outbox, move |o| o.enqueue(&device, kind, time, body)).await {
                    Ok(m) => {
                        tracing::debug!(id = %m.id, kind = kind.name(), "message queued");
                        self.stats.pending.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, "message not queued");
                    }
                }
            }
            Command::Shutdown { flush_for, reply } => {
                let at = Instant::now() + flush_for;
                *stop = Some(match stop.take() {
                    Some((earlier, _)) => (earlier.min(at), reply),
                    None => (at, reply),
                });
            }
        }
    }

    async fn run(mut self) {
        if let Ok(n) = blocking(&self.outbox, Outbox::len).await {
            self.stats.pending.store(n, Ordering::Relaxed);
            if n > 0 {
                tracing::info!(pending = n, "outbox holds messages from an earlier run");
            }
        }
        let mut backoff = Backoff::new(self.config.backoff_min, self.config.backoff_max);
        let mut retry_at: Option<Instant> = None;
        let mut stop: Option<Stop> = None;
        let mut closed = false;
        loop {
            closed |= self.take_commands(&mut stop).await;
            let deadline = stop.as_ref().map(|(d, _)| *d);
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let next = match blocking(&self.outbox, Outbox::oldest).await {
                Ok(next) => next,
                Err(OutboxError::Corrupt(seq)) => {
                    tracing::error!(seq, "outbox message is corrupt; discarded");
                    let _ = blocking(&self.outbox, move |o| o.remove(seq)).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    retry_at = Some(Instant::now() + backoff.next_delay());
                    None
                }
            };
            let wait_for_retry = retry_at.filter(|t| Instant::now() < *t);
            if next.is_none() && retry_at.is_none() && (stop.is_some() || closed) {
                break;
            }
            if next.is_none() || wait_for_retry.is_some() {
                // Nothing to send yet: wait for a command, the retry time
                // or the shutdown deadline, whichever comes first.
                let wake = match (wait_for_retry, deadline) {
                    (Some(t), Some(d)) => Some(t.min(d)),
                    (t, d) => t.or(d),
                };
                closed |= self.wait_for_command(wake, &mut stop, closed).await;
                if next.is_none() {
                    retry_at = None;
                }
                continue;
            }
            let Some(msg) = next else { continue };
            retry_at = self.deliver(&msg, &mut backoff).await;
        }
        self.finish(stop).await;
    }

    /// Accepts every command already queued; returns whether the channel
    /// is closed (every handle dropped).
    async fn take_commands(&mut self, stop: &mut Option<Stop>) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(cmd) => self.accept(cmd, stop).await,
                Err(mpsc::error::TryRecvError::Empty) => return false,
                Err(mpsc::error::TryRecvError::Disconnected) => return true,
            }
        }
    }

    /// Waits until `wake` (with no `wake`, for ever) or, unless the
    /// channel is `closed`, the next command, which it accepts; returns
    /// whether the channel turned out to be closed.
    async fn wait_for_command(
        &mut self,
        wake: Option<Instant>,
        stop: &mut Option<Stop>,
        closed: bool,
    ) -> bool {
        let sleep = async {
            match wake {
                Some(w) => tokio::time::sleep_until(w).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => false,
            cmd = self.rx.recv(), if !closed => match cmd {
                Some(cmd) => {
                    self.accept(cmd, stop).await;
                    false
                }
                None => true,
            },
        }
    }

    /// Sends `msg`: delivered, it leaves the outbox and the backoff starts
    /// over; failed, the error is recorded. Returns when to try again
    /// (`None` after a delivery).
    async fn deliver(&self, msg: &Message, backoff: &mut Backoff) -> Option<Instant> {
        let sent = send(
            &self.url,
            self.link.as_ref(),
            &self.signer,
            msg,
            self.config.request_timeout,
        )
        .await;
        match sent {
            Ok(status) => {
                let seq = msg.seq;
                if let Err(e) = blocking(&self.outbox, move |o| o.remove(seq)).await {
                    tracing::error!(error = %e, "delivered message stays in the outbox");
                }
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                let _ =
                    self.stats
                        .pending
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                            Some(p.saturating_sub(1))
                        });
                tracing::debug!(id = %msg.id, status, "message delivered");
                backoff.reset();
                None
            }
            Err(e) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut last) = self.stats.last_error.lock() {
                    *last = Some(e.to_string());
                }
                let delay = backoff.next_delay();
                tracing::warn!(id = %msg.id, error = %e, retry_in_s = delay.as_secs_f64(), "delivery failed");
                Some(Instant::now() + delay)
            }
        }
    }

    /// Stops: counts what is left in the outbox, closes the channel, frees
    /// the outbox and answers the shutdown request, if one was made.
    async fn finish(mut self, stop: Option<Stop>) {
        if let Ok(n) = blocking(&self.outbox, Outbox::len).await {
            self.stats.pending.store(n, Ordering::Relaxed);
        }
        let report = self.stats.report();
        tracing::info!(
            sent = report.sent,
            pending = report.pending,
            "publisher stopped"
        );
        // Closed before the reply: a stopped publisher refuses messages, and
        // its outbox file is free for the next one.
        self.rx.close();
        drop(self);
        if let Some((_, reply)) = stop {
            let _ = reply.send(report);
        }
    }
}

/// Unix seconds now, for a signature's `created`.
#[diversify]
fn created_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
    .unwrap_or(i64::MAX)
}

/// A request to `path` of `url` with `body`, signed now by `signer`.
#[diversify]
fn signed_request(
    url: &BackendUrl,
    method: hyper::Method,
    path: &str,
    body: Vec<u8>,
    signer: &Signer,
) -> Result<hyper::Request<Full<Bytes>>, BackendError> {
    let headers = signer.sign_request(method.as_str(), path, &body, created_now())?;
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, url.authority.as_str());
    if !body.is_empty() {
        req = req.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    req.header("content-digest", headers.content_digest)
        .header("signature-input", headers.signature_input)
        .header("signature", headers.signature)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| BackendError::Transport(TransportError::Request(e)))
}

/// Connects to `url` (over TLS when `link` is given), sends `req` and
/// reads at most `limit` bytes of the answer, all within `timeout`: the
/// status and the body.
#[diversify]
async fn round_trip(
    url: &BackendUrl,
    link: Option<&Link>,
    req: hyper::Request<Full<Bytes>>,
    timeout: Duration,
    limit: usize,
) -> Result<(u16, Bytes), BackendError> {
    let transport = BackendError::Transport;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| transport(TransportError::Connect(e)))?;
        match link {
            Some((tls, name)) => {
                let stream = tls.connect(name.clone(), stream).await?;
                exchange(stream, req, limit).await
            }
            None => exchange(stream, req, limit).await,
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| transport(TransportError::TimedOut))?
}

/// Posts one message, signed now, over TLS when `link` is given;
/// `Ok(status)` on a 2xx answer.
#[diversify]
async fn send(
    url: &BackendUrl,
    link: Option<&Link>,
    signer: &Signer,
    msg: &Message,
    timeout: Duration,
) -> Result<u16, BackendError> {
    let body =
        serde_json::to_vec(msg).map_err(|e| BackendError::Transport(TransportError::Encode(e)))?;
    let req = signed_request(url, hyper::Method::POST, &url.path, body, signer)?;
    let (status, _) = round_trip(url, link, req, timeout, MAX_RESPONSE).await?;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(BackendError::Status(status))
    }
}

/// Largest heads answer read, bytes (the 820 served take about 170 KB).
const MAX_HEADS_ANSWER: usize = 4 * 1024 * 1024;

/// Reads the device's own signed history heads from the backend at `url`
/// (`GET …/v1/heads`, signed by `signer`; over HTTPS with `tls`, which an
/// `https://` URL needs), within `timeout`. The heads' signatures are
/// the caller's to check ([`HeadList::verify`]).
#[diversify]
pub async fn fetch_heads(
    url: &str,
    signer: &Signer,
    tls: Option<&BackendTls>,
    timeout: Duration,
) -> Result<HeadList, BackendError> {
    let url = BackendUrl::parse(url)?;
    let link = match (url.https, tls) {
        (true, Some(tls)) => Some((tls.clone(), BackendTls::server_name(&url.host)?)),
        (true, None) => return Err(BackendError::NoTrustRoots(crate::NoTrustRoots::NoneGiven)),
        (false, _) => None,
    };
    let path = url.heads_path();
    let req = signed_request(&url, hyper::Method::GET, &path, Vec::new(), signer)?;
    let (status, body) = round_trip(&url, link.as_ref(), req, timeout, MAX_HEADS_ANSWER).await?;
    if !(200..300).contains(&status) {
        return Err(BackendError::Status(status));
    }
    serde_json::from_slice(&body).map_err(BackendError::HeadsAnswer)
}

/// One HTTP/1.1 exchange over `io` (a TCP or TLS stream): the status and
/// at most `limit` bytes of the body (an answer cut there reads as empty).
#[diversify]
async fn exchange<S>(
    io: S,
    req: hyper::Request<Full<Bytes>>,
    limit: usize,
) -> Result<(u16, Bytes), BackendError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let http = |e| BackendError::Transport(TransportError::Http(e));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(http)?;
    let conn = tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(http)?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), limit)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    conn.abort();
    Ok((status.as_u16(), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_half_a_second_and_stays_at_ten() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let got: Vec<u64> = (0..8).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(
            got,
            vec![500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]
        );
        for _ in 0..100 {
            let d = b.next_delay();
            assert!(d >= Duration::from_millis(500) && d <= Duration::from_secs(10));
        }
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(500));
    }

    #[test]
    fn urls_are_http_to_loopback_or_https_without_credentials() {
        let u = BackendUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(u.path(), "/v1/messages");
        assert!(!u.is_https());
        let u = BackendUrl::parse("http://[::1]:9/ingest/").unwrap();
        assert_eq!(u.path(), "/ingest/v1/messages");
        assert!(BackendUrl::parse("http://localhost/").is_ok());
        let https = BackendUrl::parse("https://historian.example.com/twin").unwrap();
        assert!(https.is_https());
        assert_eq!(https.host(), "historian.example.com");
        assert_eq!(https.path(), "/twin/v1/messages");
        let https = BackendUrl::parse("https://[2001:db8::1]:8443").unwrap();
        assert_eq!((https.host(), https.port), ("2001:db8::1", 8443));
        assert!(BackendUrl::parse("https://10.0.0.5").is_ok());
        for bad in [
            "http://10.0.0.5:80",
            "http://historian.example.com",
            "ftp://127.0.0.1",
            "http://user:pw@127.0.0.1",
            "http://127.0.0.1/?q=1",
            "http://127.0.0.1:0",
            "http://127.0.0.1:99999",
            "http://[::1",
            "http://",
            "http://bad_host!/",
            "http://127.0.0.1/ space",
            "https://user:pw@historian.example.com",
            "https://historian.example.com/?token=1",
            "https://historian.example.com#x",
            "https://historian.example.com:0",
            "https://bad_host!/",
        ] {
            assert!(BackendUrl::parse(bad).is_err(), "accepted {bad}");
        }
    }
}
