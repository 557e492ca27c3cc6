//! The extended Kalman filter that keeps the twin in step with the plant.
//!
//! Each cycle predicts the state over the sample interval with the model
//! (RK4) and corrects it with the measured outputs. The innovation (measured
//! minus predicted outputs), its covariance and the normalized innovation
//! squared are exposed per update: they are what the detectors test.
//!
//! Jacobians come from forward finite differences on the compiled programs.
//! For a model of n states that costs n + 1 evaluations of each program per
//! cycle (a few hundred nanoseconds for the quadruple tank, see the
//! benchmarks), keeps the VM to a single evaluation path that per-bundle
//! diversification has to transform only once, and needs nothing from the
//! model's author.
//!
//! **Tamper evidence.** The filter's parameters (process and measurement
//! variances, the states' ranges, the integration step) are held only as
//! [`Sealed`] cells, so their plain bit patterns are nowhere in memory, and
//! its state estimate and covariance carry a keyed [`Digest`] taken at the
//! end of each cycle. [`Ekf::step`] verifies the digest before every cycle
//! (the state is plain, so a write there must be found before it is used);
//! [`Ekf::verify`] checks the parameters too, and the twin calls it at
//! least twice a second (a parameter's cell stays broken once written, so
//! checking it later still finds the write). A failed check is
//! [`EkfError::Tampered`], not a silently changed estimate.

use crate::bytecode::Program;
use crate::linalg;
use crate::model::Model;
use crate::rk4::Rk4;
use crate::vm::{EvalError, Machine};
use thiserror::Error;
use twinshield_entangle::{Digest, Keys, Sealed, Tampered, faults, seal_all};
use twinshield_shield_macros::diversify;

/// Why a filter cycle failed. The filter's state is left as it was before
/// the failing call, so the caller can report and carry on.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EkfError {
    /// A measurement or input was NaN or infinite.
    #[error("{what} {index} is not a finite number")]
    BadValue {
        /// `"measurement"` or `"input"`.
        what: &'static str,
        /// Its index.
        index: usize,
    },
    /// The estimate left the model's domain.
    #[error("estimate of state `{state}` became {value}")]
    NonFinite {
        /// Which state.
        state: String,
        /// The value it took.
        value: f64,
    },
    /// The innovation covariance lost positive definiteness.
    #[error("innovation covariance is not positive definite")]
    Singular,
    /// Wrong number of inputs or measurements.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// A sample interval that is negative, NaN or infinite.
    #[error("sample interval must be finite and not negative, got {0}")]
    BadInterval(f64),
    /// The filter's parameters or state were changed from outside its code
    /// (a write into the process's memory): the filter refuses to go on.
    #[error(transparent)]
    Tampered(#[from] Tampered),
}

/// What one update saw: the detectors' raw material.
#[derive(Debug, Clone, PartialEq)]
pub struct Innovation {
    /// Measured minus predicted output, per output.
    pub residual: Vec<f64>,
    /// Covariance of the residual (outputs × outputs, row-major).
    pub covariance: Vec<f64>,
    /// Normalized innovation squared, `νᵀ S⁻¹ ν`; chi-square distributed
    /// with as many degrees of freedom as outputs when plant and model agree.
    pub nis: f64,
}

#[diversify]
impl Innovation {
    /// Standard deviation of output `i`'s residual.
    pub fn std(&self, i: usize) -> f64 {
        let m = self.residual.len();
        self.covariance
            .get(i * m + i)
            .copied()
            .unwrap_or(f64::NAN)
            .sqrt()
    }
}

/// An extended Kalman filter over one model.
#[derive(Debug, Clone)]
pub struct Ekf {
    derivatives: Program,
    sensors: Program,
    rk4: Rk4,
    out_machine: Machine,
    state_names: Vec<String>,
    lo: Vec<Sealed>,
    hi: Vec<Sealed>,
    step: Sealed,
    n: usize,
    m: usize,
    x: Vec<f64>,
    p: Vec<f64>,
    /// Keyed digest of `x` and `p`, taken at the end of each cycle.
    sealed_state: Digest,
    q: Vec<Sealed>,
    r: Vec<Sealed>,
    // Scratch space, sized once.
    x_saved: Vec<f64>,
    p_saved: Vec<f64>,
    f0: Vec<f64>,
    f1: Vec<f64>,
    xp: Vec<f64>,
    a: Vec<f64>,
    phi: Vec<f64>,
    nn: Vec<f64>,
    nn2: Vec<f64>,
    h: Vec<f64>,
    y0: Vec<f64>,
    y1: Vec<f64>,
    pht: Vec<f64>,
    l: Vec<f64>,
    k: Vec<f64>,
    row: Vec<f64>,
    innovation: Innovation,
}

