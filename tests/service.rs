//! The systemd unit the product ships: scored by `systemd-analyze
//! security` (offline, the unit file alone) and read for the settings the
//! shield needs and the ones an unprivileged twin must have.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::process::Command;
use twinshield_e2e::root;

fn unit() -> String {
    std::fs::read_to_string(root().join("packaging/twinshield.service")).unwrap()
}

#[test]
fn the_unit_scores_at_most_2_on_systemds_exposure_scale() {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(root().join("packaging/twinshield.service"))
        .output()
        .expect("systemd-analyze (Debian package systemd) is needed");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score: {out:?}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable score: {line}"));
    eprintln!("{line}");
    assert!(score <= 2.0, "{line}");
}

#[test]
fn the_unit_runs_the_twin_unprivileged_and_lets_the_shield_work() {
    let unit = unit();
    for setting in [
        "User=twinshield",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "MemoryDenyWriteExecute=yes",
        "LockPersonality=yes",
        "CapabilityBoundingSet=\n",
        "StateDirectoryMode=0700",
        "UMask=0077",
        "RestartPreventExitStatus=3",
        // The shield's ptrace self-check and its core-limit and mlock calls.
        "SystemCallFilter=@system-service ptrace",
    ] {
        assert!(unit.contains(setting), "the unit lacks `{setting}`");
    }
    let settings: Vec<&str> = unit.lines().filter(|l| !l.starts_with('#')).collect();
    let denied = |group: &str| {
        settings
            .iter()
            .any(|l| l.starts_with("SystemCallFilter=~") && l.contains(group))
    };
    assert!(
        !denied("@resources"),
        "setrlimit and mlock must stay allowed"
    );
    assert!(!denied("@debug"), "ptrace must stay allowed");
}
