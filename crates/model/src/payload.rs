//! The compiled model as a bundle carries it: declarations without the
//! source text, the parameter names or the expressions, and both programs
//! in the bundle's own bytecode encoding. Written by the sealer, read on the
//! device from a decrypted buffer; the reader trusts nothing.

// A parser of outside input: no indexing that can panic, no unchecked
// arithmetic.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use crate::bytecode::{DecodeError, Encoding, Program, SplitMix64};
use crate::model::{MAX_CHANNELS, Model};
use crate::spec::{
    Channel, DetectConfig, EstimatorConfig, Input, ModbusMap, ModbusPoint, ModbusTable, Output,
    OutputDetect, State,
};
use thiserror::Error;
use twinshield_shield_macros::diversify;

const MAGIC: &[u8; 4] = b"TSMP";
/// Version 2 masks everything after the header with the encoding's payload
/// keystream; version 1 (no mask) is still read.
const VERSION: u8 = 2;
const UNMASKED_VERSION: u8 = 1;
/// Magic and version: the part of a payload that is never masked.
const HEADER_LEN: usize = 5;

/// XORs `body` with the keystream of `key` (key 0: unchanged). The same
/// model sealed twice then shares no structure in its payload: names,
/// units, ranges and the programs' headers all differ byte for byte.
#[diversify]
fn mask(body: &mut [u8], key: u64) {
    if key == 0 {
        return;
    }
    let mut rng = SplitMix64(key);
    for chunk in body.chunks_mut(8) {
        for (b, k) in chunk.iter_mut().zip(rng.next().to_le_bytes()) {
            *b ^= k;
        }
    }
}

/// Why a payload is not a usable model.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PayloadError {
    /// The bytes end early, have trailing data, or are not a model payload.
    #[error("model payload is malformed: {0}")]
    Malformed(&'static str),
    /// A program inside does not decode.
    #[error("model program is invalid: {0}")]
    Program(#[from] DecodeError),
    /// The declarations and programs disagree.
    #[error("model payload is inconsistent: {0}")]
    Inconsistent(&'static str),
}

struct W(Vec<u8>);

#[diversify]
impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        let b = s.as_bytes();
        let b = b.get(..b.len().min(usize::from(u16::MAX))).unwrap_or(b);
        self.u16(u16::try_from(b.len()).unwrap_or(u16::MAX));
        self.0.extend_from_slice(b);
    }
    fn opt(&mut self, v: Option<f64>) {
        match v {
            Some(x) => {
                self.u8(1);
                self.f64(x);
            }
            None => self.u8(0),
        }
    }
    fn blob(&mut self, b: &[u8]) {
        self.0
            .extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
        self.0.extend_from_slice(b);
    }
}

struct R<'a>(&'a [u8]);

#[diversify]
impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PayloadError> {
        let (h, t) = self
            .0
            .split_at_checked(n)
            .ok_or(PayloadError::Malformed("truncated"))?;
        self.0 = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, PayloadError> {
        Ok(*self
            .take(1)?
            .first()
            .ok_or(PayloadError::Malformed("truncated"))?)
    }
    fn u16(&mut self) -> Result<u16, PayloadError> {
        let mut a = [0u8; 2];
        a.copy_from_slice(self.take(2)?);
        Ok(u16::from_le_bytes(a))
    }
    fn u32(&mut self) -> Result<u32, PayloadError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn f64(&mut self) -> Result<f64, PayloadError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(f64::from_le_bytes(a))
    }
    fn finite(&mut self) -> Result<f64, PayloadError> {
        let v = self.f64()?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(PayloadError::Malformed("a number is not finite"))
        }
    }
    fn str(&mut self) -> Result<String, PayloadError> {
        let n = usize::from(self.u16()?);
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| PayloadError::Malformed("text is not UTF-8"))
    }
    fn opt(&mut self) -> Result<Option<f64>, PayloadError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.finite().map(Some),
            _ => Err(PayloadError::Malformed("bad optional flag")),
        }
    }
    fn count(&mut self) -> Result<usize, PayloadError> {
        let n = usize::from(self.u16()?);
        if n > MAX_CHANNELS {
            return Err(PayloadError::Malformed("too many entries"));
        }
        Ok(n)
    }
    fn range(&mut self) -> Result<(f64, f64), PayloadError> {
        let lo = self.f64()?;
        let hi = self.f64()?;
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return Err(PayloadError::Malformed("a range is invalid"));
        }
        Ok((lo, hi))
    }
    fn blob(&mut self) -> Result<&'a [u8], PayloadError> {
        let n = usize::try_from(self.u32()?).map_err(|_| PayloadError::Malformed("length"))?;
        self.take(n)
    }
}

#[diversify]
fn table_code(t: ModbusTable) -> u8 {
    match t {
        ModbusTable::Coil => 0,
        ModbusTable::Discrete => 1,
        ModbusTable::Input => 2,
        ModbusTable::Holding => 3,
    }
}

