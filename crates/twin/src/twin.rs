//! One twin: a model kept in step with its plant by the EKF, its residuals
//! watched by the detectors, its conclusions kept in the history.

use crate::history::{History, QualityEvent, Record};
use thiserror::Error;
use twinshield_detect::{
    AlarmEvent, AlarmTracker, BiasDetector, BiasSettings, ChiSquareDetector, ChiSquareSettings,
    CusumDetector, CusumSettings, DetectError, DetectorKind, FrozenDetector, FrozenSettings,
    SourceId, Status,
};
use twinshield_entangle::{Keys, Sealed, Tampered, faults};
use twinshield_model::{Ekf, EkfError, Model};
use twinshield_shield_macros::diversify;

/// How the twin runs. The defaults suit a plant polled at 10 Hz.
#[derive(Debug, Clone, PartialEq)]
pub struct TwinSettings {
    /// Nominal seconds between samples (sizes the detectors' windows).
    pub sample_period: f64,
    /// Seconds after start during which nothing alarms: the estimator
    /// converges and the residual baseline is learnt.
    pub warmup: f64,
    /// Time constant of the residual baseline, seconds: persistent model
    /// mismatch is learnt this slowly and subtracted before the tests.
    pub baseline_tau: f64,
    /// Seconds of samples in the slow bias test's window.
    pub bias_window: f64,
    /// Integrated autocorrelation time of the residuals, in samples: what
    /// the plant's unmodelled disturbances make of the estimator's
    /// innovations (they are white only for a perfect model).
    pub correlation_time: f64,
    /// Records kept in memory.
    pub history: usize,
}

#[diversify]
impl Default for TwinSettings {
    fn default() -> Self {
        TwinSettings {
            sample_period: 0.1,
            warmup: 120.0,
            baseline_tau: 1800.0,
            bias_window: 120.0,
            correlation_time: 20.0,
            history: 36_000,
        }
    }
}

