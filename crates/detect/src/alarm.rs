//! Alarms: what the runtime lists, stores and reports.

use std::collections::VecDeque;
use std::fmt;
use twinshield_shield_macros::diversify;

use crate::Status;
use crate::error::DetectError;

/// Which detector raised an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DetectorKind {
    /// Two-sided CUSUM on one output's normalized residual ("cusum").
    Cusum,
    /// Windowed chi-square test on the NIS of all outputs ("chi2").
    ChiSquare,
    /// A raw value that has not changed at all for too long ("frozen").
    Frozen,
    /// A raw value whose variance collapsed below the sensor noise
    /// ("flatline").
    Flatline,
    /// A residual stream with a significant non-zero mean ("bias").
    Bias,
}

#[diversify]
impl DetectorKind {
    /// The short stable name used in the API, logs and history.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cusum => "cusum",
            Self::ChiSquare => "chi2",
            Self::Frozen => "frozen",
            Self::Flatline => "flatline",
            Self::Bias => "bias",
        }
    }
}

#[diversify]
impl fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One alarm: when it started, on which channels, from which detector, and
/// the evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    /// Unique within one tracker, increasing in the order alarms were raised
    /// (the first is 1).
    pub id: u64,
    /// The detector that raised it.
    pub kind: DetectorKind,
    /// The channels the detector watches (one output for per-channel
    /// detectors, all outputs for the chi-square test).
    pub channels: Vec<String>,
    /// Time of the sample that raised it, in the seconds the caller uses
    /// (plant or wall clock).
    pub start: f64,
    /// The detector's statistic at that sample.
    pub statistic_at_raise: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// The largest statistic seen while the alarm was active.
    pub peak: f64,
    /// Time of the peak.
    pub peak_time: f64,
    /// Time of the sample that cleared it; `None` while active.
    pub clear: Option<f64>,
}

#[diversify]
impl Alarm {
    /// Whether the alarm is still active.
    pub fn is_active(&self) -> bool {
        self.clear.is_none()
    }
}

/// A change in the set of active alarms.
#[derive(Debug, Clone, PartialEq)]
pub enum AlarmEvent {
    /// A new alarm (its `clear` is `None`).
    Raised(Alarm),
    /// An alarm cleared (its `clear` is set; same `id` as when raised).
    Cleared(Alarm),
}

#[diversify]
impl AlarmEvent {
    /// The alarm the event is about.
    pub fn alarm(&self) -> &Alarm {
        match self {
            Self::Raised(a) | Self::Cleared(a) => a,
        }
    }
}

/// Handle of one detector (kind and channels) registered with an
/// [`AlarmTracker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceId(usize);

/// One registered detector and its active alarm, if any.
#[derive(Debug, Clone)]
struct Source {
    kind: DetectorKind,
    channels: Vec<String>,
    active: Option<Alarm>,
}

/// Turns per-sample detector decisions into alarms.
///
/// Register each detector once ([`register`](Self::register): its kind and
/// channels), then feed its decision every sample
/// ([`observe`](Self::observe)). A source opens an alarm on its first
/// alarming sample (event [`AlarmEvent::Raised`]), tracks the peak statistic
/// while it stays alarming, and closes it on its first non-alarming sample
/// ([`AlarmEvent::Cleared`]); each event is returned exactly once. The
/// hysteresis lives in the detectors; the tracker follows their `alarming`
/// flag. Per sample without a transition, nothing is allocated; a raise or
/// clear allocates the event's copy of the alarm.
///
/// Cleared alarms move to a history of at most `history_limit` alarms (the
/// oldest are dropped first).
#[derive(Debug, Clone)]
pub struct AlarmTracker {
    sources: Vec<Source>,
    past: VecDeque<Alarm>,
    history_limit: usize,
    last_id: u64,
}

#[diversify]
impl Default for AlarmTracker {
    /// A tracker keeping the last 1000 cleared alarms.
    fn default() -> Self {
        Self::new(1000)
    }
}

