//! The checked declarations of a twin model: what the twin is, what it reads
//! from the plant and how the estimator and detectors are tuned. Plain data,
//! produced by [`crate::Model::parse`] only after every check passed.

use twinshield_shield_macros::diversify;

/// A named constant.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Name used in expressions.
    pub name: String,
    /// Its value.
    pub value: f64,
}

/// An actuator value read from the plant (for example a pump voltage).
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// Name used in expressions.
    pub name: String,
    /// Physical unit, for display.
    pub unit: String,
    /// Valid range, inclusive; values outside are a data-quality problem.
    pub range: (f64, f64),
    /// The value at the model's operating point (simulation default).
    pub nominal: f64,
}

/// A state of the model, integrated from its derivative.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// Name used in expressions.
    pub name: String,
    /// Physical unit, for display.
    pub unit: String,
    /// Initial value.
    pub init: f64,
    /// Physically valid range, inclusive; the estimator keeps its estimate inside.
    pub range: (f64, f64),
}

/// A sensor value the plant reports, as the model predicts it.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Channel name.
    pub name: String,
    /// Physical unit, for display.
    pub unit: String,
    /// Standard deviation of the sensor's measurement noise.
    pub noise: f64,
    /// Plausible range of the reported value, inclusive (unbounded unless
    /// declared); a reading outside is a data-quality problem.
    pub range: (f64, f64),
}

/// Tuning of the extended Kalman filter.
#[derive(Debug, Clone, PartialEq)]
pub struct EstimatorConfig {
    /// Per state: standard deviation of the process noise per square root of
    /// a second (the random-walk intensity the model cannot explain).
    pub process_noise: Vec<f64>,
    /// Per output: standard deviation of the measurement noise (defaults to
    /// the output's own `noise`).
    pub measurement_noise: Vec<f64>,
    /// Per state: standard deviation of the initial estimate's error.
    pub initial_std: Vec<f64>,
}

/// Per-output detector settings (consumed by the detection crate).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutputDetect {
    /// CUSUM drift allowance, in units of the innovation's standard deviation.
    pub cusum_drift: Option<f64>,
    /// CUSUM alarm threshold, in units of the innovation's standard deviation.
    pub cusum_threshold: Option<f64>,
    /// Seconds without a change after which the channel counts as frozen.
    pub frozen_after: Option<f64>,
}

/// Detector settings for the whole model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DetectConfig {
    /// Per output, in output order.
    pub outputs: Vec<OutputDetect>,
    /// Samples in the chi-square (normalized innovation squared) window.
    pub chi2_window: Option<u32>,
    /// Target false-alarm probability per window of the chi-square test.
    pub chi2_false_alarm: Option<f64>,
}

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModbusTable {
    /// Read-write single bits.
    Coil,
    /// Read-only single bits.
    Discrete,
    /// Read-only 16-bit registers.
    Input,
    /// Read-write 16-bit registers.
    Holding,
}

#[diversify]
impl ModbusTable {
    /// The name used in `.twin` files.
    pub fn name(self) -> &'static str {
        match self {
            ModbusTable::Coil => "coil",
            ModbusTable::Discrete => "discrete",
            ModbusTable::Input => "input",
            ModbusTable::Holding => "holding",
        }
    }

    /// Whether the table holds bits rather than registers.
    pub fn is_bit(self) -> bool {
        matches!(self, ModbusTable::Coil | ModbusTable::Discrete)
    }
}

/// Which model value a Modbus point carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The input at this index.
    Input(usize),
    /// The output at this index.
    Output(usize),
}

/// Where one input or output lives in the plant's Modbus map.
#[derive(Debug, Clone, PartialEq)]
pub struct ModbusPoint {
    /// The model value.
    pub channel: Channel,
    /// Which table.
    pub table: ModbusTable,
    /// Zero-based address of the first register or bit.
    pub address: u16,
    /// Number of 16-bit registers (1 or 2, big-endian word order); 1 for bits.
    pub words: u8,
    /// Engineering value = raw value × scale + offset.
    pub scale: f64,
    /// Added after scaling.
    pub offset: f64,
    /// Whether the raw value is two's complement.
    pub signed: bool,
}

/// The model's Modbus register map.
#[derive(Debug, Clone, PartialEq)]
pub struct ModbusMap {
    /// Modbus unit identifier of the plant's server.
    pub unit_id: u8,
    /// One point per bound channel.
    pub points: Vec<ModbusPoint>,
}
