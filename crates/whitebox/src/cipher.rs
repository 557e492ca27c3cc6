//! Evaluation of twinshield's white-box AES-128 over a table image (see
//! [`crate::generate`] for the construction, [`crate::layout`] for the
//! image).
//!
//! Besides the table network itself, evaluation adds what only runtime
//! randomness can give: each round of each lane reads its type II tables
//! in a fresh random order (and round 1 computes its XOR trees in one),
//! and round 1 makes dummy reads of random entries, so that a given
//! position of a trace is a different table read from one evaluation to
//! the next. The randomness comes from a generator seeded from the
//! operating system; it changes the order of the reads, never the result.

use std::sync::atomic::{AtomicU64, Ordering};
use twinshield_shield_macros::diversify;

use crate::aes_ref::SHIFT_ROWS_SRC;
use crate::layout;
use crate::trace::{NoTrace, Recorder};

/// Dummy table reads per lane in round 1.
pub const DUMMY_READS: usize = 4;

/// Table values read in round 1 by one lane: 64 type II reads, 48 XOR
/// reads, and the dummy reads.
pub const SAMPLES_PER_LANE_ROUND: usize = 64 + 48 + DUMMY_READS;

/// Table values read per middle round (AES rounds 2 to 9) and lane: 16
/// type II words (4 bytes each), 96 XOR reads, 16 type III words, 96 XOR
/// reads.
pub const SAMPLES_PER_MIDDLE_ROUND: usize = 16 * 4 + 96 + 16 * 4 + 96;

/// Table values read up to the end of round 1 (the 16 input-encoding reads
/// and round 1 of both lanes): the window in which first-round S-box
/// outputs are computed, where DCA looks.
pub const FIRST_ROUND_SAMPLES: usize = 16 + layout::LANES * SAMPLES_PER_LANE_ROUND;

/// Table values read per evaluation (the length of one trace).
pub const TRACE_LEN: usize = FIRST_ROUND_SAMPLES
    + layout::MIDDLE_ROUNDS * layout::LANES * SAMPLES_PER_MIDDLE_ROUND
    + layout::LANES * 16
    + 16;

/// Why a table image was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TablesError {
    /// The image is not [`layout::TOTAL`] bytes long.
    #[error("white-box table image is {found} bytes, expected {expected}")]
    Length {
        /// Bytes found.
        found: usize,
        /// Bytes expected.
        expected: usize,
    },
}

/// A fault injected into one evaluation (attack harness only): the state
/// byte `position` is XORed with `xor` at the start of AES round 9, in the
/// lanes named.
#[cfg(feature = "trace")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// State byte (0 to 15).
    pub position: usize,
    /// Value XORed into the encoded byte.
    pub xor: u8,
    /// Fault the first lane.
    pub first_lane: bool,
    /// Fault the second lane.
    pub second_lane: bool,
}

/// Shipped builds have no fault hook: the type of "no fault possible".
#[cfg(not(feature = "trace"))]
enum Fault {}

/// twinshield's white-box AES-128 (encryption) over a table image.
pub struct WhiteBox<'t> {
    tables: &'t [u8; layout::TOTAL],
    /// Generator state of the read order (not a secret: it decides only
    /// the order of reads).
    order: AtomicU64,
}

#[diversify]
impl<'t> WhiteBox<'t> {
    /// Evaluates the table image `tables` (as [`crate::generate::generate`]
    /// writes it).
    ///
    /// # Errors
    /// [`TablesError::Length`] if the image has the wrong length.
    pub fn new(tables: &'t [u8]) -> Result<Self, TablesError> {
        let tables = tables.try_into().map_err(|_| TablesError::Length {
            found: tables.len(),
            expected: layout::TOTAL,
        })?;
        Ok(Self::from_image(tables))
    }

    /// Evaluates a table image whose length the type guarantees.
    #[must_use]
    pub fn from_image(tables: &'t [u8; layout::TOTAL]) -> Self {
        let mut seed = [0u8; 8];
        // Without OS randomness the order still varies per evaluation (the
        // counter below), only predictably: never a reason to fail.
        if getrandom::fill(&mut seed).is_err() {
            seed = (std::ptr::from_ref(tables) as usize as u64).to_le_bytes();
        }
        Self {
            tables,
            order: AtomicU64::new(u64::from_le_bytes(seed)),
        }
    }

