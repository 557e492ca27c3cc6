//! The register bytecode the compiler emits and the VM runs, and its wire
//! encoding.
//!
//! Everything that decides how a program looks as bytes lives here, behind
//! [`Encoding`]: opcode numbering, operand masking and constant masking.
//! Per-bundle diversity changes the `Encoding`, never the compiler's front
//! end or the VM's semantics. Decoding validates every register reference,
//! so the VM cannot be driven out of bounds by any byte string.

// A parser of outside input: no indexing that can panic, no arithmetic
// that can overflow.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use crate::constants::Constants;
use thiserror::Error;
use twinshield_shield_macros::diversify;

/// An operation of the VM. Booleans are `1.0` (true) and `0.0` (false); any
/// non-zero value counts as true.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Op {
    /// `-a`
    Neg = 0,
    /// logical not
    Not,
    /// square root
    Sqrt,
    /// e^a
    Exp,
    /// natural logarithm
    Ln,
    /// base-10 logarithm
    Log10,
    /// sine
    Sin,
    /// cosine
    Cos,
    /// tangent
    Tan,
    /// absolute value
    Abs,
    /// -1, 0 or 1 by the sign of `a` (NaN stays NaN)
    Sign,
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `a ^ b`
    Pow,
    /// smaller of `a` and `b`
    Min,
    /// larger of `a` and `b`
    Max,
    /// `a < b`
    Lt,
    /// `a <= b`
    Le,
    /// `a > b`
    Gt,
    /// `a >= b`
    Ge,
    /// `a == b`
    Eq,
    /// `a != b`
    Ne,
    /// logical and
    And,
    /// logical or
    Or,
    /// `if a then b else c`
    Select,
    /// `a * b + c`
    MulAdd,
    /// `a * b - c`
    MulSub,
    /// `c - a * b`
    NegMulAdd,
}

/// How many operations the VM knows.
pub const OP_COUNT: usize = 30;

const ALL_OPS: [Op; OP_COUNT] = [
    Op::Neg,
    Op::Not,
    Op::Sqrt,
    Op::Exp,
    Op::Ln,
    Op::Log10,
    Op::Sin,
    Op::Cos,
    Op::Tan,
    Op::Abs,
    Op::Sign,
    Op::Add,
    Op::Sub,
    Op::Mul,
    Op::Div,
    Op::Pow,
    Op::Min,
    Op::Max,
    Op::Lt,
    Op::Le,
    Op::Gt,
    Op::Ge,
    Op::Eq,
    Op::Ne,
    Op::And,
    Op::Or,
    Op::Select,
    Op::MulAdd,
    Op::MulSub,
    Op::NegMulAdd,
];

#[inline]
fn truth(x: f64) -> bool {
    x != 0.0
}

#[inline]
fn boolean(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

#[diversify]
impl Op {
    /// How many operands the operation reads (1, 2 or 3).
    pub fn arity(self) -> usize {
        match self {
            Op::Neg
            | Op::Not
            | Op::Sqrt
            | Op::Exp
            | Op::Ln
            | Op::Log10
            | Op::Sin
            | Op::Cos
            | Op::Tan
            | Op::Abs
            | Op::Sign => 1,
            Op::Select | Op::MulAdd | Op::MulSub | Op::NegMulAdd => 3,
            _ => 2,
        }
    }

    /// The operation's meaning: the constant folder and the VM both call this,
    /// so folding can never disagree with execution.
    #[inline(always)]
    pub fn apply(self, a: f64, b: f64, c: f64) -> f64 {
        match self {
            Op::Neg => -a,
            Op::Not => boolean(!truth(a)),
            Op::Sqrt => a.sqrt(),
            Op::Exp => a.exp(),
            Op::Ln => a.ln(),
            Op::Log10 => a.log10(),
            Op::Sin => a.sin(),
            Op::Cos => a.cos(),
            Op::Tan => a.tan(),
            Op::Abs => a.abs(),
            Op::Sign => {
                if a > 0.0 {
                    1.0
                } else if a < 0.0 {
                    -1.0
                } else {
                    a * 0.0
                }
            }
            Op::Add => a + b,
            Op::Sub => a - b,
            Op::Mul => a * b,
            Op::Div => a / b,
            Op::Pow => a.powf(b),
            Op::Min => a.min(b),
            Op::Max => a.max(b),
            Op::Lt => boolean(a < b),
            Op::Le => boolean(a <= b),
            Op::Gt => boolean(a > b),
            Op::Ge => boolean(a >= b),
            Op::Eq => boolean(a == b),
            Op::Ne => boolean(a != b),
            Op::And => boolean(truth(a) && truth(b)),
            Op::Or => boolean(truth(a) || truth(b)),
            Op::Select => {
                if truth(a) {
                    b
                } else {
                    c
                }
            }
            Op::MulAdd => a * b + c,
            Op::MulSub => a * b - c,
            Op::NegMulAdd => c - a * b,
        }
    }

    fn from_index(i: usize) -> Option<Op> {
        ALL_OPS.get(i).copied()
    }
}

/// A register index.
pub type Reg = u16;

/// One instruction: `dst = op(a, b, c)`; unused operands are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instr {
    /// The operation.
    pub op: Op,
    /// Register written.
    pub dst: Reg,
    /// First operand register.
    pub a: Reg,
    /// Second operand register.
    pub b: Reg,
    /// Third operand register.
    pub c: Reg,
}

