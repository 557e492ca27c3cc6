//! The VM: runs a [`Program`] over a preallocated register file. One
//! evaluation allocates nothing, so the sync loop's cost is flat.

use crate::bytecode::Program;
use thiserror::Error;
use twinshield_shield_macros::{diversify, protect};

/// Why an evaluation could not run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EvalError {
    /// The caller passed the wrong number of inputs, states or result slots.
    #[error("expected {expected} {what}, got {got}")]
    Shape {
        /// Which slice was wrong.
        what: &'static str,
        /// How many the program needs.
        expected: usize,
        /// How many it was given.
        got: usize,
    },
}

/// Registers every machine has: the whole 16-bit register index space, so
/// that indexing with any [`crate::bytecode::Reg`] is in bounds by type and
/// the hot loop carries no bounds checks. Untouched pages are never faulted
/// in, so the cost is address space, not memory.
const REGS: usize = 1 << 16;

/// A register file for one program. The program's constants are decoded
/// into it for one evaluation and wiped after it: between evaluations the
/// register file holds no constant.
#[derive(Clone)]
pub struct Machine {
    regs: Box<[f64]>,
}

#[diversify]
impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Machine { .. }")
    }
}

#[inline]
fn shape(what: &'static str, expected: usize, got: usize) -> Result<(), EvalError> {
    if expected == got {
        Ok(())
    } else {
        Err(EvalError::Shape {
            what,
            expected,
            got,
        })
    }
}

/// The instruction loop, compiled on its own: inside `eval`'s flattened
/// dispatcher the optimiser kept the dispatcher's state live around it and
/// the quadtank program ran about 15 % slower. No `#[diversify]` guard
/// either: it runs on every VM call, tens of times per sample.
#[inline(never)]
fn execute(regs: &mut [f64; REGS], code: &[crate::bytecode::Instr]) {
    for ins in code {
        let a = regs[usize::from(ins.a)];
        let b = regs[usize::from(ins.b)];
        let c = regs[usize::from(ins.c)];
        regs[usize::from(ins.dst)] = ins.op.apply(a, b, c);
    }
}

#[diversify]
impl Machine {
    /// A register file for `prog`.
    pub fn new(_prog: &Program) -> Self {
        Machine {
            regs: vec![0.0; REGS].into_boxed_slice(),
        }
    }

    /// Runs `prog` on `inputs` and `states` and writes its results to `out`.
    ///
    /// Any program runs on any machine: every program is validated against
    /// its own register count, the register file spans the whole register
    /// index space, and the program's constants are decoded into it here
    /// (and wiped when the results are out).
    #[inline]
    #[protect]
    pub fn eval(
        &mut self,
        prog: &Program,
        inputs: &[f64],
        states: &[f64],
        out: &mut [f64],
    ) -> Result<(), EvalError> {
        // One statement: flattened apart, the three checks would cost
        // every call a dispatcher (the RK4 and the EKF make tens of calls
        // per sample) and hide nothing an attacker wants.
        shape("inputs", prog.n_inputs(), inputs.len())
            .and_then(|()| shape("states", prog.n_states(), states.len()))
            .and_then(|()| shape("results", prog.n_results(), out.len()))?;
        // One length check here; indexing the fixed-size view with a 16-bit
        // register number then needs none.
        let Ok(regs) = <&mut [f64; REGS]>::try_from(&mut self.regs[..]) else {
            return Err(EvalError::Shape {
                what: "registers",
                expected: REGS,
                got: self.regs.len(),
            });
        };
        let (ri, rest) = regs.split_at_mut(inputs.len());
        ri.copy_from_slice(inputs);
        let (rs, rest) = rest.split_at_mut(states.len().min(rest.len()));
        rs.copy_from_slice(states);
        let constants = rest.get_mut(..prog.consts.len()).unwrap_or_default();
        prog.consts.load_into(constants);
        execute(regs, &prog.code);
        for (o, &r) in out.iter_mut().zip(&prog.results) {
            *o = regs[usize::from(r)];
        }
        let base = inputs.len() + states.len();
        if let Some(constants) = regs.get_mut(base..base + prog.consts.len()) {
            constants.fill(0.0);
        }
        Ok(())
    }
}
