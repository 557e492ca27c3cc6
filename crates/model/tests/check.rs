//! The checker, as `twinshield model check` promises it: every problem
//! reported with line, column and message; a clean model accepted.

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use twinshield_model::Model;

/// A small valid model; tests edit it to introduce one problem each.
const BASE: &str = r#"[twin]
name = "tank"
version = "1"
step = 0.1

[params]
A = 28.0
a = 0.071

[inputs.v]
unit = "V"
range = [0.0, 10.0]

[states.h]
init = 10.0
range = [0.0, 20.0]
der = "-(a/A)*sqrt(2*981*h) + 3.3*v/A"

[outputs.y]
expr = "h"
noise = 0.05
"#;

/// Each problem as `line:col: message`.
fn problems(src: &str) -> Vec<String> {
    match Model::parse("t.twin", src) {
        Ok(_) => vec![],
        Err(r) => r
            .diagnostics()
            .iter()
            .map(|d| {
                let (l, c) = r.line_col(d.span.start);
                format!("{l}:{c}: {}", d.message)
            })
            .collect(),
    }
}

fn with(old: &str, new: &str) -> String {
    assert!(BASE.contains(old), "test bug: {old:?} not in BASE");
    BASE.replacen(old, new, 1)
}

#[test]
fn the_base_model_is_clean() {
    assert_eq!(problems(BASE), Vec::<String>::new());
}

#[test]
fn the_shipped_quadtank_model_is_clean() {
    let src = include_str!("../../../models/quadtank.twin");
    let m = Model::parse("quadtank.twin", src).expect("quadtank must check");
    assert_eq!(m.states.len(), 4);
    assert_eq!(m.inputs.len(), 2);
    assert_eq!(m.outputs.len(), 4);
    assert_eq!(m.modbus.as_ref().map(|b| b.points.len()), Some(6));
}

#[test]
fn unknown_name_is_located_inside_the_expression() {
    let src = with("3.3*v/A", "3.3*volts/A");
    assert_eq!(
        problems(&src),
        ["17:35: unknown name `volts`: not a parameter, input or state"]
    );
}

#[test]
fn report_renders_file_line_column_text_and_caret() {
    let src = with("3.3*v/A", "3.3*volts/A");
    let report = Model::parse("t.twin", &src).expect_err("must fail");
    let text = report.to_string();
    let expected = "t.twin:17:35: error: unknown name `volts`: not a parameter, input or state\n  \
                    der = \"-(a/A)*sqrt(2*981*h) + 3.3*volts/A\"\n  \
                    \x20                                 ^^^^^";
    assert_eq!(text, expected);
}

#[test]
fn duplicate_names_across_sections() {
    let src = with("[outputs.y]", "[outputs.a]");
    let p = problems(&src);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0] == "19:10: duplicate name `a`: already declared as a parameter on line 8",
        "{p:?}"
    );
}

#[test]
fn wrong_arity() {
    let src = with("sqrt(2*981*h)", "sqrt(2*981*h, 1)");
    assert_eq!(problems(&src), ["17:15: `sqrt` takes 1 argument, found 2"]);
    let src = with("sqrt(2*981*h)", "clamp(h, 0)");
    assert_eq!(
        problems(&src),
        ["17:15: `clamp` takes 3 arguments, found 2"]
    );
}

#[test]
fn unknown_function() {
    let src = with("sqrt(2*981*h)", "cbrt(h)");
    let p = problems(&src);
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("17:15: unknown function `cbrt`"), "{p:?}");
}

#[test]
fn type_errors_between_numbers_and_conditions() {
    let src = with("3.3*v/A", "(v > 1)*3.3/A");
    assert_eq!(
        problems(&src),
        ["17:31: expected a number, found a condition (true/false)"]
    );
    let src = with("3.3*v/A", "if(v, 1, 2)");
    assert_eq!(
        problems(&src),
        ["17:34: expected a condition (true/false), found a number"]
    );
    let src = with(
        "der = \"-(a/A)*sqrt(2*981*h) + 3.3*v/A\"",
        "der = \"h > 1\"",
    );
    assert_eq!(
        problems(&src),
        ["17:8: expected a number, found a condition (true/false)"]
    );
    let src = with("3.3*v/A", "if(v > 1, 1, v < 2)");
    let p = problems(&src);
    assert_eq!(p.len(), 1);
    assert!(
        p[0].contains("both branches of `if` must have one type"),
        "{p:?}"
    );
}

#[test]
fn constant_division_by_zero() {
    let src = with("3.3*v/A", "3.3*v/(A - 28)");
    assert_eq!(
        problems(&src),
        ["17:37: division by zero: the divisor is the constant 0"]
    );
}

#[test]
fn constant_non_finite_result() {
    let src = with(
        "der = \"-(a/A)*sqrt(2*981*h) + 3.3*v/A\"",
        "der = \"ln(0)\"",
    );
    assert_eq!(
        problems(&src),
        ["17:8: this expression is constant and evaluates to -inf"]
    );
}