    /// Seeds the read-order generator (attack harness only: makes traced
    /// runs reproducible; shipped builds always seed it from the OS).
    #[cfg(feature = "trace")]
    #[must_use]
    pub fn with_read_order_seed(self, seed: u64) -> Self {
        Self {
            order: AtomicU64::new(seed),
            ..self
        }
    }

    /// Encrypts one block; the result is under the external output encoding
    /// (the plain AES output never exists).
    #[must_use]
    pub fn encrypt_encoded(&self, block: &[u8; 16]) -> [u8; 16] {
        self.eval(block, &mut NoTrace, None)
    }

    /// Encrypts one block, appending every table value read to `trace`
    /// ([`TRACE_LEN`] values; the first [`FIRST_ROUND_SAMPLES`] are the first
    /// round's, both lanes).
    #[cfg(feature = "trace")]
    pub fn encrypt_traced(&self, block: &[u8; 16], trace: &mut crate::Trace) -> [u8; 16] {
        self.eval(block, trace, None)
    }

    /// Encrypts one block with `fault` injected (attack harness only).
    #[cfg(feature = "trace")]
    #[must_use]
    pub fn encrypt_faulted(&self, block: &[u8; 16], fault: Fault) -> [u8; 16] {
        self.eval(block, &mut NoTrace, Some(fault))
    }

    #[cfg(feature = "trace")]
    fn inject(state: &mut [[u8; 16]; layout::LANES], fault: Option<&Fault>) {
        if let Some(f) = fault {
            let [first, second] = state;
            for (hit, lane) in [(f.first_lane, first), (f.second_lane, second)] {
                if hit {
                    lane[f.position % 16] ^= f.xor;
                }
            }
        }
    }

