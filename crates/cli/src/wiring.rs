//! Wiring between a twin model and the plant connection: the model's
//! `[bind.modbus]` becomes the connector's point map, and a reading becomes
//! the model's inputs and outputs.

use anyhow::{Context, Result, bail};
use twinshield_connect::{Point, PointMap, Reading, Table};
use twinshield_model::Model;
use twinshield_model::spec::{Channel, ModbusTable};
use twinshield_shield_macros::diversify;

/// The shipped reference model, built into the binary so `demo` and `eval`
/// need no files.
pub const QUADTANK: &str = include_str!("../../../models/quadtank.twin");

/// Parses the built-in quadtank model.
#[diversify]
pub fn quadtank() -> Result<Model> {
    Model::parse("models/quadtank.twin", QUADTANK)
        .map_err(|r| anyhow::anyhow!("built-in model does not check: {r}"))
}

/// How readings map onto a model's inputs and outputs.
pub struct Wiring {
    map: PointMap,
    channels: Vec<Channel>,
    n_inputs: usize,
    n_outputs: usize,
}

#[diversify]
impl Wiring {
    /// Builds the point map from the model's Modbus binding; every input and
    /// output must be bound.
    pub fn new(model: &Model) -> Result<Self> {
        let Some(bind) = &model.modbus else {
            bail!("model `{}` has no [bind.modbus] section", model.name);
        };
        let mut points = Vec::new();
        let mut channels = Vec::new();
        for p in &bind.points {
            let (name, range) = match p.channel {
                Channel::Input(i) => model.inputs.get(i).map(|x| (x.name.clone(), x.range)),
                Channel::Output(i) => model.outputs.get(i).map(|x| (x.name.clone(), x.range)),
            }
            .context("binding to an unknown channel")?;
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
            channels.push(p.channel);
        }
        for (i, input) in model.inputs.iter().enumerate() {
            if !channels.contains(&Channel::Input(i)) {
                bail!("input `{}` has no Modbus binding", input.name);
            }
        }
        for (i, output) in model.outputs.iter().enumerate() {
            if !channels.contains(&Channel::Output(i)) {
                bail!("output `{}` has no Modbus binding", output.name);
            }
        }
        let map = PointMap::new(bind.unit_id, points)?;
        Ok(Wiring {
            map,
            channels,
            n_inputs: model.inputs.len(),
            n_outputs: model.outputs.len(),
        })
    }

    /// The connector's point map.
    pub fn map(&self) -> &PointMap {
        &self.map
    }

    /// Splits a reading into the model's inputs and outputs.
    pub fn split(&self, r: &Reading, inputs: &mut Vec<f64>, outputs: &mut Vec<f64>) {
        inputs.clear();
        inputs.resize(self.n_inputs, f64::NAN);
        outputs.clear();
        outputs.resize(self.n_outputs, f64::NAN);
        for (ch, v) in self.channels.iter().zip(&r.values) {
            let slot = match *ch {
                Channel::Input(i) => inputs.get_mut(i),
                Channel::Output(i) => outputs.get_mut(i),
            };
            if let Some(s) = slot {
                *s = *v;
            }
        }
    }
}
