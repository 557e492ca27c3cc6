//! The reference quadruple-tank plant (Johansson 2000) with its PLC, sensors,
//! Modbus registers, and attack and fault injection.

use std::collections::VecDeque;
use std::f64::consts::TAU;
use twinshield_shield_macros::diversify;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::attack::{Attack, AttackKind, REPLAY_WINDOW_S};
use crate::error::PlantError;
use crate::registers::{Registers, clock_registers, level_register, voltage_register};

/// Longest time step `QuadTank::step` accepts, s.
pub const MAX_STEP: f64 = 10.0;
/// Longest internal RK4 substep, s.
pub const MAX_SUBSTEP: f64 = 0.05;
/// Scan period of the plant's PLC (sensor read and PI update), s.
pub const PLC_PERIOD: f64 = 0.1;
/// Height of every tank, cm: a level above it overflows.
pub const TANK_HEIGHT: f64 = 20.0;
/// Pump dead zone, V: below it a pump gives no flow; from it to twice it the
/// flow ramps up linearly to meet `k·v`, which holds above.
pub const PUMP_DEAD_ZONE: f64 = 0.3;
/// Pump saturation, V: the highest voltage a pump can run at.
pub const PUMP_MAX: f64 = 10.0;
/// Standard deviation of each level sensor's white noise, cm.
pub const SENSOR_NOISE_STD: f64 = 0.04;
/// Largest amplitude of a level sensor's slow sinusoidal drift, cm.
pub const SENSOR_DRIFT_MAX: f64 = 0.05;
/// Stationary standard deviation of the random disturbance on each pump's
/// flow (an Ornstein-Uhlenbeck process), cm³/s; about 1.5 % of the nominal
/// 10 cm³/s.
pub const FLOW_NOISE_STD: f64 = 0.15;
/// Correlation time of the flow disturbance, s.
pub const FLOW_NOISE_TAU: f64 = 5.0;
/// Relative half-width of the period jitter drawn by
/// [`QuadTank::jittered_period`].
pub const JITTER: f64 = 0.05;
/// Levels at which the plant starts (the shipped model's equilibrium for
/// h1, h2), cm; h3 and h4 start at the plant's own equilibrium for them.
pub const START_LEVELS: [f64; 2] = [12.263, 12.783];
/// Setpoints at the start, cm.
pub const START_SETPOINTS: [f64; 2] = [12.26, 12.78];
/// Range of the setpoints the schedule draws, cm.
pub const SETPOINT_RANGE: (f64, f64) = (9.0, 15.0);
/// Range of the time between two scheduled setpoint changes, s.
pub const SETPOINT_INTERVAL: (f64, f64) = (240.0, 420.0);

/// Proportional gains of the PLC's PI controllers (v1 on h1, v2 on h2), V/cm.
pub const PI_KP: [f64; 2] = [1.0, 1.0];
/// Integral times of the PLC's PI controllers, s.
pub const PI_TI: [f64; 2] = [60.0, 90.0];

/// Physical parameters of a quadruple tank (Johansson 2000 notation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Tank cross-sections A1..A4, cm².
    pub area: [f64; 4],
    /// Outlet hole cross-sections a1..a4, cm².
    pub outlet: [f64; 4],
    /// Pump gains k1, k2, cm³/(V s).
    pub pump_gain: [f64; 2],
    /// Valve split ratios γ1, γ2.
    pub split: [f64; 2],
    /// Gravity, cm/s².
    pub g: f64,
}

#[diversify]
impl Params {
    /// The shipped model's nominal values (`models/quadtank.twin`).
    pub const NOMINAL: Params = Params {
        area: [28.0, 32.0, 28.0, 32.0],
        outlet: [0.071, 0.057, 0.071, 0.057],
        pump_gain: [3.33, 3.35],
        split: [0.70, 0.60],
        g: 981.0,
    };