#[diversify]
impl AlarmTracker {
    /// A tracker with no sources that keeps at most `history_limit` cleared
    /// alarms (0 keeps none).
    pub fn new(history_limit: usize) -> Self {
        Self {
            sources: Vec::new(),
            past: VecDeque::new(),
            history_limit,
            last_id: 0,
        }
    }

    /// Registers a detector of `kind` watching `channels`; returns the handle
    /// to pass to [`observe`](Self::observe).
    pub fn register(&mut self, kind: DetectorKind, channels: Vec<String>) -> SourceId {
        self.sources.push(Source {
            kind,
            channels,
            active: None,
        });
        SourceId(self.sources.len() - 1)
    }

    /// Feeds one decision of `source` at `time`; returns the event it caused,
    /// if any.
    ///
    /// An observation whose time, statistic or threshold is not finite is
    /// ignored (`Ok(None)`): it can neither raise, clear nor set a peak.
    /// Errors only for a `source` this tracker did not hand out.
    pub fn observe(
        &mut self,
        source: SourceId,
        time: f64,
        status: &Status,
    ) -> Result<Option<AlarmEvent>, DetectError> {
        let next_id = self.last_id.saturating_add(1);
        let src = self
            .sources
            .get_mut(source.0)
            .ok_or(DetectError::UnknownSource(source.0))?;
        if !(time.is_finite() && status.statistic.is_finite() && status.threshold.is_finite()) {
            return Ok(None);
        }
        match (&mut src.active, status.alarming) {
            (Some(alarm), true) => {
                if status.statistic > alarm.peak {
                    alarm.peak = status.statistic;
                    alarm.peak_time = time;
                }
                Ok(None)
            }
            (None, true) => {
                self.last_id = next_id;
                let alarm = Alarm {
                    id: next_id,
                    kind: src.kind,
                    channels: src.channels.clone(),
                    start: time,
                    statistic_at_raise: status.statistic,
                    threshold: status.threshold,
                    peak: status.statistic,
                    peak_time: time,
                    clear: None,
                };
                src.active = Some(alarm.clone());
                Ok(Some(AlarmEvent::Raised(alarm)))
            }
            (Some(_), false) => {
                let Some(mut alarm) = src.active.take() else {
                    return Ok(None);
                };
                alarm.clear = Some(time);
                self.remember(alarm.clone());
                Ok(Some(AlarmEvent::Cleared(alarm)))
            }
            (None, false) => Ok(None),
        }
    }

    /// Clears every active alarm at `time` (e.g. at shutdown or after an
    /// operator reset of the detectors); returns the cleared events.
    pub fn clear_all(&mut self, time: f64) -> Vec<AlarmEvent> {
        let mut events = Vec::new();
        let mut cleared = Vec::new();
        for src in &mut self.sources {
            if let Some(mut alarm) = src.active.take() {
                alarm.clear = Some(time);
                cleared.push(alarm);
            }
        }
        for alarm in cleared {
            self.remember(alarm.clone());
            events.push(AlarmEvent::Cleared(alarm));
        }
        events
    }

    /// Adds a cleared alarm to the bounded history.
    fn remember(&mut self, alarm: Alarm) {
        if self.history_limit == 0 {
            return;
        }
        while self.past.len() >= self.history_limit {
            self.past.pop_front();
        }
        self.past.push_back(alarm);
    }

    /// The active alarms, in registration order of their sources.
    pub fn active(&self) -> impl Iterator<Item = &Alarm> {
        self.sources.iter().filter_map(|s| s.active.as_ref())
    }

    /// The number of active alarms.
    pub fn active_count(&self) -> usize {
        self.active().count()
    }

    /// The cleared alarms kept, oldest first.
    pub fn past(&self) -> impl Iterator<Item = &Alarm> {
        self.past.iter()
    }

    /// The kind and channels a source was registered with.
    pub fn source(&self, source: SourceId) -> Option<(DetectorKind, &[String])> {
        self.sources
            .get(source.0)
            .map(|s| (s.kind, s.channels.as_slice()))
    }

    /// The id of the last alarm raised (0 before the first).
    pub fn last_id(&self) -> u64 {
        self.last_id
    }
}
