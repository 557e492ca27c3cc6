//! The structural attacks of `support/structural.rs` on three
//! constructions: the textbook Chow fixture, the v2 construction the red
//! team broke (`legacy`), and the shipped construction (v3). Each test
//! prints what the attack recovered and asserts it: the fixtures fall
//! (the attacks work); on the shipped tables, what each attack achieves
//! today (docs/whitebox.md, "What still breaks it").
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stderr
)]

#[path = "support/structural.rs"]
mod structural;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use structural::{Recovered, Round1};
use twinshield_whitebox::aes_ref::SHIFT_ROWS_SRC;
use twinshield_whitebox::generate::generate;
use twinshield_whitebox::layout;
use twinshield_whitebox::legacy::{self, generate_v2};
use twinshield_whitebox::textbook::TextbookWhiteBox;

/// The shipped construction's tables, walked from plain bytes through the
/// input-encoding tables (lane 0).
struct Shipped(Vec<u8>);

impl Round1 for Shipped {
    fn tbox(&self, i: usize, m: usize, x: u8) -> Option<u8> {
        let e = self.0[layout::input(SHIFT_ROWS_SRC[i]) + usize::from(x)];
        Some(self.0[layout::r1_type2(0, i, m) + usize::from(e)])
    }

    fn partial(&self, column: usize, row: usize, half: usize, x: (u8, u8)) -> u8 {
        let i = 4 * column + 2 * half;
        let u = usize::from(self.tbox(i, row, x.0).unwrap());
        let v = usize::from(self.tbox(i + 1, row, x.1).unwrap());
        self.0[layout::r1_xor(0, 4 * column + row, half) + ((u << 8) | v)]
    }

    fn output(&self, column: usize, row: usize, half: usize, x: (u8, u8)) -> u8 {
        let pick = |h: usize| if h == half { x } else { (0, 0) };
        let a = usize::from(self.partial(column, row, 0, pick(0)));
        let b = usize::from(self.partial(column, row, 1, pick(1)));
        self.0[layout::r1_xor(0, 4 * column + row, 2) + ((a << 8) | b)]
    }
}

/// The v2 tables (plain input; one XOR table pair per round and lane).
struct Legacy(Vec<u8>);

impl Round1 for Legacy {
    fn tbox(&self, i: usize, m: usize, x: u8) -> Option<u8> {
        Some(self.0[legacy::layout::type2(0, 0, i, m) + usize::from(x)])
    }

    fn partial(&self, column: usize, row: usize, half: usize, x: (u8, u8)) -> u8 {
        let i = 4 * column + 2 * half;
        let u = usize::from(self.tbox(i, row, x.0).unwrap());
        let v = usize::from(self.tbox(i + 1, row, x.1).unwrap());
        self.0[legacy::layout::xor1(0, 0) + ((u << 8) | v)]
    }

    fn output(&self, column: usize, row: usize, half: usize, x: (u8, u8)) -> u8 {
        let pick = |h: usize| if h == half { x } else { (0, 0) };
        let a = usize::from(self.partial(column, row, 0, pick(0)));
        let b = usize::from(self.partial(column, row, 1, pick(1)));
        self.0[legacy::layout::xor2(0, 0) + ((a << 8) | b)]
    }
}

/// The textbook fixture (type II tables are 8 → 32 bits under `MB`: no
/// byte-wide T-box tables).
struct Textbook(TextbookWhiteBox);

impl Round1 for Textbook {
    fn tbox(&self, _: usize, _: usize, _: u8) -> Option<u8> {
        None
    }

    fn partial(&self, column: usize, row: usize, half: usize, x: (u8, u8)) -> u8 {
        self.0.first_round_partial(column, row, half, x)
    }

    fn output(&self, column: usize, row: usize, half: usize, x: (u8, u8)) -> u8 {
        let mut block = [0u8; 16];
        let i = 4 * column + 2 * half;
        block[SHIFT_ROWS_SRC[i]] = x.0;
        block[SHIFT_ROWS_SRC[i + 1]] = x.1;
        self.0.first_round_state(&block)[4 * column + row]
    }
}

/// A key and the three constructions generated for it.
fn constructions(seed: u64) -> ([u8; 16], Textbook, Legacy, Shipped) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let key: [u8; 16] = rng.random();
    let encoding_key: [u8; 16] = rng.random();
    let textbook = Textbook(TextbookWhiteBox::generate(&key, rng.random()));
    let legacy = Legacy(generate_v2(&key, &encoding_key, rng.random()));
    let shipped = Shipped(generate(&key, &encoding_key, rng.random()));
    (key, textbook, legacy, shipped)
}