/// A compiled program over a register file laid out as
/// `[inputs | states | constants | temporaries]`.
///
/// A `Program` is always valid: the compiler builds valid ones and
/// [`Program::decode`] checks every byte string before it becomes one.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub(crate) n_inputs: u16,
    pub(crate) n_states: u16,
    pub(crate) consts: Constants,
    pub(crate) n_regs: u16,
    pub(crate) code: Vec<Instr>,
    pub(crate) results: Vec<Reg>,
}

/// Why a byte string is not a valid program.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The bytes end before the program does.
    #[error("program is truncated")]
    Truncated,
    /// The bytes do not start with the program magic.
    #[error("not a twinshield program")]
    BadMagic,
    /// A format version this runtime does not read.
    #[error("unsupported program format version {0}")]
    Version(u8),
    /// An opcode the encoding does not map to any operation.
    #[error("unknown opcode {0:#04x}")]
    UnknownOpcode(u8),
    /// An instruction refers to a register outside the register file, or
    /// reads a temporary before it is written, or writes a non-temporary.
    #[error("instruction {0} refers to an invalid register")]
    BadRegister(usize),
    /// A result refers to a register outside the register file.
    #[error("result {0} refers to an invalid register")]
    BadResult(usize),
    /// The header's counts are inconsistent.
    #[error("program header is inconsistent")]
    BadHeader,
    /// Bytes are left over after the program.
    #[error("trailing bytes after the program")]
    Trailing,
}

/// The mapping between a [`Program`] and its bytes. Two bundles sealed with
/// different encodings carry different bytes for the same model.
#[derive(Clone, PartialEq, Eq)]
pub struct Encoding {
    to_wire: [u8; OP_COUNT],
    from_wire: [u8; 256],
    operand_key: u16,
    const_key: u64,
    /// Seeds the order of independent instructions (0: compiled order).
    order_key: u64,
    /// Masks the whole model payload (0: no mask).
    payload_key: u64,
}

#[diversify]
impl std::fmt::Debug for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The encoding is a per-bundle secret of sorts; never print it.
        f.write_str("Encoding { .. }")
    }
}

const NO_OP: u8 = 0xff;
const MAGIC: &[u8; 4] = b"TSBC";
const FORMAT_VERSION: u8 = 1;

#[diversify]
impl Encoding {
    /// The plain encoding: opcodes numbered in declaration order, no masks.
    pub fn identity() -> Self {
        let mut to_wire = [0u8; OP_COUNT];
        for (i, w) in to_wire.iter_mut().enumerate() {
            *w = u8::try_from(i).unwrap_or(NO_OP);
        }
        Self::from_parts(to_wire, [0; 4])
    }

