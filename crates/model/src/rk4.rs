//! Fixed-step fourth-order Runge-Kutta integration of a compiled model.

use crate::bytecode::Program;
use crate::model::Model;
use crate::vm::{EvalError, Machine};
use thiserror::Error;
use twinshield_shield_macros::diversify;

/// Why a simulation stopped.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SimError {
    /// A state became NaN or infinite: the model left its domain (for
    /// example the square root of a negative level).
    #[error("state `{state}` became {value} at t = {time} s")]
    NonFinite {
        /// Which state.
        state: String,
        /// The value it took.
        value: f64,
        /// Simulated time of the step that produced it.
        time: f64,
    },
    /// The VM refused the call (wrong number of inputs).
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// A duration or step that is negative, NaN or infinite.
    #[error("time span must be finite and not negative, got {0}")]
    BadSpan(f64),
}

/// One RK4 integrator with its scratch space, so a step allocates nothing.
#[derive(Debug, Clone)]
pub(crate) struct Rk4 {
    machine: Machine,
    k1: Vec<f64>,
    k2: Vec<f64>,
    k3: Vec<f64>,
    k4: Vec<f64>,
    tmp: Vec<f64>,
}

#[diversify]
impl Rk4 {
    pub fn new(prog: &Program) -> Self {
        let n = prog.n_states();
        Rk4 {
            machine: Machine::new(prog),
            k1: vec![0.0; n],
            k2: vec![0.0; n],
            k3: vec![0.0; n],
            k4: vec![0.0; n],
            tmp: vec![0.0; n],
        }
    }

    /// The derivative at `x`, into `out`.
    #[inline]
    pub fn derivative(
        &mut self,
        prog: &Program,
        u: &[f64],
        x: &[f64],
        out: &mut [f64],
    ) -> Result<(), EvalError> {
        self.machine.eval(prog, u, x, out)
    }

    /// Advances `x` by one step of length `h` with inputs held at `u`.
    pub fn step(
        &mut self,
        prog: &Program,
        u: &[f64],
        x: &mut [f64],
        h: f64,
    ) -> Result<(), EvalError> {
        let Rk4 {
            machine,
            k1,
            k2,
            k3,
            k4,
            tmp,
        } = self;
        if x.len() != k1.len() {
            return Err(EvalError::Shape {
                what: "states",
                expected: k1.len(),
                got: x.len(),
            });
        }
        let half = 0.5 * h;
        machine.eval(prog, u, x, k1)?;
        for ((t, xi), k) in tmp.iter_mut().zip(x.iter()).zip(k1.iter()) {
            *t = xi + half * k;
        }
        machine.eval(prog, u, tmp, k2)?;
        for ((t, xi), k) in tmp.iter_mut().zip(x.iter()).zip(k2.iter()) {
            *t = xi + half * k;
        }
        machine.eval(prog, u, tmp, k3)?;
        for ((t, xi), k) in tmp.iter_mut().zip(x.iter()).zip(k3.iter()) {
            *t = xi + h * k;
        }
        machine.eval(prog, u, tmp, k4)?;
        let sixth = h / 6.0;
        for (i, xi) in x.iter_mut().enumerate() {
            let (a, b, c, d) = (k1[i], k2[i], k3[i], k4[i]);
            *xi += sixth * (a + 2.0 * (b + c) + d);
        }
        Ok(())
    }
}

/// Runs a model forward in time from its initial state.
#[derive(Debug, Clone)]
pub struct Simulator {
    derivatives: Program,
    sensors: Program,
    state_names: Vec<String>,
    step: f64,
    rk4: Rk4,
    out_machine: Machine,
    x: Vec<f64>,
    t: f64,
}

#[diversify]
impl Simulator {
    /// A simulator at `t = 0` with every state at its `init`.
    pub fn new(model: &Model) -> Self {
        Simulator {
            derivatives: model.derivatives.clone(),
            sensors: model.sensors.clone(),
            state_names: model.states.iter().map(|s| s.name.clone()).collect(),
            step: model.step,
            rk4: Rk4::new(&model.derivatives),
            out_machine: Machine::new(&model.sensors),
            x: model.initial_state(),
            t: 0.0,
        }
    }

    /// Current simulated time in seconds.
    pub fn time(&self) -> f64 {
        self.t
    }

    /// Current states, in declaration order.
    pub fn states(&self) -> &[f64] {
        &self.x
    }

    /// Overwrites the states (for example to start from a measured condition).
    pub fn set_states(&mut self, x: &[f64]) -> Result<(), SimError> {
        if x.len() != self.x.len() {
            return Err(EvalError::Shape {
                what: "states",
                expected: self.x.len(),
                got: x.len(),
            }
            .into());
        }
        self.x.copy_from_slice(x);
        Ok(())
    }

    /// One RK4 step of the model's step length, inputs held at `u`.
    pub fn step(&mut self, u: &[f64]) -> Result<(), SimError> {
        self.step_by(u, self.step)
    }

    fn step_by(&mut self, u: &[f64], h: f64) -> Result<(), SimError> {
        self.rk4.step(&self.derivatives, u, &mut self.x, h)?;
        self.t += h;
        self.check_finite()
    }

    /// Advances by `seconds` in steps of the model's step length (the last
    /// step shortened to land exactly), inputs held at `u`.
    pub fn advance(&mut self, u: &[f64], seconds: f64) -> Result<(), SimError> {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err(SimError::BadSpan(seconds));
        }
        let end = self.t + seconds;
        // Stop when within a millionth of a step, so rounding never adds a
        // vanishing extra step.
        while end - self.t > self.step * 1e-6 {
            let h = self.step.min(end - self.t);
            self.step_by(u, h)?;
        }
        self.t = end;
        Ok(())
    }

    /// The model's outputs at the current state.
    pub fn outputs(&mut self, u: &[f64], out: &mut [f64]) -> Result<(), SimError> {
        self.out_machine.eval(&self.sensors, u, &self.x, out)?;
        Ok(())
    }

    fn check_finite(&self) -> Result<(), SimError> {
        match self.x.iter().position(|v| !v.is_finite()) {
            None => Ok(()),
            Some(i) => Err(SimError::NonFinite {
                state: self.state_names.get(i).cloned().unwrap_or_default(),
                value: self.x.get(i).copied().unwrap_or(f64::NAN),
                time: self.t,
            }),
        }
    }
}