#[test]
fn init_outside_range() {
    let src = with("init = 10.0", "init = 25.0");
    assert_eq!(
        problems(&src),
        ["15:8: `init` of state `h` is 25, outside its range [0, 20]"]
    );
}

#[test]
fn syntax_errors_inside_expressions() {
    let src = with("3.3*v/A", "3.3*v/");
    assert_eq!(
        problems(&src),
        ["17:37: expected a value, found the end of the expression"]
    );
}

#[test]
fn toml_errors_are_located() {
    let src = with("step = 0.1", "step = ");
    let p = problems(&src);
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("4:8: invalid TOML"), "{p:?}");
}

#[test]
fn missing_and_unknown_keys() {
    let src = with("noise = 0.05\n", "");
    assert_eq!(problems(&src), ["20:1: [outputs.y] is missing `noise`"]);
    let src = with("noise = 0.05", "noise = 0.05\nnosie = 1");
    let p = problems(&src);
    assert_eq!(p.len(), 1);
    assert!(
        p[0].starts_with("22:1: unknown key `nosie` in [outputs.y]"),
        "{p:?}"
    );
    let src = with("[params]", "[parms]");
    let p = problems(&src);
    assert!(
        p.iter()
            .any(|x| x.starts_with("6:2: unknown key `parms` in the file")),
        "{p:?}"
    );
}

#[test]
fn wrong_value_types() {
    let src = with("step = 0.1", "step = \"fast\"");
    assert_eq!(
        problems(&src),
        ["4:8: `step` must be a number, found a string"]
    );
    let src = with("range = [0.0, 20.0]", "range = [20.0, 0.0]");
    assert_eq!(
        problems(&src),
        ["16:9: `range` must have its low end below its high end"]
    );
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let src = with("3.3*v/A", "3.3*volts/B")
        .replacen("init = 10.0", "init = -1", 1)
        .replacen("noise = 0.05", "noise = 0", 1);
    let p = problems(&src);
    assert_eq!(p.len(), 4, "{p:?}");
    assert!(p[0].starts_with("15:8: `init`"));
    assert!(p[1].contains("`volts`"));
    assert!(p[2].contains("`B`"));
    assert!(p[3].starts_with("21:9: `noise` must be greater than 0"));
}

const BIND: &str = r#"
[bind.modbus]
unit_id = 1
[bind.modbus.y]
table = "input"
address = 0
scale = 0.01
[bind.modbus.v]
table = "holding"
address = 0
"#;

#[test]
fn bindings_are_accepted_when_consistent() {
    let m = Model::parse("t.twin", &format!("{BASE}{BIND}")).expect("valid");
    let map = m.modbus.expect("bound");
    assert_eq!(map.points.len(), 2);
}

#[test]
fn bindings_that_overlap() {
    let src = format!(
        "{BASE}{}",
        BIND.replace("table = \"holding\"", "table = \"input\"")
    );
    let p = problems(&src);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].ends_with("`v` overlaps `y` in the input table at address 0"),
        "{p:?}"
    );
    let two_words = BIND
        .replace("address = 0\nscale", "address = 0\nwords = 2\nscale")
        .replace(
            "table = \"holding\"\naddress = 0",
            "table = \"input\"\naddress = 1",
        );
    let p = problems(&format!("{BASE}{two_words}"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("overlaps"), "{p:?}");
}

#[test]
fn bindings_to_undeclared_channels() {
    let src = format!(
        "{BASE}{}",
        BIND.replace("[bind.modbus.v]", "[bind.modbus.pump]")
    );
    let p = problems(&src);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].ends_with("binding `pump` points at no declared input or output"),
        "{p:?}"
    );
}

#[test]
fn binding_values_are_validated() {
    let src = format!(
        "{BASE}{}",
        BIND.replace("table = \"holding\"", "table = \"register\"")
    );
    assert!(problems(&src)[0].contains("unknown Modbus table `register`"));
    let src = format!(
        "{BASE}{}",
        BIND.replace("address = 0\n\"", "address = 70000\n\"")
            .replace(
                "[bind.modbus.v]\ntable = \"holding\"\naddress = 0",
                "[bind.modbus.v]\ntable = \"holding\"\naddress = 70000"
            )
    );
    assert!(problems(&src)[0].contains("`address` must be a whole number from 0 to 65535"));
    let src = format!("{BASE}{}", BIND.replace("scale = 0.01", "scale = 0"));
    assert!(problems(&src)[0].contains("`scale` must not be 0"));
}

#[test]
fn detect_settings_must_name_outputs() {
    let src = format!("{BASE}\n[detect.h]\ncusum_drift = 0.5\n");
    let p = problems(&src);
    assert_eq!(p.len(), 1);
    assert!(
        p[0].contains("`[detect.h]` names no declared output"),
        "{p:?}"
    );
}

#[test]
fn names_must_be_identifiers_and_not_reserved() {
    let src = with("[params]\n", "[params]\n\"two words\" = 1\nsqrt = 2\n");
    let p = problems(&src);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].contains("is not a valid name"));
    assert!(p[1].contains("`sqrt` is a reserved word"));
}
