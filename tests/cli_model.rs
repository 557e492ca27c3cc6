//! `twinshield model check` and `model simulate`, run as an operator would.

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::fs;
use twinshield_e2e::{Scratch, run, run_in};

#[test]
fn check_accepts_the_shipped_model_with_a_one_line_summary() {
    let r = run(&["model", "check", "models/quadtank.twin"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stdout.lines().count(), 1, "{r:?}");
    assert!(
        r.stdout.starts_with(
            "models/quadtank.twin: ok: twin `quadtank` 1.0.0, 4 states, 2 inputs, 4 outputs"
        ),
        "{r:?}"
    );
    assert!(r.stderr.is_empty(), "{r:?}");
}

#[test]
fn check_reports_each_problem_with_location_and_caret() {
    let dir = Scratch::new("check-bad");
    let src =
        fs::read_to_string(twinshield_e2e::root().join("models/quadtank.twin")).expect("read");
    let bad = src
        .replacen("gamma1*k1*v1/A1", "gamma1*k1*v9/A1", 1)
        .replacen("init = 1.634", "init = 40.0", 1);
    fs::write(dir.path().join("bad.twin"), bad).expect("write");
    let r = run_in(dir.path(), &["model", "check", "bad.twin"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(lines[0].starts_with("bad.twin:"), "{r:?}");
    assert!(lines[0].contains(": error: unknown name `v9`"), "{r:?}");
    assert!(lines[1].contains("gamma1*k1*v9/A1"), "{r:?}");
    assert!(lines[2].trim_start().starts_with("^^"), "{r:?}");
    // The caret stands under the offending name.
    let col = lines[1].find("v9").expect("text shown");
    assert_eq!(lines[2].find('^'), Some(col), "{r:?}");
    assert!(
        r.stderr
            .contains("`init` of state `h3` is 40, outside its range [0, 20]")
    );
    assert_eq!(r.stderr.lines().last(), Some("error: bad.twin: 2 problems"));
}

#[test]
fn check_refuses_missing_binary_and_huge_files_with_one_line() {
    let dir = Scratch::new("check-odd");
    let r = run_in(dir.path(), &["model", "check", "nope.twin"]);
    assert_eq!(r.code, Some(1));
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(
        r.stderr.starts_with("error: cannot read nope.twin"),
        "{r:?}"
    );

    fs::write(dir.path().join("bin.twin"), [0xff, 0xfe, 0x00, 0x80]).expect("write");
    let r = run_in(dir.path(), &["model", "check", "bin.twin"]);
    assert_eq!(r.code, Some(1));
    assert_eq!(
        r.stderr.trim(),
        "error: bin.twin is not UTF-8 text: invalid utf-8 sequence of 1 bytes from index 0"
    );

    fs::write(dir.path().join("big.twin"), vec![b'#'; 2 * 1024 * 1024]).expect("write");
    let r = run_in(dir.path(), &["model", "check", "big.twin"]);
    assert_eq!(r.code, Some(1));
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(r.stderr.contains("larger than"), "{r:?}");
}

#[test]
fn simulate_writes_time_states_and_outputs() {
    let r = run(&[
        "model",
        "simulate",
        "models/quadtank.twin",
        "--seconds",
        "10",
        "--every",
        "5",
        "--input",
        "v1=3.5",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "t,h1,h2,h3,h4,y1,y2,y3,y4");
    assert_eq!(lines.len(), 4, "{r:?}");
    assert!(lines[1].starts_with("0,12.263,12.783,1.634,1.409,"));
    let last: Vec<f64> = lines[3]
        .split(',')
        .map(|v| v.parse().expect("number"))
        .collect();
    assert_eq!(last[0], 10.0);
    // More voltage on pump 1 fills tank 1 (and tank 4 above tank 2).
    assert!(last[1] > 12.263 && last[4] > 1.409, "{last:?}");
}

#[test]
fn simulate_to_csv_writes_the_file_whole() {
    let dir = Scratch::new("sim-csv");
    let r = run_in(
        dir.path(),
        &[
            "model",
            "simulate",
            &twinshield_e2e::root()
                .join("models/quadtank.twin")
                .to_string_lossy(),
            "--seconds",
            "60",
            "--csv",
            "out.csv",
        ],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stderr.trim(), "wrote 601 rows to out.csv");
    let csv = fs::read_to_string(dir.path().join("out.csv")).expect("csv written");
    assert_eq!(csv.lines().count(), 602);
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn simulate_refuses_bad_arguments_with_one_line_and_writes_nothing() {
    let dir = Scratch::new("sim-bad");
    let model = twinshield_e2e::root().join("models/quadtank.twin");
    let model = model.to_string_lossy();
    let cases: [(&[&str], &str); 6] = [
        (
            &["--seconds", "-5"],
            "error: --seconds must be a positive number of seconds",
        ),
        (
            &["--seconds", "NaN"],
            "error: --seconds must be a positive number of seconds",
        ),
        (
            &["--seconds", "10", "--input", "v9=1"],
            "error: unknown input `v9`; the model's inputs are v1, v2",
        ),
        (
            &["--seconds", "10", "--input", "v1=12"],
            "error: --input v1=12 is outside its range [0, 10]",
        ),
        (
            &["--seconds", "10", "--input", "v1"],
            "error: --input `v1` is not NAME=VALUE",
        ),
        (
            &["--seconds", "10", "--every", "0"],
            "error: --every must be a positive number of seconds",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["model", "simulate", &model, "--csv", "out.csv"];
        args.extend_from_slice(extra);
        let r = run_in(dir.path(), &args);
        assert_eq!(r.code, Some(1), "{args:?}: {r:?}");
        assert_eq!(r.stderr.trim_end(), expected, "{args:?}");
        assert!(
            !dir.path().join("out.csv").exists(),
            "{args:?} wrote a file"
        );
    }
}

#[test]
fn usage_errors_are_one_line_with_status_2() {
    let r = run(&["model", "simulate", "models/quadtank.twin"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(
        r.stderr
            .starts_with("error: the following required arguments were not provided"),
        "{r:?}"
    );
    let r = run(&["model", "frobnicate"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    let r = run(&["--help"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("Usage: twinshield"), "{r:?}");
}

#[test]
fn simulate_reports_leaving_the_domain_and_keeps_no_partial_csv() {
    let dir = Scratch::new("sim-nan");
    let src = "[twin]\nname = \"d\"\nversion = \"1\"\nstep = 0.1\n[inputs]\n\
               [states.x]\ninit = 0.55\nrange = [-10.0, 10.0]\nder = \"-1\"\n\
               [states.y]\ninit = 0.0\nrange = [-10.0, 10.0]\nder = \"sqrt(x)\"\n\
               [outputs.o]\nexpr = \"y\"\nnoise = 1\n";
    fs::write(dir.path().join("d.twin"), src).expect("write");
    let r = run_in(
        dir.path(),
        &[
            "model",
            "simulate",
            "d.twin",
            "--seconds",
            "5",
            "--csv",
            "d.csv",
        ],
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        r.stderr.trim_end(),
        "error: state `y` became NaN at t = 0.6 s"
    );
    assert!(!dir.path().join("d.csv").exists());
}