    /// A diversified encoding derived from `seed`: a permutation of opcode
    /// numbers over the whole byte range, masks for operands and constants,
    /// an order of independent instructions, and a mask over the whole
    /// model payload.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = SplitMix64(seed);
        let mut wire: Vec<u8> = (0..=254u8).collect();
        // Fisher-Yates over all byte values but 0xff, which marks "no op".
        for i in (1..wire.len()).rev() {
            let bound = (i as u64).saturating_add(1);
            let j = usize::try_from(rng.next().checked_rem(bound).unwrap_or(0)).unwrap_or(0);
            wire.swap(i, j);
        }
        let mut to_wire = [0u8; OP_COUNT];
        for (t, w) in to_wire.iter_mut().zip(wire) {
            *t = w;
        }
        let keys = [rng.next(), rng.next(), rng.next() | 1, rng.next() | 1];
        Self::from_parts(to_wire, keys)
    }

    /// Keys: operand (low 16 bits), constant, order, payload.
    fn from_parts(to_wire: [u8; OP_COUNT], keys: [u64; 4]) -> Self {
        let [operand_key, const_key, order_key, payload_key] = keys;
        let operand_key = (operand_key & 0xffff) as u16;
        let mut from_wire = [NO_OP; 256];
        for (logical, &w) in to_wire.iter().enumerate() {
            if let Some(slot) = from_wire.get_mut(usize::from(w)) {
                *slot = u8::try_from(logical).unwrap_or(NO_OP);
            }
        }
        Encoding {
            to_wire,
            from_wire,
            operand_key,
            const_key,
            order_key,
            payload_key,
        }
    }

    /// The key of the whole-payload mask (0: none).
    pub(crate) fn payload_key(&self) -> u64 {
        self.payload_key
    }

    fn opcode(&self, op: Op) -> u8 {
        self.to_wire.get(op as usize).copied().unwrap_or(NO_OP)
    }

    fn op(&self, wire: u8) -> Option<Op> {
        let logical = *self.from_wire.get(usize::from(wire))?;
        Op::from_index(usize::from(logical))
    }

    fn operand(&self, r: Reg, slot: u16) -> u16 {
        r ^ self
            .operand_key
            .rotate_left(u32::from(slot.wrapping_mul(5)))
    }
}

pub(crate) struct SplitMix64(pub(crate) u64);

#[diversify]
impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

#[diversify]
impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let (head, rest) = self
            .bytes
            .split_at_checked(n)
            .ok_or(DecodeError::Truncated)?;
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_le_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

