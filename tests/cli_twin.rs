//! The twin's commands as an operator runs them: `plant quadtank` serving
//! real Modbus TCP, `demo` end to end over a socket, `eval` and its JSON.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use twinshield_e2e::{Scratch, plant, run, twinshield};

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn demo_detects_the_default_bias_attack_over_modbus_tcp() {
    let r = run(&["demo", "--seconds", "200", "--speed", "10"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stderr.contains("dashboard https://127.0.0.1:")
            && r.stderr
                .contains("dashboard token (admin, this run only): tsk_"),
        "{}",
        r.stderr
    );
    let v = json(&r.stdout);
    assert_eq!(v["attack"]["name"], "bias");
    assert_eq!(v["attack"]["at_s"], 150.0);
    let samples = v["samples"].as_u64().unwrap();
    assert!(
        samples > 1500,
        "only {samples} samples in 200 plant seconds at 10 Hz"
    );
    let alarms = v["alarms"].as_array().unwrap();
    assert!(!alarms.is_empty(), "no alarm: {v}");
    for a in alarms {
        let raised = a["raised_at_s"].as_f64().unwrap();
        // The plant sends its clock with every sample, so an alarm's time
        // is the time of the value that raised it: none before 150.0 s.
        assert!(raised >= 150.0 - 1e-6, "false alarm before the attack: {a}");
        assert!(
            a["delay_s"].as_f64().is_some(),
            "alarm not attributed to the attack: {a}"
        );
    }
    let first = &alarms[0];
    assert!(first["channel"].as_str().unwrap().contains("y1"), "{first}");
    assert!(first["delay_s"].as_f64().unwrap() <= 30.0, "{first}");
}

#[test]
fn demo_without_attack_raises_nothing() {
    let r = run(&[
        "demo",
        "--seconds",
        "200",
        "--speed",
        "25",
        "--attack",
        "none",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let v = json(&r.stdout);
    assert_eq!(v["attack"], Value::Null);
    assert_eq!(v["alarms"].as_array().unwrap().len(), 0, "{v}");
}

/// The demo's entries (`twinshield-demo-*`) in `tmp`.
fn demo_dirs(tmp: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("twinshield-demo-"))
        .collect()
}

#[test]
fn demo_records_a_temporary_history_and_removes_it_at_the_end() {
    let scratch = Scratch::new("demo-history");
    let tmp = scratch.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut child = Command::new(twinshield())
        .args([
            "demo",
            "--seconds",
            "60",
            "--speed",
            "20",
            "--attack",
            "none",
        ])
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // While it runs, its history is on disk (encrypted, in a directory of
    // its own) and grows.
    let started = Instant::now();
    let mut recorded = None;
    while recorded.is_none() && child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(60), "demo hangs");
        recorded = demo_dirs(&tmp)
            .iter()
            .filter(|n| n.starts_with("twinshield-demo-history-"))
            .map(|n| tmp.join(n).join("history.redb"))
            .find(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0));
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        recorded.is_some(),
        "no history file while running: {stderr}"
    );
    assert_eq!(demo_dirs(&tmp), Vec::<String>::new(), "left behind");
    // Standard output is the summary, one line, with the keys it always had.
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let v = json(&stdout);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "alarms",
            "attack",
            "data_quality_events",
            "plant",
            "plant_seconds",
            "samples",
            "shield",
            "speed"
        ],
        "{stdout}"
    );
}

#[test]
fn eval_reports_detection_and_false_alarms_as_json() {
    let r = run(&[
        "eval",
        "--scenario",
        "bias",
        "--seeds",
        "2",
        "--hours",
        "2",
        "--json",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let v = json(&r.stdout);
    let s = &v["scenarios"][0];
    assert_eq!(s["name"], "bias");
    assert_eq!(s["seeds"], 2);
    assert_eq!(s["detected"], 2);
    assert_eq!(s["detection_rate"], 1.0);
    assert!(s["mean_delay_s"].as_f64().unwrap() <= 30.0);
    assert!(s["max_delay_s"].as_f64().is_some());
    assert_eq!(v["normal_hours"], 2.0);
    assert!(v["false_alarms"].as_u64().is_some());
    assert!(v["false_alarms_per_24h"].as_f64().is_some());
}

#[test]
fn eval_and_plant_refuse_bad_arguments_with_one_line() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["eval", "--scenario", "meteor"],
            "error: unknown attack `meteor`",
        ),
        (
            &["eval", "--seeds", "0"],
            "error: --seeds must be from 1 to 10000",
        ),
        (
            &["eval", "--hours", "-1"],
            "error: --hours must be a number of hours",
        ),
        (
            &[
                "plant",
                "quadtank",
                "--listen",
                "127.0.0.1:0",
                "--speed",
                "0",
            ],
            "error: --speed must be",
        ),
        (
            &[
                "plant",
                "quadtank",
                "--listen",
                "127.0.0.1:0",
                "--attack",
                "bias",
            ],
            "error: --attack needs --at",
        ),
    ];
    for (args, start) in cases {
        let r = run(args);
        assert_eq!(r.code, Some(1), "{args:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {r:?}");
        assert!(r.stderr.starts_with(start), "{args:?}: {}", r.stderr);
    }
}

/// Sends one Modbus TCP request and returns the reply's bytes.
fn modbus(stream: &mut TcpStream, tid: u16, function: u8, addr: u16, count: u16) -> Vec<u8> {
    let mut req = tid.to_be_bytes().to_vec();
    req.extend_from_slice(&[0, 0, 0, 6, 1, function]);
    req.extend_from_slice(&addr.to_be_bytes());
    req.extend_from_slice(&count.to_be_bytes());
    stream.write_all(&req).unwrap();
    let mut head = [0u8; 6];
    stream.read_exact(&mut head).unwrap();
    let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).unwrap();
    body
}

#[test]
fn plant_serves_the_documented_register_map_read_only() {
    let p = plant(&[
        "--speed",
        "20",
        "--seconds",
        "60",
        "--attack",
        "bias",
        "--at",
        "20",
    ]);
    let listen = &p.listen;
    assert!(
        p.banner.contains(&format!("Modbus TCP on {listen}")),
        "{}",
        p.banner
    );
    let mut s = TcpStream::connect(listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    // Input registers 0..3: the four levels in 0.01 cm, near the operating point.
    let r = modbus(&mut s, 1, 4, 0, 4);
    assert_eq!(&r[..3], &[1, 4, 8]);
    let level = |i: usize| f64::from(u16::from_be_bytes([r[3 + 2 * i], r[4 + 2 * i]])) / 100.0;
    assert!(
        (level(0) - 12.26).abs() < 0.5 && (level(1) - 12.78).abs() < 0.5,
        "{r:?}"
    );
    // Holding registers 0..1: pump voltages in mV, about 3 V.
    let r = modbus(&mut s, 2, 3, 0, 2);
    let v1 = f64::from(u16::from_be_bytes([r[3], r[4]])) / 1000.0;
    assert!((v1 - 3.0).abs() < 0.5, "{r:?}");
    // Coil 0: pumps running.
    let r = modbus(&mut s, 3, 1, 0, 1);
    assert_eq!(&r[..4], &[1, 1, 1, 1]);
    // Writes are refused: exception 0x01, illegal function.
    let r = modbus(&mut s, 4, 6, 0, 9999);
    assert_eq!(&r[..3], &[1, 0x86, 0x01]);
    // Reading past the map: exception 0x02, illegal data address.
    let r = modbus(&mut s, 5, 4, 10, 1);
    assert_eq!(&r[..3], &[1, 0x84, 0x02]);
}
