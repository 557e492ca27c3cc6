//! The hardened API as a client meets it: a real twin (`run --listen`)
//! over HTTPS pinned to its self-signed certificate, tokens issued with
//! `twinshield token`, every endpoint tried with every role and with none.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use serde_json::Value;
use std::time::{Duration, Instant};
use twinshield_api::Role;
use twinshield_api::routes::{ROUTES, Route};
use twinshield_e2e::Setup;
use twinshield_e2e::https::{Client, Reply, RunningTwin};

/// A twin with its API, and a token per role.
struct Api {
    setup: Setup,
    _plant: twinshield_e2e::Plant,
    twin: RunningTwin,
    client: Client,
    viewer: String,
    operator: String,
    admin: String,
}

fn token(setup: &Setup, role: &str) -> String {
    let r = setup.ok(&["token", "new", "--role", role, "--state", "state"]);
    let t = r.stdout.trim().to_owned();
    assert!(t.starts_with("tsk_"), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    t
}

fn start(name: &str, extra: &[&str]) -> Api {
    let setup = Setup::new(name);
    let viewer = token(&setup, "viewer");
    let operator = token(&setup, "operator");
    let admin = token(&setup, "admin");
    let (twin, plant) = RunningTwin::api(&setup, "120", extra);
    let client = Client::https(
        &twin.api,
        &setup.path("state/api/tls.crt"),
        rustls::DEFAULT_VERSIONS,
    );
    Api {
        setup,
        _plant: plant,
        twin,
        client,
        viewer,
        operator,
        admin,
    }
}

/// A request of `route` that is well-formed (so only access decides).
fn well_formed(route: &Route) -> (String, Option<&'static str>) {
    let path = match route.path {
        "/api/v1/history" => "/api/v1/history?channel=y1&from=0&to=10&step=1".to_owned(),
        p => p.replace("{id}", "999999"),
    };
    (path, route.json_body.then_some("{}"))
}

fn call(api: &Api, route: &Route, token: Option<&str>) -> Reply {
    let (path, body) = well_formed(route);
    let headers: &[(&str, &str)] = if body.is_some() {
        &[("Content-Type", "application/json")]
    } else {
        &[]
    };
    api.client
        .send(route.method.name(), &path, token, headers, body)
        .unwrap_or_else(|e| panic!("{} {path}: {e}", route.method.name()))
}

fn assert_generic(r: &Reply, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {r:?}");
    let v = r.json();
    let obj = v.as_object().unwrap_or_else(|| panic!("{what}: {v}"));
    assert_eq!(obj.len(), 1, "{what}: only `error`: {v}");
    let reason = obj["error"].as_str().unwrap();
    assert!(
        reason.len() < 30 && !reason.contains("::") && !reason.contains("Failed"),
        "{what}: generic reason only: {reason}"
    );
}

fn assert_security_headers(r: &Reply, what: &str) {
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{what}: {csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert!(
        r.header("strict-transport-security").is_some(),
        "{what}: HSTS"
    );
    assert!(
        r.headers
            .iter()
            .all(|(k, _)| !k.starts_with("access-control-")),
        "{what}: CORS stays closed: {:?}",
        r.headers
    );
}

#[test]
fn every_endpoint_admits_exactly_the_roles_it_should() {
    let api = start("api-matrix", &["--rate-limit", "100000"]);
    let roles = [
        (None, None),
        (Some(api.viewer.as_str()), Some(Role::Viewer)),
        (Some(api.operator.as_str()), Some(Role::Operator)),
        (Some(api.admin.as_str()), Some(Role::Admin)),
    ];
    let mut checked = 0;
    for route in ROUTES {
        for (token, role) in roles {
            let what = format!("{} {} as {role:?}", route.method.name(), route.path);
            let r = call(&api, route, token);
            assert_security_headers(&r, &what);
            match (route.role, role) {
                (None, _) => assert_eq!(r.status, 200, "{what}: {r:?}"),
                (Some(_), None) => {
                    assert_generic(&r, 401, &what);
                    assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{what}");
                }
                (Some(need), Some(have)) if have < need => assert_generic(&r, 403, &what),
                // Admitted: a real answer (the acknowledgement of an alarm
                // that does not exist is a 404 after access was granted).
                (Some(_), Some(_)) if route.json_body => assert_generic(&r, 404, &what),
                (Some(_), Some(_)) => assert_eq!(r.status, 200, "{what}: {r:?}"),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, ROUTES.len() * 4);
    // Someone tried without a token: the audit log (admin only) says so.
    let audit = api.client.get("/api/v1/audit?limit=1000", Some(&api.admin));
    assert_eq!(audit.status, 200, "{audit:?}");
    let events = audit.json()["events"].as_array().unwrap().clone();
    assert!(
        events.iter().any(|e| e["what"]
            .as_str()
            .unwrap()
            .starts_with("authentication failed: no token")),
        "{events:?}"
    );
}

#[test]
fn the_state_is_live_and_shows_no_model_internals() {
    let api = start("api-state", &["--rate-limit", "100000"]);
    let twin = api.client.get("/api/v1/twin", Some(&api.viewer)).json();
    let channels: Vec<&str> = twin["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(!channels.is_empty(), "{twin}");
    let text = twin.to_string();
    for secret in ["equation", "param", "register", "der(", "holding"] {
        assert!(!text.contains(secret), "public metadata only: {text}");
    }
    let first = api.client.get("/api/v1/state", Some(&api.viewer)).json();
    std::thread::sleep(Duration::from_millis(1500));
    let second = api.client.get("/api/v1/state", Some(&api.viewer)).json();
    assert!(
        second["samples"].as_u64() > first["samples"].as_u64(),
        "{first} then {second}"
    );
    let ch = &second["channels"][0];
    let (m, e, r) = (
        ch["measured"].as_f64().unwrap(),
        ch["estimate"].as_f64().unwrap(),
        ch["residual"].as_f64().unwrap(),
    );
    assert!((m - e - r).abs() < 1e-9, "{ch}");
    assert!(ch["threshold"].as_f64().unwrap() > 0.0, "{ch}");
    // The live stream speaks server-sent events with the same state.
    let live = api.client.get("/api/v1/live", Some(&api.viewer));
    assert_eq!(live.status, 200);
    assert!(
        live.header("content-type")
            .unwrap_or_default()
            .starts_with("text/event-stream"),
        "{live:?}"
    );
    let states = live.body.matches("event: state").count();
    assert!(
        states >= 3,
        "5 Hz state events, got {states} in 1.5 s: {}",
        live.body
    );
    // History of the stored samples, downsampled.
    let now = second["time_s"].as_f64().unwrap();
    let path = format!(
        "/api/v1/history?channel={}&from={}&to={}&step=0.5",
        channels[0],
        now - 60.0,
        now + 1.0
    );
    let h = api.client.get(&path, Some(&api.viewer));
    assert_eq!(h.status, 200, "{h:?}");
    assert!(!h.json()["points"].as_array().unwrap().is_empty(), "{h:?}");
    assert_eq!(h.json()["series"], "measured", "{h:?}");
    // The residual (what the dashboard's second chart draws) is kept too,
    // bucket for bucket beside the measurement.
    let r = api
        .client
        .get(&format!("{path}&series=residual"), Some(&api.viewer));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["series"], "residual", "{r:?}");
    let (hp, rp) = (h.json()["points"].clone(), r.json()["points"].clone());
    let (hp, rp) = (hp.as_array().unwrap(), rp.as_array().unwrap());
    assert!(!rp.is_empty(), "{r:?}");
    assert_eq!(hp[0]["time_s"], rp[0]["time_s"], "{h:?}\n{r:?}");
    // Metrics in Prometheus text.
    let m = api.client.get("/api/v1/metrics", Some(&api.viewer));
    assert!(m.body.contains("twinshield_samples_total "), "{}", m.body);
    assert!(
        m.body.contains("twinshield_residual{channel=\""),
        "{}",
        m.body
    );
}

#[test]
fn hostile_requests_get_a_generic_4xx_and_change_nothing() {
    let api = start("api-hostile", &["--rate-limit", "100000"]);
    let c = &api.client;
    let op = Some(api.operator.as_str());
    let json = [("Content-Type", "application/json")];
    // method, path, headers, body, the status it must get
    type Case<'a> = (
        &'a str,
        String,
        Vec<(&'a str, &'a str)>,
        Option<String>,
        u16,
    );
    let cases: Vec<Case> = vec![
        (
            "GET",
            "/api/v1/history?channel=y1&from=0&to=10&step=1&x=1".into(),
            vec![],
            None,
            400,
        ),
        (
            "GET",
            "/api/v1/history?channel=y1&from=10&to=0&step=1".into(),
            vec![],
            None,
            400,
        ),
        (
            "GET",
            "/api/v1/history?channel=y1&from=0&to=1e9&step=1".into(),
            vec![],
            None,
            400,
        ),
        (
            "GET",
            "/api/v1/history?channel=y1&from=NaN&to=1&step=1".into(),
            vec![],
            None,
            400,
        ),
        (
            "GET",
            "/api/v1/history?channel=nope&from=0&to=1&step=1".into(),
            vec![],
            None,
            404,
        ),
        (
            "GET",
            "/api/v1/history?channel=y1&from=0&to=10&step=1&series=estimate".into(),
            vec![],
            None,
            400,
        ),
        ("GET", "/api/v1/history".into(), vec![], None, 400),
        (
            "POST",
            "/api/v1/alarms/1/ack".into(),
            json.to_vec(),
            Some(r#"{"x":1}"#.into()),
            400,
        ),
        (
            "POST",
            "/api/v1/alarms/1/ack".into(),
            json.to_vec(),
            Some("{".into()),
            400,
        ),
        (
            "POST",
            "/api/v1/alarms/x/ack".into(),
            json.to_vec(),
            Some("{}".into()),
            400,
        ),
        (
            "POST",
            "/api/v1/alarms/1/ack".into(),
            vec![("Content-Type", "text/plain")],
            Some("{}".into()),
            415,
        ),
        (
            "POST",
            "/api/v1/alarms/1/ack".into(),
            json.to_vec(),
            Some(format!("{{\"a\":\"{}\"}}", "x".repeat(8000))),
            413,
        ),
        ("DELETE", "/api/v1/state".into(), vec![], None, 405),
        ("GET", "/api/v1/../../etc/passwd".into(), vec![], None, 404),
        ("GET", "/api/v2/state".into(), vec![], None, 404),
    ];
    for (method, path, headers, body, want) in &cases {
        let r = c
            .send(method, path, op, headers, body.as_deref())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert_generic(&r, *want, &format!("{method} {path}"));
    }
    let big = "x".repeat(9000);
    let r = c
        .send("GET", "/api/v1/state", op, &[("X-Padding", &big)], None)
        .unwrap();
    assert_eq!(r.status, 431, "{r:?}");
    // Bad tokens of every shape: 401, and the audit log grows.
    for bad in [
        "tsk_",
        "Basic abc",
        "tsk_00000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &api.viewer[..api.viewer.len() - 1],
    ] {
        let r = c
            .send(
                "GET",
                "/api/v1/state",
                None,
                &[("Authorization", &format!("Bearer {bad}"))],
                None,
            )
            .unwrap();
        assert_generic(&r, 401, bad);
    }
    // Nothing was acknowledged or written by any of it.
    let alarms = c.get("/api/v1/alarms", Some(&api.viewer)).json();
    assert!(
        alarms["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["acknowledged"] == false)
    );
    let audit = c.get("/api/v1/audit", Some(&api.admin)).json();
    assert!(!audit.to_string().contains("acknowledged by"), "{audit}");
}

#[test]
fn tls_13_by_default_12_as_the_floor_and_no_plain_http_on_the_tls_port() {
    let api = start("api-tls", &[]);
    let r = api.client.get("/api/v1/health", None);
    assert_eq!(r.tls, Some(rustls::ProtocolVersion::TLSv1_3));
    let v12 = Client::https(
        &api.twin.api,
        &api.setup.path("state/api/tls.crt"),
        &[&rustls::version::TLS12],
    );
    let r = v12.get("/api/v1/health", None);
    assert_eq!(r.tls, Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(r.status, 200);
    let plain = Client::http(&api.twin.api).send("GET", "/api/v1/health", None, &[], None);
    assert!(
        plain.as_ref().map_or(true, |r| r.status != 200),
        "plain HTTP must not be served on the TLS port: {plain:?}"
    );
    // The key is stored sealed: no PEM private key anywhere in the state.
    for entry in std::fs::read_dir(api.setup.path("state/api")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!twinshield_e2e::contains(&bytes, b"PRIVATE KEY"));
    }
}

#[test]
fn the_default_rate_limit_answers_a_flood_with_429() {
    let api = start("api-rate", &[]);
    let mut codes = std::collections::BTreeMap::new();
    for _ in 0..160 {
        let r = api.client.get("/api/v1/health", None);
        *codes.entry(r.status).or_insert(0u32) += 1;
    }
    assert!(codes.get(&429).copied().unwrap_or(0) > 0, "{codes:?}");
    assert!(codes.get(&200).copied().unwrap_or(0) >= 100, "{codes:?}");
}

#[test]
fn tokens_are_shown_once_stored_as_hashes_and_revoked_at_once() {
    let api = start("api-tokens", &["--rate-limit", "100000"]);
    let list = api
        .setup
        .ok(&["token", "list", "--json", "--state", "state"]);
    let listed: Value = serde_json::from_str(list.stdout.trim()).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    for t in [&api.viewer, &api.operator, &api.admin] {
        assert!(
            !list.stdout.contains(&t[13..]),
            "the list never shows a secret"
        );
        // No file in the state directory holds a token's secret.
        for f in walk(&api.setup.path("state")) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !twinshield_e2e::contains(&bytes, &t.as_bytes()[13..]),
                "{}",
                f.display()
            );
        }
    }
    assert_eq!(
        api.client.get("/api/v1/state", Some(&api.viewer)).status,
        200
    );
    let id = &api.viewer[4..12];
    let r = api.setup.ok(&["token", "revoke", id, "--state", "state"]);
    assert!(r.stderr.contains("revoked"), "{r:?}");
    let start = Instant::now();
    loop {
        let s = api.client.get("/api/v1/state", Some(&api.viewer)).status;
        if s == 401 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "still {s} after revoke"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        api.client.get("/api/v1/state", Some(&api.operator)).status,
        200
    );
    let again = api.setup.run(&["token", "revoke", id, "--state", "state"]);
    assert_eq!(again.code, Some(1), "{again:?}");
    assert_eq!(again.stderr.lines().count(), 1, "{again:?}");
    let bad_role = api
        .setup
        .run(&["token", "new", "--role", "root", "--state", "state"]);
    assert_ne!(bad_role.code, Some(0));
    assert_eq!(bad_role.stderr.lines().count(), 1, "{bad_role:?}");
}

#[test]
fn plain_http_only_on_loopback_and_only_when_asked() {
    let setup = Setup::new("api-plain");
    let before = walk(&setup.path("state")).len();
    let mut args = twinshield_e2e::run_args("q.bundle", "modbus://127.0.0.1:9", "1").to_vec();
    args.extend_from_slice(&["--listen", "0.0.0.0:0", "--insecure-http"]);
    let r = setup.run(&args);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(r.stderr.contains("loopback"), "{r:?}");
    assert_eq!(walk(&setup.path("state")).len(), before, "nothing changed");
    let (twin, _plant) = RunningTwin::api(&setup, "30", &["--insecure-http"]);
    assert!(
        twin.banner.contains("API and dashboard http://"),
        "{}",
        twin.banner
    );
    let r = Client::http(&twin.api).get("/api/v1/health", None);
    assert_eq!(r.status, 200);
    assert!(r.header("strict-transport-security").is_none());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_listed_client_certificate_stands_in_for_a_token_with_its_role() {
    let setup = Setup::new("api-mtls");
    std::fs::create_dir_all(setup.path("clients")).unwrap();
    // A first run makes the server's identity; the clients' certificates
    // are made against it, and the list (read at start-up) names one of
    // them as operator for the second run.
    let (boot, _plant) = RunningTwin::api(&setup, "60", &[]);
    let cert = setup.path("state/api/tls.crt");
    let operator =
        Client::https_with_new_client_cert(&boot.api, &cert, &setup.path("clients/operator.pem"));
    let unlisted =
        Client::https_with_new_client_cert(&boot.api, &cert, &setup.path("clients/stranger.pem"));
    drop(boot);
    std::fs::write(
        setup.path("clients/list"),
        "# role certificate\noperator operator.pem\n",
    )
    .unwrap();
    let (twin, _plant) = RunningTwin::api(&setup, "60", &["--client-certs", "clients/list"]);
    let operator = operator.at(&twin.api);
    let unlisted = unlisted.at(&twin.api);
    let r = operator.get("/api/v1/whoami", None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["role"], "operator");
    let r = operator.get("/api/v1/security", None);
    assert_eq!(r.status, 403, "operator, not admin: {r:?}");
    // An unlisted certificate gets no HTTP answer at all.
    let r = unlisted.send("GET", "/api/v1/whoami", None, &[], None);
    assert!(r.is_err(), "{r:?}");
    // No certificate: tokens as ever.
    let plain = Client::https(&twin.api, &cert, rustls::DEFAULT_VERSIONS);
    assert_eq!(plain.get("/api/v1/whoami", None).status, 401);
    let viewer = token(&setup, "viewer");
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        plain.get("/api/v1/whoami", Some(&viewer)).json()["role"],
        "viewer"
    );
}
