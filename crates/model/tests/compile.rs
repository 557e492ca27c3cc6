//! What the compiler does to a model: constants folded, common
//! subexpressions computed once, multiply-adds fused.

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use twinshield_model::Model;

fn model(der: &str) -> Model {
    let src = format!(
        "[twin]\nname = \"c\"\nversion = \"1\"\nstep = 0.1\n\
         [params]\na = 0.071\nA = 28.0\n\
         [inputs.v]\nrange = [0.0, 10.0]\n\
         [states.h]\ninit = 1.0\nrange = [0.0, 20.0]\nder = \"{der}\"\n\
         [outputs.y]\nexpr = \"h\"\nnoise = 1\n"
    );
    Model::parse("c.twin", &src).expect("valid model")
}

#[test]
fn parameter_arithmetic_is_folded_into_one_constant() {
    // (a/A) * 2 * h: the parameter arithmetic is done at compile time.
    let m = model("(a/A) * 2 * (h + 0)");
    let p = m.derivative_program();
    // h + 0 stays (it is not h for h = -0), the rest is one multiplication.
    assert_eq!(p.len(), 2, "{p:?}");
}

#[test]
fn common_subexpressions_are_computed_once() {
    let once = model("sqrt(2*h)");
    let twice = model("sqrt(2*h) + sqrt(h*2) * v");
    // The second adds only a fused multiply-add: `sqrt(h*2)` is `sqrt(2*h)`.
    assert_eq!(
        twice.derivative_program().len(),
        once.derivative_program().len() + 1
    );
}

#[test]
fn multiply_add_is_fused() {
    let m = model("a*h + v");
    assert_eq!(m.derivative_program().len(), 1);
    let m = model("v - a*h");
    assert_eq!(m.derivative_program().len(), 1);
}

#[test]
fn outputs_that_are_states_need_no_code() {
    let m = model("-h");
    assert!(m.output_program().is_empty());
}
