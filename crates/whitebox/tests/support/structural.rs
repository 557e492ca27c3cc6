//! Structural attacks on the first round of a table network, reading the
//! tables (not traces): the translation attack that broke v2 (issue 18), the
//! collision attack of Lepoint, Rivain, De Mulder, Roelse and Preneel
//! ("Two Attacks on a White-Box AES Implementation", SAC 2013), generalised
//! to unknown 8×8 linear mixing, and the decisive steps of the
//! Billet–Gilbert–Ech-Chatbi attack ("Cryptanalysis of a White Box AES
//! Implementation", SAC 2004): a round output byte's encoding recovered up
//! to an affine map from its group of translations, then the key byte from
//! the affine equivalence of what is left with the S-box.
//!
//! Each attack sees a construction only through [`Round1`], what an
//! attacker computes by walking the tables from a chosen plaintext (the
//! input encoding's tables are in the image, so round 1 is reached from
//! plain bytes). Words are numbered by ShiftRows position `i = 4c + k` in
//! column `c`; the plain byte word `i` reads is key byte `SHIFT_ROWS_SRC[i]`.

use twinshield_whitebox::aes_ref::{INV_SBOX, MIX, SBOX, SHIFT_ROWS_SRC, gmul};

/// What the attacks read of a construction's first round.
pub trait Round1 {
    /// The byte-wide type II table of word `i`, row `m`, on the plain byte
    /// `x` (`None`: the construction has no byte-wide type II tables).
    fn tbox(&self, i: usize, m: usize, x: u8) -> Option<u8>;
    /// The encoded sum of words `4c + 2h` and `4c + 2h + 1` of `column`
    /// `c`, row `row`, on their plain bytes `x` (first XOR level).
    fn partial(&self, column: usize, row: usize, half: usize, x: (u8, u8)) -> u8;
    /// Round 1's encoded output byte `4c + row`, on the plain bytes `x` of
    /// words `4c + 2h` and `4c + 2h + 1`, every other input byte 0.
    fn output(&self, column: usize, row: usize, half: usize, x: (u8, u8)) -> u8;
}

/// Key bytes an attack recovered (by key byte index), and how it fared.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// Per key byte: the value the attack settled on, if it settled.
    pub bytes: [Option<u8>; 16],
    /// A figure of the attack (relations, candidates, groups found).
    pub found: usize,
}

impl Recovered {
    /// Key bytes recovered correctly.
    pub fn correct(&self, key: &[u8; 16]) -> usize {
        (0..16).filter(|&j| self.bytes[j] == Some(key[j])).count()
    }

    /// Key bytes the attack settled on, right or wrong.
    pub fn settled(&self) -> usize {
        self.bytes.iter().filter(|b| b.is_some()).count()
    }
}

fn invert(t: &[u8; 256]) -> Option<[u8; 256]> {
    let mut inv = [0u8; 256];
    let mut seen = [false; 256];
    for (x, &y) in (0u8..=255).zip(t) {
        if std::mem::replace(&mut seen[usize::from(y)], true) {
            return None;
        }
        inv[usize::from(y)] = x;
    }
    Some(inv)
}

/// The translation attack (the v2 break): for two round-1 type II tables
/// with the same coefficient, `T_b^-1 ∘ T_a` is `x ↦ x ^ k_a ^ k_b` when
/// they share an output encoding. The relations leave one byte per
/// connected set of key bytes; it is pinned by the conjugation of the
/// encoding with the multiplication by 3 (`T_3 ∘ T_1^-1` for two rows of
/// one word, when they share an encoding), which fixes the encoding up to a
/// scale, and the key byte with it.
pub fn translation_attack(r1: &dyn Round1) -> Recovered {
    let Some(tables) = tbox_tables(r1) else {
        return Recovered::default();
    };
    let mut relations = Relations::new();
    let mut found = 0;
    for a in &tables {
        for b in &tables {
            let (Some(inv), true) = (invert(&b.2), a.1 == b.1 && a.0 != b.0) else {
                continue;
            };
            let delta = inv[usize::from(a.2[0])];
            if (0..256).all(|x| inv[usize::from(a.2[x])] == x as u8 ^ delta) {
                found += 1;
                relations.link((a.0, b.0), delta);
            }
        }
    }
    let mut result = Recovered {
        found,
        ..Recovered::default()
    };
    for (i, &src) in SHIFT_ROWS_SRC.iter().enumerate() {
        if let Some(k) = pin_by_conjugation(r1, i) {
            let (root, d) = (relations.root[src], relations.diff[src]);
            for j in (0..16).filter(|&j| relations.root[j] == root) {
                result.bytes[j] = Some(k ^ d ^ relations.diff[j]);
            }
        }
    }
    result
}