#[diversify]
impl Model {
    /// The model as a bundle payload, with both programs in `enc`.
    pub fn to_payload(&self, enc: &Encoding) -> Vec<u8> {
        let mut w = W(Vec::new());
        w.0.extend_from_slice(MAGIC);
        w.u8(VERSION);
        w.str(&self.name);
        w.str(&self.version);
        w.f64(self.step);
        w.u16(u16::try_from(self.inputs.len()).unwrap_or(u16::MAX));
        for i in &self.inputs {
            w.str(&i.name);
            w.str(&i.unit);
            w.f64(i.range.0);
            w.f64(i.range.1);
            w.f64(i.nominal);
        }
        w.u16(u16::try_from(self.states.len()).unwrap_or(u16::MAX));
        for (k, s) in self.states.iter().enumerate() {
            w.str(&s.name);
            w.str(&s.unit);
            w.f64(s.init);
            w.f64(s.range.0);
            w.f64(s.range.1);
            w.f64(self.estimator.process_noise.get(k).copied().unwrap_or(0.0));
            w.f64(self.estimator.initial_std.get(k).copied().unwrap_or(1.0));
        }
        w.u16(u16::try_from(self.outputs.len()).unwrap_or(u16::MAX));
        for (k, o) in self.outputs.iter().enumerate() {
            w.str(&o.name);
            w.str(&o.unit);
            w.f64(o.noise);
            w.f64(o.range.0);
            w.f64(o.range.1);
            w.f64(
                self.estimator
                    .measurement_noise
                    .get(k)
                    .copied()
                    .unwrap_or(o.noise),
            );
            let d = self.detect.outputs.get(k).cloned().unwrap_or_default();
            w.opt(d.cusum_drift);
            w.opt(d.cusum_threshold);
            w.opt(d.frozen_after);
        }
        w.opt(self.detect.chi2_window.map(f64::from));
        w.opt(self.detect.chi2_false_alarm);
        match &self.modbus {
            None => w.u8(0),
            Some(m) => {
                w.u8(1);
                w.u8(m.unit_id);
                w.u16(u16::try_from(m.points.len()).unwrap_or(u16::MAX));
                for p in &m.points {
                    let (kind, index) = match p.channel {
                        Channel::Input(i) => (0u8, i),
                        Channel::Output(i) => (1u8, i),
                    };
                    w.u8(kind);
                    w.u16(u16::try_from(index).unwrap_or(u16::MAX));
                    w.u8(table_code(p.table));
                    w.u16(p.address);
                    w.u8(p.words);
                    w.f64(p.scale);
                    w.f64(p.offset);
                    w.u8(u8::from(p.signed));
                }
            }
        }
        w.blob(&self.derivatives.encode(enc));
        w.blob(&self.sensors.encode(enc));
        if let Some(body) = w.0.get_mut(HEADER_LEN..) {
            mask(body, enc.payload_key());
        }
        w.0
    }

    /// Reads a bundle payload written by [`Model::to_payload`] under `enc`,
    /// checking every count, range and program against the declarations.
    pub fn from_payload(bytes: &[u8], enc: &Encoding) -> Result<Model, PayloadError> {
        let unmasked = unmask(bytes, enc)?;
        let mut r = R(unmasked.get(HEADER_LEN..).unwrap_or_default());
        let name = r.str()?;
        let version = r.str()?;
        let step = r.finite()?;
        if step <= 0.0 {
            return Err(PayloadError::Malformed("step is not positive"));
        }
        let inputs = read_inputs(&mut r)?;
        let StatesRead {
            states,
            process_noise,
            initial_std,
        } = read_states(&mut r)?;
        let OutputsRead {
            outputs,
            measurement_noise,
            detect_out,
        } = read_outputs(&mut r)?;
        let chi2_window = match r.opt()? {
            Some(w) if (1.0..=100_000.0).contains(&w) => Some(w as u32),
            Some(_) => return Err(PayloadError::Malformed("chi-square window out of range")),
            None => None,
        };
        let chi2_false_alarm = r.opt()?;
        let modbus = match r.u8()? {
            0 => None,
            1 => Some(read_modbus(&mut r, inputs.len(), outputs.len())?),
            _ => return Err(PayloadError::Malformed("bad binding flag")),
        };
        let derivatives = Program::decode(r.blob()?, enc)?;
        let sensors = Program::decode(r.blob()?, enc)?;
        if !r.0.is_empty() {
            return Err(PayloadError::Malformed("trailing bytes"));
        }
        let shape_ok = |p: &Program, results: usize| {
            p.n_inputs() == inputs.len() && p.n_states() == states.len() && p.n_results() == results
        };
        if !shape_ok(&derivatives, states.len()) || !shape_ok(&sensors, outputs.len()) {
            return Err(PayloadError::Inconsistent(
                "programs do not match the declarations",
            ));
        }
        if states.is_empty() || outputs.is_empty() {
            return Err(PayloadError::Inconsistent("no states or no outputs"));
        }
        Ok(Model {
            name,
            version,
            step,
            params: Vec::new(),
            inputs,
            states,
            outputs,
            estimator: EstimatorConfig {
                process_noise,
                measurement_noise,
                initial_std,
            },
            detect: DetectConfig {
                outputs: detect_out,
                chi2_window,
                chi2_false_alarm,
            },
            modbus,
            derivatives,
            sensors,
        })
    }
}

