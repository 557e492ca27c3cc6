//! schemathesis (PyPI) against the real twin's OpenAPI document: with a
//! valid admin token, no server error and no response outside the
//! documented statuses, content types and schemas, and authentication never
//! ignored; without a token, nothing but 401 from every endpoint that
//! needs one (tests/schemathesis/twinshield_checks.py).
//! The live stream never ends, so it is left out (the API tests read it).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::process::Command;
use twinshield_e2e::Setup;
use twinshield_e2e::https::RunningTwin;

fn schemathesis(
    dir: &std::path::Path,
    api: &str,
    token: Option<&str>,
    checks: &str,
) -> (bool, String) {
    let url = format!("https://{api}");
    let schema = format!("{url}/api/v1/openapi.json");
    let header = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut cmd = Command::new("st");
    // schemathesis keeps its example database in the working directory.
    cmd.current_dir(dir)
        .args(["run", &schema, "--url", &url, "--tls-verify", "false"])
        .args(["--checks", checks])
        .args(["--exclude-path", "/api/v1/live"])
        .args(["--max-examples", "25", "--workers", "1", "--seed", "1"])
        .args(["--request-timeout", "5", "--no-color"])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .env("SCHEMATHESIS_HOOKS", "twinshield_checks")
        .env(
            "PYTHONPATH",
            twinshield_e2e::root().join("tests/schemathesis"),
        );
    if let Some(h) = &header {
        cmd.args(["-H", h]);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run schemathesis (`st`): {e}; install it with `python3 -m pip install schemathesis==4.32.5`")
    });
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn schemathesis_finds_no_server_error_and_no_response_outside_the_schema() {
    let setup = Setup::new("api-schemathesis");
    let admin = setup
        .ok(&["token", "new", "--role", "admin", "--state", "state"])
        .stdout
        .trim()
        .to_owned();
    let (twin, _plant) = RunningTwin::api(&setup, "600", &["--rate-limit", "100000"]);
    let (ok, out) = schemathesis(
        setup.dir.path(),
        &twin.api,
        Some(&admin),
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth",
    );
    assert!(ok, "with a token:\n{out}");
    let (ok, out) = schemathesis(
        setup.dir.path(),
        &twin.api,
        None,
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,only_401_without_token",
    );
    assert!(ok, "without a token:\n{out}");
}
