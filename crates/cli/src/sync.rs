//! The sync loop: poll the plant, feed the twin, report alarms and progress.
//! `demo` and `run` share it; they differ in where time comes from.

use crate::recorder::Recorder;
use crate::wiring::Wiring;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::time::Duration;
use tokio::sync::watch;
use twinshield_connect::ModbusClient;
use twinshield_model::Model;
use twinshield_runtime::{AlarmEvent, Twin};
use twinshield_shield_macros::diversify;

/// Tolerance when comparing an alarm's time with a known attack start: the
/// twin stamps a sample with the time it polled, so a value the plant
/// published during the poll carries the previous tick's time (one plant
/// step, 0.1 s), plus rounding of plant time.
const ATTACK_TIME_TOLERANCE: f64 = 0.1 + 1e-6;

/// One alarm as the summaries report it.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmSummary {
    /// Alarm id.
    pub id: u64,
    /// Channel(s), joined with `+`.
    pub channel: String,
    /// Detector name.
    pub detector: String,
    /// Time it was raised, seconds.
    pub raised_at_s: f64,
    /// Seconds after the known attack start (demo only).
    pub delay_s: Option<f64>,
    /// Time it cleared, if it did.
    pub cleared_at_s: Option<f64>,
}

/// What a sync loop needs.
pub struct SyncLoop<'a> {
    /// The model the twin runs.
    pub model: &'a Model,
    /// How readings map to the model.
    pub wiring: &'a Wiring,
    /// The plant connection.
    pub client: ModbusClient,
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
    /// Where to publish alarms and summaries (the bundle's backend), if anywhere.
    pub publisher: Option<crate::publish::BackendLink>,
}

/// What a sync loop leaves behind.
pub struct SyncOutcome {
    /// The twin, with its history and alarms.
    pub twin: Twin,
    /// Every alarm raised.
    pub alarms: Vec<AlarmSummary>,
    /// Samples that could not be used.
    pub quality: u64,
    /// The recorder, flushed.
    pub recorder: Option<Recorder>,
}