fn report(attack: &str, target: &str, key: &[u8; 16], r: &Recovered) -> usize {
    let correct = r.correct(key);
    eprintln!(
        "{attack} on {target}: {correct}/16 key bytes recovered ({} settled, figure {})",
        r.settled(),
        r.found
    );
    correct
}

/// The v2 break: on v2 every round-1 table pair of a coefficient gives a
/// key-byte difference, and the conjugation pins the rest: the whole key.
/// On the shipped tables (own encoding per table) no pair composes to a
/// translation and no encoding is a conjugate: nothing.
#[test]
fn translation_attack_breaks_v2_and_nothing_of_the_shipped_tables() {
    let (key, textbook, legacy, shipped) = constructions(0x7a);
    let r = structural::translation_attack(&legacy);
    assert_eq!(report("translation", "v2 (legacy)", &key, &r), 16);
    assert!(r.found > 16, "{} translations", r.found);
    let r = structural::translation_attack(&shipped);
    assert_eq!(report("translation", "shipped v3", &key, &r), 0);
    assert_eq!((r.found, r.settled()), (0, 0));
    // Not applicable to the textbook fixture (8 → 32-bit type II tables,
    // each with its own encodings): nothing, as on the shipped tables.
    let r = structural::translation_attack(&textbook);
    assert_eq!(report("translation", "textbook", &key, &r), 0);
}

/// The collision attack (Lepoint et al., generalised to unknown 8×8
/// mixing) on round 1's first-level sums.
#[test]
fn collision_attack_on_round_1() {
    let (key, textbook, legacy, shipped) = constructions(0xc011);
    let r = structural::collision_attack(&textbook);
    assert_eq!(report("collision", "textbook", &key, &r), 16);
    let r = structural::collision_attack(&legacy);
    assert_eq!(report("collision", "v2 (legacy)", &key, &r), 16);
    // Known break of v3 (docs/whitebox.md): round 1's first-level sums
    // are reached from chosen plain bytes, whatever their encodings.
    let r = structural::collision_attack(&shipped);
    assert_eq!(report("collision", "shipped v3", &key, &r), 16);
}

/// BGE's decisive steps on round 1 (output encodings up to affine from the
/// translation group, key bytes by affine equivalence with the S-box).
#[test]
fn bge_attack_on_round_1() {
    let (key, textbook, legacy, shipped) = constructions(0xb6e);
    let r = structural::bge_attack(&textbook);
    assert_eq!(report("BGE", "textbook", &key, &r), 16);
    let r = structural::bge_attack(&legacy);
    assert_eq!(report("BGE", "v2 (legacy)", &key, &r), 16);
    // Known break of v3 (docs/whitebox.md), as the collision attack.
    let r = structural::bge_attack(&shipped);
    assert_eq!(report("BGE", "shipped v3", &key, &r), 16);
}

/// The attacks' premises fail on random tables: nothing recovered, so the
/// fixtures' results are the attacks', not the harness's.
#[test]
fn structural_attacks_find_nothing_in_random_tables() {
    struct Random(Vec<u8>);
    impl Round1 for Random {
        fn tbox(&self, i: usize, m: usize, x: u8) -> Option<u8> {
            Some(self.0[(i * 4 + m) * 256 + usize::from(x)])
        }
        fn partial(&self, c: usize, row: usize, h: usize, x: (u8, u8)) -> u8 {
            let at = 16384 + (((c * 4 + row) * 2 + h) % 4) * 65536;
            self.0[at + (usize::from(x.0) << 8 | usize::from(x.1))]
        }
        fn output(&self, c: usize, row: usize, h: usize, x: (u8, u8)) -> u8 {
            self.partial(c, row, h, x) ^ 0x5a
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0x2a);
    let key: [u8; 16] = rng.random();
    let random = Random((0..16384 + 4 * 65536).map(|_| rng.random()).collect());
    assert_eq!(structural::translation_attack(&random).settled(), 0);
    assert_eq!(structural::bge_attack(&random).settled(), 0);
    let r = structural::collision_half(&random, 0, 0);
    assert!(r.is_none_or(|(a, b)| (a, b) != (key[0], key[5])));
}
