//! The standard set of detectors for one twin, built from plain settings.

use crate::alarm::{AlarmEvent, AlarmTracker, DetectorKind, SourceId};
use crate::chi2::{ChiSquareDetector, ChiSquareSettings};
use crate::cusum::{CusumDetector, CusumSettings};
use crate::error::{DetectError, positive};
use crate::frozen::{FrozenDetector, FrozenSettings};
use twinshield_shield_macros::diversify;

/// Seconds of samples in the frozen detectors' variance window.
const FLATLINE_SECONDS: f64 = 10.0;
/// Largest variance window the bank will build, in samples (10 s at 6.5 kHz).
const MAX_FLATLINE_WINDOW: f64 = 65_536.0;

/// Detector settings for one output; `None` takes the default. Mirrors the
/// `.twin` format's `[detect.OUTPUT]` section plus the output's declared
/// noise.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutputSettings {
    /// The output's name, used as the alarm channel.
    pub name: String,
    /// CUSUM drift `k`, in residual standard deviations (default 0.5).
    pub cusum_drift: Option<f64>,
    /// CUSUM threshold `h`, in residual standard deviations (default 8.0).
    pub cusum_threshold: Option<f64>,
    /// Seconds without a change before the output counts as frozen
    /// (default 30).
    pub frozen_after: Option<f64>,
    /// The sensor's declared noise standard deviation, in the output's units;
    /// 0 disables the flatline (variance) test for this output.
    pub noise_std: f64,
}

/// Settings of a whole [`DetectorBank`]. Mirrors the `.twin` format's
/// `[detect]` sections.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BankSettings {
    /// Per output, in output order (at least one).
    pub outputs: Vec<OutputSettings>,
    /// Samples in the chi-square window (default 20).
    pub chi2_window: Option<u32>,
    /// False-alarm probability per chi-square window (default 1e-4).
    pub chi2_false_alarm: Option<f64>,
    /// Seconds between samples (finite, positive): sizes the frozen
    /// detectors' variance window to 10 s worth of samples (at least 2).
    pub sample_period: f64,
}

/// Per-output CUSUMs, one chi-square test on the NIS, per-output frozen and
/// flatline tests, and the alarm tracker that turns them into alarms.
///
/// The chi-square alarm's channels are all output names. All other settings
/// (clear fractions, caps, ratios) are the detectors' defaults.
#[derive(Debug, Clone)]
pub struct DetectorBank {
    names: Vec<String>,
    cusums: Vec<(CusumDetector, SourceId)>,
    chi2: (ChiSquareDetector, SourceId),
    frozen: Vec<(FrozenDetector, SourceId, SourceId)>,
    tracker: AlarmTracker,
}

#[diversify]
impl DetectorBank {
    /// Builds every detector, validating all settings (see each detector's
    /// settings for the valid ranges).
    pub fn new(settings: &BankSettings) -> Result<Self, DetectError> {
        let m = settings.outputs.len();
        if m == 0 {
            return Err(DetectError::TooSmall {
                name: "outputs",
                value: 0,
                min: 1,
            });
        }
        let period = positive("sample period", settings.sample_period)?;
        let window = (FLATLINE_SECONDS / period)
            .ceil()
            .clamp(2.0, MAX_FLATLINE_WINDOW) as usize;
        let mut tracker = AlarmTracker::default();
        let names: Vec<String> = settings.outputs.iter().map(|o| o.name.clone()).collect();

        let mut chi2_settings = ChiSquareSettings {
            dof_per_sample: m,
            ..ChiSquareSettings::default()
        };
        if let Some(w) = settings.chi2_window {
            chi2_settings.window = usize::try_from(w).unwrap_or(usize::MAX);
        }
        if let Some(p) = settings.chi2_false_alarm {
            chi2_settings.false_alarm = p;
        }
        let chi2 = ChiSquareDetector::new(chi2_settings)?;
        let chi2_source = tracker.register(DetectorKind::ChiSquare, names.clone());

        let mut cusums = Vec::with_capacity(m);
        let mut frozen = Vec::with_capacity(m);
        for out in &settings.outputs {
            let defaults = CusumSettings::default();
            let cusum = CusumDetector::new(CusumSettings {
                drift: out.cusum_drift.unwrap_or(defaults.drift),
                threshold: out.cusum_threshold.unwrap_or(defaults.threshold),
                ..defaults
            })?;
            cusums.push((
                cusum,
                tracker.register(DetectorKind::Cusum, vec![out.name.clone()]),
            ));
            let defaults = FrozenSettings::default();
            let detector = FrozenDetector::new(FrozenSettings {
                frozen_after: out.frozen_after.unwrap_or(defaults.frozen_after),
                window,
                noise_std: out.noise_std,
                ..defaults
            })?;
            frozen.push((
                detector,
                tracker.register(DetectorKind::Frozen, vec![out.name.clone()]),
                tracker.register(DetectorKind::Flatline, vec![out.name.clone()]),
            ));
        }
        Ok(Self {
            names,
            cusums,
            chi2: (chi2, chi2_source),
            frozen,
            tracker,
        })
    }