    /// The reference plant's true values, each within 3 % of the nominal:
    /// A = (28.4, 31.7, 27.7, 32.4) cm² (+1.4, −0.9, −1.1, +1.3 %),
    /// a = (0.06958, 0.05814, 0.07029, 0.05814) cm² (−2, +2, −1, +2 %),
    /// k = (3.297, 3.3835) cm³/(V s) (−1, +1 %), γ = (0.69, 0.61).
    ///
    /// The flows to the lower tanks are ill-conditioned in γ
    /// (1/(γ1 + γ2 − 1) ≈ 3.3), so these offsets were picked to partly
    /// cancel at steady state: over setpoints 9–15 cm the shipped model,
    /// fed the plant's voltages, settles within about 1.5 % (0.2 cm) of the
    /// plant's levels, while the transients (areas, hole sizes) differ more.
    pub const TRUE: Params = Params {
        area: [28.4, 31.7, 27.7, 32.4],
        outlet: [0.06958, 0.05814, 0.07029, 0.05814],
        pump_gain: [3.297, 3.3835],
        split: [0.69, 0.61],
        g: 981.0,
    };

    /// Level derivatives (cm/s) for levels `h`, pump flows `q` (cm³/s) and
    /// an extra leak hole of `leak` cm² in tank 1.
    pub fn derivatives(&self, h: [f64; 4], q: [f64; 2], leak: f64) -> [f64; 4] {
        let out = |i: usize| self.outlet[i] * (2.0 * self.g * h[i].max(0.0)).sqrt();
        let [g1, g2] = self.split;
        let [a1, a2, a3, a4] = self.area;
        let leak_flow = leak * (2.0 * self.g * h[0].max(0.0)).sqrt();
        [
            (-out(0) + out(2) + g1 * q[0] - leak_flow) / a1,
            (-out(1) + out(3) + g2 * q[1]) / a2,
            (-out(2) + (1.0 - g2) * q[1]) / a3,
            (-out(3) + (1.0 - g1) * q[0]) / a4,
        ]
    }

    /// The steady state that holds h1, h2 at the given levels (cm): the pump
    /// flows (cm³/s) and the upper levels h3, h4 (cm), with an extra leak of
    /// `leak` cm² in tank 1. A negative flow means the levels are not
    /// reachable with pumps that only push.
    pub fn steady_state(&self, h1: f64, h2: f64, leak: f64) -> ([f64; 2], [f64; 2]) {
        let two_g = 2.0 * self.g;
        let q1 = (self.outlet[0] + leak) * (two_g * h1.max(0.0)).sqrt();
        let q2 = self.outlet[1] * (two_g * h2.max(0.0)).sqrt();
        let [g1, g2] = self.split;
        let det = g1 + g2 - 1.0;
        let u1 = (g2 * q1 - (1.0 - g2) * q2) / det;
        let u2 = (g1 * q2 - (1.0 - g1) * q1) / det;
        let level = |flow: f64, hole: f64| (flow.max(0.0) / hole).powi(2) / two_g;
        let h3 = level((1.0 - g2) * u2, self.outlet[2]);
        let h4 = level((1.0 - g1) * u1, self.outlet[3]);
        ([u1, u2], [h3, h4])
    }
}

/// Pump flow factor: the voltage that effectively drives the flow `k·v`,
/// after saturation and the dead zone.
#[diversify]
pub(crate) fn effective_voltage(v: f64) -> f64 {
    let v = if v.is_nan() {
        0.0
    } else {
        v.clamp(0.0, PUMP_MAX)
    };
    if v <= PUMP_DEAD_ZONE {
        0.0
    } else if v < 2.0 * PUMP_DEAD_ZONE {
        2.0 * (v - PUMP_DEAD_ZONE)
    } else {
        v
    }
}

/// Inverse of [`effective_voltage`] for a non-negative effective voltage.
#[diversify]
fn voltage_for_effective(e: f64) -> f64 {
    let e = e.clamp(0.0, PUMP_MAX);
    if e >= 2.0 * PUMP_DEAD_ZONE {
        e
    } else if e > 0.0 {
        PUMP_DEAD_ZONE + e / 2.0
    } else {
        0.0
    }
}

