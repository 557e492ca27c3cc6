//! A session: one twin watching one plant source, in lockstep. Every
//! sample goes source → wiring → twin → alarms, and from there to the
//! history recorder, the API feed and the backend link where the session
//! has them. `run`, `demo` and `eval` differ only in their source and their
//! clock (`eval` steps its session itself, see [`SteppedSession`]); what
//! they print is their observer's business.

mod line;

pub use line::ProgressClock;

use crate::api::{alarm_view, state_view};
use crate::backend_link::BackendLink;
use crate::gate::ShieldHandle;
use crate::recorder::Recorder;
use crate::summary::{AlarmSummary, round1};
use crate::wiring::Wiring;
use std::time::Duration;
use tokio::sync::watch;
use twinshield_connect::PlantSource;
use twinshield_model::Model;
use twinshield_shield_macros::diversify;
use twinshield_twin::{AlarmEvent, Twin};

/// Tolerance when comparing an alarm's time with a known attack start:
/// rounding of plant time. A session that knows of an attack stamps its
/// samples with the plant's own time ([`SampleTime::Source`]), so a value
/// and its time arrive together.
const ATTACK_TIME_TOLERANCE: f64 = 1e-6;

/// Which time a session stamps its samples with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleTime {
    /// The host clock's time when the source was polled (`run`: the
    /// history is kept in Unix time, whatever the plant's clock says).
    Poll,
    /// The time the plant sent with the sample where it sends one (the
    /// reference plant's clock registers), else the poll time. A sample
    /// whose time did not advance is not taken again.
    Source,
}

/// The session's state after a sample, for a progress line.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The sample's time.
    pub time: f64,
    /// Samples taken so far.
    pub samples: u64,
    /// Largest |plant - twin| over the outputs, last sample.
    pub worst_residual: f64,
    /// Alarms active now.
    pub active_alarms: usize,
    /// Samples that could not be used so far.
    pub quality_events: u64,
}

/// What a host shows of a running session (the CLI: a progress line and
/// one line per alarm on standard error).
pub trait SessionObserver {
    /// An alarm was raised.
    fn alarm_raised(&mut self, alarm: &AlarmSummary);
    /// A sample went through the twin (or could not be used).
    fn progress(&mut self, progress: &Progress);
    /// Something an operator should read: the storage stopped or resumed,
    /// where the API listens, what the backend received.
    fn notice(&mut self, line: &str);
    /// Every alarm event as the twin raised or cleared it, unrounded (for
    /// hosts that measure, like `eval`).
    fn alarm_event(&mut self, _time: f64, _event: &AlarmEvent) {}
    /// The session ended.
    fn finished(&mut self) {}
}

/// Everything a session is made of.
pub struct Session<'a, S: PlantSource> {
    /// The model the twin runs.
    pub model: &'a Model,
    /// How the source's channels map to the model.
    pub wiring: Wiring,
    /// The plant.
    pub source: S,
    /// The twin.
    pub twin: Twin,
    /// Wall time between polls.
    pub period: Duration,
    /// Where the API reads the twin's state and alarms from, if it runs.
    pub feed: Option<twinshield_api::Feed>,
    /// A known attack (name, start) to measure delays against.
    pub attack: Option<(&'static str, f64)>,
    /// Where to record history, if anywhere.
    pub recorder: Option<Recorder>,
    /// Where to publish alarms and summaries, if anywhere.
    pub publisher: Option<BackendLink>,
    /// The shield's verdict and checks.
    pub shield: ShieldHandle,
    /// Which time the samples carry.
    pub time: SampleTime,
}

/// What a session leaves behind.
pub struct SessionOutcome {
    /// The twin, with its history and alarms.
    pub twin: Twin,
    /// Every alarm raised.
    pub alarms: Vec<AlarmSummary>,
    /// Samples that could not be used.
    pub quality: u64,
    /// The recorder, flushed.
    pub recorder: Option<Recorder>,
}

/// The loop's running state.
struct Tally {
    last_source_time: f64,
    alarms: Vec<AlarmSummary>,
    quality: u64,
    u: Vec<f64>,
    y: Vec<f64>,
}

/// A session its host steps one sample at a time (`run` and `demo` step
/// theirs on a timer; `eval` as fast as its in-process plant goes).
pub struct SteppedSession<'a, S: PlantSource> {
    session: Session<'a, S>,
    tally: Tally,
}

#[diversify]
impl<'a, S: PlantSource> Session<'a, S> {
    /// Polls until `clock` returns `None` or `stop` turns true. `clock`
    /// gives the time to stamp the next sample with; a time not after the
    /// previous one means "no new sample yet".
    pub async fn run(
        self,
        mut clock: impl FnMut() -> Option<f64>,
        mut stop: watch::Receiver<bool>,
        observer: &mut dyn SessionObserver,
    ) -> SessionOutcome {
        let mut ticker = tokio::time::interval(self.period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut stepped = self.stepped();
        let mut last_t = f64::NEG_INFINITY;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
            let Some(t) = clock() else { break };
            if t <= last_t {
                continue;
            }
            last_t = t;
            stepped.step(t, observer).await;
        }
        observer.finished();
        if let Some(r) = stepped.session.recorder.as_mut() {
            r.flush(last_t);
        }
        stepped.finish()
    }

