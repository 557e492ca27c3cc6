//! Signed backend publishing through the real binary: `twinshield run`
//! with a bundle naming a backend, the reference receiver `twinshield
//! backend` stopped for 60 s during an attack, every alarm arriving
//! exactly once; publishing over HTTPS to a receiver whose certificate a
//! test CA signed (trusted when the bundle pins it or with `run
//! --backend-ca`, refused without, whatever `SSL_CERT_FILE` and
//! `SSL_CERT_DIR` say); and
//! the receiver refusing unenrolled devices, bad digests, stale timestamps
//! and replayed nonces.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stderr
)]

use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use twinshield_backend::{Signer, content_digest};
use twinshield_e2e::{Setup, plant, run_args, twinshield};
use twinshield_seal::{DeviceIdentity, EmbeddedSecret};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A running `twinshield backend`, its output lines collected; killed
/// (SIGKILL) on drop.
struct Backend {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Backend {
    fn start(dir: &Path, listen: &str) -> Backend {
        Backend::start_with(dir, listen, &[])
    }

    /// As [`Backend::start`], with `extra` arguments (`--tls-cert ...`).
    fn start_with(dir: &Path, listen: &str, extra: &[&str]) -> Backend {
        let mut child = Command::new(twinshield())
            .args(["backend", "--listen", listen, "--devices", "devices"])
            .args(["--store", "store"])
            .args(extra)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let collect = |r: Box<dyn Read + Send>| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
            lines
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        let b = Backend {
            child,
            stdout,
            stderr,
        };
        let started = Instant::now();
        while !b
            .err()
            .iter()
            .any(|l| l.starts_with("backend listening on"))
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the backend did not start: {:?}",
                b.err()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        b
    }

