//! Properties over generated input: the checker and VM never panic, compiled
//! programs compute exactly what the expression says, and bytecode survives
//! its wire encoding under any diversification seed.

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use proptest::prelude::*;
use twinshield_model::bytecode::{Encoding, Program};
use twinshield_model::vm::Machine;
use twinshield_model::{Model, Simulator};

/// A generated expression: its source text and, independently, its meaning
/// as a tree the test evaluates directly.
#[derive(Debug, Clone)]
enum E {
    Num(f64),
    Var(usize),
    Neg(Box<E>),
    Bin(&'static str, Box<E>, Box<E>),
    Call(&'static str, Vec<E>),
    Cmp(&'static str, Box<E>, Box<E>),
    If(Box<E>, Box<E>, Box<E>),
}

const VARS: [&str; 3] = ["x", "y", "u"];

impl E {
    fn text(&self) -> String {
        match self {
            // Parenthesised when negative: `-2^2` is `-(2^2)` in the language.
            E::Num(v) if *v < 0.0 => format!("({v:?})"),
            E::Num(v) => format!("{v:?}"),
            E::Var(i) => VARS[*i].to_owned(),
            E::Neg(a) => format!("(-{})", a.text()),
            E::Bin(op, a, b) => format!("({} {op} {})", a.text(), b.text()),
            E::Call(f, args) => {
                let a: Vec<String> = args.iter().map(E::text).collect();
                format!("{f}({})", a.join(", "))
            }
            E::Cmp(op, a, b) => format!("({} {op} {})", a.text(), b.text()),
            E::If(c, a, b) => format!("if({}, {}, {})", c.text(), a.text(), b.text()),
        }
    }

    fn eval(&self, env: &[f64; 3]) -> f64 {
        let b = |x: bool| if x { 1.0 } else { 0.0 };
        match self {
            E::Num(v) => *v,
            E::Var(i) => env[*i],
            E::Neg(a) => -a.eval(env),
            E::Bin(op, a, c) => {
                let (a, c) = (a.eval(env), c.eval(env));
                match *op {
                    "+" => a + c,
                    "-" => a - c,
                    "*" => a * c,
                    "/" => a / c,
                    _ => a.powf(c),
                }
            }
            E::Call(f, args) => {
                let v: Vec<f64> = args.iter().map(|a| a.eval(env)).collect();
                match *f {
                    "sqrt" => v[0].sqrt(),
                    "exp" => v[0].exp(),
                    "ln" => v[0].ln(),
                    "sin" => v[0].sin(),
                    "abs" => v[0].abs(),
                    "min" => v[0].min(v[1]),
                    "max" => v[0].max(v[1]),
                    _ => v[1].max(v[0].min(v[2])), // clamp
                }
            }
            E::Cmp(op, a, c) => {
                let (a, c) = (a.eval(env), c.eval(env));
                b(if *op == "<" { a < c } else { a >= c })
            }
            E::If(c, a, e) => {
                if c.eval(env) != 0.0 {
                    a.eval(env)
                } else {
                    e.eval(env)
                }
            }
        }
    }
}

fn num_expr() -> impl Strategy<Value = E> {
    let leaf = prop_oneof![
        prop_oneof![Just(0.0), Just(1.0), Just(2.0), -10.0..10.0f64].prop_map(E::Num),
        (0..3usize).prop_map(E::Var),
    ];
    leaf.prop_recursive(5, 40, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|a| E::Neg(Box::new(a))),
            (
                prop_oneof![Just("+"), Just("-"), Just("*"), Just("/"), Just("^")],
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(op, a, b)| E::Bin(op, Box::new(a), Box::new(b))),
            (
                prop_oneof![
                    Just("sqrt"),
                    Just("exp"),
                    Just("ln"),
                    Just("sin"),
                    Just("abs")
                ],
                inner.clone()
            )
                .prop_map(|(f, a)| E::Call(f, vec![a])),
            (
                prop_oneof![Just("min"), Just("max")],
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(f, a, b)| E::Call(f, vec![a, b])),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(a, b, c)| E::Call("clamp", vec![a, b, c])),
            (
                prop_oneof![Just("<"), Just(">=")],
                inner.clone(),
                inner.clone(),
                inner.clone(),
                inner
            )
                .prop_map(|(op, a, b, t, e)| E::If(
                    Box::new(E::Cmp(op, Box::new(a), Box::new(b))),
                    Box::new(t),
                    Box::new(e)
                )),
        ]
    })
}

fn model_with(der_x: &str, der_y: &str, out: &str) -> String {
    format!(
        "[twin]\nname = \"p\"\nversion = \"1\"\nstep = 0.1\n\
         [inputs.u]\nrange = [-5.0, 5.0]\n\
         [states.x]\ninit = 0.5\nrange = [-100.0, 100.0]\nder = \"{der_x}\"\n\
         [states.y]\ninit = 1.5\nrange = [-100.0, 100.0]\nder = \"{der_y}\"\n\
         [outputs.o]\nexpr = \"{out}\"\nnoise = 1\n"
    )
}

fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// The compiled program (folded, deduplicated, fused, register-allocated)
    /// computes what the expression tree says, for any inputs.
    #[test]
    fn compiled_programs_match_the_expression(
        e in num_expr(),
        env in prop::array::uniform3(-20.0..20.0f64),
    ) {
        let src = model_with(&e.text(), "0", "x");
        match Model::parse("p.twin", &src) {
            Ok(m) => {
                let prog = m.derivative_program();
                let mut vm = Machine::new(prog);
                let mut out = [0.0; 2];
                vm.eval(prog, &[env[2]], &[env[0], env[1]], &mut out).expect("shape");
                let want = e.eval(&env);
                prop_assert!(same(out[0], want), "{} at {:?}: vm {} want {}", e.text(), env, out[0], want);
            }
            Err(report) => {
                // The only reason to refuse a well-typed expression is a
                // constant one that is not finite (division by a constant 0).
                for d in report.diagnostics() {
                    prop_assert!(
                        d.message.contains("constant"),
                        "{} refused: {}", e.text(), d.message
                    );
                }
            }
        }
    }

    /// Whatever a model that passed the checker computes, simulating it
    /// never panics: it runs, or stops with a clear non-finite error.
    #[test]
    fn checked_models_never_panic_in_the_vm(a in num_expr(), b in num_expr(), c in num_expr(), u in -5.0..5.0f64) {
        let src = model_with(&a.text(), &b.text(), &c.text());
        if let Ok(m) = Model::parse("p.twin", &src) {
            let mut sim = Simulator::new(&m);
            let mut y = [0.0];
            for _ in 0..20 {
                match sim.step(&[u]) {
                    Ok(()) => sim.outputs(&[u], &mut y).expect("shape"),
                    Err(e) => {
                        prop_assert!(e.to_string().contains("became"), "{e}");
                        break;
                    }
                }
            }
        }
    }

    /// Arbitrary bytes never panic the checker, which refuses them (random
    /// bytes are never a model with a `[twin]` table, states and outputs)
    /// with a report that says something.
    #[test]
    fn arbitrary_bytes_never_panic_the_checker(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let src = String::from_utf8_lossy(&bytes);
        let result = Model::parse("fuzz.twin", &src);
        prop_assert!(result.is_err(), "accepted as a model: {src:?}");
        if let Err(report) = result {
            prop_assert!(!report.to_string().trim().is_empty());
        }
    }

    /// Well-formed TOML with wrong content (token soup for expressions,
    /// odd numbers and names, odd bindings) never panics the checker, and
    /// whatever it accepts simulates without panicking.
    #[test]
    fn wrong_models_never_panic(
        der in soup(),
        out in soup(),
        init in prop_oneof![Just("0".to_owned()), Just("-1e308".to_owned()), Just("\"x\"".to_owned()), (-50.0..50.0f64).prop_map(|v| format!("{v:?}"))],
        range in prop_oneof![Just("[0.0, 1.0]"), Just("[1.0, 0.0]"), Just("[]"), Just("[0, 1, 2]"), Just("\"wide\"")],
        name in prop_oneof![Just("x"), Just("y"), Just("u"), Just("sqrt"), Just("and"), Just("\"a b\""), Just("x1")],
        table in prop_oneof![Just("input"), Just("holding"), Just("coil"), Just("nope")],
        address in prop_oneof![Just(0i64), Just(1), Just(65535), Just(-1), Just(70000)],
        words in prop_oneof![Just(1i64), Just(2), Just(0), Just(3)],
    ) {
        let src = format!(
            "[twin]\nname = \"w\"\nversion = \"1\"\nstep = 0.1\n\
             [inputs.u]\nrange = [-5.0, 5.0]\n\
             [states.{name}]\ninit = {init}\nrange = {range}\nder = \"{der}\"\n\
             [outputs.o]\nexpr = \"{out}\"\nnoise = 1\n\
             [bind.modbus.o]\ntable = \"{table}\"\naddress = {address}\nwords = {words}\n\
             [bind.modbus.u]\ntable = \"{table}\"\naddress = 1\n"
        );
        if let Ok(m) = Model::parse("w.twin", &src) {
            let mut sim = Simulator::new(&m);
            for _ in 0..5 {
                if sim.step(&[1.0]).is_err() {
                    break;
                }
            }
        }
    }

    /// Bytecode round-trips through its wire encoding under any seed.
    #[test]
    fn bytecode_round_trips_under_any_encoding(seed in any::<u64>()) {
        let m = Model::parse("q.twin", include_str!("../../../models/quadtank.twin")).expect("valid");
        let enc = Encoding::from_seed(seed);
        for prog in [m.derivative_program(), m.output_program()] {
            let bytes = prog.encode(&enc);
            let back = Program::decode(&bytes, &enc).expect("decodes");
            // The same instructions, in a diversified order that computes
            // the same results bit for bit.
            prop_assert!(back.same_up_to_order(prog));
            let (mut va, mut vb) = (Machine::new(prog), Machine::new(&back));
            let (mut ra, mut rb) = (vec![0.0; prog.n_results()], vec![0.0; back.n_results()]);
            for k in 0..5 {
                let x = f64::from(k) * 1.7 + 0.3;
                let inputs = vec![x; prog.n_inputs()];
                let states = vec![2.0 * x + 1.0; prog.n_states()];
                va.eval(prog, &inputs, &states, &mut ra).expect("shape");
                vb.eval(&back, &inputs, &states, &mut rb).expect("shape");
                let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                prop_assert_eq!(bits(&ra), bits(&rb));
            }
        }
    }

    /// Arbitrary bytes never panic the decoder, and whatever it accepts
    /// runs without panicking.
    #[test]
    fn arbitrary_bytecode_never_panics(seed in any::<u64>(), body in prop::collection::vec(any::<u8>(), 0..300), n_in in 0u16..3, n_st in 0u16..3, n_regs in 0u16..40, n_consts in 0u16..4, n_code in 0u32..30, n_res in 0u16..4) {
        let enc = if seed % 2 == 0 { Encoding::identity() } else { Encoding::from_seed(seed) };
        let mut bytes = b"TSBC\x01".to_vec();
        for v in [n_in, n_st, n_regs, n_consts] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes.extend_from_slice(&n_code.to_le_bytes());
        bytes.extend_from_slice(&n_res.to_le_bytes());
        bytes.extend_from_slice(&body);
        if let Ok(p) = Program::decode(&bytes, &enc) {
            let mut vm = Machine::new(&p);
            let mut out = vec![0.0; p.n_results()];
            vm.eval(&p, &vec![1.0; p.n_inputs()], &vec![2.0; p.n_states()], &mut out).expect("shape");
        }
    }
}

