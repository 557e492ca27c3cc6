//! Attack and fault scenarios of the reference plant.

use std::fmt;
use std::str::FromStr;
use twinshield_shield_macros::diversify;

use crate::error::PlantError;

/// Default offset of the `bias` attack on the h1 sensor, cm.
pub const DEFAULT_BIAS_CM: f64 = 1.0;
/// Default growth rate of the `ramp` attack's offset on the h2 sensor, cm/s.
pub const DEFAULT_RAMP_CM_PER_S: f64 = 0.005;
/// Default setpoint step (cm, on h1 and h2) that the `replay` attacker makes
/// while replaying old sensor values to hide it.
pub const DEFAULT_REPLAY_SETPOINT_STEP_CM: f64 = 3.0;
/// Default extra voltage of the `actuator` attack on pump 1, V.
pub const DEFAULT_ACTUATOR_OFFSET_V: f64 = 0.6;
/// Default area of the extra hole in tank 1 of the `leak` fault, cm².
pub const DEFAULT_LEAK_AREA_CM2: f64 = 0.02;
/// Length of the recording the `replay` attack loops over, s.
pub const REPLAY_WINDOW_S: f64 = 300.0;

/// The attack and fault scenarios of the reference plant. Every kind but
/// `actuator` and `leak` only changes what the plant *reports*; the plant's
/// own PLC keeps acting on its true sensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttackKind {
    /// A constant offset (magnitude, cm) added to the reported h1 level.
    Bias,
    /// A growing offset (magnitude, cm/s) added to the reported h2 level.
    Ramp,
    /// The reported h1 level sticks at its last value.
    Freeze,
    /// The reported h1 and h2 levels loop over what they reported in the
    /// previous [`REPLAY_WINDOW_S`] seconds, while the attacker makes a real
    /// setpoint change (magnitude, cm) that the replay hides.
    Replay,
    /// Pump 1 really runs at the commanded voltage plus magnitude (V) while
    /// the PLC still reports the command.
    Actuator,
    /// Denial of service on the sensors: all input registers stop updating
    /// (the values freeze; the server still answers).
    Dos,
    /// A physical fault: an extra hole (magnitude, cm²) drains tank 1.
    Leak,
}

#[diversify]
impl AttackKind {
    /// Every kind, in a fixed order (for evaluations that run them all).
    pub const ALL: [AttackKind; 7] = [
        AttackKind::Bias,
        AttackKind::Ramp,
        AttackKind::Freeze,
        AttackKind::Replay,
        AttackKind::Actuator,
        AttackKind::Dos,
        AttackKind::Leak,
    ];

    /// The scenario's name as used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            AttackKind::Bias => "bias",
            AttackKind::Ramp => "ramp",
            AttackKind::Freeze => "freeze",
            AttackKind::Replay => "replay",
            AttackKind::Actuator => "actuator",
            AttackKind::Dos => "dos",
            AttackKind::Leak => "leak",
        }
    }

    /// The magnitude used when none is given; its unit depends on the kind
    /// (see each variant). `freeze` and `dos` have no magnitude (0).
    pub fn default_magnitude(self) -> f64 {
        match self {
            AttackKind::Bias => DEFAULT_BIAS_CM,
            AttackKind::Ramp => DEFAULT_RAMP_CM_PER_S,
            AttackKind::Freeze | AttackKind::Dos => 0.0,
            AttackKind::Replay => DEFAULT_REPLAY_SETPOINT_STEP_CM,
            AttackKind::Actuator => DEFAULT_ACTUATOR_OFFSET_V,
            AttackKind::Leak => DEFAULT_LEAK_AREA_CM2,
        }
    }
}

#[diversify]
impl fmt::Display for AttackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[diversify]
impl FromStr for AttackKind {
    type Err = PlantError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AttackKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| PlantError::UnknownAttack { name: s.to_owned() })
    }
}

/// One attack or fault, starting at a given plant time and lasting to the
/// end of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attack {
    /// Which scenario.
    pub kind: AttackKind,
    /// Plant time at which it starts, s.
    pub at: f64,
    /// Its size, in the kind's unit (see [`AttackKind`]).
    pub magnitude: f64,
}

#[diversify]
impl Attack {
    /// An attack of `kind` starting at plant time `at` (s), with the kind's
    /// default magnitude.
    pub fn new(kind: AttackKind, at: f64) -> Self {
        Attack {
            kind,
            at,
            magnitude: kind.default_magnitude(),
        }
    }

    /// The same attack with another magnitude.
    #[must_use]
    pub fn with_magnitude(self, magnitude: f64) -> Self {
        Attack { magnitude, ..self }
    }

    /// Checks that the attack can be applied: a finite, non-negative start
    /// time and a finite magnitude (non-negative for a leak).
    pub fn validate(&self) -> Result<(), PlantError> {
        if !self.at.is_finite() || self.at < 0.0 {
            return Err(PlantError::InvalidAttack {
                reason: format!("start time {} s is not a finite time >= 0", self.at),
            });
        }
        if !self.magnitude.is_finite() {
            return Err(PlantError::InvalidAttack {
                reason: format!("magnitude {} is not finite", self.magnitude),
            });
        }
        if self.kind == AttackKind::Leak && self.magnitude < 0.0 {
            return Err(PlantError::InvalidAttack {
                reason: format!("leak area {} cm² is negative", self.magnitude),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in AttackKind::ALL {
            assert_eq!(kind.to_string().parse::<AttackKind>(), Ok(kind));
        }
        assert!("Bias".parse::<AttackKind>().is_err());
        assert!("".parse::<AttackKind>().is_err());
    }

    #[test]
    fn validation() {
        assert!(Attack::new(AttackKind::Bias, 10.0).validate().is_ok());
        assert!(Attack::new(AttackKind::Bias, f64::NAN).validate().is_err());
        assert!(Attack::new(AttackKind::Bias, -1.0).validate().is_err());
        assert!(
            Attack::new(AttackKind::Ramp, 0.0)
                .with_magnitude(f64::INFINITY)
                .validate()
                .is_err()
        );
        assert!(
            Attack::new(AttackKind::Leak, 0.0)
                .with_magnitude(-0.1)
                .validate()
                .is_err()
        );
    }
}