#[diversify]
impl Program {
    /// The program's constants, decoded one at a time: what the compiler
    /// folded the model's parameters into. For inspection (the tests that
    /// search a running twin's memory for them); the VM decodes them
    /// itself, into its registers, for one evaluation at a time.
    pub fn constants(&self) -> impl Iterator<Item = f64> + '_ {
        self.consts.iter()
    }

    /// Number of plant inputs the program reads.
    #[inline]
    pub fn n_inputs(&self) -> usize {
        usize::from(self.n_inputs)
    }

    /// Number of states the program reads.
    #[inline]
    pub fn n_states(&self) -> usize {
        usize::from(self.n_states)
    }

    /// Number of values the program produces.
    #[inline]
    pub fn n_results(&self) -> usize {
        self.results.len()
    }

    /// Number of instructions.
    pub fn len(&self) -> usize {
        self.code.len()
    }

    /// Whether the program has no instructions (all results are inputs,
    /// states or constants).
    pub fn is_empty(&self) -> bool {
        self.code.is_empty()
    }

    /// Size of the register file.
    pub fn n_regs(&self) -> usize {
        usize::from(self.n_regs)
    }

    /// The program's bytes under `enc`.
    pub fn encode(&self, enc: &Encoding) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.n_inputs.to_le_bytes());
        out.extend_from_slice(&self.n_states.to_le_bytes());
        out.extend_from_slice(&self.n_regs.to_le_bytes());
        let n_consts = u16::try_from(self.consts.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&n_consts.to_le_bytes());
        let n_code = u32::try_from(self.code.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&n_code.to_le_bytes());
        let n_results = u16::try_from(self.results.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&n_results.to_le_bytes());
        for (i, c) in self.consts.iter().enumerate() {
            let key = enc.const_key.rotate_left((i % 64) as u32);
            out.extend_from_slice(&(c.to_bits() ^ key).to_le_bytes());
        }
        for ins in &self.ordered(enc.order_key) {
            out.push(enc.opcode(ins.op));
            for (slot, r) in [ins.dst, ins.a, ins.b, ins.c].into_iter().enumerate() {
                out.extend_from_slice(&enc.operand(r, slot as u16).to_le_bytes());
            }
        }
        for &r in &self.results {
            out.extend_from_slice(&enc.operand(r, 4).to_le_bytes());
        }
        out
    }

    /// The code in another order that computes the same: a random
    /// topological order of the dependencies between instructions (a read
    /// after a write, a write after a read or a write of the same register),
    /// drawn from `key`; the compiled order for key 0. Every instruction
    /// computes the same value from the same operands, so results stay
    /// bit-exact.
    fn ordered(&self, key: u64) -> Vec<Instr> {
        if key == 0 {
            return self.code.clone();
        }
        let n = self.code.len();
        let mut successors: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut pending = vec![0usize; n];
        let mut last_write: std::collections::HashMap<Reg, usize> =
            std::collections::HashMap::new();
        let mut reads_since: std::collections::HashMap<Reg, Vec<usize>> =
            std::collections::HashMap::new();
        for (j, ins) in self.code.iter().enumerate() {
            let mut before: Vec<usize> = Vec::new();
            for r in [ins.a, ins.b, ins.c] {
                if let Some(&i) = last_write.get(&r) {
                    before.push(i);
                }
            }
            if let Some(&i) = last_write.get(&ins.dst) {
                before.push(i);
            }
            if let Some(readers) = reads_since.get(&ins.dst) {
                before.extend(readers.iter().copied().filter(|&i| i != j));
            }
            before.sort_unstable();
            before.dedup();
            for i in before {
                if let Some(s) = successors.get_mut(i) {
                    s.push(j);
                }
                if let Some(p) = pending.get_mut(j) {
                    *p = p.saturating_add(1);
                }
            }
            for r in [ins.a, ins.b, ins.c] {
                reads_since.entry(r).or_default().push(j);
            }
            last_write.insert(ins.dst, j);
            reads_since.insert(ins.dst, Vec::new());
        }
        let mut rng = SplitMix64(key);
        let mut ready: Vec<usize> = (0..n).filter(|&j| pending.get(j) == Some(&0)).collect();
        let mut out = Vec::with_capacity(n);
        while !ready.is_empty() {
            let bound = u64::try_from(ready.len()).unwrap_or(u64::MAX);
            let pick = usize::try_from(rng.next().checked_rem(bound).unwrap_or(0)).unwrap_or(0);
            let j = ready.swap_remove(pick.min(ready.len().saturating_sub(1)));
            if let Some(ins) = self.code.get(j) {
                out.push(*ins);
            }
            for &k in successors.get(j).map(Vec::as_slice).unwrap_or(&[]) {
                if let Some(p) = pending.get_mut(k) {
                    *p = p.saturating_sub(1);
                    if *p == 0 {
                        ready.push(k);
                    }
                }
            }
        }
        out
    }

    /// Whether `other` is this program up to the order of its instructions
    /// (what decoding a program encoded under a diversified encoding gives).
    pub fn same_up_to_order(&self, other: &Program) -> bool {
        let key = |i: &Instr| (i.op as u8, i.dst, i.a, i.b, i.c);
        let sorted = |p: &Program| {
            let mut v: Vec<_> = p.code.iter().map(key).collect();
            v.sort_unstable();
            v
        };
        self.n_inputs == other.n_inputs
            && self.n_states == other.n_states
            && self.n_regs == other.n_regs
            && self.consts == other.consts
            && self.results == other.results
            && sorted(self) == sorted(other)
    }

    /// Reads a program from bytes under `enc`, checking every register
    /// reference so that running it can never index out of bounds.
    pub fn decode(bytes: &[u8], enc: &Encoding) -> Result<Program, DecodeError> {
        let mut r = Reader { bytes };
        if r.take(4)? != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = r.u8()?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::Version(version));
        }
        let n_inputs = r.u16()?;
        let n_states = r.u16()?;
        let n_regs = r.u16()?;
        let n_consts = r.u16()?;
        let n_code = usize::try_from(r.u32()?).map_err(|_| DecodeError::BadHeader)?;
        let n_results = r.u16()?;
        let first_temp = usize::from(n_inputs)
            .checked_add(usize::from(n_states))
            .and_then(|x| x.checked_add(usize::from(n_consts)))
            .ok_or(DecodeError::BadHeader)?;
        if first_temp > usize::from(n_regs) {
            return Err(DecodeError::BadHeader);
        }
        // Every instruction takes 9 bytes; refuse counts the input cannot hold
        // before allocating for them.
        if n_code > r.bytes.len() / 9 {
            return Err(DecodeError::Truncated);
        }
        // Read as the wire carries them (under the bundle's constant key)
        // and masked under the program's own as they are unwrapped: the
        // plain constants never fill a buffer.
        let wire = (0..n_consts)
            .map(|_| r.u64())
            .collect::<Result<Vec<u64>, _>>()?;
        let consts = Constants::from_bits(
            wire.iter()
                .enumerate()
                .map(|(i, w)| w ^ enc.const_key.rotate_left((i % 64) as u32)),
        );
        let mut written = vec![false; usize::from(n_regs)];
        let mut code = Vec::with_capacity(n_code);
        for i in 0..n_code {
            code.push(decode_instr(&mut r, enc, i, first_temp, &mut written)?);
        }
        let mut results = Vec::with_capacity(usize::from(n_results));
        for i in 0..usize::from(n_results) {
            let reg = enc.operand(r.u16()?, 4);
            let ok = usize::from(reg) < first_temp
                || written.get(usize::from(reg)).copied().unwrap_or(false);
            if !ok {
                return Err(DecodeError::BadResult(i));
            }
            results.push(reg);
        }
        if !r.bytes.is_empty() {
            return Err(DecodeError::Trailing);
        }
        Ok(Program {
            n_inputs,
            n_states,
            consts,
            n_regs,
            code,
            results,
        })
    }
}