/// Why a sample was not taken. A refused sample changes nothing.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TwinError {
    /// The estimator refused the sample (non-finite values, wrong shape, or
    /// the estimate left the model's domain).
    #[error(transparent)]
    Estimator(#[from] EkfError),
    /// The sample's time is not after the previous one.
    #[error("sample time {time} s is not after the previous sample at {previous} s")]
    TimeNotIncreasing {
        /// This sample's time.
        time: f64,
        /// The previous sample's time.
        previous: f64,
    },
    /// Invalid settings.
    #[error("invalid twin settings: {0}")]
    Settings(String),
    /// A detector refused its settings.
    #[error(transparent)]
    Detector(#[from] DetectError),
    /// The detectors' settings or state, or the twin's own, were changed
    /// in memory from outside the twin's code: the twin refuses the
    /// sample, and the host reports a tamper finding.
    #[error(transparent)]
    Tampered(#[from] Tampered),
}

#[diversify]
impl TwinError {
    /// What was tampered with, if this error is a tamper finding (from the
    /// detectors or from the estimator).
    pub fn tampered(&self) -> Option<Tampered> {
        match self {
            TwinError::Tampered(t) | TwinError::Estimator(EkfError::Tampered(t)) => Some(*t),
            _ => None,
        }
    }
}

/// The detectors of one output.
#[derive(Debug, Clone)]
struct Channel {
    cusum: CusumDetector,
    bias: BiasDetector,
    frozen: FrozenDetector,
    cusum_src: SourceId,
    bias_src: SourceId,
    frozen_src: SourceId,
    flatline_src: SourceId,
    /// Slow mean of the normalized residual: the model's persistent mismatch.
    baseline: Sealed,
    /// Slow mean square of the residual around the baseline: its real
    /// spread, which model mismatch makes wider than the estimator thinks.
    spread: Sealed,
}

#[diversify]
impl Channel {
    /// `Err` if this output's detectors or baseline were written from
    /// outside.
    fn verify(&self) -> Result<(), Tampered> {
        self.cusum.verify()?;
        self.bias.verify()?;
        self.frozen.verify()?;
        let own = [self.baseline, self.spread];
        twinshield_entangle::verify(faults(&own), "a residual baseline")
    }
}

/// A running twin.
#[derive(Debug, Clone)]
pub struct Twin {
    ekf: Ekf,
    n_outputs: usize,
    settings: TwinSettings,
    channels: Vec<Channel>,
    chi2: ChiSquareDetector,
    chi2_src: SourceId,
    tracker: AlarmTracker,
    history: History,
    /// Twin time from which alarms count (first sample + warm-up), and the
    /// baseline's time constant and sample count: sealed, since each
    /// decides whether an attack is reported or learnt.
    armed_at: Option<Sealed>,
    baseline_tau: Sealed,
    learnt: Sealed,
    /// The previous sample's time: sealed, since a write into it could
    /// make the twin refuse every later sample.
    last: Option<Sealed>,
    /// Twin time of the last full check. Plain: a value in the future or
    /// not a number forces a check, so one write can delay the next check
    /// by at most [`VERIFY_EVERY`].
    verified_at: f64,
    samples: u64,
    refused: u64,
    z: Vec<f64>,
    events: Vec<AlarmEvent>,
}

/// Twin seconds between two full checks of the sealed values. The
/// estimator's plain state is checked on every sample; everything sealed
/// keeps a fault once written, so a later check still finds it.
const VERIFY_EVERY: f64 = 0.5;

#[diversify]
fn positive(x: f64, what: &str) -> Result<f64, TwinError> {
    if x.is_finite() && x > 0.0 {
        Ok(x)
    } else {
        Err(TwinError::Settings(format!(
            "{what} must be a positive number"
        )))
    }
}

/// Samples in `seconds` at `period`, at least `min`.
#[diversify]
fn samples_in(seconds: f64, period: f64, min: usize) -> usize {
    ((seconds / period).round() as usize).max(min)
}

#[diversify]
impl Twin {
    /// A twin for `model`, its detectors tuned from the model's `[detect]`.
    pub fn new(model: &Model, settings: TwinSettings) -> Result<Twin, TwinError> {
        let period = positive(settings.sample_period, "sample period")?;
        positive(settings.baseline_tau, "baseline time constant")?;
        positive(settings.bias_window, "bias window")?;
        if !(settings.warmup.is_finite() && settings.warmup >= 0.0) {
            return Err(TwinError::Settings("warm-up must not be negative".into()));
        }
        let mut tracker = AlarmTracker::new(1000);
        let mut channels = Vec::with_capacity(model.outputs.len());
        for (i, out) in model.outputs.iter().enumerate() {
            let d = model.detect.outputs.get(i).cloned().unwrap_or_default();
            let mut cusum = CusumSettings::default();
            if let Some(k) = d.cusum_drift {
                cusum.drift = k;
            }
            if let Some(h) = d.cusum_threshold {
                cusum.threshold = h;
            }
            let mut frozen = FrozenSettings {
                window: samples_in(10.0, period, 2),
                noise_std: out.noise,
                ..FrozenSettings::default()
            };
            if let Some(f) = d.frozen_after {
                frozen.frozen_after = f;
            }
            let bias = BiasSettings {
                window: samples_in(settings.bias_window, period, 1),
                correlation_time: settings.correlation_time,
                ..BiasSettings::default()
            };
            let name = vec![out.name.clone()];
            channels.push(Channel {
                cusum: CusumDetector::new(cusum)?,
                bias: BiasDetector::new(bias)?,
                frozen: FrozenDetector::new(frozen)?,
                cusum_src: tracker.register(DetectorKind::Cusum, name.clone()),
                bias_src: tracker.register(DetectorKind::Bias, name.clone()),
                frozen_src: tracker.register(DetectorKind::Frozen, name.clone()),
                flatline_src: tracker.register(DetectorKind::Flatline, name),
                baseline: Sealed::new(0.0),
                spread: Sealed::new(1.0),
            });
        }
        let mut chi2 = ChiSquareSettings {
            dof_per_sample: model.outputs.len().max(1),
            ..ChiSquareSettings::default()
        };
        if let Some(w) = model.detect.chi2_window {
            chi2.window = usize::try_from(w).unwrap_or(usize::MAX);
        }
        if let Some(p) = model.detect.chi2_false_alarm {
            chi2.false_alarm = p;
        }
        let all: Vec<String> = model.outputs.iter().map(|o| o.name.clone()).collect();
        let chi2_src = tracker.register(DetectorKind::ChiSquare, all);
        let baseline_tau = Sealed::new(settings.baseline_tau);
        Ok(Twin {
            ekf: Ekf::new(model),
            n_outputs: model.outputs.len(),
            history: History::new(settings.history),
            settings,
            channels,
            chi2: ChiSquareDetector::new(chi2)?,
            chi2_src,
            tracker,
            armed_at: None,
            baseline_tau,
            learnt: Sealed::new(0.0),
            last: None,
            verified_at: f64::NAN,
            samples: 0,
            refused: 0,
            z: vec![0.0; model.outputs.len()],
            events: Vec::new(),
        })
    }

    /// Takes one sample (plant time, inputs, outputs as read) through the
    /// whole pipeline and returns the alarm events it caused.
    pub fn update(
        &mut self,
        time: f64,
        inputs: &[f64],
        outputs: &[f64],
    ) -> Result<&[AlarmEvent], TwinError> {
        if let Err(e) = self.verify_when_due(time) {
            self.refused += 1;
            return Err(e.into());
        }
        let dt = self.interval_to(time)?;
        if let Err(e) = self.ekf.step(inputs, outputs, dt) {
            self.refused += 1;
            return Err(e.into());
        }
        match self.last.as_mut() {
            Some(last) => last.set(time),
            None => self.last = Some(Sealed::new(time)),
        }
        let warmup = self.settings.warmup;
        let armed_at = *self
            .armed_at
            .get_or_insert_with(|| Sealed::new(time + warmup));
        self.samples += 1;
        self.events.clear();

        let inn = self.ekf.innovation();
        for (i, z) in self.z.iter_mut().enumerate() {
            let r = inn.residual.get(i).copied().unwrap_or(0.0);
            *z = r / inn.std(i);
        }
        let nis = inn.nis;
        let armed = time >= armed_at.get();
        self.test_channels(time, dt, outputs, armed);
        let chi2 = self.chi2.update(nis);
        if armed {
            observe(
                &mut self.tracker,
                &mut self.events,
                self.chi2_src,
                time,
                &chi2,
            );
        }
        self.record(time, inputs, outputs, nis);
        Ok(&self.events)
    }

    /// Seconds from the previous sample to `time` (0 for the first sample),
    /// or why `time` is refused (counted as refused).
    // Inline: one call per sample, on the sync loop's path (and, inlined,
    // covered by `update`'s own guards).
    #[inline]
    fn interval_to(&mut self, time: f64) -> Result<f64, TwinError> {
        match self.last.map(|c| c.get()) {
            Some(prev) if time.partial_cmp(&prev) != Some(std::cmp::Ordering::Greater) => {
                self.refused += 1;
                Err(TwinError::TimeNotIncreasing {
                    time,
                    previous: prev,
                })
            }
            Some(prev) => Ok(time - prev),
            None if time.is_finite() => Ok(0.0),
            None => {
                self.refused += 1;
                Err(TwinError::Settings("sample time must be finite".into()))
            }
        }
    }

    /// Runs each output's detectors on its normalized residual (less the
    /// learnt baseline) and its raw value; once `armed`, their decisions go
    /// to the alarm tracker.
    // Inline: once per sample, on the sync loop's path.
    #[inline]
    fn test_channels(&mut self, time: f64, dt: f64, outputs: &[f64], armed: bool) {
        // The baseline learns as a running mean at first, then as an
        // exponential average; it pauses while any alarm is active so an
        // attack is not learnt as the new normal.
        let learning = self.tracker.active_count() == 0;
        let keys = Keys::get();
        let learnt = self.learnt.get_with(keys) + 1.0;
        self.learnt.set_with(keys, learnt);
        let weight = (dt / self.baseline_tau.get_with(keys))
            .max(1.0 / learnt)
            .min(1.0);
        for (ch, (&z, &y)) in self.channels.iter_mut().zip(self.z.iter().zip(outputs)) {
            let (mut baseline, mut spread) = (ch.baseline.get_with(keys), ch.spread.get_with(keys));
            if learning && z.is_finite() {
                baseline += weight * (z - baseline);
                let d = z - baseline;
                spread += weight * (d * d - spread);
                ch.baseline.set_with(keys, baseline);
                ch.spread.set_with(keys, spread);
            }
            let dz = z - baseline;
            let std = spread.sqrt().max(1.0);
            let cusum = ch.cusum.update(dz, std);
            let bias = ch.bias.update(dz, std);
            let frozen = ch.frozen.update(time, y);
            if armed {
                for (src, status) in [
                    (ch.cusum_src, cusum),
                    (ch.bias_src, bias),
                    (ch.frozen_src, frozen.unchanged),
                    (ch.flatline_src, frozen.flatline),
                ] {
                    observe(&mut self.tracker, &mut self.events, src, time, &status);
                }
            }
        }
    }

    /// Appends the sample, the estimate and the residuals to the history.
    // Inline: once per sample, on the sync loop's path.
    #[inline]
    fn record(&mut self, time: f64, inputs: &[f64], outputs: &[f64], nis: f64) {
        let inn = self.ekf.innovation();
        self.history.push(Record {
            time,
            inputs: inputs.to_vec(),
            outputs: outputs.to_vec(),
            estimate: self.ekf.state().to_vec(),
            residual: inn.residual.clone(),
            nis,
        });
    }

    /// Checks the estimator's and the detectors' settings and state and
    /// the twin's own sealed values: `Err` if any was written from outside
    /// the twin's code. [`Twin::update`] runs it before a sample whenever
    /// half a second of twin time has passed since the last check.
    pub fn verify(&self) -> Result<(), Tampered> {
        self.ekf.verify()?;
        for ch in &self.channels {
            ch.verify()?;
        }
        self.chi2.verify()?;
        let armed_at = self.armed_at.map_or(0, |c| c.fault());
        let last = self.last.map_or(0, |c| c.fault());
        let own = [self.baseline_tau, self.learnt];
        twinshield_entangle::verify(
            faults(&own) | armed_at | last,
            "the twin's clock, warm-up or baseline",
        )
    }

    /// [`Twin::verify`] if the last full check is [`VERIFY_EVERY`] or more
    /// twin seconds before `time` (or not before it at all).
    #[inline]
    fn verify_when_due(&mut self, time: f64) -> Result<(), Tampered> {
        let since = time - self.verified_at;
        if (0.0..VERIFY_EVERY).contains(&since) {
            return Ok(());
        }
        self.verify()?;
        self.verified_at = time;
        Ok(())
    }

    /// Records a sample that could not be read (a data-quality event).
    pub fn quality_event(&mut self, time: f64, what: impl Into<String>) {
        self.history.push_quality(QualityEvent {
            time,
            what: what.into(),
        });
    }

    /// The current state estimate.
    pub fn estimate(&self) -> &[f64] {
        self.ekf.state()
    }

    /// The last residual per output, in units of its standard deviation.
    pub fn normalized_residuals(&self) -> &[f64] {
        &self.z
    }

    /// Number of outputs.
    pub fn n_outputs(&self) -> usize {
        self.n_outputs
    }

    /// The alarm tracker (active and past alarms).
    pub fn alarms(&self) -> &AlarmTracker {
        &self.tracker
    }

    /// The history.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Samples taken.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Samples refused by the pipeline.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

#[diversify]
fn observe(
    tracker: &mut AlarmTracker,
    events: &mut Vec<AlarmEvent>,
    src: SourceId,
    time: f64,
    status: &Status,
) {
    // Sources come from this tracker, so observe cannot fail.
    if let Ok(Some(e)) = tracker.observe(src, time, status) {
        events.push(e);
    }
}

#[cfg(test)]
mod tamper_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn twin() -> Twin {
        let model = Model::parse(
            "quadtank.twin",
            include_str!("../../../models/quadtank.twin"),
        )
        .unwrap();
        Twin::new(&model, TwinSettings::default()).unwrap()
    }

    const LEVELS: [f64; 4] = [12.263, 12.783, 1.634, 1.409];

    /// Feeds samples at 10 Hz from `t0` until one is refused as tampered;
    /// returns the twin seconds that took.
    fn seconds_to_refusal(twin: &mut Twin, t0: f64) -> f64 {
        for k in 0..100 {
            let t = t0 + 0.1 * f64::from(k);
            if let Err(e) = twin.update(t, &[3.0, 3.0], &LEVELS) {
                assert!(e.tampered().is_some(), "{e}");
                return t - t0;
            }
        }
        panic!("never refused");
    }

    #[test]
    fn a_written_baseline_or_warm_up_is_refused_within_half_a_second() {
        for which in 0..4 {
            let mut t = twin();
            for k in 0..20 {
                t.update(0.1 * f64::from(k), &[3.0, 3.0], &LEVELS).unwrap();
            }
            let cell = match which {
                0 => &mut t.channels[1].baseline,
                1 => t.armed_at.as_mut().unwrap(),
                2 => t.last.as_mut().unwrap(),
                _ => &mut t.learnt,
            };
            let mut w = cell.words();
            w[0] ^= 0xff;
            *cell = Sealed::from_words(w);
            let took = seconds_to_refusal(&mut t, 2.0);
            assert!(took <= VERIFY_EVERY + 1e-9, "{which}: {took}");
        }
    }
}