    /// The session, ready to be stepped by its host.
    pub fn stepped(self) -> SteppedSession<'a, S> {
        SteppedSession {
            session: self,
            tally: Tally {
                last_source_time: f64::NEG_INFINITY,
                alarms: Vec::new(),
                quality: 0,
                u: Vec::new(),
                y: Vec::new(),
            },
        }
    }
}

#[diversify]
impl<'a, S: PlantSource> SteppedSession<'a, S> {
    /// Takes one sample, stamped `t` (or the plant's own time, see
    /// [`SampleTime`]).
    pub async fn step(&mut self, t: f64, observer: &mut dyn SessionObserver) {
        self.session.sample(t, &mut self.tally, observer).await;
    }

    /// The plant source, for a host that feeds it.
    pub fn source_mut(&mut self) -> &mut S {
        &mut self.session.source
    }

    /// What the session leaves behind (its recorder not flushed).
    pub fn finish(self) -> SessionOutcome {
        SessionOutcome {
            twin: self.session.twin,
            alarms: self.tally.alarms,
            quality: self.tally.quality,
            recorder: self.session.recorder,
        }
    }
}

#[diversify]
impl<S: PlantSource> Session<'_, S> {
    /// One poll: read, decide, then tell everyone who listens.
    async fn sample(&mut self, poll_t: f64, tally: &mut Tally, observer: &mut dyn SessionObserver) {
        let read = self.source.read().await;
        let t = match (&read, self.time) {
            (Ok(sample), SampleTime::Source) => match sample.source_time {
                Some(st) if st <= tally.last_source_time => return,
                Some(st) => {
                    tally.last_source_time = st;
                    st
                }
                None => poll_t,
            },
            _ => poll_t,
        };
        let outcome = match read {
            Ok(sample) => {
                // From a reading to the twin's decision nothing waits: a
                // stall here is someone stepping through the process.
                let checkpoint = self.shield.checkpoint();
                self.wiring.split(&sample, &mut tally.u, &mut tally.y);
                let decided = match self.twin.update(t, &tally.u, &tally.y) {
                    Ok(events) => Ok(events.to_vec()),
                    Err(e) => {
                        if let Some(tampered) = e.tampered() {
                            self.shield.report_tamper(&tampered);
                        }
                        Err(e.to_string())
                    }
                };
                if let Some(c) = checkpoint {
                    c.end();
                }
                decided
            }
            Err(e) => Err(e.to_string()),
        };
        self.shield.tick();
        match outcome {
            Ok(events) => self.decided(t, &events, tally, observer),
            Err(what) => {
                tally.quality += 1;
                if let Some(r) = &self.recorder {
                    r.quality(t, &what);
                }
                self.twin.quality_event(t, what);
            }
        }
        if let Some(p) = self.publisher.as_mut() {
            p.tick(t, self.model, &self.twin, tally.quality);
        }
        if let Some(line) = self.recorder.as_mut().and_then(|r| r.poll(t)) {
            observer.notice(&line);
        }
        observer.progress(&Progress {
            time: t,
            samples: self.twin.samples(),
            worst_residual: self.twin.history().latest().map_or(0.0, |r| {
                r.residual.iter().fold(0.0f64, |m, v| m.max(v.abs()))
            }),
            active_alarms: self.twin.alarms().active_count(),
            quality_events: tally.quality,
        });
    }

    /// A sample the twin took: record it, feed the API, pass alarms on.
    fn decided(
        &mut self,
        t: f64,
        events: &[AlarmEvent],
        tally: &mut Tally,
        observer: &mut dyn SessionObserver,
    ) {
        if let Some(r) = self.recorder.as_mut() {
            r.sample(t, &self.twin);
        }
        if let Some(feed) = &self.feed {
            feed.publish_state(state_view(self.model, &self.twin, t));
        }
        for e in events {
            observer.alarm_event(t, e);
            if let Some(feed) = &self.feed {
                feed.publish_alarm(alarm_view(e.alarm()));
            }
            if let Some(r) = &self.recorder {
                r.alarm(e);
            }
            if let Some(p) = &self.publisher {
                p.alarm(e);
            }
            match e {
                AlarmEvent::Raised(a) => {
                    let summary = self.summarise(a);
                    observer.alarm_raised(&summary);
                    tally.alarms.push(summary);
                }
                AlarmEvent::Cleared(a) => {
                    if let Some(sum) = tally.alarms.iter_mut().find(|x| x.id == a.id) {
                        sum.cleared_at_s = a.clear.map(round1);
                    }
                }
            }
        }
    }

    fn summarise(&self, a: &twinshield_detect::Alarm) -> AlarmSummary {
        AlarmSummary {
            id: a.id,
            channel: a.channels.join("+"),
            detector: a.kind.name().to_owned(),
            raised_at_s: round1(a.start),
            delay_s: self
                .attack
                .filter(|(_, at)| a.start >= at - ATTACK_TIME_TOLERANCE)
                .map(|(_, at)| round1((a.start - at).max(0.0))),
            cleared_at_s: None,
        }
    }
}
