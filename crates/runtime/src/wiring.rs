//! Wiring between a twin model and its plant source: the model's
//! `[bind.modbus]` becomes the Modbus source's point map, and a sample's
//! channels, matched by name, become the model's inputs and outputs.

use twinshield_connect::{MapError, PlantSample, Point, PointMap, Quality, SourceInfo, Table};
use twinshield_model::Model;
use twinshield_model::spec::{Channel, ModbusTable};
use twinshield_shield_macros::diversify;

/// The shipped reference model, built into the binary so `demo` and `eval`
/// need no files.
pub const QUADTANK: &str = include_str!("../../../models/quadtank.twin");

/// Why a model and a plant source do not fit together.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    /// The built-in model does not check (a build defect).
    #[error("built-in model does not check: {0}")]
    BuiltIn(String),
    /// The model binds nothing for the source's protocol.
    #[error("model `{model}` has no [bind.{protocol}] section")]
    NoBinding {
        /// The model's name.
        model: String,
        /// The protocol.
        protocol: &'static str,
    },
    /// A binding names a channel the model does not declare.
    #[error("binding to an unknown channel")]
    UnknownChannel,
    /// An input or output no channel of the source feeds.
    #[error("{kind} `{name}` has no {protocol} binding")]
    Unbound {
        /// `input` or `output`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The protocol, as the model's section names it.
        protocol: &'static str,
    },
    /// The point map is unusable.
    #[error(transparent)]
    Map(#[from] MapError),
}

/// Parses the built-in quadtank model.
#[diversify]
pub fn quadtank() -> Result<Model, WiringError> {
    Model::parse("models/quadtank.twin", QUADTANK).map_err(|r| WiringError::BuiltIn(r.to_string()))
}

/// The Modbus point map of `model`'s `[bind.modbus]`: every input and
/// output bound, named as in the model.
#[diversify]
pub fn modbus_map(model: &Model) -> Result<PointMap, WiringError> {
    let Some(bind) = &model.modbus else {
        return Err(WiringError::NoBinding {
            model: model.name.clone(),
            protocol: "modbus",
        });
    };
    let mut points = Vec::new();
    for p in &bind.points {
        let (name, range) = match p.channel {
            Channel::Input(i) => model.inputs.get(i).map(|x| (x.name.clone(), x.range)),
            Channel::Output(i) => model.outputs.get(i).map(|x| (x.name.clone(), x.range)),
        }
        .ok_or(WiringError::UnknownChannel)?;
        points.push(Point {
            name,
            table: match p.table {
                ModbusTable::Coil => Table::Coil,
                ModbusTable::Discrete => Table::Discrete,
                ModbusTable::Input => Table::Input,
                ModbusTable::Holding => Table::Holding,
            },
            address: p.address,
            words: p.words,
            scale: p.scale,
            offset: p.offset,
            signed: p.signed,
            range,
        });
    }
    Ok(PointMap::new(bind.unit_id, points)?)
}

/// The reference plant's clock registers as a timestamp point: plant
/// seconds, 0.1 s per count over two input registers.
#[diversify]
pub fn reference_plant_clock() -> Point {
    Point {
        name: "plant clock".to_owned(),
        table: Table::Input,
        address: twinshield_plant::INPUT_CLOCK,
        words: 2,
        scale: twinshield_plant::CLOCK_SCALE_S,
        offset: 0.0,
        signed: false,
        range: (0.0, f64::from(u32::MAX) * twinshield_plant::CLOCK_SCALE_S),
    }
}

/// How a source's samples map onto a model's inputs and outputs.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// Per source channel, the model channel it feeds (if any).
    channels: Vec<Option<Channel>>,
    n_inputs: usize,
    n_outputs: usize,
}

#[diversify]
impl Wiring {
    /// Matches `source`'s channels to `model`'s inputs and outputs by
    /// name; every input and output must be fed.
    pub fn new(model: &Model, source: &SourceInfo) -> Result<Self, WiringError> {
        let protocol = source.protocol;
        let find = |name: &str| {
            let input = model.inputs.iter().position(|i| i.name == name);
            let output = model.outputs.iter().position(|o| o.name == name);
            input.map(Channel::Input).or(output.map(Channel::Output))
        };
        let channels: Vec<Option<Channel>> = source.channels.iter().map(|c| find(c)).collect();
        for (i, input) in model.inputs.iter().enumerate() {
            if !channels.contains(&Some(Channel::Input(i))) {
                let name = input.name.clone();
                return Err(WiringError::Unbound {
                    kind: "input",
                    name,
                    protocol,
                });
            }
        }
        for (i, output) in model.outputs.iter().enumerate() {
            if !channels.contains(&Some(Channel::Output(i))) {
                let name = output.name.clone();
                return Err(WiringError::Unbound {
                    kind: "output",
                    name,
                    protocol,
                });
            }
        }
        Ok(Wiring {
            channels,
            n_inputs: model.inputs.len(),
            n_outputs: model.outputs.len(),
        })
    }

    /// Splits a sample into the model's inputs and outputs (NaN where a
    /// value is missing or of bad quality).
    pub fn split(&self, s: &PlantSample, inputs: &mut Vec<f64>, outputs: &mut Vec<f64>) {
        inputs.clear();
        inputs.resize(self.n_inputs, f64::NAN);
        outputs.clear();
        outputs.resize(self.n_outputs, f64::NAN);
        for (k, (ch, v)) in self.channels.iter().zip(&s.values).enumerate() {
            let usable = s.quality.get(k) != Some(&Quality::Bad);
            let slot = match *ch {
                Some(Channel::Input(i)) => inputs.get_mut(i),
                Some(Channel::Output(i)) => outputs.get_mut(i),
                None => None,
            };
            if let Some(slot) = slot {
                *slot = if usable { *v } else { f64::NAN };
            }
        }
    }
}