    #[inline(always)]
    fn eval<R: Recorder>(&self, block: &[u8; 16], rec: &mut R, fault: Option<Fault>) -> [u8; 16] {
        #[cfg(not(feature = "trace"))]
        let _ = fault;
        let mut rng = Order::new(
            self.order
                .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed),
        );
        let mut encoded = [0u8; 16];
        for i in rng.permutation() {
            encoded[i] = self.tables[layout::input(i) + usize::from(block[i])];
            rec.record(encoded[i]);
        }
        let mut state = [encoded; layout::LANES];
        for (lane, s) in state.iter_mut().enumerate() {
            self.first_round(lane, s, &mut rng, rec);
        }
        for r in 0..layout::MIDDLE_ROUNDS {
            // Middle round 7 is AES round 9, where the fault hook strikes.
            #[cfg(feature = "trace")]
            if r == layout::MIDDLE_ROUNDS - 1 {
                Self::inject(&mut state, fault.as_ref());
            }
            for (lane, s) in state.iter_mut().enumerate() {
                self.middle_round(lane, r, s, &mut rng, rec);
            }
        }
        self.last_and_combine(&state, &mut rng, rec)
    }

    /// Round 1 of `lane` on the encoded state `s`, in a random order, with
    /// dummy reads.
    #[inline(always)]
    fn first_round<R: Recorder>(
        &self,
        lane: usize,
        s: &mut [u8; 16],
        rng: &mut Order,
        rec: &mut R,
    ) {
        let t = self.tables;
        // words[i][m]: type II output byte m of ShiftRows position i.
        let mut words = [[0u8; 4]; 16];
        for i in rng.permutation() {
            let x = usize::from(s[SHIFT_ROWS_SRC[i]]);
            for (m, w) in words[i].iter_mut().enumerate() {
                *w = t[layout::r1_type2(lane, i, m) + x];
                rec.record(*w);
            }
        }
        let mut sink = 0u8;
        for _ in 0..DUMMY_READS {
            let (i, m, x) = rng.table_entry();
            let v = t[layout::r1_type2(lane, i, m) + x];
            rec.record(v);
            sink ^= v;
        }
        // Keeps the dummy reads: without a use the optimiser drops them.
        std::hint::black_box(sink);
        for p in rng.permutation() {
            let (c, m) = (p / 4, p % 4);
            let w = |k: usize| usize::from(words[4 * c + k][m]);
            let a = t[layout::r1_xor(lane, p, 0) + ((w(0) << 8) | w(1))];
            rec.record(a);
            let b = t[layout::r1_xor(lane, p, 1) + ((w(2) << 8) | w(3))];
            rec.record(b);
            s[p] = t[layout::r1_xor(lane, p, 2) + ((usize::from(a) << 8) | usize::from(b))];
            rec.record(s[p]);
        }
    }

    /// The 32-bit entry `x` of the word table at `at`.
    #[inline(always)]
    fn word(&self, at: usize, x: u8) -> u32 {
        let i = at + 4 * usize::from(x);
        let t = self.tables;
        u32::from_le_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]])
    }

    /// Middle round `r` (AES round `r + 2`) of `lane`: Chow's type II, XOR,
    /// type III, XOR; the type II reads in a random order.
    #[inline(always)]
    fn middle_round<R: Recorder>(
        &self,
        lane: usize,
        r: usize,
        s: &mut [u8; 16],
        rng: &mut Order,
        rec: &mut R,
    ) {
        let mut words = [0u32; 16];
        for i in rng.permutation() {
            words[i] = self.word(layout::mid_type2(lane, r, i), s[SHIFT_ROWS_SRC[i]]);
            rec.record_u32(words[i]);
        }
        let columns = self.xor_stage(layout::mid_xor(lane, r, 0), &words, rec);
        for (i, word) in words.iter_mut().enumerate() {
            let byte = (columns[i / 4] >> (8 * (i % 4))) as u8;
            *word = self.word(layout::mid_type3(lane, r, i), byte);
            rec.record_u32(*word);
        }
        let columns = self.xor_stage(layout::mid_xor(lane, r, 1), &words, rec);
        for (chunk, column) in s.chunks_exact_mut(4).zip(columns) {
            chunk.copy_from_slice(&column.to_le_bytes());
        }
    }

    /// One stage of nibble XOR trees (tables from `at`): the sum of each
    /// column's four encoded words.
    #[inline(always)]
    fn xor_stage<R: Recorder>(&self, at: usize, words: &[u32; 16], rec: &mut R) -> [u32; 4] {
        let t = self.tables;
        let nib = |w: u32, n: usize| ((w >> (4 * n)) & 0x0f) as usize;
        std::array::from_fn(|column| {
            let w = &words[4 * column..4 * column + 4];
            (0..8).fold(0u32, |acc, n| {
                let x = at + (column * 8 + n) * 3 * layout::BYTE_TABLE;
                let a = t[x + ((nib(w[0], n) << 4) | nib(w[1], n))];
                rec.record(a);
                let b = t[x + layout::BYTE_TABLE + ((nib(w[2], n) << 4) | nib(w[3], n))];
                rec.record(b);
                let c = t[x + 2 * layout::BYTE_TABLE + ((usize::from(a) << 4) | usize::from(b))];
                rec.record(c);
                acc | (u32::from(c & 0x0f) << (4 * n))
            })
        })
    }

    /// The last round of both lanes and the combine tables.
    #[inline(always)]
    fn last_and_combine<R: Recorder>(
        &self,
        state: &[[u8; 16]; layout::LANES],
        rng: &mut Order,
        rec: &mut R,
    ) -> [u8; 16] {
        let t = self.tables;
        let mut outs = [[0u8; 16]; layout::LANES];
        for (lane, (out, s)) in outs.iter_mut().zip(state).enumerate() {
            for i in rng.permutation() {
                out[i] = t[layout::last(lane, i) + usize::from(s[SHIFT_ROWS_SRC[i]])];
                rec.record(out[i]);
            }
        }
        let [first, second] = outs;
        let mut out = [0u8; 16];
        for i in rng.permutation() {
            let index = (usize::from(first[i]) << 8) | usize::from(second[i]);
            out[i] = t[layout::combine(i) + index];
            rec.record(out[i]);
        }
        out
    }
}

/// The per-evaluation order generator (xorshift64*, seeded per evaluation
/// by a SplitMix64 step of the shared state).
struct Order(u64);

#[diversify]
impl Order {
    fn new(x: u64) -> Self {
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A uniformly random permutation of `0..16` (Fisher-Yates; the modulo
    /// bias over 64 bits is negligible).
    fn permutation(&mut self) -> [usize; 16] {
        let mut p: [usize; 16] = std::array::from_fn(|i| i);
        for i in (1..16).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            p.swap(i, j);
        }
        p
    }

    /// A random type II table entry: word, row, index.
    fn table_entry(&mut self) -> (usize, usize, usize) {
        let x = self.next();
        (
            (x & 15) as usize,
            ((x >> 4) & 3) as usize,
            ((x >> 8) & 255) as usize,
        )
    }
}