/// Round-1 byte tables as (key byte, coefficient, table).
fn tbox_tables(r1: &dyn Round1) -> Option<Vec<(usize, u8, [u8; 256])>> {
    let mut tables = Vec::with_capacity(64);
    for i in 0..16 {
        for (m, row) in MIX.iter().enumerate() {
            let mut t = [0u8; 256];
            for (x, e) in (0u8..=255).zip(t.iter_mut()) {
                *e = r1.tbox(i, m, x)?;
            }
            tables.push((SHIFT_ROWS_SRC[i], row[i % 4], t));
        }
    }
    Some(tables)
}

/// Each key byte's set (a root byte) and its difference to the root's
/// byte: `k_j = k_root[j] ^ diff[j]`.
struct Relations {
    root: [usize; 16],
    diff: [u8; 16],
}

impl Relations {
    fn new() -> Self {
        Self {
            root: std::array::from_fn(|j| j),
            diff: [0; 16],
        }
    }

    /// Records `k_a ^ k_b = delta`.
    fn link(&mut self, (a, b): (usize, usize), delta: u8) {
        let (ra, rb) = (self.root[a], self.root[b]);
        if ra == rb {
            return;
        }
        // k_rb = k_b ^ db = k_a ^ delta ^ db = k_ra ^ da ^ delta ^ db.
        let shift = self.diff[a] ^ delta ^ self.diff[b];
        for j in 0..16 {
            if self.root[j] == rb {
                self.root[j] = ra;
                self.diff[j] ^= shift;
            }
        }
    }
}

/// The key byte of word `i`, if its rows with coefficients 1 and 3 share an
/// output encoding `E`: then `T_3 ∘ T_1^-1 = E ∘ (×3) ∘ E^-1`, whose orbit
/// from a nonzero point gives `E^-1` up to a scale λ, and `E^-1(T_1(x)) =
/// λ·S(x ^ k)` holds for one `k` only.
fn pin_by_conjugation(r1: &dyn Round1, i: usize) -> Option<u8> {
    let row_of = |c: u8| MIX.iter().position(|row| row[i % 4] == c);
    let table = |m: usize| -> Option<[u8; 256]> {
        let mut t = [0u8; 256];
        for (x, e) in (0u8..=255).zip(t.iter_mut()) {
            *e = r1.tbox(i, m, x)?;
        }
        Some(t)
    };
    let (t1, t3) = (table(row_of(1)?)?, table(row_of(3)?)?);
    let inv1 = invert(&t1)?;
    let pi: Vec<u8> = (0..256).map(|e| t3[usize::from(inv1[e])]).collect();
    let zero = (0..256).find(|&e| usize::from(pi[e]) == e)?;
    let start = if zero == 0 { 1 } else { 0 };
    let mut dec = [0u8; 256];
    let (mut e, mut power) = (start, 1u8);
    for _ in 0..255 {
        dec[e] = power;
        e = usize::from(pi[e]);
        power = gmul(power, 3);
    }
    if e != start || (0..256).filter(|&x| usize::from(pi[x]) == x).count() != 1 {
        return None; // not a conjugate of ×3: no shared encoding
    }
    dec[zero] = 0;
    let candidates: Vec<u8> = (0u8..=255)
        .filter(|&k| {
            let ratio = |x: u8| {
                (
                    dec[usize::from(t1[usize::from(x)])],
                    SBOX[usize::from(x ^ k)],
                )
            };
            let (d0, s0) = ratio(0);
            (0u8..=255).all(|x| {
                let (d, s) = ratio(x);
                gmul(d, s0) == gmul(d0, s)
            })
        })
        .collect();
    match candidates.as_slice() {
        [k] => Some(*k),
        _ => None,
    }
}