    fn out(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    fn err(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until standard error has `n` lines starting with `prefix`.
    fn wait_err(&self, prefix: &str, n: usize) -> Vec<String> {
        let started = Instant::now();
        loop {
            let lines: Vec<String> = self
                .err()
                .into_iter()
                .filter(|l| l.starts_with(prefix))
                .collect();
            if lines.len() >= n || started.elapsed() > Duration::from_secs(10) {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every stored message of `store/messages.jsonl`.
fn stored(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("store/messages.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["message"].clone())
        .collect()
}

#[test]
fn every_alarm_arrives_exactly_once_across_a_backend_outage() {
    let s = Setup::new("backend-outage");
    let dir = s.path("");
    std::fs::create_dir_all(s.path("devices")).unwrap();
    std::fs::copy(s.path("device.fp"), s.path("devices/device.fp")).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{listen}");
    s.seal_with(
        "b.bundle",
        "vendor.key",
        "device.fp",
        6,
        &["--backend", &url],
    );
    // The twin's detectors arm after 120 s of warm-up: the attack starts
    // at 125 s of plant time, the backend is down from 123 s to 183 s.
    let attack_at = 125.0;
    let p = plant(&["--attack", "bias", "--at", "125", "--seconds", "900"]);
    let plant_started = Instant::now();
    let mut backend = Some(Backend::start(&dir, &listen));
    let twin = Command::new(twinshield())
        .args([
            "run",
            "b.bundle",
            "--trust",
            "vendor.pub",
            "--plant",
            &p.url,
        ])
        .args(["--state", "state", "--seconds", "215"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sleep_until = |t: f64| {
        let at = Duration::from_secs_f64(t);
        if let Some(left) = at.checked_sub(plant_started.elapsed()) {
            std::thread::sleep(left);
        }
    };
    sleep_until(attack_at - 2.0);
    let before = backend.as_ref().unwrap().out();
    drop(backend.take()); // SIGKILL
    let down_at = unix_now();
    sleep_until(attack_at - 2.0 + 60.0);
    let up_at = unix_now();
    backend = Some(Backend::start(&dir, &listen));
    let out = twin.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let b = backend.take().unwrap();
    let after = b.out();
    drop(b);

    // The twin delivered everything before it stopped.
    assert_eq!(v["backend"]["pending"], 0, "{v}");
    assert_eq!(v["backend"]["dropped"], 0, "{v}");
    assert!(
        v["backend"]["failed_attempts"].as_u64().unwrap() >= 2,
        "no retries during the outage: {v}"
    );
    let alarms = v["alarms"].as_array().unwrap();
    assert!(!alarms.is_empty(), "the attack raised no alarm: {v}");
    assert!(
        alarms.iter().any(|a| {
            let t = a["raised_at_s"].as_f64().unwrap();
            t > down_at && t < up_at
        }),
        "no alarm raised while the backend was down ({down_at}..{up_at}): {v}"
    );

    // Every message stored once; every alarm the twin raised exactly once.
    let messages = stored(&dir);
    let mut ids: Vec<&str> = messages.iter().map(|m| m["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "a message was stored twice");
    let mut raised: HashMap<u64, usize> = HashMap::new();
    for m in messages.iter().filter(|m| m["kind"] == "alarm") {
        if m["body"]["event"] == "raised" {
            *raised
                .entry(m["body"]["alarm"].as_u64().unwrap())
                .or_default() += 1;
        }
    }
    assert_eq!(raised.len(), alarms.len(), "{raised:?} vs {alarms:?}");
    for a in alarms {
        let id = a["id"].as_u64().unwrap();
        assert_eq!(raised.get(&id), Some(&1), "alarm {id}: {raised:?}");
    }
    // Summaries every 10 s of plant time, before, during and after.
    let summaries = messages.iter().filter(|m| m["kind"] == "summary").count();
    assert!(summaries >= 20, "only {summaries} summaries");
    // Each accepted message was printed once, before or after the outage.
    let accepted = before
        .iter()
        .chain(&after)
        .filter(|l| l.starts_with("accepted "))
        .count();
    assert_eq!(accepted, messages.len());
    eprintln!(
        "{} messages ({} alarms raised, {summaries} summaries) stored once each",
        messages.len(),
        alarms.len()
    );
}

/// Posts a request by hand; returns the status and the body.
fn post(addr: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {resp:?}"));
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// A device identity made in this process (state directory `state`), its
/// signer and its key id.
fn device(dir: &Path, state: &str) -> (DeviceIdentity, String) {
    let (id, _) = DeviceIdentity::open_or_create(&dir.join(state), &EmbeddedSecret).unwrap();
    let kid = id.fingerprint().key_id_hex();
    (id, kid)
}

fn message(kid: &str, seq: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": format!("{kid}-{seq}"),
        "device": kid,
        "seq": seq,
        "kind": "alarm",
        "time": unix_now(),
        "body": {"event": "raised", "alarm": 1},
    }))
    .unwrap()
}

#[test]
fn the_receiver_rejects_strangers_bad_digests_stale_and_replayed_requests() {
    let s = twinshield_e2e::Scratch::new("backend-reject");
    let dir = s.path();
    let (enrolled, kid) = device(dir, "enrolled");
    let (stranger, stranger_kid) = device(dir, "stranger");
    std::fs::create_dir_all(dir.join("devices")).unwrap();
    std::fs::write(dir.join("devices/enrolled.fp"), enrolled.device_fp_bytes()).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let backend = Backend::start(dir, &listen);
    let enrolled = Arc::new(enrolled);
    let signer = {
        let id = Arc::clone(&enrolled);
        Signer::new(kid.clone(), move |m| Ok(id.sign(m)))
    };
    let now = unix_now() as i64;
    let send = |h: &twinshield_backend::SignedHeaders, body: &[u8]| {
        post(
            &listen,
            &[
                ("Content-Digest", &h.content_digest),
                ("Signature-Input", &h.signature_input),
                ("Signature", &h.signature),
            ],
            body,
        )
    };
    let unauthorized = (401, r#"{"error":"unauthorized"}"#.to_owned());

    // A well-signed request is accepted and stored.
    let first = message(&kid, 1);
    let good = signer
        .sign_request("POST", "/v1/messages", &first, now)
        .unwrap();
    assert_eq!(send(&good, &first).0, 200);

    // 1. A device that is not enrolled, signing correctly with its own key.
    let other = Signer::new(stranger_kid.clone(), move |m| Ok(stranger.sign(m)));
    let b = message(&stranger_kid, 1);
    let h = other.sign_request("POST", "/v1/messages", &b, now).unwrap();
    assert_eq!(send(&h, &b), unauthorized);
    // 2. A bad digest: the body was changed after signing.
    let b = message(&kid, 2);
    let h = signer
        .sign_request("POST", "/v1/messages", &b, now)
        .unwrap();
    let tampered = String::from_utf8(b).unwrap().replace("raised", "killed");
    assert_eq!(send(&h, tampered.as_bytes()), unauthorized);
    // 3. A stale timestamp: signed ten minutes ago.
    let b = message(&kid, 3);
    let h = signer
        .sign_request("POST", "/v1/messages", &b, now - 600)
        .unwrap();
    assert_eq!(send(&h, &b), unauthorized);
    // 4. A replayed nonce: the accepted request, sent again as captured.
    assert_eq!(send(&good, &first), unauthorized);
    // 5. A forged signature claiming the enrolled device.
    let b = message(&kid, 5);
    let mut h = signer
        .sign_request("POST", "/v1/messages", &b, now)
        .unwrap();
    h.signature = format!("sig1=:{}:", "A".repeat(86) + "==");
    assert_eq!(send(&h, &b), unauthorized);
    // 6. No signature at all.
    assert_eq!(
        post(&listen, &[("Content-Digest", &content_digest(&b))], &b),
        unauthorized
    );

    let lines = backend.wait_err("rejected request from 127.0.0.1:", 6);
    assert_eq!(lines.len(), 6, "{:?}", backend.err());
    for (line, reason) in lines.iter().zip([
        format!("unknown device {stranger_kid}"),
        "content digest does not match the body".to_owned(),
        "stale signature: created -600 s from the receiver's clock".to_owned(),
        "replayed nonce".to_owned(),
        "signature does not verify".to_owned(),
        "missing or repeated header Signature-Input".to_owned(),
    ]) {
        // The receiver reads its clock a moment after the test did: on a
        // busy machine a second boundary can fall between the two.
        let late = |by: u32| reason.replace("-600 s", &format!("-{} s", 600 + by));
        assert!(
            line.ends_with(&reason) || (reason.starts_with("stale") && line.ends_with(&late(1))),
            "{line} does not end with {reason}"
        );
    }
    // A retry of the accepted message (fresh nonce, same id) is answered
    // 200 and not stored again.
    let body = message(&kid, 1);
    let retry = signer
        .sign_request("POST", "/v1/messages", &body, now)
        .unwrap();
    let (status, answer) = send(&retry, &body);
    assert_eq!(
        (status, answer.as_str()),
        (200, r#"{"status":"duplicate"}"#)
    );
    let messages = stored(dir);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["id"], format!("{kid}-1"));
    let out = backend.out();
    assert_eq!(
        out.iter().filter(|l| l.starts_with("accepted ")).count(),
        1,
        "{out:?}"
    );
    // Nothing about a rejection reaches the client but the generic body.
    assert!(backend.err().iter().all(|l| !l.contains("panicked")));
}

/// A CA named `name` and a leaf for `localhost` and `127.0.0.1` it signed,
/// written as `PREFIX-ca.pem`, `PREFIX-cert.pem` and `PREFIX-key.pem`.
fn test_ca(dir: &Path, prefix: &str, name: &str) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&leaf_key, &Issuer::new(ca, ca_key))
        .unwrap();
    std::fs::write(dir.join(format!("{prefix}-ca.pem")), ca_cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{prefix}-cert.pem")), leaf.pem()).unwrap();
    std::fs::write(
        dir.join(format!("{prefix}-key.pem")),
        leaf_key.serialize_pem(),
    )
    .unwrap();
}

/// `twinshield run` of `bundle` for `seconds` with `extra` arguments and
/// `SSL_CERT_FILE` and `SSL_CERT_DIR` set to `env` (each a path in `dir`,
/// or unset); its exit status, JSON summary and standard error.
fn run_twin(
    dir: &Path,
    (bundle, plant, seconds): (&str, &str, &str),
    extra: &[&str],
    env: (Option<&str>, Option<&str>),
) -> (bool, Value, String) {
    let mut cmd = Command::new(twinshield());
    cmd.args(run_args(bundle, plant, seconds))
        .args(extra)
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    if let Some(f) = env.0 {
        cmd.env("SSL_CERT_FILE", dir.join(f));
    }
    if let Some(d) = env.1 {
        cmd.env("SSL_CERT_DIR", dir.join(d));
    }
    let out = cmd.current_dir(dir).stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), v, stderr)
}

#[test]
fn messages_reach_an_https_backend_only_when_its_certificate_is_trusted() {
    let s = Setup::new("backend-tls");
    let dir = s.path("");
    std::fs::create_dir_all(s.path("devices")).unwrap();
    std::fs::copy(s.path("device.fp"), s.path("devices/device.fp")).unwrap();
    // The backend's certificate is signed by `backend-ca.pem`; the
    // "system" trust store (SSL_CERT_FILE) holds an unrelated CA only.
    test_ca(&dir, "backend", "twinshield test backend CA");
    test_ca(&dir, "system", "twinshield test system CA");
    std::fs::write(s.path("empty.pem"), "").unwrap();
    std::fs::create_dir_all(s.path("empty")).unwrap();
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    s.seal_with(
        "tls.bundle",
        "vendor.key",
        "device.fp",
        7,
        &["--backend", &url],
    );

    // Plain HTTP off loopback is refused with one line, before binding.
    let refused = Command::new(twinshield())
        .args(["backend", "--listen", "0.0.0.0:9", "--devices", "devices"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: plain HTTP is served only on a loopback address"),
        "{err}"
    );

    let backend = Backend::start_with(
        &dir,
        &format!("127.0.0.1:{port}"),
        &[
            "--tls-cert",
            "backend-cert.pem",
            "--tls-key",
            "backend-key.pem",
        ],
    );
    assert!(
        backend.err()[0].starts_with(&format!("backend listening on https://127.0.0.1:{port}")),
        "{:?}",
        backend.err()
    );
    let p = plant(&["--seconds", "300"]);
    // The environment names the backend's own CA as the system's store
    // (file and directory): ignored, so not trusted. The system's real
    // store does not hold the test CA either: nothing is accepted, the
    // messages stay in the outbox.
    std::fs::create_dir_all(s.path("certs")).unwrap();
    std::fs::copy(s.path("backend-ca.pem"), s.path("certs/backend-ca.pem")).unwrap();
    let tls = ("tls.bundle", p.url.as_str(), "2");
    let (ok, v, err) = run_twin(&dir, tls, &[], (Some("backend-ca.pem"), Some("certs")));
    assert!(ok, "{err}");
    let untrusted_pending = v["backend"]["pending"].as_u64().unwrap();
    assert!(untrusted_pending >= 1, "{v}");
    assert_eq!(v["backend"]["sent"], 0, "{v}");
    assert!(
        v["backend"]["failed_attempts"].as_u64().unwrap() >= 1,
        "{v}"
    );
    assert!(err.contains("UnknownIssuer"), "{err}");
    for var in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
        assert!(
            err.contains(&format!("warning: {var} is set and ignored")),
            "{err}"
        );
    }
    assert!(stored(&dir).is_empty());
    assert!(backend.out().is_empty(), "{:?}", backend.out());

    // Trusted with --backend-ca (a bundle that pins nothing), whatever
    // the environment says: the waiting messages and the new ones arrive,
    // signed, each stored once.
    let tls = ("tls.bundle", p.url.as_str(), "12");
    let (ok, v, err) = run_twin(
        &dir,
        tls,
        &["--backend-ca", "backend-ca.pem"],
        (Some("empty.pem"), Some("empty")),
    );
    assert!(ok, "{err}");
    assert_eq!(v["backend"]["pending"], 0, "{v}");
    assert_eq!(v["backend"]["failed_attempts"], 0, "{v}");
    let sent = v["backend"]["sent"].as_u64().unwrap();
    // The earlier run's messages, and a summary every 10 s of 12 s.
    assert!(sent >= untrusted_pending + 2, "{v}");
    let messages = stored(&dir);
    assert_eq!(messages.len() as u64, sent, "{messages:?}");
    let mut ids: Vec<&str> = messages.iter().map(|m| m["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), messages.len(), "a message was stored twice");
    assert!(
        messages.iter().any(|m| m["kind"] == "summary"),
        "{messages:?}"
    );
    // Each printed once by the receiver (its output may lag a little).
    let started = Instant::now();
    let accepted = loop {
        let n = backend
            .out()
            .iter()
            .filter(|l| l.starts_with("accepted "))
            .count();
        if n >= messages.len() || started.elapsed() > Duration::from_secs(5) {
            break n;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(accepted, messages.len(), "{:?}", backend.out());

    // Pinned in the bundle: trusted with no flag and an environment
    // naming another CA; `--backend-ca` cannot add an anchor to a bundle
    // that pins its own; pinned to the wrong CA, nothing arrives.
    let url = format!("https://127.0.0.1:{port}");
    let pin = |out: &str, ca: &str, release: u64| {
        s.seal_with(
            out,
            "vendor.key",
            "device.fp",
            release,
            &["--backend", &url, "--backend-ca", ca],
        );
    };
    pin("pinned.bundle", "backend-ca.pem", 8);
    let before = stored(&dir).len() as u64;
    let pinned = ("pinned.bundle", p.url.as_str(), "2");
    let (ok, v, err) = run_twin(&dir, pinned, &[], (Some("system-ca.pem"), None));
    assert!(ok, "{err}");
    assert_eq!(v["backend"]["pending"], 0, "{v}");
    assert_eq!(v["backend"]["failed_attempts"], 0, "{v}");
    let sent = v["backend"]["sent"].as_u64().unwrap();
    assert!(sent >= 1, "{v}");
    assert_eq!(stored(&dir).len() as u64, before + sent);
    let (ok, _, err) = run_twin(
        &dir,
        pinned,
        &["--backend-ca", "system-ca.pem"],
        (None, None),
    );
    assert!(!ok, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "error: the bundle pins the backend's trust anchors; --backend-ca cannot add another"
        ),
        "{err}"
    );
    pin("wrong.bundle", "system-ca.pem", 9);
    let before = stored(&dir).len();
    let wrong = ("wrong.bundle", p.url.as_str(), "2");
    let (ok, v, err) = run_twin(&dir, wrong, &[], (Some("backend-ca.pem"), None));
    assert!(ok, "{err}");
    assert_eq!(v["backend"]["sent"], 0, "{v}");
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert_eq!(stored(&dir).len(), before);
}
