//! The twin's link to its backend: alarms and a state summary every 10 s
//! of plant time, queued with the publisher (which signs them with the
//! device key and keeps them in the encrypted outbox until delivered).
//! While the shield has degraded the twin nothing is queued or signed.

use serde_json::json;
use twinshield_backend::PublisherHandle;
use twinshield_model::Model;
use twinshield_runtime::{AlarmEvent, Twin};
use twinshield_shield_macros::diversify;

/// Plant seconds between state summaries.
pub const SUMMARY_EVERY_S: f64 = 10.0;

/// The sync loop's link to the backend publisher: alarms as they come,
/// a state summary every [`SUMMARY_EVERY_S`] plant seconds.
pub struct BackendLink {
    handle: PublisherHandle,
    last_summary: f64,
}

#[diversify]
impl BackendLink {
    /// A link into `handle`.
    pub fn new(handle: PublisherHandle) -> Self {
        BackendLink {
            handle,
            last_summary: f64::NEG_INFINITY,
        }
    }

    /// Queues an alarm raised or cleared.
    pub fn alarm(&self, e: &AlarmEvent) {
        if crate::shield::degraded() {
            return;
        }
        let a = e.alarm();
        let (event, time) = match e {
            AlarmEvent::Raised(a) => ("raised", a.start),
            AlarmEvent::Cleared(a) => ("cleared", a.clear.unwrap_or(a.start)),
        };
        let body = json!({
            "event": event,
            "alarm": a.id,
            "detector": a.kind.name(),
            "channels": a.channels,
            "time": time,
            "raised_at": a.start,
            "statistic": a.statistic_at_raise,
            "threshold": a.threshold,
        });
        if let Err(e) = self.handle.alarm(body) {
            tracing::error!(error = %e, "alarm not queued for the backend");
        }
    }

    /// Queues a state summary when [`SUMMARY_EVERY_S`] of plant time
    /// passed since the last one.
    pub fn tick(&mut self, t: f64, model: &Model, twin: &Twin, quality: u64) {
        if t - self.last_summary < SUMMARY_EVERY_S || crate::shield::degraded() {
            return;
        }
        self.last_summary = t;
        let latest = twin.history().latest();
        let outputs: Vec<_> = model
            .outputs
            .iter()
            .enumerate()
            .map(|(i, o)| {
                json!({
                    "name": o.name,
                    "unit": o.unit,
                    "measured": latest.and_then(|r| r.outputs.get(i)).copied(),
                    "residual": latest.and_then(|r| r.residual.get(i)).copied(),
                })
            })
            .collect();
        let body = json!({
            "time": t,
            "twin": model.name,
            "samples": twin.samples(),
            "active_alarms": twin.alarms().active_count(),
            "outputs": outputs,
            "data_quality_events": quality,
        });
        if let Err(e) = self.handle.summary(body) {
            tracing::error!(error = %e, "summary not queued for the backend");
        }
    }
}