/// GF(2) rank of 16-bit vectors, built one at a time.
#[derive(Default)]
struct Rank {
    basis: [u16; 16],
    rank: usize,
}

impl Rank {
    fn insert(&mut self, mut v: u16) {
        for bit in (0..16).rev() {
            if v >> bit & 1 == 0 {
                continue;
            }
            if self.basis[bit] == 0 {
                self.basis[bit] = v;
                self.rank += 1;
                return;
            }
            v ^= self.basis[bit];
        }
    }
}

/// Collision pairs of the first-level sum of a column half: inputs with
/// the same encoded output.
fn collisions(r1: &dyn Round1, column: usize, half: usize, count: usize) -> Vec<[(u8, u8); 2]> {
    let mut first: Vec<Option<(u8, u8)>> = vec![None; 256];
    let mut pairs = Vec::with_capacity(count);
    // Inputs in an order that spreads the pairs over many outputs.
    for n in 0..65536u32 {
        let x = (
            (n.wrapping_mul(40503) >> 8) as u8,
            n.wrapping_mul(40503) as u8,
        );
        let y = usize::from(r1.partial(column, 0, half, x));
        match first[y] {
            Some(f) if f != x => pairs.push([f, x]),
            Some(_) => {}
            None => first[y] = Some(x),
        }
        if pairs.len() == count {
            break;
        }
    }
    pairs
}

/// The collision attack on one column half: for collisions `(x, x')` of
/// `A·S(x0 ^ k0) ^ B·S(x1 ^ k1)` (under any byte encoding, any 8×8 `A` and
/// `B`), the differences `(ΔS0, ΔS1)` of the right guess lie in the kernel
/// of `[A | B]` (rank at most 8 when `[A | B]` has full rank); a wrong
/// guess spans all 16 dimensions. Returns the unique lowest-rank guess.
pub fn collision_half(r1: &dyn Round1, column: usize, half: usize) -> Option<(u8, u8)> {
    let pairs = collisions(r1, column, half, 48);
    let mut best: Option<((u8, u8), usize)> = None;
    let mut ties = 0;
    for g0 in 0u8..=255 {
        for g1 in 0u8..=255 {
            let mut rank = Rank::default();
            for [x, y] in &pairs {
                let d0 = SBOX[usize::from(x.0 ^ g0)] ^ SBOX[usize::from(y.0 ^ g0)];
                let d1 = SBOX[usize::from(x.1 ^ g1)] ^ SBOX[usize::from(y.1 ^ g1)];
                rank.insert(u16::from(d0) | (u16::from(d1) << 8));
                if rank.rank == 16 {
                    break;
                }
            }
            match best {
                Some((_, r)) if rank.rank > r => {}
                Some((_, r)) if rank.rank == r => ties += 1,
                _ => {
                    best = Some(((g0, g1), rank.rank));
                    ties = 0;
                }
            }
        }
    }
    best.filter(|&(_, r)| r < 16 && ties == 0).map(|(g, _)| g)
}

/// The collision attack on every column half: all 16 key bytes when it
/// works.
pub fn collision_attack(r1: &dyn Round1) -> Recovered {
    let mut result = Recovered::default();
    for column in 0..4 {
        for half in 0..2 {
            if let Some((k0, k1)) = collision_half(r1, column, half) {
                let i = 4 * column + 2 * half;
                result.bytes[SHIFT_ROWS_SRC[i]] = Some(k0);
                result.bytes[SHIFT_ROWS_SRC[i + 1]] = Some(k1);
                result.found += 1;
            }
        }
    }
    result
}