#[diversify]
impl Ekf {
    /// A filter started at the model's initial state with the configured
    /// initial uncertainty.
    pub fn new(model: &Model) -> Self {
        let n = model.states.len();
        let m = model.outputs.len();
        let est = &model.estimator;
        let mut p = vec![0.0; n * n];
        for (i, s) in est.initial_std.iter().enumerate().take(n) {
            p[i * n + i] = s * s;
        }
        let x = model.initial_state();
        let sealed_state = Digest::of(&[&x, &p]);
        Ekf {
            derivatives: model.derivatives.clone(),
            sensors: model.sensors.clone(),
            rk4: Rk4::new(&model.derivatives),
            out_machine: Machine::new(&model.sensors),
            state_names: model.states.iter().map(|s| s.name.clone()).collect(),
            lo: seal_all(model.states.iter().map(|s| s.range.0)),
            hi: seal_all(model.states.iter().map(|s| s.range.1)),
            step: Sealed::new(model.step),
            n,
            m,
            x,
            p,
            sealed_state,
            q: seal_all(est.process_noise.iter().map(|s| s * s)),
            r: seal_all(est.measurement_noise.iter().map(|s| s * s)),
            x_saved: vec![0.0; n],
            p_saved: vec![0.0; n * n],
            f0: vec![0.0; n],
            f1: vec![0.0; n],
            xp: vec![0.0; n],
            a: vec![0.0; n * n],
            phi: vec![0.0; n * n],
            nn: vec![0.0; n * n],
            nn2: vec![0.0; n * n],
            h: vec![0.0; m * n],
            y0: vec![0.0; m],
            y1: vec![0.0; m],
            pht: vec![0.0; n * m],
            l: vec![0.0; m * m],
            k: vec![0.0; n * m],
            row: vec![0.0; m],
            innovation: Innovation {
                residual: vec![0.0; m],
                covariance: vec![0.0; m * m],
                nis: 0.0,
            },
        }
    }

    /// The current state estimate.
    pub fn state(&self) -> &[f64] {
        &self.x
    }

    /// The estimate's covariance (states × states, row-major).
    pub fn covariance(&self) -> &[f64] {
        &self.p
    }

    /// The last update's innovation.
    pub fn innovation(&self) -> &Innovation {
        &self.innovation
    }

    /// Restarts the filter from `x0` with a diagonal covariance of `std²`.
    pub fn reset(&mut self, x0: &[f64], std: &[f64]) -> Result<(), EkfError> {
        self.shape("states", self.n, x0.len())?;
        self.shape("standard deviations", self.n, std.len())?;
        self.x.copy_from_slice(x0);
        self.p.iter_mut().for_each(|v| *v = 0.0);
        for (i, s) in std.iter().enumerate() {
            self.p[i * self.n + i] = s * s;
        }
        self.seal_state();
        Ok(())
    }

    /// Checks the parameters' cells and the state's digest: `Err` if
    /// anything was written from outside since the last cycle.
    pub fn verify(&self) -> Result<(), Tampered> {
        let cells = faults(&self.q) | faults(&self.r) | faults(&self.lo) | faults(&self.hi);
        twinshield_entangle::verify(cells | self.step.fault(), "the estimator's parameters")?;
        self.verify_state()
    }

    #[inline]
    fn verify_state(&self) -> Result<(), Tampered> {
        self.sealed_state
            .verify(&[&self.x, &self.p], "the estimator's state")
    }

    #[inline]
    fn seal_state(&mut self) {
        self.sealed_state.seal(&[&self.x, &self.p]);
    }

    fn shape(&self, what: &'static str, expected: usize, got: usize) -> Result<(), EkfError> {
        if expected == got {
            Ok(())
        } else {
            Err(EvalError::Shape {
                what,
                expected,
                got,
            }
            .into())
        }
    }

    /// One full cycle: predict over `dt` seconds with inputs `u`, then
    /// correct with measurements `y`. On error the filter is unchanged;
    /// on [`EkfError::Tampered`] it refuses every further cycle.
    pub fn step(&mut self, u: &[f64], y: &[f64], dt: f64) -> Result<&Innovation, EkfError> {
        self.verify_state()?;
        self.x_saved.copy_from_slice(&self.x);
        self.p_saved.copy_from_slice(&self.p);
        let r = self
            .predict_unsealed(u, dt)
            .and_then(|()| self.correct_unsealed(u, y).map(|_| ()));
        if let Err(e) = r {
            self.x.copy_from_slice(&self.x_saved);
            self.p.copy_from_slice(&self.p_saved);
            self.seal_state();
            return Err(e);
        }
        self.seal_state();
        Ok(&self.innovation)
    }

