//! Reference plants for twinshield, with attack and fault injection.
//!
//! The quadruple tank ([`QuadTank`], Johansson, IEEE TCST 8(3), 2000) is
//! written natively here, independent of the model language, and is
//! deliberately *not* the twin's model: its true parameters
//! ([`Params::TRUE`]) differ from the shipped model's ([`Params::NOMINAL`])
//! by up to 3 %, its pumps have a dead zone and saturate, its flows carry a
//! random disturbance, its level sensors are noisy, drift slowly and are
//! quantized to Modbus registers, and a host's period can jitter
//! ([`QuadTank::jittered_period`]). Everything random is drawn from ChaCha8
//! streams seeded by [`PlantConfig::seed`], so runs are reproducible on
//! every platform. The crate does no I/O: a host steps the plant and serves
//! its [`Registers`].
//!
//! The plant's own PLC runs two PI loops (v1 on h1, v2 on h2) on its local,
//! true sensors, and moves its setpoints every 240–420 s of plant time
//! (uniform in 9–15 cm). One [`Attack`] can be injected; see
//! [`AttackKind`] for what each scenario changes.
//!
//! # Register map (`models/quadtank.twin`, `[bind.modbus]`, unit id 1)
//!
//! | table | address | content | unit per count |
//! |---|---|---|---|
//! | input | 0 | reported level y1 (h1) | 0.01 cm |
//! | input | 1 | reported level y2 (h2) | 0.01 cm |
//! | input | 2 | reported level y3 (h3) | 0.01 cm |
//! | input | 3 | reported level y4 (h4) | 0.01 cm |
//! | input | 4, 5 | plant time, high word first (a sample's own timestamp) | 0.1 s |
//! | holding | 0 | pump 1 voltage command, as the PLC reports it | 1 mV |
//! | holding | 1 | pump 2 voltage command, as the PLC reports it | 1 mV |
//! | coil | 0 | pump status: either command above the dead zone (0.3 V) | — |
//!
//! Values are `round(value / unit)` clamped to `0..=65535` (the clock to
//! `0..=2^32-1` over its two registers).
//!
//! A step of the undisturbed plant stays at its steady start, and its
//! registers report the levels within the sensors' noise and drift:
//!
//! ```
//! use twinshield_plant::{PlantConfig, QuadTank, START_LEVELS};
//!
//! let mut plant = QuadTank::new(PlantConfig { seed: 7, attack: None })?;
//! plant.step(0.1)?;
//! assert!((plant.time() - 0.1).abs() < 1e-12);
//! assert!((plant.true_levels()[0] - START_LEVELS[0]).abs() < 0.01);
//! let reported = plant.registers().levels_cm();
//! assert!((reported[0] - START_LEVELS[0]).abs() < 0.3);
//! # Ok::<(), twinshield_plant::PlantError>(())
//! ```
#![forbid(unsafe_code)]

mod attack;
mod error;
mod quadtank;
mod registers;

pub use attack::{
    Attack, AttackKind, DEFAULT_ACTUATOR_OFFSET_V, DEFAULT_BIAS_CM, DEFAULT_LEAK_AREA_CM2,
    DEFAULT_RAMP_CM_PER_S, DEFAULT_REPLAY_SETPOINT_STEP_CM, REPLAY_WINDOW_S,
};
pub use error::PlantError;
pub use quadtank::{
    FLOW_NOISE_STD, FLOW_NOISE_TAU, JITTER, MAX_STEP, MAX_SUBSTEP, PI_KP, PI_TI, PLC_PERIOD,
    PUMP_DEAD_ZONE, PUMP_MAX, Params, PlantConfig, QuadTank, SENSOR_DRIFT_MAX, SENSOR_NOISE_STD,
    SETPOINT_INTERVAL, SETPOINT_RANGE, START_LEVELS, START_SETPOINTS, TANK_HEIGHT,
};
pub use registers::{
    CLOCK_SCALE_S, COIL_PUMPS, HOLDING_V1, HOLDING_V2, INPUT_CLOCK, INPUT_Y1, INPUT_Y2, INPUT_Y3,
    INPUT_Y4, LEVEL_SCALE_CM, Registers, UNIT_ID, VOLTAGE_SCALE_V,
};