/// BGE's first phase on one round-1 output byte: `f_b = G(·, b)` are
/// bijections and `f_b ∘ f_0^-1 = P ∘ (⊕δ_b) ∘ P^-1` for the output
/// encoding `P`: a group of translations conjugated by `P`. Labelling the
/// encoded bytes by the group's action gives `P^-1` up to an affine map.
/// Returns that decoding, or `None` if the maps are not such a group.
pub fn encoding_up_to_affine(g: &dyn Fn(u8, u8) -> u8) -> Option<[u8; 256]> {
    let f = |b: u8| -> [u8; 256] { std::array::from_fn(|x| g(x as u8, b)) };
    let inv0 = invert(&f(0))?;
    let mut label: [Option<u8>; 256] = [None; 256];
    let e0 = 0usize;
    label[e0] = Some(0);
    let mut generators: Vec<(Vec<u8>, u8)> = Vec::new();
    for b in 1u8..=255 {
        let fb = f(b);
        let gb: Vec<u8> = (0..256).map(|e| fb[usize::from(inv0[e])]).collect();
        if label[usize::from(gb[e0])].is_some() {
            continue;
        }
        let bit = 1u8 << generators.len();
        let labelled: Vec<(usize, u8)> =
            (0..256).filter_map(|e| label[e].map(|l| (e, l))).collect();
        for (e, l) in labelled {
            label[usize::from(gb[e])] = Some(l ^ bit);
        }
        generators.push((gb, bit));
        if generators.len() == 8 {
            break;
        }
    }
    let dec: [u8; 256] = std::array::from_fn(|e| label[e].unwrap_or(0));
    // The premise: every generator acts on the labels as a translation.
    let consistent = label.iter().all(Option::is_some)
        && generators
            .iter()
            .all(|(gb, bit)| (0..256).all(|e| dec[usize::from(gb[e])] == dec[e] ^ bit));
    consistent.then_some(dec)
}

/// Whether `f` is affine over GF(2)^8.
pub fn is_affine(f: &[u8; 256]) -> bool {
    let c = f[0];
    let basis: [u8; 8] = std::array::from_fn(|i| f[1 << i] ^ c);
    (0..256usize).all(|x| {
        let linear = (0..8)
            .filter(|i| x >> i & 1 == 1)
            .fold(0, |a, i| a ^ basis[i]);
        f[x] ^ c == linear
    })
}

/// The key byte `k` for which `y ↦ h(S^-1(y) ^ k)` is affine, if one only.
fn affine_key(h: &[u8; 256]) -> Option<u8> {
    let candidates: Vec<u8> = (0u8..=255)
        .filter(|&k| {
            let f: [u8; 256] = std::array::from_fn(|y| h[usize::from(INV_SBOX[y] ^ k)]);
            is_affine(&f)
        })
        .collect();
    match candidates.as_slice() {
        [k] => Some(*k),
        _ => None,
    }
}

/// BGE on round 1: per column half, the output byte's encoding up to
/// affine, then each of the two key bytes by affine equivalence with the
/// S-box (`dec(G(x, 0)) = A(c·S(x ^ k) ^ β)`).
pub fn bge_attack(r1: &dyn Round1) -> Recovered {
    let mut result = Recovered::default();
    for column in 0..4 {
        for half in 0..2 {
            let g = |x0: u8, x1: u8| r1.output(column, 0, half, (x0, x1));
            let Some(dec) = encoding_up_to_affine(&g) else {
                continue;
            };
            result.found += 1;
            let h0: [u8; 256] = std::array::from_fn(|x| dec[usize::from(g(x as u8, 0))]);
            let h1: [u8; 256] = std::array::from_fn(|x| dec[usize::from(g(0, x as u8))]);
            let i = 4 * column + 2 * half;
            result.bytes[SHIFT_ROWS_SRC[i]] = affine_key(&h0);
            result.bytes[SHIFT_ROWS_SRC[i + 1]] = affine_key(&h1);
        }
    }
    result
}
