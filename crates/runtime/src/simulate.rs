//! `model simulate`: a model run open-loop, with its inputs held, written
//! as CSV (time, states, outputs) one row per step of a chosen spacing.

use std::io::Write;
use twinshield_model::{Model, SimError, Simulator};
use twinshield_shield_macros::diversify;

/// Most rows one simulation may write.
pub const MAX_ROWS: f64 = 100_000_000.0;

/// Why a simulation was refused or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// The simulated time is not a positive number.
    #[error("--seconds must be a positive number of seconds")]
    Seconds,
    /// The row spacing is not a positive number.
    #[error("--every must be a positive number of seconds")]
    Every,
    /// More rows than [`MAX_ROWS`].
    #[error("--seconds / --every asks for {0} rows, more than {MAX_ROWS}")]
    TooManyRows(f64),
    /// An input is not given as NAME=VALUE.
    #[error("--input `{0}` is not NAME=VALUE")]
    InputSyntax(String),
    /// The model has no such input.
    #[error("unknown input `{name}`; the model's inputs are {known}")]
    UnknownInput {
        /// The name given.
        name: String,
        /// The model's inputs, comma-separated.
        known: String,
    },
    /// An input's value is not a finite number.
    #[error("--input {name}: `{value}` is not a finite number")]
    InputValue {
        /// The input.
        name: String,
        /// The text given.
        value: String,
    },
    /// An input's value is outside the model's range for it.
    #[error("--input {name}={value} is outside its range [{lo}, {hi}]")]
    InputRange {
        /// The input.
        name: String,
        /// The value given.
        value: f64,
        /// The range's low end.
        lo: f64,
        /// The range's high end.
        hi: f64,
    },
    /// The model's arithmetic failed (a non-finite state, say).
    #[error(transparent)]
    Model(#[from] SimError),
    /// The CSV could not be written.
    #[error("cannot write the CSV: {0}")]
    Write(#[source] std::io::Error),
}

/// A simulation, checked and ready to write.
pub struct Simulation<'m> {
    model: &'m Model,
    inputs: Vec<f64>,
    every: f64,
    rows: u64,
}

#[diversify]
impl<'m> Simulation<'m> {
    /// `seconds` of `model` with rows `every` seconds apart (default: the
    /// model's step) and inputs held as `NAME=VALUE` (the rest nominal).
    pub fn new(
        model: &'m Model,
        seconds: f64,
        every: Option<f64>,
        inputs: &[String],
    ) -> Result<Self, SimulateError> {
        if !(seconds.is_finite() && seconds > 0.0) {
            return Err(SimulateError::Seconds);
        }
        let every = every.unwrap_or(model.step);
        if !(every.is_finite() && every > 0.0) {
            return Err(SimulateError::Every);
        }
        let rows = (seconds / every).floor();
        if rows > MAX_ROWS {
            return Err(SimulateError::TooManyRows(rows));
        }
        let inputs = held_inputs(model, inputs)?;
        Ok(Simulation {
            model,
            inputs,
            every,
            rows: rows as u64,
        })
    }

    /// Rows after the first (the one at time 0).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the header and every row to `out`, calling `progress` with
    /// the row reached every 1,024 rows.
    pub fn write_csv(
        &self,
        out: &mut dyn Write,
        progress: &dyn Fn(u64),
    ) -> Result<(), SimulateError> {
        let model = self.model;
        let mut header = vec!["t".to_owned()];
        header.extend(model.states.iter().map(|s| s.name.clone()));
        header.extend(model.outputs.iter().map(|o| o.name.clone()));
        writeln!(out, "{}", header.join(",")).map_err(SimulateError::Write)?;
        let mut sim = Simulator::new(model);
        let mut y = vec![0.0; model.outputs.len()];
        let mut line = String::new();
        for row in 0..=self.rows {
            if row > 0 {
                // To the row's absolute time, so rounding never accumulates.
                let target = row as f64 * self.every;
                sim.advance(&self.inputs, target - sim.time())?;
            }
            sim.outputs(&self.inputs, &mut y)?;
            line.clear();
            // `{}` of an f64 is the shortest text that reads back the same.
            line.push_str(&sim.time().to_string());
            for v in sim.states().iter().chain(&y) {
                line.push(',');
                line.push_str(&v.to_string());
            }
            writeln!(out, "{line}").map_err(SimulateError::Write)?;
            if row % 1024 == 0 {
                progress(row);
            }
        }
        Ok(())
    }
}

/// The model's nominal inputs with those `given` as NAME=VALUE held.
#[diversify]
fn held_inputs(model: &Model, given: &[String]) -> Result<Vec<f64>, SimulateError> {
    let mut u = model.nominal_inputs();
    for arg in given {
        let (name, value) = arg
            .split_once('=')
            .ok_or_else(|| SimulateError::InputSyntax(arg.clone()))?;
        let name = name.trim();
        let i = model
            .input_index(name)
            .ok_or_else(|| SimulateError::UnknownInput {
                name: name.to_owned(),
                known: model
                    .inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let v = value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| SimulateError::InputValue {
                name: name.to_owned(),
                value: value.to_owned(),
            })?;
        let (lo, hi) = model.inputs.get(i).map_or((v, v), |x| x.range);
        if v < lo || v > hi {
            return Err(SimulateError::InputRange {
                name: name.to_owned(),
                value: v,
                lo,
                hi,
            });
        }
        if let Some(slot) = u.get_mut(i) {
            *slot = v;
        }
    }
    Ok(u)
}