/// Token soup: syntactically plausible but often wrong expressions.
fn soup() -> impl Strategy<Value = String> {
    let tok = prop_oneof![
        Just("x"),
        Just("y"),
        Just("u"),
        Just("q"),
        Just("1"),
        Just("0"),
        Just("2.5e3"),
        Just("+"),
        Just("-"),
        Just("*"),
        Just("/"),
        Just("^"),
        Just("("),
        Just(")"),
        Just(","),
        Just("<"),
        Just("=="),
        Just("and"),
        Just("not"),
        Just("if("),
        Just("sqrt("),
        Just("clamp("),
        Just("min("),
        Just("pow("),
        Just("1e999"),
        Just("."),
    ];
    prop::collection::vec(tok, 0..25).prop_map(|t| t.join(" "))
}

#[test]
fn diversified_encodings_change_the_bytes_not_the_program() {
    let m = Model::parse("q.twin", include_str!("../../../models/quadtank.twin")).expect("valid");
    let prog = m.derivative_program();
    let a = prog.encode(&Encoding::from_seed(1));
    let b = prog.encode(&Encoding::from_seed(2));
    assert_ne!(a, b);
    assert!(
        Program::decode(&a, &Encoding::from_seed(1))
            .expect("ok")
            .same_up_to_order(prog)
    );
    // The identity encoding keeps the compiled order.
    let plain = prog.encode(&Encoding::identity());
    assert_eq!(
        &Program::decode(&plain, &Encoding::identity()).expect("ok"),
        prog
    );
    // Decoding under the wrong encoding fails or yields another program;
    // it never yields this one.
    if let Ok(other) = Program::decode(&a, &Encoding::from_seed(2)) {
        assert!(!other.same_up_to_order(prog));
    }
}

/// The same model sealed twice (two bundle seeds) shares less than 5 % of
/// the 4-byte sequences of its payload: opcode numbers, operand and
/// constant masks, instruction order and the payload mask all differ.
#[test]
fn the_same_model_sealed_twice_shares_under_5_percent_of_its_4_byte_sequences() {
    use std::collections::HashSet;
    let m = Model::parse("q.twin", include_str!("../../../models/quadtank.twin")).expect("valid");
    let grams = |p: &[u8]| p.windows(4).map(<[u8]>::to_vec).collect::<HashSet<_>>();
    let mut worst = 0.0f64;
    for seed in 1..=10u64 {
        let a = grams(&m.to_payload(&Encoding::from_seed(seed)));
        let b = grams(&m.to_payload(&Encoding::from_seed(seed + 1000)));
        let shared = a.intersection(&b).count() as f64 / a.len() as f64;
        worst = worst.max(shared);
    }
    assert!(worst < 0.05, "{:.1}% shared", 100.0 * worst);
    // Without the diversification (identity encodings), everything is.
    let plain = grams(&m.to_payload(&Encoding::identity()));
    assert_eq!(plain, grams(&m.to_payload(&Encoding::identity())));
}
