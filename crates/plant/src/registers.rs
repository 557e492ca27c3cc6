//! The plant's Modbus register map and snapshot.

use twinshield_shield_macros::diversify;

/// Modbus unit id the plant answers as (`[bind.modbus] unit_id`).
pub const UNIT_ID: u8 = 1;
/// Input register of the reported level y1 (h1), 0.01 cm per count.
pub const INPUT_Y1: u16 = 0;
/// Input register of the reported level y2 (h2), 0.01 cm per count.
pub const INPUT_Y2: u16 = 1;
/// Input register of the reported level y3 (h3), 0.01 cm per count.
pub const INPUT_Y3: u16 = 2;
/// Input register of the reported level y4 (h4), 0.01 cm per count.
pub const INPUT_Y4: u16 = 3;
/// Holding register of pump 1's voltage command as the PLC reports it, 1 mV per count.
pub const HOLDING_V1: u16 = 0;
/// Holding register of pump 2's voltage command as the PLC reports it, 1 mV per count.
pub const HOLDING_V2: u16 = 1;
/// Coil of the pump status: on while either commanded voltage exceeds the dead zone.
pub const COIL_PUMPS: u16 = 0;
/// First of the two input registers holding the plant's clock (plant
/// seconds in [`CLOCK_SCALE_S`] counts, high word first): a sample and its
/// time arrive in one reply.
pub const INPUT_CLOCK: u16 = 4;
/// Seconds per count of the clock registers.
pub const CLOCK_SCALE_S: f64 = 0.1;
/// Centimetres per count of the level input registers.
pub const LEVEL_SCALE_CM: f64 = 0.01;
/// Volts per count of the voltage holding registers.
pub const VOLTAGE_SCALE_V: f64 = 0.001;

/// A snapshot of every register the plant serves, indexed by address from 0
/// (see the crate docs for the map). Taken at the end of each `step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Registers {
    /// Input registers 0..=3: reported levels y1..y4 in 0.01 cm.
    pub input: [u16; 4],
    /// Holding registers 0..=1: reported pump voltage commands v1, v2 in mV.
    pub holding: [u16; 2],
    /// Coil 0: pump status.
    pub coils: [bool; 1],
    /// Input registers 4..=5: the plant's clock in 0.1 s, high word first.
    pub clock: [u16; 2],
}

#[diversify]
impl Registers {
    /// The reported levels y1..y4 in cm, as a client decodes them.
    pub fn levels_cm(&self) -> [f64; 4] {
        self.input.map(|r| f64::from(r) * LEVEL_SCALE_CM)
    }

    /// Every input register the plant serves, from address 0: the levels,
    /// then the clock.
    pub fn input_registers(&self) -> [u16; 6] {
        let [y1, y2, y3, y4] = self.input;
        let [hi, lo] = self.clock;
        [y1, y2, y3, y4, hi, lo]
    }

    /// The plant time the clock registers report, s.
    pub fn clock_s(&self) -> f64 {
        f64::from((u32::from(self.clock[0]) << 16) | u32::from(self.clock[1])) * CLOCK_SCALE_S
    }

    /// The reported pump voltages v1, v2 in V, as a client decodes them.
    pub fn voltages_v(&self) -> [f64; 2] {
        self.holding.map(|r| f64::from(r) * VOLTAGE_SCALE_V)
    }
}

/// Encodes a value into a u16 register of `scale` units per count:
/// rounded, clamped to 0..=65535, NaN to 0.
#[diversify]
pub(crate) fn quantize(value: f64, scale: f64) -> u16 {
    let counts = (value / scale).round();
    if counts.is_nan() || counts <= 0.0 {
        0
    } else if counts >= f64::from(u16::MAX) {
        u16::MAX
    } else {
        // In range by the checks above, so the conversion is exact.
        counts as u16
    }
}

/// Encodes plant time in s into the two clock registers (0.1 s counts,
/// high word first; saturating after 13 years of plant time).
#[diversify]
pub(crate) fn clock_registers(t: f64) -> [u16; 2] {
    let counts = (t / CLOCK_SCALE_S).round();
    let counts = if counts.is_nan() || counts <= 0.0 {
        0
    } else if counts >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // In range by the checks above, so the conversion is exact.
        counts as u32
    };
    [(counts >> 16) as u16, (counts & 0xffff) as u16]
}

/// Encodes a level in cm into a level register.
#[diversify]
pub(crate) fn level_register(cm: f64) -> u16 {
    quantize(cm, LEVEL_SCALE_CM)
}

/// Encodes a voltage in V into a voltage register.
#[diversify]
pub(crate) fn voltage_register(v: f64) -> u16 {
    quantize(v, VOLTAGE_SCALE_V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantization() {
        assert_eq!(level_register(12.263), 1226);
        assert_eq!(level_register(12.266), 1227);
        assert_eq!(level_register(-1.0), 0);
        assert_eq!(level_register(1e9), u16::MAX);
        assert_eq!(level_register(f64::NAN), 0);
        assert_eq!(level_register(f64::INFINITY), u16::MAX);
        assert_eq!(level_register(f64::NEG_INFINITY), 0);
        assert_eq!(voltage_register(3.0), 3000);
        assert_eq!(voltage_register(10.0), 10000);
    }

    #[test]
    fn decoding() {
        let r = Registers {
            input: [1226, 1278, 163, 141],
            holding: [3000, 2950],
            coils: [true],
            clock: clock_registers(123_456.7),
        };
        assert!((r.clock_s() - 123_456.7).abs() < 1e-6);
        assert_eq!(r.input_registers()[..4], r.input);
        assert_eq!(clock_registers(-1.0), [0, 0]);
        assert_eq!(clock_registers(f64::NAN), [0, 0]);
        assert_eq!(clock_registers(1e12), [u16::MAX, u16::MAX]);
        let l = r.levels_cm();
        assert!((l[0] - 12.26).abs() < 1e-9 && (l[3] - 1.41).abs() < 1e-9);
        let v = r.voltages_v();
        assert!((v[0] - 3.0).abs() < 1e-9 && (v[1] - 2.95).abs() < 1e-9);
    }
}
