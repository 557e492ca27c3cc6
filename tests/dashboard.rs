//! The dashboard end to end in headless Chromium (Debian's chromium and
//! chromedriver, driven by tests/browser/dashboard_e2e.py over WebDriver):
//! `twinshield demo` serves it over HTTPS with its own token; the driver
//! logs in, sees the charts update within 2 s, waits for the demo's attack
//! to raise an alarm, acknowledges it, and keeps a screenshot
//! (target/dashboard-e2e.png) as the test's artefact. A second test opens
//! the dashboard on a demo that has run a while: every chart must show the
//! recorded history on its first paint, before live data could fill it.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::process::Command;
use twinshield_e2e::https::RunningTwin;
use twinshield_e2e::{Scratch, root};

#[test]
fn the_dashboard_shows_live_charts_and_acknowledges_the_demo_attack() {
    let dir = Scratch::new("dashboard");
    // 150 plant seconds to the attack at 5x: about 30 s after the start.
    let demo = RunningTwin::start(
        dir.path(),
        &["demo", "--seconds", "600", "--speed", "5"],
        "dashboard token",
    );
    let token = demo
        .banner
        .lines()
        .find_map(|l| l.split("this run only): ").nth(1))
        .unwrap_or_else(|| panic!("no token line: {}", demo.banner))
        .trim()
        .to_owned();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let shot = root().join("target").join("dashboard-e2e.png");
    let _ = std::fs::remove_file(&shot);
    let out = Command::new("python3")
        .arg(root().join("tests/browser/dashboard_e2e.py"))
        .args(["--url", &format!("https://{}/", demo.api)])
        .arg("--token-file")
        .arg(&token_file)
        .args(["--attack-wait", "90"])
        .arg("--screenshot")
        .arg(&shot)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the browser driver: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "driver failed:\n{stdout}\n{stderr}\ndemo:\n{}",
        demo.banner
    );
    assert!(
        stdout
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("dashboard_e2e: ok"),
        "{stdout}"
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    // What the demo opens on a desktop: the address with `#token=`, logged
    // in at once, the token wiped from the address bar.
    let out = Command::new("python3")
        .arg(root().join("tests/browser/dashboard_e2e.py"))
        .args(["--url", &format!("https://{}/", demo.api)])
        .arg("--token-file")
        .arg(&token_file)
        .args(["--fragment-login", "--no-alarm"])
        .arg("--screenshot")
        .arg(dir.path().join("fragment.png"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run the browser driver: {e}"));
    assert!(
        out.status.success(),
        "fragment login:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_dashboard_opens_with_every_chart_filled_from_the_demo_history() {
    let dir = Scratch::new("dashboard-history");
    // The demo's temporary directories land here, so they go with the
    // scratch directory even though the demo is killed at the end.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let demo = RunningTwin::start_env(
        dir.path(),
        &[
            "demo",
            "--seconds",
            "900",
            "--speed",
            "10",
            "--attack",
            "none",
        ],
        &[("TMPDIR", tmp.to_str().unwrap())],
        "dashboard token",
    );
    let history_dirs: Vec<String> = std::fs::read_dir(&tmp)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("twinshield-demo-history-"))
        .collect();
    assert_eq!(history_dirs.len(), 1, "{history_dirs:?}\n{}", demo.banner);
    let token = demo
        .banner
        .lines()
        .find_map(|l| l.split("this run only): ").nth(1))
        .unwrap_or_else(|| panic!("no token line: {}", demo.banner))
        .trim()
        .to_owned();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    // 120 plant seconds (12 s at 10x) of history in one-second buckets:
    // at least 100 points over at least 30 s on every chart's first
    // paint; live data alone would have drawn a point or two by then.
    let out = Command::new("python3")
        .arg(root().join("tests/browser/dashboard_e2e.py"))
        .args(["--url", &format!("https://{}/", demo.api)])
        .arg("--token-file")
        .arg(&token_file)
        .args(["--history-first", "120", "--history-points", "100"])
        .args(["--history-span", "30", "--no-alarm"])
        .arg("--screenshot")
        .arg(dir.path().join("history.png"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run the browser driver: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "driver failed:\n{stdout}\n{}\ndemo:\n{}",
        String::from_utf8_lossy(&out.stderr),
        demo.banner
    );
    assert!(
        stdout
            .lines()
            .last()
            .unwrap_or_default()
            .contains("points of history"),
        "{stdout}"
    );
}