/// How a plant run is set up.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PlantConfig {
    /// Seed of every random draw (noise, drift, disturbances, setpoint
    /// schedule, jitter): the same seed and the same calls give the same run.
    pub seed: u64,
    /// The attack or fault to inject, if any.
    pub attack: Option<Attack>,
}

/// A PI controller with output clamping and conditional-integration
/// anti-windup.
#[derive(Debug, Clone)]
struct Pi {
    kp: f64,
    ki: f64,
    integral: f64,
}

#[diversify]
impl Pi {
    fn update(&mut self, setpoint: f64, measured: f64, dt: f64) -> f64 {
        let error = setpoint - measured;
        let candidate = self.integral + self.ki * error * dt;
        let unclamped = self.kp * error + candidate;
        let winding_up = (unclamped > PUMP_MAX && error > 0.0) || (unclamped < 0.0 && error < 0.0);
        if !winding_up {
            self.integral = candidate.clamp(0.0, PUMP_MAX);
        }
        (self.kp * error + self.integral).clamp(0.0, PUMP_MAX)
    }
}

/// Independent random streams, so that what one part draws never shifts
/// another's sequence (an attack changes no noise realisation).
#[derive(Debug, Clone)]
struct Streams {
    sensor: ChaCha8Rng,
    process: ChaCha8Rng,
    schedule: ChaCha8Rng,
    jitter: ChaCha8Rng,
}

#[diversify]
impl Streams {
    fn new(seed: u64) -> Self {
        let stream = |n: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(n);
            rng
        };
        Streams {
            sensor: stream(1),
            process: stream(2),
            schedule: stream(3),
            jitter: stream(4),
        }
    }
}

#[diversify]
fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    rng.sample::<f64, _>(StandardNormal)
}

/// A sensor's slow, bounded drift: `amplitude·sin(2π t / period + phase)`.
#[derive(Debug, Clone, Copy)]
struct Drift {
    amplitude: f64,
    period: f64,
    phase: f64,
}

#[diversify]
impl Drift {
    fn at(&self, t: f64) -> f64 {
        self.amplitude * (TAU * t / self.period + self.phase).sin()
    }
}

/// Tolerance on plant-time comparisons, s (times are sums of host steps).
const TIME_EPS: f64 = 1e-6;

/// The reference quadruple-tank plant: four tanks, two pumps, a PLC with
/// two PI loops, noisy drifting level sensors and a Modbus register image,
/// with one optional attack or fault. It has no I/O: a host calls
/// [`QuadTank::step`] at its period and serves [`QuadTank::registers`].
#[derive(Debug, Clone)]
pub struct QuadTank {
    params: Params,
    attack: Option<Attack>,
    attack_start: Option<f64>,
    time: f64,
    levels: [f64; 4],
    commanded: [f64; 2],
    setpoints: [f64; 2],
    next_setpoint_change: f64,
    next_scan: f64,
    pi: [Pi; 2],
    disturbance: [f64; 2],
    drift: [Drift; 4],
    rng: Streams,
    registers: Registers,
    /// What y1, y2 reported, by plant time, over the last replay window
    /// (frozen once a replay starts).
    history: VecDeque<(f64, [u16; 2])>,
}