    /// Propagates the estimate and its covariance over `dt` seconds.
    pub fn predict(&mut self, u: &[f64], dt: f64) -> Result<(), EkfError> {
        self.verify()?;
        let r = self.predict_unsealed(u, dt);
        self.seal_state();
        r
    }

    /// Corrects the estimate with measurements `y` and returns the innovation.
    pub fn correct(&mut self, u: &[f64], y: &[f64]) -> Result<&Innovation, EkfError> {
        self.verify()?;
        let r = self.correct_unsealed(u, y).map(|_| ());
        self.seal_state();
        r.map(|()| &self.innovation)
    }

    /// [`Ekf::predict`] without the state's digest checked or taken.
    fn predict_unsealed(&mut self, u: &[f64], dt: f64) -> Result<(), EkfError> {
        if !(dt.is_finite() && dt >= 0.0) {
            return Err(EkfError::BadInterval(dt));
        }
        check_finite(u, "input")?;
        let n = self.n;
        // Jacobian A = ∂f/∂x by forward differences.
        self.rk4
            .derivative(&self.derivatives, u, &self.x, &mut self.f0)?;
        for j in 0..n {
            self.xp.copy_from_slice(&self.x);
            let d = fd_step(self.x[j]);
            self.xp[j] += d;
            self.rk4
                .derivative(&self.derivatives, u, &self.xp, &mut self.f1)?;
            for i in 0..n {
                self.a[i * n + j] = (self.f1[i] - self.f0[i]) / d;
            }
        }
        // Φ ≈ I + A·dt + (A·dt)²/2: second order is accurate while dt is
        // short against the model's time constants, as sampling requires.
        linalg::mul(&self.a, &self.a, &mut self.nn, n, n, n);
        for i in 0..n {
            for j in 0..n {
                let id = if i == j { 1.0 } else { 0.0 };
                self.phi[i * n + j] =
                    id + self.a[i * n + j] * dt + 0.5 * self.nn[i * n + j] * dt * dt;
            }
        }
        // P = Φ P Φᵀ + Q·dt
        linalg::mul(&self.phi, &self.p, &mut self.nn, n, n, n);
        linalg::mul_bt(&self.nn, &self.phi, &mut self.p, n, n, n);
        let keys = Keys::get();
        for (i, q) in self.q.iter().enumerate() {
            self.p[i * n + i] += q.get_with(keys) * dt;
        }
        linalg::symmetrize(&mut self.p, n);
        // x: integrate with RK4 in steps no longer than the model's step.
        let mut left = dt;
        let step = self.step.get_with(keys);
        while left > step * 1e-6 {
            let h = step.min(left);
            self.rk4.step(&self.derivatives, u, &mut self.x, h)?;
            left -= h;
        }
        self.check_state()
    }