    /// Feeds one sample: per output the residual, its standard deviation and
    /// the raw measured value, plus the NIS; returns the alarms raised and
    /// cleared by it (empty, and not allocated, on most samples).
    ///
    /// Errors if a slice does not have one entry per output (nothing is
    /// updated then). Bad numbers are handled by each detector as documented
    /// (skipped, never propagated).
    pub fn update(
        &mut self,
        time: f64,
        residual: &[f64],
        std: &[f64],
        nis: f64,
        raw_measurements: &[f64],
    ) -> Result<Vec<AlarmEvent>, DetectError> {
        let m = self.names.len();
        for (name, got) in [
            ("residual", residual.len()),
            ("std", std.len()),
            ("raw measurements", raw_measurements.len()),
        ] {
            if got != m {
                return Err(DetectError::LengthMismatch {
                    name,
                    got,
                    expected: m,
                });
            }
        }
        let mut events = Vec::new();
        let status = self.chi2.0.update(nis);
        events.extend(self.tracker.observe(self.chi2.1, time, &status)?);
        for ((cusum, source), (r, s)) in self.cusums.iter_mut().zip(residual.iter().zip(std)) {
            let status = cusum.update(*r, *s);
            events.extend(self.tracker.observe(*source, time, &status)?);
        }
        for ((detector, frozen, flat), value) in self.frozen.iter_mut().zip(raw_measurements) {
            let status = detector.update(time, *value);
            events.extend(self.tracker.observe(*frozen, time, &status.unchanged)?);
            events.extend(self.tracker.observe(*flat, time, &status.flatline)?);
        }
        Ok(events)
    }

    /// The alarm tracker: active and past alarms.
    pub fn tracker(&self) -> &AlarmTracker {
        &self.tracker
    }

    /// The output names, in order.
    pub fn outputs(&self) -> &[String] {
        &self.names
    }

    /// The CUSUM of output `i`.
    pub fn cusum(&self, i: usize) -> Option<&CusumDetector> {
        self.cusums.get(i).map(|(d, _)| d)
    }

    /// The chi-square test.
    pub fn chi_square(&self) -> &ChiSquareDetector {
        &self.chi2.0
    }

    /// The frozen/flatline detector of output `i`.
    pub fn frozen(&self, i: usize) -> Option<&FrozenDetector> {
        self.frozen.get(i).map(|(d, _, _)| d)
    }

    /// Resets every detector and clears every active alarm at `time`;
    /// returns the cleared events.
    pub fn reset(&mut self, time: f64) -> Vec<AlarmEvent> {
        self.chi2.0.reset();
        self.cusums.iter_mut().for_each(|(d, _)| d.reset());
        self.frozen.iter_mut().for_each(|(d, _, _)| d.reset());
        self.tracker.clear_all(time)
    }
}
