//! The dashboard end to end in headless Chromium (Debian's chromium and
//! chromedriver, driven by tests/browser/dashboard_e2e.py over WebDriver):
//! `twinshield demo` serves it over HTTPS with its own token; the driver
//! logs in, sees the charts update within 2 s, waits for the demo's attack
//! to raise an alarm, acknowledges it, and keeps a screenshot
//! (target/dashboard-e2e.png) as the test's artefact.

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