    /// [`Ekf::correct`] without the state's digest checked or taken.
    fn correct_unsealed(&mut self, u: &[f64], y: &[f64]) -> Result<&Innovation, EkfError> {
        self.shape("measurements", self.m, y.len())?;
        check_finite(y, "measurement")?;
        let (n, m) = (self.n, self.m);
        // H = ∂h/∂x by forward differences, and the predicted outputs.
        self.out_machine
            .eval(&self.sensors, u, &self.x, &mut self.y0)?;
        for j in 0..n {
            self.xp.copy_from_slice(&self.x);
            let d = fd_step(self.x[j]);
            self.xp[j] += d;
            self.out_machine
                .eval(&self.sensors, u, &self.xp, &mut self.y1)?;
            for i in 0..m {
                self.h[i * n + j] = (self.y1[i] - self.y0[i]) / d;
            }
        }
        let inn = &mut self.innovation;
        for ((r, yi), pi) in inn.residual.iter_mut().zip(y).zip(&self.y0) {
            *r = yi - pi;
        }
        // S = H P Hᵀ + R
        linalg::mul_bt(&self.p, &self.h, &mut self.pht, n, n, m);
        linalg::mul(&self.h, &self.pht, &mut inn.covariance, m, n, m);
        let keys = Keys::get();
        for (i, r) in self.r.iter().enumerate() {
            inn.covariance[i * m + i] += r.get_with(keys);
        }
        linalg::symmetrize(&mut inn.covariance, m);
        if !linalg::cholesky(&inn.covariance, &mut self.l, m) {
            return Err(EkfError::Singular);
        }
        // NIS = |L⁻¹ν|²
        self.row.copy_from_slice(&inn.residual);
        linalg::forward(&self.l, &mut self.row, m);
        inn.nis = self.row.iter().map(|v| v * v).sum();
        // K = P Hᵀ S⁻¹, row by row (S is symmetric).
        for i in 0..n {
            self.row.copy_from_slice(&self.pht[i * m..(i + 1) * m]);
            linalg::forward(&self.l, &mut self.row, m);
            linalg::backward(&self.l, &mut self.row, m);
            self.k[i * m..(i + 1) * m].copy_from_slice(&self.row);
        }
        // x += K ν, kept inside the states' valid ranges.
        for i in 0..n {
            let dx: f64 = (0..m).map(|j| self.k[i * m + j] * inn.residual[j]).sum();
            let (lo, hi) = (self.lo[i].get_with(keys), self.hi[i].get_with(keys));
            // max-then-min, not clamp: a tampered bound must not panic.
            self.x[i] = (self.x[i] + dx).max(lo).min(hi);
        }
        // Joseph form, P = (I−KH) P (I−KH)ᵀ + K R Kᵀ, stays positive
        // semi-definite under rounding where the short form does not.
        linalg::mul(&self.k, &self.h, &mut self.nn, n, m, n);
        for i in 0..n {
            for j in 0..n {
                let id = if i == j { 1.0 } else { 0.0 };
                self.nn[i * n + j] = id - self.nn[i * n + j];
            }
        }
        linalg::mul(&self.nn, &self.p, &mut self.nn2, n, n, n);
        linalg::mul_bt(&self.nn2, &self.nn, &mut self.p, n, n, n);
        for i in 0..n {
            for j in 0..n {
                let krk: f64 = (0..m)
                    .map(|l| self.k[i * m + l] * self.r[l].get_with(keys) * self.k[j * m + l])
                    .sum();
                self.p[i * n + j] += krk;
            }
        }
        linalg::symmetrize(&mut self.p, n);
        self.check_state()?;
        Ok(&self.innovation)
    }

    #[inline]
    fn check_state(&self) -> Result<(), EkfError> {
        let bad = self.x.iter().position(|v| !v.is_finite()).or_else(|| {
            self.p
                .iter()
                .position(|v| !v.is_finite())
                .map(|k| k % self.n.max(1))
        });
        match bad {
            None => Ok(()),
            Some(i) => Err(EkfError::NonFinite {
                state: self.state_names.get(i).cloned().unwrap_or_default(),
                value: self.x.get(i).copied().unwrap_or(f64::NAN),
            }),
        }
    }
}

/// Forward-difference step: about the square root of machine epsilon,
/// relative to the value's magnitude.
#[inline]
fn fd_step(x: f64) -> f64 {
    1.5e-8 * x.abs().max(1.0)
}

#[inline]
fn check_finite(v: &[f64], what: &'static str) -> Result<(), EkfError> {
    match v.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(index) => Err(EkfError::BadValue { what, index }),
    }
}

#[cfg(test)]
mod tamper_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ekf() -> Ekf {
        let model = Model::parse(
            "quadtank.twin",
            include_str!("../../../models/quadtank.twin"),
        )
        .unwrap();
        Ekf::new(&model)
    }

    const Y: [f64; 4] = [12.263, 12.783, 1.634, 1.409];

    #[test]
    fn a_written_estimate_or_covariance_is_refused_at_the_next_step() {
        for which in 0..2 {
            let mut e = ekf();
            e.step(&[3.0, 3.0], &Y, 0.1).unwrap();
            if which == 0 {
                e.x[2] = 20.0;
            } else {
                e.p[5] = 1e9;
            }
            let r = e.step(&[3.0, 3.0], &Y, 0.1);
            assert!(matches!(r, Err(EkfError::Tampered(_))), "{which}");
        }
    }

    #[test]
    fn a_written_variance_is_found_by_verify() {
        let mut e = ekf();
        e.step(&[3.0, 3.0], &Y, 0.1).unwrap();
        assert!(e.verify().is_ok());
        let mut w = e.r[0].words();
        w[0] ^= 1 << 52;
        e.r[0] = Sealed::from_words(w);
        assert!(e.verify().is_err());
        // A failed step reseals the restored state, never a tampered one.
        let mut f = ekf();
        assert!(f.step(&[3.0, 3.0], &[f64::NAN; 4], 0.1).is_err());
        assert!(f.step(&[3.0, 3.0], &Y, 0.1).is_ok());
    }
}