#[diversify]
pub(crate) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Polls until `clock` returns `None` or `stop` turns true. `clock` gives
/// the time to stamp the next sample with; a time not after the previous
/// one means "no new sample yet".
#[diversify]
pub async fn run(
    mut s: SyncLoop<'_>,
    mut clock: impl FnMut() -> Option<f64>,
    mut stop: watch::Receiver<bool>,
) -> SyncOutcome {
    let mut ticker = tokio::time::interval(s.period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let progress = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut alarms: Vec<AlarmSummary> = Vec::new();
    let (mut u, mut y) = (Vec::new(), Vec::new());
    let mut quality = 0u64;
    let mut last_report = f64::NEG_INFINITY;
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
        let outcome = match s.client.read().await {
            Ok(reading) => {
                // From a reading to the twin's decision nothing waits: a
                // stall here is someone stepping through the process.
                let checkpoint = crate::shield::get().map(|sh| sh.checkpoint());
                s.wiring.split(&reading, &mut u, &mut y);
                let decided = s
                    .twin
                    .update(t, &u, &y)
                    .map(<[AlarmEvent]>::to_vec)
                    .map_err(|e| e.to_string());
                if let Some(c) = checkpoint {
                    c.end();
                }
                decided
            }
            Err(e) => Err(e.to_string()),
        };
        if let Some(sh) = crate::shield::get() {
            sh.tick();
        }
        match outcome {
            Ok(events) => {
                if let Some(r) = s.recorder.as_mut() {
                    r.sample(t, &s.twin);
                }
                if let Some(feed) = &s.feed {
                    feed.publish_state(state_view(s.model, &s.twin, t));
                }
                for e in &events {
                    if let Some(feed) = &s.feed {
                        feed.publish_alarm(alarm_view(e.alarm()));
                    }
                    if let Some(r) = &s.recorder {
                        r.alarm(e);
                    }
                    if let Some(p) = &s.publisher {
                        p.alarm(e);
                    }
                    match e {
                        AlarmEvent::Raised(a) => {
                            let summary = AlarmSummary {
                                id: a.id,
                                channel: a.channels.join("+"),
                                detector: a.kind.name().to_owned(),
                                raised_at_s: round1(a.start),
                                delay_s: s
                                    .attack
                                    .filter(|(_, at)| a.start >= at - ATTACK_TIME_TOLERANCE)
                                    .map(|(_, at)| round1((a.start - at).max(0.0))),
                                cleared_at_s: None,
                            };
                            progress.suspend(|| {
                                eprintln!(
                                    "alarm {}: {} on {} at {:.1} s",
                                    summary.id,
                                    summary.detector,
                                    summary.channel,
                                    summary.raised_at_s
                                );
                            });
                            alarms.push(summary);
                        }
                        AlarmEvent::Cleared(a) => {
                            if let Some(sum) = alarms.iter_mut().find(|x| x.id == a.id) {
                                sum.cleared_at_s = a.clear.map(round1);
                            }
                        }
                    }
                }
            }
            Err(what) => {
                quality += 1;
                if let Some(r) = &s.recorder {
                    r.quality(t, &what);
                }
                s.twin.quality_event(t, what);
            }
        }
        if let Some(p) = s.publisher.as_mut() {
            p.tick(t, s.model, &s.twin, quality);
        }
        if let Some(line) = s.recorder.as_mut().and_then(|r| r.poll(t)) {
            progress.suspend(|| eprintln!("{line}"));
        }
        let worst = s.twin.history().latest().map_or(0.0, |r| {
            r.residual.iter().fold(0.0f64, |m, v| m.max(v.abs()))
        });
        let line = format!(
            "t {t:6.1} s  samples {}  max |plant - twin| {worst:.3}  active alarms {}  data-quality events {quality}",
            s.twin.samples(),
            s.twin.alarms().active_count()
        );
        progress.set_message(line.clone());
        progress.tick();
        if !progress.is_hidden() || t - last_report >= 30.0 {
            if progress.is_hidden() {
                eprintln!("{line}");
            }
            last_report = t;
        }
    }
    progress.finish_and_clear();
    if let Some(r) = s.recorder.as_mut() {
        r.flush(last_t);
    }
    SyncOutcome {
        twin: s.twin,
        alarms,
        quality,
        recorder: s.recorder,
    }
}

/// The twin's latest state as the API shows it: per output, what the
/// plant reported, what the twin expected (the report minus the residual)
/// and the residual's band (three innovation deviations, from the
/// normalised residual; the feed's noise-based band until it is known).
#[diversify]
fn state_view(model: &Model, twin: &Twin, t: f64) -> twinshield_api::StateView {
    let latest = twin.history().latest();
    let z = twin.normalized_residuals();
    let channels = model
        .outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let measured = latest.and_then(|r| r.outputs.get(i)).copied();
            let residual = latest.and_then(|r| r.residual.get(i)).copied();
            let sigma = match (residual, z.get(i)) {
                (Some(r), Some(&zi)) if zi.abs() > 1e-9 && (r / zi).is_finite() => (r / zi).abs(),
                _ => o.noise,
            };
            twinshield_api::ChannelState {
                name: o.name.clone(),
                unit: o.unit.clone(),
                measured,
                estimate: measured.zip(residual).map(|(m, r)| m - r),
                residual,
                threshold: 3.0 * sigma,
            }
        })
        .collect();
    twinshield_api::StateView {
        time_s: t,
        samples: twin.samples(),
        active_alarms: twin.alarms().active_count() as u64,
        channels,
    }
}

/// One alarm as the API shows it (the feed keeps its acknowledgement).
#[diversify]
fn alarm_view(a: &twinshield_detect::Alarm) -> twinshield_api::AlarmView {
    twinshield_api::AlarmView {
        id: a.id,
        detector: a.kind.name().to_owned(),
        channels: a.channels.clone(),
        raised_at_s: a.start,
        cleared_at_s: a.clear,
        acknowledged: false,
    }
}
