//! What the API shows: the twin's public metadata, its latest state and
//! its alarms, published by the sync loop into a [`Feed`]; and what it
//! asks of the rest of the twin ([`TwinServices`]: history, audit log,
//! shield status).

use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;
use twinshield_shield_macros::diversify;

/// One channel's public metadata.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChannelInfo {
    /// Channel name.
    pub name: String,
    /// Unit.
    pub unit: String,
}

/// The twin's public metadata: never equations, parameters or register
/// maps.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TwinInfo {
    /// Model name.
    pub name: String,
    /// twinshield version.
    pub version: String,
    /// Output channels.
    pub channels: Vec<ChannelInfo>,
}

/// One channel of the latest state.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChannelState {
    /// Channel name.
    pub name: String,
    /// Unit.
    pub unit: String,
    /// What the plant reported.
    pub measured: Option<f64>,
    /// What the twin expected.
    pub estimate: Option<f64>,
    /// Plant minus twin.
    pub residual: Option<f64>,
    /// The residual band the dashboard draws (3 standard deviations).
    pub threshold: f64,
}

/// The twin's latest state.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StateView {
    /// Plant time of the latest sample, seconds.
    pub time_s: f64,
    /// Samples processed.
    pub samples: u64,
    /// Alarms active now.
    pub active_alarms: u64,
    /// Per channel.
    pub channels: Vec<ChannelState>,
}

/// One alarm as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlarmView {
    /// Alarm id.
    pub id: u64,
    /// Detector name.
    pub detector: String,
    /// Channels.
    pub channels: Vec<String>,
    /// Plant time it was raised, seconds.
    pub raised_at_s: f64,
    /// Plant time it cleared, if it did.
    pub cleared_at_s: Option<f64>,
    /// Whether an operator acknowledged it.
    pub acknowledged: bool,
}

/// Which of a channel's recorded series a history query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Series {
    /// What the plant reported.
    #[default]
    Measured,
    /// Plant minus twin (what the twin expected is the measurement minus
    /// this).
    Residual,
}

#[diversify]
impl Series {
    /// The series' name, as the query and the response spell it.
    pub fn name(self) -> &'static str {
        match self {
            Series::Measured => "measured",
            Series::Residual => "residual",
        }
    }
}

/// One bucket of a downsampled history.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct HistoryPoint {
    /// Start of the bucket, plant seconds.
    pub time_s: f64,
    /// Smallest value.
    pub min: f64,
    /// Mean value.
    pub mean: f64,
    /// Largest value.
    pub max: f64,
}

/// One audit-log entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditEntry {
    /// Plant time, seconds.
    pub time_s: f64,
    /// Event kind (`audit`, `shield`, `alarm-acknowledged`, …).
    pub kind: String,
    /// What happened.
    pub what: String,
}

/// One shield finding as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FindingView {
    /// Finding class (tamper, debugger, hook, timing, environment).
    pub class: String,
    /// What the policy did about it.
    pub action: String,
    /// Evidence.
    pub what: String,
}

/// How the device's keys are bound to the machine.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BindingView {
    /// Labels of the hardware-resident components the keys are bound to.
    pub hardware_components: Vec<String>,
    /// Hardware-resident components needed to open the keys.
    pub hardware_needed: u8,
    /// Whether that is the two a copied disk cannot supply; `false` says
    /// a copy of the disk comes closer to opening the keys than it should.
    pub hardware_bound: bool,
}

/// The shield's status.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SecurityView {
    /// Whether the runtime shield is on.
    pub protected: bool,
    /// Whether it has degraded the twin (no key use, no writes).
    pub degraded: bool,
    /// Findings so far.
    pub findings: Vec<FindingView>,
    /// The device binding, where the twin runs with a device identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<BindingView>,
}

/// Why a service could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The history cannot be read now (no data directory, a disk fault).
    #[error("the history is unavailable")]
    Unavailable,
}

/// What the API needs from the rest of the twin. The binary implements it
/// over the history store and the shield.
pub trait TwinServices: Send + Sync + 'static {
    /// One series of a channel (index into [`TwinInfo::channels`]) over
    /// `[from, to]` in at most `points` buckets.
    fn history(
        &self,
        channel: usize,
        series: Series,
        from: f64,
        to: f64,
        points: usize,
    ) -> Result<Vec<HistoryPoint>, ServiceError>;
    /// The newest `limit` audit-log entries, newest first.
    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, ServiceError>;
    /// Records an audit entry (authentication failures, every write).
    fn audit(&self, time_s: f64, what: &str);
    /// Records an alarm acknowledgement in the history.
    fn acknowledged(&self, time_s: f64, alarm: &AlarmView, by: &str);
    /// The shield's status.
    fn security(&self) -> SecurityView;
    /// Whether writes are allowed (not when the shield has degraded the
    /// twin).
    fn writes_allowed(&self) -> bool;
    /// Called on every request before anything else (the binary checks
    /// one integrity-guard region here: a checker in the request path).
    fn on_request(&self) {}
}

/// What the live stream carries.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// An alarm was raised, cleared or acknowledged.
    Alarm(AlarmView),
}

/// The latest state, kept both as a value and as its JSON (so the hot
/// `GET /state` path serialises nothing).
#[derive(Debug)]
pub(crate) struct StateSnapshot {
    pub(crate) view: StateView,
    pub(crate) json: Arc<[u8]>,
}

struct FeedInner {
    info: TwinInfo,
    state: RwLock<Arc<StateSnapshot>>,
    alarms: RwLock<Vec<AlarmView>>,
    live: broadcast::Sender<LiveEvent>,
}

