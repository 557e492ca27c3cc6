//! The HTTP side: the router (access control from the route table, rate
//! limits, strict JSON, generic refusals, security headers) and the
//! connection loop (rustls, HTTP/1.1 with header and handshake deadlines,
//! a bounded number of connections).

use crate::error::ApiError;
use crate::feed::{Feed, HistoryPoint, LiveEvent, Series, TwinServices};
use crate::limit::RateLimit;
use crate::routes;
use crate::tls::ClientCerts;
use crate::token::{Principal, Role, TokenCheck, TokenRefusal};
use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;
use twinshield_shield_macros::diversify;

/// How the API is served.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Sustained requests per second per token and per client address
    /// (bursts of twice it).
    pub rate_limit: f64,
    /// Largest request body, bytes.
    pub max_body: usize,
    /// Longest a request may take (headers, body and handler).
    pub request_timeout: Duration,
    /// Largest total size of the request line and headers, bytes.
    pub max_header_bytes: usize,
    /// Most connections open at once.
    pub max_connections: usize,
}

#[diversify]
impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            rate_limit: 50.0,
            max_body: 4096,
            request_timeout: Duration::from_secs(10),
            max_header_bytes: 8192,
            max_connections: 512,
        }
    }
}

/// The address a request came from.
#[derive(Debug, Clone, Copy)]
struct ClientAddr(SocketAddr);

/// Who the connection's client certificate speaks for (mutual TLS).
#[derive(Debug, Clone)]
struct CertPrincipal(Principal);

/// Marks a refusal built here, so the envelope leaves its body alone.
#[derive(Debug, Clone, Copy)]
struct Generic;

#[derive(Clone)]
struct App {
    feed: Feed,
    services: Arc<dyn TwinServices>,
    tokens: Arc<TokenCheck>,
    by_addr: Arc<RateLimit>,
    by_token: Arc<RateLimit>,
    https: bool,
    openapi: Arc<[u8]>,
    config: ApiConfig,
}