#[diversify]
impl QuadTank {
    /// A plant at its steady starting point: h1, h2 at [`START_LEVELS`],
    /// setpoints at [`START_SETPOINTS`], h3, h4 and the PI integrators at the
    /// true plant's steady state for them (v ≈ 3 V), plant time 0.
    ///
    /// # Errors
    /// [`PlantError::InvalidAttack`] if the attack cannot be applied.
    pub fn new(config: PlantConfig) -> Result<Self, PlantError> {
        if let Some(attack) = &config.attack {
            attack.validate()?;
        }
        let params = Params::TRUE;
        let mut rng = Streams::new(config.seed);
        let drift = [(); 4].map(|()| Drift {
            amplitude: rng
                .sensor
                .random_range(0.4 * SENSOR_DRIFT_MAX..=SENSOR_DRIFT_MAX),
            period: rng.sensor.random_range(3600.0..=3.0 * 3600.0),
            phase: rng.sensor.random_range(0.0..TAU),
        });
        let [h1, h2] = START_LEVELS;
        let (flows, [h3, h4]) = params.steady_state(h1, h2, 0.0);
        let commanded = [0, 1].map(|i| voltage_for_effective(flows[i] / params.pump_gain[i]));
        // Integrators hold the steady voltage at the start's control error,
        // so the first scans command exactly that voltage.
        let pi = [0, 1].map(|i| {
            let kp = PI_KP[i];
            let error = START_SETPOINTS[i] - START_LEVELS[i];
            Pi {
                kp,
                ki: kp / PI_TI[i],
                integral: commanded[i] - kp * error,
            }
        });
        let first_change = rng
            .schedule
            .random_range(SETPOINT_INTERVAL.0..=SETPOINT_INTERVAL.1);
        let mut plant = QuadTank {
            params,
            attack: config.attack,
            attack_start: None,
            time: 0.0,
            levels: [h1, h2, h3, h4],
            commanded,
            setpoints: START_SETPOINTS,
            next_setpoint_change: first_change,
            next_scan: 0.0,
            pi,
            disturbance: [0.0; 2],
            drift,
            rng,
            registers: Registers::default(),
            history: VecDeque::new(),
        };
        plant.registers.input = plant.sample_clean_levels();
        plant.update_registers();
        Ok(plant)
    }

    /// Advances the plant by `dt` seconds of plant time (RK4 in substeps of
    /// at most [`MAX_SUBSTEP`], the PLC scanning every [`PLC_PERIOD`]), then
    /// takes a new register snapshot. A `dt` of 0 does nothing.
    ///
    /// # Errors
    /// [`PlantError::InvalidStep`] if `dt` is not finite, negative or above
    /// [`MAX_STEP`]; the plant is then unchanged.
    pub fn step(&mut self, dt: f64) -> Result<(), PlantError> {
        if !dt.is_finite() || !(0.0..=MAX_STEP).contains(&dt) {
            return Err(PlantError::InvalidStep { dt, max: MAX_STEP });
        }
        if dt == 0.0 {
            return Ok(());
        }
        // dt <= MAX_STEP, so this is at most 200 substeps.
        let n = (dt / MAX_SUBSTEP).ceil().max(1.0) as usize;
        let h = dt / n as f64;
        for _ in 0..n {
            self.substep(h);
        }
        self.update_registers();
        Ok(())
    }

    /// Draws a host period around `nominal` (s), uniformly within ±5 %
    /// ([`JITTER`]), from the plant's own seeded jitter stream, so that a
    /// host's timing jitter is reproducible too. A `nominal` that is not a
    /// positive finite number gives 0.
    pub fn jittered_period(&mut self, nominal: f64) -> f64 {
        if !nominal.is_finite() || nominal <= 0.0 {
            return 0.0;
        }
        nominal * (1.0 + self.rng.jitter.random_range(-JITTER..=JITTER))
    }

    /// Plant time, s.
    pub fn time(&self) -> f64 {
        self.time
    }

    /// The register snapshot taken at the end of the last step (what a
    /// Modbus client reads, attacks included).
    pub fn registers(&self) -> Registers {
        self.registers
    }

    /// Ground truth: the true levels h1..h4, cm.
    pub fn true_levels(&self) -> [f64; 4] {
        self.levels
    }

    /// Ground truth: the voltages the pumps really run at, V (the PLC's
    /// commands, plus the `actuator` attack's offset, clamped to 0..=10).
    pub fn applied_voltages(&self) -> [f64; 2] {
        let mut v = self.commanded;
        if let Some(attack) = self.active_attack()
            && attack.kind == AttackKind::Actuator
        {
            v[0] = (v[0] + attack.magnitude).clamp(0.0, PUMP_MAX);
        }
        v
    }