/// The twin's side of the API: the sync loop publishes into it, handlers
/// read from it. Cheap to clone.
#[derive(Clone)]
pub struct Feed {
    inner: Arc<FeedInner>,
}

#[diversify]
impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Feed({})", self.inner.info.name)
    }
}

/// Most alarms the feed keeps (the history keeps them all).
const ALARMS_KEPT: usize = 1000;

#[diversify]
fn snapshot(view: StateView) -> Arc<StateSnapshot> {
    let json = serde_json::to_vec(&view).unwrap_or_else(|_| b"{}".to_vec());
    Arc::new(StateSnapshot {
        view,
        json: json.into(),
    })
}

#[diversify]
impl Feed {
    /// A feed for a twin with `info`; the state is empty until the first
    /// [`Feed::publish_state`].
    pub fn new(info: TwinInfo, thresholds: &[f64]) -> Self {
        let channels = info
            .channels
            .iter()
            .enumerate()
            .map(|(i, c)| ChannelState {
                name: c.name.clone(),
                unit: c.unit.clone(),
                measured: None,
                estimate: None,
                residual: None,
                threshold: thresholds.get(i).copied().unwrap_or(0.0),
            })
            .collect();
        let (live, _) = broadcast::channel(256);
        Feed {
            inner: Arc::new(FeedInner {
                state: RwLock::new(snapshot(StateView {
                    time_s: 0.0,
                    samples: 0,
                    active_alarms: 0,
                    channels,
                })),
                info,
                alarms: RwLock::new(Vec::new()),
                live,
            }),
        }
    }

    /// The twin's public metadata.
    pub fn info(&self) -> &TwinInfo {
        &self.inner.info
    }

    /// Publishes the latest state.
    pub fn publish_state(&self, view: StateView) {
        let snap = snapshot(view);
        if let Ok(mut s) = self.inner.state.write() {
            *s = snap;
        }
    }

    pub(crate) fn state(&self) -> Arc<StateSnapshot> {
        self.inner
            .state
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|_| {
                snapshot(StateView {
                    time_s: 0.0,
                    samples: 0,
                    active_alarms: 0,
                    channels: Vec::new(),
                })
            })
    }

    /// Plant time of the latest state (what audit entries are stamped
    /// with).
    pub fn time_s(&self) -> f64 {
        self.state().view.time_s
    }

    /// Publishes a raised alarm, or an update of one already known (it
    /// cleared): keeps its acknowledgement.
    pub fn publish_alarm(&self, mut alarm: AlarmView) {
        let Ok(mut all) = self.inner.alarms.write() else {
            return;
        };
        if let Some(known) = all.iter_mut().find(|a| a.id == alarm.id) {
            alarm.acknowledged |= known.acknowledged;
            *known = alarm.clone();
        } else {
            all.push(alarm.clone());
            if all.len() > ALARMS_KEPT {
                let extra = all.len() - ALARMS_KEPT;
                all.drain(..extra);
            }
        }
        drop(all);
        let _ = self.inner.live.send(LiveEvent::Alarm(alarm));
    }

    /// Every alarm kept, newest first.
    pub fn alarms(&self) -> Vec<AlarmView> {
        self.inner
            .alarms
            .read()
            .map(|a| a.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    /// Marks alarm `id` acknowledged; `None` if there is no such alarm.
    pub fn acknowledge(&self, id: u64) -> Option<AlarmView> {
        let mut all = self.inner.alarms.write().ok()?;
        let a = all.iter_mut().find(|a| a.id == id)?;
        a.acknowledged = true;
        let a = a.clone();
        drop(all);
        let _ = self.inner.live.send(LiveEvent::Alarm(a.clone()));
        Some(a)
    }

    /// A receiver of live events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.inner.live.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed() -> Feed {
        Feed::new(
            TwinInfo {
                name: "t".into(),
                version: "0".into(),
                channels: vec![ChannelInfo {
                    name: "h1".into(),
                    unit: "cm".into(),
                }],
            },
            &[0.5],
        )
    }

    fn alarm(id: u64, cleared: Option<f64>) -> AlarmView {
        AlarmView {
            id,
            detector: "cusum".into(),
            channels: vec!["h1".into()],
            raised_at_s: 1.0,
            cleared_at_s: cleared,
            acknowledged: false,
        }
    }

    #[test]
    fn an_acknowledgement_survives_the_alarm_clearing_and_goes_live() {
        let f = feed();
        let mut rx = f.subscribe();
        f.publish_alarm(alarm(1, None));
        assert!(f.acknowledge(1).is_some_and(|a| a.acknowledged));
        assert!(f.acknowledge(2).is_none());
        f.publish_alarm(alarm(1, Some(5.0)));
        let a = &f.alarms()[0];
        assert!(a.acknowledged);
        assert_eq!(a.cleared_at_s, Some(5.0));
        let mut seen = 0;
        while let Ok(LiveEvent::Alarm(_)) = rx.try_recv() {
            seen += 1;
        }
        assert_eq!(seen, 3);
    }

    #[test]
    fn the_state_starts_empty_with_thresholds_and_serialises_once() {
        let f = feed();
        let s = f.state();
        assert_eq!(s.view.channels[0].threshold, 0.5);
        assert_eq!(s.view.channels[0].measured, None);
        let v: serde_json::Value = serde_json::from_slice(&s.json).unwrap();
        assert_eq!(v["channels"][0]["name"], "h1");
        assert_eq!(v["channels"][0]["measured"], serde_json::Value::Null);
    }
}
