//! The API's router as a hostile client drives it: arbitrary method,
//! path and query, headers (the token among them) and body, with and
//! without a real token. Never a panic, never a server error (5xx but the
//! deliberate 503), every refusal a generic JSON body.
#![no_main]

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;
use twinshield_api::{
    AlarmView, ApiConfig, AuditEntry, ChannelInfo, Feed, HistoryPoint, Role, SecurityView,
    Series, ServiceError, TokenCheck, TokenStore, TwinInfo, TwinServices,
};

struct Stub;

impl TwinServices for Stub {
    fn history(&self, _: usize, _: Series, from: f64, _: f64, _: usize) -> Result<Vec<HistoryPoint>, ServiceError> {
        Ok(vec![HistoryPoint { time_s: from, min: 0.0, mean: 1.0, max: 2.0 }])
    }
    fn audit_log(&self, _: usize) -> Result<Vec<AuditEntry>, ServiceError> {
        Err(ServiceError::Unavailable)
    }
    fn audit(&self, _: f64, _: &str) {}
    fn acknowledged(&self, _: f64, _: &AlarmView, _: &str) {}
    fn security(&self) -> SecurityView {
        SecurityView { protected: true, degraded: false, findings: Vec::new(), binding: None }
    }
    fn writes_allowed(&self) -> bool {
        true
    }
}

struct World {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    token: String,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("twinshield-fuzz-api-{}", std::process::id()));
        let store = TokenStore::new(&dir.join("tokens"), zeroize::Zeroizing::new([1u8; 32]));
        let (_, token) = store.issue(Role::Operator, None).expect("token");
        let tokens = TokenCheck::new(store).expect("token check");
        let feed = Feed::new(
            TwinInfo {
                name: "t".into(),
                version: "0".into(),
                channels: vec![ChannelInfo { name: "y1".into(), unit: "cm".into() }],
            },
            &[1.0],
        );
        feed.publish_alarm(AlarmView {
            id: 1,
            detector: "cusum".into(),
            channels: vec!["y1".into()],
            raised_at_s: 1.0,
            cleared_at_s: None,
            acknowledged: false,
        });
        let config = ApiConfig { rate_limit: 1e9, ..ApiConfig::default() };
        World {
            rt: tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"),
            router: twinshield_api::router(feed, Arc::new(Stub), Arc::new(tokens), true, config),
            token: token.expose().to_owned(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let (method, target, header, body) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("/"),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let authorised = method.len() % 2 == 0;
    let mut req = Request::builder().method(method.trim()).uri(target.trim());
    if authorised {
        req = req.header("authorization", format!("Bearer {}", w.token));
    }
    if let Some((k, v)) = header.split_once(':') {
        req = req.header(k.trim(), v.trim());
    }
    let Ok(req) = req.body(Body::from(body.to_owned())) else {
        return;
    };
    // Live streams never end: only their head is looked at.
    let res = w.rt.block_on(w.router.clone().oneshot(req)).expect("infallible");
    let status = res.status().as_u16();
    assert!(status < 500 || status == 503, "server error {status}");
    // A HEAD answer carries no body, by HTTP's rules (refusals included).
    let head = method.trim().eq_ignore_ascii_case("HEAD");
    if status >= 400 && !head {
        let bytes = w
            .rt
            .block_on(axum::body::to_bytes(res.into_body(), 1 << 16))
            .expect("refusal body");
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("refusals are JSON");
        assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
    }
});