/// A generic refusal: the status and one word of reason, never detail.
#[diversify]
fn refuse(status: StatusCode) -> Response {
    let reason = match status {
        StatusCode::BAD_REQUEST => "bad request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not found",
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload too large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported media type",
        StatusCode::TOO_MANY_REQUESTS => "too many requests",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers too large",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_client_error() => "bad request",
        _ => "unavailable",
    };
    // Server errors are never shown as such: the client learns only that
    // the service is unavailable. A body that parsed but did not fit
    // (unknown fields) is a bad request like any other.
    let status = if status.is_server_error() {
        StatusCode::SERVICE_UNAVAILABLE
    } else if status == StatusCode::UNPROCESSABLE_ENTITY {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    let mut r = (status, Json(json!({ "error": reason }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r.extensions_mut().insert(Generic);
    r
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Outermost layer: deadline, generic bodies for every refusal (axum's own
/// rejections included), security headers on every response.
#[diversify]
async fn envelope(State(app): State<App>, req: Request, next: Next) -> Response {
    let mut r = match tokio::time::timeout(app.config.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => refuse(StatusCode::REQUEST_TIMEOUT),
    };
    let status = r.status();
    if (status.is_client_error() || status.is_server_error())
        && r.extensions().get::<Generic>().is_none()
    {
        r = refuse(status);
    }
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if app.https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    r
}

#[diversify]
fn header_bytes(req: &Request) -> usize {
    req.uri().to_string().len()
        + req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>()
}

#[diversify]
fn bearer(headers: &HeaderMap) -> Result<&str, TokenRefusal> {
    let v = headers
        .get(header::AUTHORIZATION)
        .ok_or(TokenRefusal::Missing)?
        .to_str()
        .map_err(|_| TokenRefusal::Malformed)?;
    let (scheme, token) = v.split_once(' ').ok_or(TokenRefusal::Malformed)?;
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(token.trim())
    } else {
        Err(TokenRefusal::Malformed)
    }
}

/// Per-route layer: size of headers, per-address rate limit, the token and
/// its role (from the route table), per-token rate limit.
#[diversify]
async fn access(
    State(app): State<App>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    app.services.on_request();
    if header_bytes(&req) > app.config.max_header_bytes {
        return refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    let addr = req.extensions().get::<ClientAddr>().map(|a| a.0);
    let ip = addr.map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
    if !app.by_addr.allow(&ip) {
        return refuse(StatusCode::TOO_MANY_REQUESTS);
    }
    let matched = matched.map(|m| m.as_str().to_owned());
    let route = matched
        .as_deref()
        .and_then(|m| routes::find(req.method().as_str(), m));
    let (need, path) = match (route, matched.as_deref()) {
        (Some(r), _) => match r.role {
            Some(need) => (need, r.path),
            None => return next.run(req).await,
        },
        // Another method on an API path that needs a token: a client
        // without one learns nothing, not even which methods exist.
        (None, Some(m)) if routes::needs_token(m) => (Role::Viewer, "(other method)"),
        // Dashboard assets and unknown paths: no token involved.
        _ => return next.run(req).await,
    };
    let cert = req.extensions().get::<CertPrincipal>().map(|c| c.0.clone());
    let checked = match (bearer(req.headers()), cert) {
        // A listed client certificate stands in for a token; a token, when
        // one is sent as well, decides.
        (Err(TokenRefusal::Missing), Some(p)) => Ok(p),
        (Err(e), _) => Err(e),
        (Ok(token), _) => match app.tokens.check_cached(token) {
            Some(done) => done,
            None => {
                // Argon2id takes tens of milliseconds: not on an async worker.
                let tokens = app.tokens.clone();
                let token = zeroize::Zeroizing::new(token.to_owned());
                tokio::task::spawn_blocking(move || tokens.check(&token))
                    .await
                    .unwrap_or(Err(TokenRefusal::Unknown))
            }
        },
    };
    let principal = match checked {
        Ok(p) => p,
        Err(why) => {
            app.services.audit(
                app.feed.time_s(),
                &format!(
                    "authentication failed: {why} ({} {} from {ip})",
                    req.method(),
                    path
                ),
            );
            tracing::info!(%why, %ip, path, "authentication failed");
            return refuse(StatusCode::UNAUTHORIZED);
        }
    };
    if !app.by_token.allow(&principal.token_id) {
        return refuse(StatusCode::TOO_MANY_REQUESTS);
    }
    if principal.role < need {
        return refuse(StatusCode::FORBIDDEN);
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

#[diversify]
async fn health() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

#[diversify]
fn json_bytes(bytes: Arc<[u8]>) -> Response {
    let mut r = Response::new(Body::from(bytes.to_vec()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[diversify]
async fn openapi_doc(State(app): State<App>) -> Response {
    json_bytes(app.openapi.clone())
}

#[diversify]
async fn whoami(principal: Option<axum::Extension<Principal>>) -> Response {
    match principal {
        Some(axum::Extension(p)) => {
            Json(json!({"token_id": p.token_id, "role": p.role.name()})).into_response()
        }
        None => refuse(StatusCode::UNAUTHORIZED),
    }
}

#[diversify]
async fn twin(State(app): State<App>) -> Response {
    Json(app.feed.info().clone()).into_response()
}

#[diversify]
async fn state(State(app): State<App>) -> Response {
    json_bytes(app.feed.state().json.clone())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryParams {
    channel: String,
    from: f64,
    to: f64,
    step: f64,
    #[serde(default)]
    series: Series,
}

/// Most buckets one history request may ask for.
const MAX_POINTS: f64 = 10_000.0;

#[diversify]
async fn history(
    State(app): State<App>,
    params: Result<Query<HistoryParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(p)) = params else {
        return refuse(StatusCode::BAD_REQUEST);
    };
    let span = p.to - p.from;
    let ok = p.from.is_finite()
        && p.to.is_finite()
        && p.step.is_finite()
        && p.step > 0.0
        && span > 0.0
        && span / p.step <= MAX_POINTS;
    if !ok {
        return refuse(StatusCode::BAD_REQUEST);
    }
    let Some(channel) = app
        .feed
        .info()
        .channels
        .iter()
        .position(|c| c.name == p.channel)
    else {
        return refuse(StatusCode::NOT_FOUND);
    };
    let points = (span / p.step).ceil().max(1.0) as usize;
    let services = app.services.clone();
    let (from, to, series) = (p.from, p.to, p.series);
    let got =
        tokio::task::spawn_blocking(move || services.history(channel, series, from, to, points))
            .await
            .ok()
            .and_then(Result::ok);
    let Some(points) = got else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE);
    };
    let points: Vec<HistoryPoint> = points.into_iter().filter(|x| x.mean.is_finite()).collect();
    Json(json!({
        "channel": p.channel,
        "series": series.name(),
        "step_s": p.step,
        "points": points
    }))
    .into_response()
}

#[diversify]
async fn alarms(State(app): State<App>) -> Response {
    Json(json!({ "alarms": app.feed.alarms() })).into_response()
}

/// The acknowledgement's body: `{}` and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {}

#[diversify]
async fn acknowledge(
    State(app): State<App>,
    principal: Option<axum::Extension<Principal>>,
    id: Result<Path<u64>, axum::extract::rejection::PathRejection>,
    body: Result<Json<AckBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return refuse(StatusCode::BAD_REQUEST);
    };
    if let Err(e) = body {
        return refuse(e.status());
    }
    let Some(axum::Extension(who)) = principal else {
        return refuse(StatusCode::UNAUTHORIZED);
    };
    if !app.services.writes_allowed() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE);
    }
    let Some(alarm) = app.feed.acknowledge(id) else {
        return refuse(StatusCode::NOT_FOUND);
    };
    let t = app.feed.time_s();
    let by = format!("token {} ({})", who.token_id, who.role.name());
    app.services.acknowledged(t, &alarm, &by);
    app.services
        .audit(t, &format!("alarm {id} acknowledged by {by}"));
    Json(alarm).into_response()
}

#[diversify]
async fn security(State(app): State<App>) -> Response {
    Json(app.services.security()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    limit: Option<u32>,
}

#[diversify]
async fn audit(
    State(app): State<App>,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(p)) = params else {
        return refuse(StatusCode::BAD_REQUEST);
    };
    let limit = p.limit.unwrap_or(100).clamp(1, 1000) as usize;
    let services = app.services.clone();
    match tokio::task::spawn_blocking(move || services.audit_log(limit)).await {
        Ok(Ok(events)) => Json(json!({ "events": events })).into_response(),
        _ => refuse(StatusCode::SERVICE_UNAVAILABLE),
    }
}

#[diversify]
async fn live(State(app): State<App>, principal: Option<axum::Extension<Principal>>) -> Response {
    let Some(axum::Extension(who)) = principal else {
        return refuse(StatusCode::UNAUTHORIZED);
    };
    struct Live {
        tokens: Arc<TokenCheck>,
        token_id: String,
        feed: Feed,
        alarms: tokio::sync::broadcast::Receiver<LiveEvent>,
        tick: tokio::time::Interval,
    }
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start = Live {
        tokens: app.tokens.clone(),
        token_id: who.token_id,
        alarms: app.feed.subscribe(),
        feed: app.feed.clone(),
        tick,
    };
    let stream = futures_util::stream::unfold(start, |mut s| async move {
        let event = tokio::select! {
            got = s.alarms.recv() => match got {
                Ok(LiveEvent::Alarm(a)) => Event::default()
                    .event("alarm")
                    .data(serde_json::to_string(&a).unwrap_or_default()),
                // A slow reader missed alarms: it refetches /alarms on this.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    Event::default().event("resync").data("{}")
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            },
            _ = s.tick.tick() => {
                // A revoked or expired token loses its stream too.
                if !s.tokens.still_valid(&s.token_id) {
                    return None;
                }
                let snap = s.feed.state();
                Event::default()
                    .event("state")
                    .data(String::from_utf8_lossy(&snap.json))
            }
        };
        Some((Ok::<_, Infallible>(event), s))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[diversify]
async fn metrics(State(app): State<App>) -> Response {
    use std::fmt::Write;
    let snap = app.feed.state();
    let v = &snap.view;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP twinshield_samples_total Samples the twin processed.\n\
         # TYPE twinshield_samples_total counter\n\
         twinshield_samples_total {}\n\
         # HELP twinshield_plant_time_seconds Plant time of the latest sample.\n\
         # TYPE twinshield_plant_time_seconds gauge\n\
         twinshield_plant_time_seconds {}\n\
         # HELP twinshield_active_alarms Alarms active now.\n\
         # TYPE twinshield_active_alarms gauge\n\
         twinshield_active_alarms {}\n\
         # HELP twinshield_residual Plant minus twin, per channel.\n\
         # TYPE twinshield_residual gauge",
        v.samples, v.time_s, v.active_alarms
    );
    for c in &v.channels {
        if let Some(r) = c.residual {
            // Channel names are model identifiers: no quotes or newlines.
            let name: String = c
                .name
                .chars()
                .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
                .collect();
            let _ = writeln!(out, "twinshield_residual{{channel=\"{name}\"}} {r}");
        }
    }
    let alarms = app.feed.alarms();
    let _ = writeln!(
        out,
        "# HELP twinshield_alarms_total Alarms raised since start (kept).\n\
         # TYPE twinshield_alarms_total counter\n\
         twinshield_alarms_total {}",
        alarms.len()
    );
    let mut r = Response::new(Body::from(out));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

#[diversify]
fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

#[diversify]
async fn fallback() -> Response {
    refuse(StatusCode::NOT_FOUND)
}

/// The API's router over `feed` and `services`, checking tokens with
/// `tokens`. `https` adds HSTS.
#[diversify]
pub fn router(
    feed: Feed,
    services: Arc<dyn TwinServices>,
    tokens: Arc<TokenCheck>,
    https: bool,
    config: ApiConfig,
) -> Router {
    let openapi = serde_json::to_vec(&crate::openapi::document(&feed.info().version))
        .unwrap_or_default()
        .into();
    let app = App {
        feed,
        services,
        tokens,
        by_addr: Arc::new(RateLimit::new(config.rate_limit, config.rate_limit * 2.0)),
        by_token: Arc::new(RateLimit::new(config.rate_limit, config.rate_limit * 2.0)),
        https,
        openapi,
        config: config.clone(),
    };
    let index = || async { asset(crate::dashboard::INDEX, "text/html; charset=utf-8") };
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/openapi.json", get(openapi_doc))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/twin", get(twin))
        .route("/api/v1/state", get(state))
        .route("/api/v1/history", get(history))
        .route("/api/v1/alarms", get(alarms))
        .route("/api/v1/alarms/{id}/ack", post(acknowledge))
        .route("/api/v1/security", get(security))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/live", get(live))
        .route("/api/v1/metrics", get(metrics))
        .route("/openapi.json", get(openapi_doc))
        .route("/", get(index))
        .route("/index.html", get(index))
        .route(
            "/app.js",
            get(|| async { asset(crate::dashboard::SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/app.css",
            get(|| async { asset(crate::dashboard::STYLE, "text/css; charset=utf-8") }),
        )
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(app.clone(), access))
        .layer(axum::extract::DefaultBodyLimit::max(config.max_body))
        .layer(middleware::from_fn_with_state(app.clone(), envelope))
        .with_state(app)
}

/// How connections are secured.
pub enum Transport {
    /// HTTPS with this rustls configuration; with client certificates
    /// mapped to roles when the configuration asks for them.
    Tls(Arc<rustls::ServerConfig>, Option<Arc<ClientCerts>>),
    /// Plain HTTP: only on a loopback address.
    PlainLoopback,
}

/// A bound, not yet serving API listener.
pub struct ApiListener {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    clients: Option<Arc<ClientCerts>>,
}

#[diversify]
impl ApiListener {
    /// Binds `addr`; plain HTTP is refused unless `addr` is loopback.
    pub async fn bind(addr: SocketAddr, transport: Transport) -> Result<Self, ApiError> {
        let (tls, clients) = match transport {
            Transport::Tls(cfg, clients) => (Some(tokio_rustls::TlsAcceptor::from(cfg)), clients),
            Transport::PlainLoopback if addr.ip().is_loopback() => (None, None),
            Transport::PlainLoopback => return Err(ApiError::PlainHttpNotLoopback(addr)),
        };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ApiError::Listen { addr, source })?;
        Ok(ApiListener {
            listener,
            tls,
            clients,
        })
    }

    /// The address bound (its port, when 0 was asked).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether connections are HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves `router` until `stop` turns true; open connections get a
    /// second to finish.
    pub async fn serve(self, router: Router, config: &ApiConfig, mut stop: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let header_timeout = config.request_timeout;
        loop {
            let (stream, addr) = tokio::select! {
                got = self.listener.accept() => match got {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
                _ = stop.changed() => break,
            };
            if *stop.borrow() {
                break;
            }
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                // Full: close at once rather than queue.
                continue;
            };
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let tls = self.tls.clone();
            let clients = self.clients.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service = move |cert: Option<Principal>| {
                    hyper::service::service_fn(
                        move |mut req: hyper::Request<hyper::body::Incoming>| {
                            req.extensions_mut().insert(ClientAddr(addr));
                            // For routers served here that read the peer
                            // with axum's `ConnectInfo` (the backend receiver).
                            req.extensions_mut()
                                .insert(axum::extract::ConnectInfo(addr));
                            if let Some(p) = &cert {
                                req.extensions_mut().insert(CertPrincipal(p.clone()));
                            }
                            router.clone().oneshot(req)
                        },
                    )
                };
                match tls {
                    Some(acceptor) => {
                        let Ok(Ok(stream)) =
                            tokio::time::timeout(header_timeout, acceptor.accept(stream)).await
                        else {
                            return;
                        };
                        let cert = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .and_then(|c| {
                                let role = clients.as_ref()?.role_of(c.as_ref())?;
                                let fp = crate::tls::sha256(c.as_ref());
                                let id: String =
                                    fp[..4].iter().map(|b| format!("{b:02x}")).collect();
                                Some(Principal {
                                    token_id: format!("cert-{id}"),
                                    role,
                                })
                            });
                        connection(stream, service(cert), header_timeout, stop).await;
                    }
                    None => connection(stream, service(None), header_timeout, stop).await,
                }
            });
        }
    }
}

#[diversify]
async fn connection<I, S>(io: I, svc: S, header_timeout: Duration, mut stop: watch::Receiver<bool>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = Response,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(16 * 1024)
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
}