/// Reads instruction `index` under `enc`: its operands must be registers
/// already readable (inputs, states, constants, or temporaries written by an
/// earlier instruction), its unused operands 0, and its destination a
/// temporary within `written` (the register file), which it then marks
/// written.
#[diversify]
fn decode_instr(
    r: &mut Reader<'_>,
    enc: &Encoding,
    index: usize,
    first_temp: usize,
    written: &mut [bool],
) -> Result<Instr, DecodeError> {
    let wire = r.u8()?;
    let op = enc.op(wire).ok_or(DecodeError::UnknownOpcode(wire))?;
    let mut regs = [0u16; 4];
    for (slot, reg) in regs.iter_mut().enumerate() {
        *reg = enc.operand(r.u16()?, slot as u16);
    }
    let [dst, a, b, c] = regs;
    let readable = |reg: u16| {
        let reg = usize::from(reg);
        reg < first_temp || written.get(reg).copied().unwrap_or(false)
    };
    let operands = [a, b, c];
    let used = operands.get(..op.arity()).unwrap_or(&[]);
    let unused_zero = operands
        .get(op.arity()..)
        .unwrap_or(&[])
        .iter()
        .all(|&x| x == 0);
    if !used.iter().all(|&x| readable(x))
        || !unused_zero
        || usize::from(dst) < first_temp
        || usize::from(dst) >= written.len()
    {
        return Err(DecodeError::BadRegister(index));
    }
    if let Some(w) = written.get_mut(usize::from(dst)) {
        *w = true;
    }
    Ok(Instr { op, dst, a, b, c })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_has_its_index() {
        for (i, op) in ALL_OPS.iter().enumerate() {
            assert_eq!(*op as usize, i);
        }
    }

    #[test]
    fn seeded_encodings_are_permutations_and_differ() {
        let a = Encoding::from_seed(1);
        let b = Encoding::from_seed(2);
        assert_ne!(a, b);
        for enc in [&a, &b, &Encoding::identity()] {
            for op in ALL_OPS {
                assert_eq!(enc.op(enc.opcode(op)), Some(op));
            }
            let mut seen = std::collections::HashSet::new();
            assert!(enc.to_wire.iter().all(|w| seen.insert(*w)));
        }
    }

    #[test]
    fn sign_keeps_nan_and_zero() {
        assert_eq!(Op::Sign.apply(-3.0, 0.0, 0.0), -1.0);
        assert_eq!(Op::Sign.apply(0.0, 0.0, 0.0), 0.0);
        assert!(Op::Sign.apply(f64::NAN, 0.0, 0.0).is_nan());
    }
}