    /// The PLC's voltage commands, V: what the holding registers report
    /// (before quantization to mV).
    #[doc(alias = "reported_voltages")]
    pub fn commanded_voltages(&self) -> [f64; 2] {
        self.commanded
    }

    /// The PLC's current setpoints for h1 and h2, cm.
    pub fn setpoints(&self) -> [f64; 2] {
        self.setpoints
    }

    /// Plant time of the next scheduled setpoint change, s.
    pub fn next_setpoint_change(&self) -> f64 {
        self.next_setpoint_change
    }

    /// The attack or fault this run injects, if any.
    pub fn attack(&self) -> Option<Attack> {
        self.attack
    }

    /// Whether the attack has started.
    pub fn attack_active(&self) -> bool {
        self.attack_start.is_some()
    }

    /// Plant time at which the attack started, s, if it has.
    pub fn attack_since(&self) -> Option<f64> {
        self.attack_start
    }

    /// The true plant parameters ([`Params::TRUE`]).
    pub fn params(&self) -> Params {
        self.params
    }

    fn active_attack(&self) -> Option<Attack> {
        self.attack.filter(|_| self.attack_start.is_some())
    }

    fn active_kind(&self) -> Option<AttackKind> {
        self.active_attack().map(|a| a.kind)
    }

    /// Starts the attack once its time has come; a replay makes its real
    /// setpoint change at that moment.
    fn check_attack_start(&mut self) {
        let Some(attack) = self.attack else { return };
        if self.attack_start.is_some() || self.time + TIME_EPS < attack.at {
            return;
        }
        self.attack_start = Some(self.time);
        if attack.kind == AttackKind::Replay {
            let mid = 0.5 * (SETPOINT_RANGE.0 + SETPOINT_RANGE.1);
            self.setpoints = self.setpoints.map(|sp| {
                let moved = if sp <= mid {
                    sp + attack.magnitude
                } else {
                    sp - attack.magnitude
                };
                moved.clamp(1.0, TANK_HEIGHT - 1.0)
            });
        }
    }

    fn substep(&mut self, h: f64) {
        self.check_attack_start();
        if self.time + TIME_EPS >= self.next_setpoint_change {
            let (lo, hi) = SETPOINT_RANGE;
            self.setpoints = [
                self.rng.schedule.random_range(lo..=hi),
                self.rng.schedule.random_range(lo..=hi),
            ];
            self.next_setpoint_change += self
                .rng
                .schedule
                .random_range(SETPOINT_INTERVAL.0..=SETPOINT_INTERVAL.1);
        }
        if self.time + TIME_EPS >= self.next_scan {
            self.plc_scan();
            self.next_scan += PLC_PERIOD;
            if self.next_scan <= self.time {
                self.next_scan = self.time + PLC_PERIOD;
            }
        }
        // Ornstein-Uhlenbeck flow disturbance, exact discretisation.
        let decay = (-h / FLOW_NOISE_TAU).exp();
        let spread = FLOW_NOISE_STD * (1.0 - decay * decay).sqrt();
        for d in &mut self.disturbance {
            *d = *d * decay + spread * gaussian(&mut self.rng.process);
        }
        self.integrate(h);
        self.time += h;
    }

    /// One PLC scan: read the true (local) sensors, update both PI loops.
    fn plc_scan(&mut self) {
        for i in 0..2 {
            let measured = self.sense(i);
            self.commanded[i] = self.pi[i].update(self.setpoints[i], measured, PLC_PERIOD);
        }
    }

    /// One reading of level sensor `i`: truth, drift and white noise, cm.
    fn sense(&mut self, i: usize) -> f64 {
        self.levels[i]
            + self.drift[i].at(self.time)
            + SENSOR_NOISE_STD * gaussian(&mut self.rng.sensor)
    }