/// Checks the payload's magic and version and takes the mask off its body;
/// returns the whole payload, header included, unmasked.
#[diversify]
fn unmask(bytes: &[u8], enc: &Encoding) -> Result<Vec<u8>, PayloadError> {
    let mut header = R(bytes);
    if header.take(4)? != MAGIC {
        return Err(PayloadError::Malformed("not a model payload"));
    }
    let mut unmasked = bytes.to_vec();
    match header.u8()? {
        VERSION => {
            if let Some(body) = unmasked.get_mut(HEADER_LEN..) {
                mask(body, enc.payload_key());
            }
        }
        UNMASKED_VERSION => {}
        _ => {
            return Err(PayloadError::Malformed(
                "not a model payload of this version",
            ));
        }
    }
    Ok(unmasked)
}

/// The inputs, in declaration order.
#[diversify]
fn read_inputs(r: &mut R<'_>) -> Result<Vec<Input>, PayloadError> {
    let mut inputs = Vec::new();
    for _ in 0..r.count()? {
        let name = r.str()?;
        let unit = r.str()?;
        let range = r.range()?;
        let nominal = r.finite()?;
        inputs.push(Input {
            name,
            unit,
            range,
            nominal,
        });
    }
    Ok(inputs)
}

/// The states with, per state, its process noise and initial standard
/// deviation (written beside each state, kept in the estimator's tuning).
struct StatesRead {
    states: Vec<State>,
    process_noise: Vec<f64>,
    initial_std: Vec<f64>,
}

#[diversify]
fn read_states(r: &mut R<'_>) -> Result<StatesRead, PayloadError> {
    let (mut states, mut process_noise, mut initial_std) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..r.count()? {
        let name = r.str()?;
        let unit = r.str()?;
        let init = r.finite()?;
        let range = r.range()?;
        states.push(State {
            name,
            unit,
            init,
            range,
        });
        process_noise.push(r.finite()?.abs());
        initial_std.push(r.finite()?.abs());
    }
    Ok(StatesRead {
        states,
        process_noise,
        initial_std,
    })
}

/// The outputs with, per output, its measurement noise and detector
/// settings (written beside each output).
struct OutputsRead {
    outputs: Vec<Output>,
    measurement_noise: Vec<f64>,
    detect_out: Vec<OutputDetect>,
}

#[diversify]
fn read_outputs(r: &mut R<'_>) -> Result<OutputsRead, PayloadError> {
    let (mut outputs, mut measurement_noise, mut detect_out) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..r.count()? {
        let name = r.str()?;
        let unit = r.str()?;
        let noise = r.finite()?;
        let range = r.range()?;
        let m = r.finite()?;
        if noise <= 0.0 || m <= 0.0 {
            return Err(PayloadError::Malformed("a noise level is not positive"));
        }
        outputs.push(Output {
            name,
            unit,
            noise,
            range,
        });
        measurement_noise.push(m);
        detect_out.push(OutputDetect {
            cusum_drift: r.opt()?,
            cusum_threshold: r.opt()?,
            frozen_after: r.opt()?,
        });
    }
    Ok(OutputsRead {
        outputs,
        measurement_noise,
        detect_out,
    })
}

/// The Modbus map; each point must name one of the `n_inputs` inputs or
/// `n_outputs` outputs.
#[diversify]
fn read_modbus(
    r: &mut R<'_>,
    n_inputs: usize,
    n_outputs: usize,
) -> Result<ModbusMap, PayloadError> {
    let unit_id = r.u8()?;
    let mut points = Vec::new();
    for _ in 0..r.count()? {
        let kind = r.u8()?;
        let index = usize::from(r.u16()?);
        let channel = match kind {
            0 if index < n_inputs => Channel::Input(index),
            1 if index < n_outputs => Channel::Output(index),
            _ => return Err(PayloadError::Inconsistent("a binding names no channel")),
        };
        let table = match r.u8()? {
            0 => ModbusTable::Coil,
            1 => ModbusTable::Discrete,
            2 => ModbusTable::Input,
            3 => ModbusTable::Holding,
            _ => return Err(PayloadError::Malformed("unknown Modbus table")),
        };
        let address = r.u16()?;
        let words = r.u8()?;
        let scale = r.finite()?;
        let offset = r.finite()?;
        let signed = r.u8()? != 0;
        if !(words == 1 || words == 2) || scale == 0.0 {
            return Err(PayloadError::Malformed("a binding is invalid"));
        }
        points.push(ModbusPoint {
            channel,
            table,
            address,
            words,
            scale,
            offset,
            signed,
        });
    }
    Ok(ModbusMap { unit_id, points })
}