    /// One RK4 substep with the pump flows and disturbances held.
    fn integrate(&mut self, h: f64) {
        let applied = self.applied_voltages();
        let q = [0, 1].map(|i| {
            (self.params.pump_gain[i] * effective_voltage(applied[i]) + self.disturbance[i])
                .max(0.0)
        });
        let leak = match self.active_attack() {
            Some(a) if a.kind == AttackKind::Leak => a.magnitude,
            _ => 0.0,
        };
        let p = self.params;
        let f = |x: [f64; 4]| p.derivatives(x, q, leak);
        let add = |x: [f64; 4], k: [f64; 4], s: f64| [0, 1, 2, 3].map(|i| x[i] + s * k[i]);
        let x = self.levels;
        let k1 = f(x);
        let k2 = f(add(x, k1, h / 2.0));
        let k3 = f(add(x, k2, h / 2.0));
        let k4 = f(add(x, k3, h));
        self.levels = [0, 1, 2, 3].map(|i| {
            let next = x[i] + h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
            if next.is_nan() {
                0.0
            } else {
                next.clamp(0.0, TANK_HEIGHT)
            }
        });
    }

    /// Reads all four sensors and encodes them, with no attack applied.
    fn sample_clean_levels(&mut self) -> [u16; 4] {
        [0, 1, 2, 3].map(|i| level_register(self.sense(i)))
    }

    /// Takes the register snapshot at the current time, attack applied.
    fn update_registers(&mut self) {
        self.check_attack_start();
        // Always draw all four readings, so the noise sequence never depends
        // on the attack.
        let readings = [0, 1, 2, 3].map(|i| self.sense(i));
        let clean = readings.map(level_register);
        let previous = self.registers.input;
        let mut input = clean;
        if let (Some(attack), Some(start)) = (self.attack, self.attack_start) {
            match attack.kind {
                AttackKind::Bias => input[0] = level_register(readings[0] + attack.magnitude),
                AttackKind::Ramp => {
                    input[1] = level_register(readings[1] + attack.magnitude * (self.time - start));
                }
                AttackKind::Freeze => input[0] = previous[0],
                AttackKind::Dos => input = previous,
                AttackKind::Replay => {
                    let [y1, y2] = self.replayed(start).unwrap_or([previous[0], previous[1]]);
                    input[0] = y1;
                    input[1] = y2;
                }
                AttackKind::Actuator | AttackKind::Leak => {}
            }
        }
        if self.active_kind() != Some(AttackKind::Replay) {
            self.history.push_back((self.time, [clean[0], clean[1]]));
            let horizon = self.time - REPLAY_WINDOW_S - MAX_STEP - 1.0;
            while self.history.front().is_some_and(|(t, _)| *t < horizon) {
                self.history.pop_front();
            }
        }
        self.registers = Registers {
            input,
            holding: self.commanded.map(voltage_register),
            coils: [self.commanded.iter().any(|v| *v > PUMP_DEAD_ZONE)],
            clock: clock_registers(self.time),
        };
    }

    /// What a replay started at `start` reports now: the recording of the
    /// window before `start`, looped, so that the value reported at `t`
    /// is the one reported at `t - window`.
    fn replayed(&self, start: f64) -> Option<[u16; 2]> {
        let first = self.history.front()?.0;
        let window = REPLAY_WINDOW_S.min(start - first);
        if window <= TIME_EPS {
            return self.history.back().map(|(_, y)| *y);
        }
        let mut phase = (self.time - start).rem_euclid(window);
        if phase < TIME_EPS {
            phase = window;
        }
        let target = start - window + phase;
        let idx = self
            .history
            .partition_point(|(t, _)| *t <= target + TIME_EPS);
        let idx = idx.max(1) - 1;
        self.history.get(idx).map(|(_, y)| *y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_zone_and_saturation() {
        assert_eq!(effective_voltage(0.0), 0.0);
        assert_eq!(effective_voltage(0.29), 0.0);
        assert!((effective_voltage(0.45) - 0.3).abs() < 1e-12);
        assert_eq!(effective_voltage(3.0), 3.0);
        assert_eq!(effective_voltage(12.0), 10.0);
        assert_eq!(effective_voltage(f64::NAN), 0.0);
        for e in [0.0, 0.1, 0.5, 0.6, 3.0] {
            assert!((effective_voltage(voltage_for_effective(e)) - e).abs() < 1e-12);
        }
    }

    #[test]
    fn nominal_equilibrium_matches_the_model() {
        let p = Params::NOMINAL;
        let h = [12.263, 12.783, 1.634, 1.409];
        let d = p.derivatives(h, [3.33 * 3.0, 3.35 * 3.0], 0.0);
        for x in d {
            assert!(x.abs() < 1e-3, "{d:?}");
        }
        let (flows, upper) = p.steady_state(h[0], h[1], 0.0);
        assert!((flows[0] / 3.33 - 3.0).abs() < 0.01, "{flows:?}");
        assert!((flows[1] / 3.35 - 3.0).abs() < 0.01, "{flows:?}");
        assert!((upper[0] - h[2]).abs() < 0.01 && (upper[1] - h[3]).abs() < 0.01);
    }

    #[test]
    fn true_params_within_three_percent() {
        let (n, t) = (Params::NOMINAL, Params::TRUE);
        let close = |a: f64, b: f64| ((a - b) / a).abs() <= 0.03;
        for i in 0..4 {
            assert!(close(n.area[i], t.area[i]) && close(n.outlet[i], t.outlet[i]));
        }
        for i in 0..2 {
            assert!(close(n.pump_gain[i], t.pump_gain[i]) && close(n.split[i], t.split[i]));
        }
        assert_ne!(n, t);
    }

    #[test]
    fn steady_mismatch_with_the_model_is_small() {
        // The shipped model, fed the plant's steady voltages, settles within
        // 2 % of the plant's levels (or 0.05 cm for the small upper levels).
        let (n, t) = (Params::NOMINAL, Params::TRUE);
        for (h1, h2) in [
            (12.263, 12.783),
            (9.0, 9.0),
            (9.0, 15.0),
            (15.0, 9.0),
            (15.0, 15.0),
        ] {
            let (q, [h3, h4]) = t.steady_state(h1, h2, 0.0);
            let u = [0, 1].map(|i| q[i] / t.pump_gain[i] * n.pump_gain[i]);
            // Integrate the nominal model to its steady state.
            let mut x = [h1, h2, h3, h4];
            for _ in 0..200_000 {
                let d = n.derivatives(x, u, 0.0);
                x = [0, 1, 2, 3].map(|i| x[i] + 0.05 * d[i]);
            }
            let truth = [h1, h2, h3, h4];
            for i in 0..4 {
                let tol = (0.02 * truth[i]).max(0.05);
                assert!((x[i] - truth[i]).abs() < tol, "{truth:?} vs model {x:?}");
            }
        }
    }

    #[test]
    fn steady_state_is_steady_for_true_params() {
        let p = Params::TRUE;
        let (q, [h3, h4]) = p.steady_state(12.0, 13.0, 0.0);
        let d = p.derivatives([12.0, 13.0, h3, h4], q, 0.0);
        for x in d {
            assert!(x.abs() < 1e-9, "{d:?}");
        }
    }

    #[test]
    fn setpoint_range_is_reachable() {
        let p = Params::TRUE;
        let (lo, hi) = SETPOINT_RANGE;
        for (h1, h2) in [(lo, lo), (lo, hi), (hi, lo), (hi, hi)] {
            let (q, [h3, h4]) = p.steady_state(h1, h2, 0.0);
            for i in 0..2 {
                let v = q[i] / p.pump_gain[i];
                assert!(v > 2.0 * PUMP_DEAD_ZONE && v < PUMP_MAX, "{h1} {h2}: {q:?}");
            }
            assert!(h3 < TANK_HEIGHT && h4 < TANK_HEIGHT);
        }
    }

    #[test]
    fn start_voltages_near_three_volts() {
        let plant = QuadTank::new(PlantConfig::default()).unwrap();
        for v in plant.commanded_voltages() {
            assert!((v - 3.0).abs() < 0.15, "{v}");
        }
    }
}
