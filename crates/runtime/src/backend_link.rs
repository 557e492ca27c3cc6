//! The twin's link to its backend: alarms and a state summary every 10 s
//! of plant time, queued with the publisher (which signs them with the
//! device key and keeps them in the encrypted outbox until delivered).
//! Each summary carries the history's chain head of the moment, signed
//! with the device key, which the backend keeps (docs/history.md, "Signed
//! heads"). While the gate refuses key use nothing is queued or signed.
//!
//! The message bodies are a contract with the backend (docs/backend.md):
//! each is one type here, its fields in alphabetical order as always.

use crate::gate::Gate;
use serde::Serialize;
use twinshield_backend::{PublisherHandle, SignRefused, SignedHead, Signer};
use twinshield_model::Model;
use twinshield_shield_macros::diversify;
use twinshield_store::StoreHandle;
use twinshield_twin::{AlarmEvent, Twin};

/// Plant seconds between state summaries.
pub const SUMMARY_EVERY_S: f64 = 10.0;

/// The body of an alarm message: one alarm raised or cleared.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmMessage {
    /// Alarm id.
    pub alarm: u64,
    /// Channels it concerns.
    pub channels: Vec<String>,
    /// Detector name.
    pub detector: String,
    /// `raised` or `cleared`.
    pub event: &'static str,
    /// When it was raised.
    pub raised_at: f64,
    /// The detector's statistic when it was raised.
    pub statistic: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// When this event happened.
    pub time: f64,
}

/// One output in a state summary.
#[derive(Debug, Clone, Serialize)]
pub struct OutputSummary {
    /// What the plant reported last.
    pub measured: Option<f64>,
    /// The output's name.
    pub name: String,
    /// Plant minus twin, last sample.
    pub residual: Option<f64>,
    /// Its unit.
    pub unit: String,
}

/// The body of a summary message: the twin's state.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryMessage {
    /// Alarms active now.
    pub active_alarms: usize,
    /// Samples that could not be used so far.
    pub data_quality_events: u64,
    /// The history's chain head, signed with the device key (absent
    /// without a history, or before its first commit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<SignedHead>,
    /// Every output, last sample.
    pub outputs: Vec<OutputSummary>,
    /// Samples taken so far.
    pub samples: u64,
    /// The time of the summary.
    pub time: f64,
    /// The model's name.
    pub twin: String,
}

#[diversify]
impl AlarmMessage {
    /// The message for `e`.
    pub fn of(e: &AlarmEvent) -> Self {
        let a = e.alarm();
        let (event, time) = match e {
            AlarmEvent::Raised(a) => ("raised", a.start),
            AlarmEvent::Cleared(a) => ("cleared", a.clear.unwrap_or(a.start)),
        };
        AlarmMessage {
            alarm: a.id,
            channels: a.channels.clone(),
            detector: a.kind.name().to_owned(),
            event,
            raised_at: a.start,
            statistic: a.statistic_at_raise,
            threshold: a.threshold,
            time,
        }
    }
}

#[diversify]
impl SummaryMessage {
    /// The summary of `twin` running `model` at `t`.
    pub fn of(t: f64, model: &Model, twin: &Twin, quality: u64) -> Self {
        let latest = twin.history().latest();
        let outputs = model
            .outputs
            .iter()
            .enumerate()
            .map(|(i, o)| OutputSummary {
                measured: latest.and_then(|r| r.outputs.get(i)).copied(),
                name: o.name.clone(),
                residual: latest.and_then(|r| r.residual.get(i)).copied(),
                unit: o.unit.clone(),
            })
            .collect();
        SummaryMessage {
            active_alarms: twin.alarms().active_count(),
            data_quality_events: quality,
            head: None,
            outputs,
            samples: twin.samples(),
            time: t,
            twin: model.name.clone(),
        }
    }
}

/// The sync loop's link to the backend publisher: alarms as they come,
/// a state summary every [`SUMMARY_EVERY_S`] plant seconds.
pub struct BackendLink {
    handle: PublisherHandle,
    gate: Gate,
    last_summary: f64,
    heads: Option<(StoreHandle, Signer)>,
}

#[diversify]
impl BackendLink {
    /// A link into `handle`, queuing only while `gate` allows key use.
    pub fn new(handle: PublisherHandle, gate: Gate) -> Self {
        BackendLink {
            handle,
            gate,
            last_summary: f64::NEG_INFINITY,
            heads: None,
        }
    }

    /// Adds the chain head of `history`'s last durable commit, signed
    /// through `signer` (the device key, gated), to every summary.
    pub fn with_heads(mut self, history: StoreHandle, signer: Signer) -> Self {
        self.heads = Some((history, signer));
        self
    }

    /// The history's head now, signed; `None` without a history or a
    /// commit, or when the signature is refused (logged).
    fn signed_head(&self) -> Option<SignedHead> {
        let (history, signer) = self.heads.as_ref()?;
        let head = history.chain_head()?;
        SignedHead::sign(&head, signer)
            .map_err(|e| tracing::warn!(error = %e, "history head not signed"))
            .ok()
    }

    /// Queues an alarm raised or cleared.
    pub fn alarm(&self, e: &AlarmEvent) {
        if !self.gate.allows_key_use() {
            return;
        }
        let queued = serde_json::to_value(AlarmMessage::of(e))
            .map_err(|e| e.to_string())
            .and_then(|body| self.handle.alarm(body).map_err(|e| e.to_string()));
        if let Err(e) = queued {
            tracing::error!(error = %e, "alarm not queued for the backend");
        }
    }

    /// Queues a state summary when [`SUMMARY_EVERY_S`] of plant time
    /// passed since the last one.
    pub fn tick(&mut self, t: f64, model: &Model, twin: &Twin, quality: u64) {
        if t - self.last_summary < SUMMARY_EVERY_S || !self.gate.allows_key_use() {
            return;
        }
        self.last_summary = t;
        let summary = SummaryMessage {
            head: self.signed_head(),
            ..SummaryMessage::of(t, model, twin, quality)
        };
        let queued = serde_json::to_value(summary)
            .map_err(|e| e.to_string())
            .and_then(|body| self.handle.summary(body).map_err(|e| e.to_string()));
        if let Err(e) = queued {
            tracing::error!(error = %e, "summary not queued for the backend");
        }
    }
}

/// A backend signer that asks `gate` before every signature and reaches
/// `sign` (the device key) only when the gate allows key use.
#[diversify]
pub fn gated_signer(
    key_id: impl Into<String>,
    gate: Gate,
    sign: impl Fn(&[u8]) -> Result<[u8; 64], SignRefused> + Send + Sync + 'static,
) -> Signer {
    Signer::new(key_id, move |msg| {
        gate.check_key_use()
            .map_err(|e| SignRefused(e.to_string()))?;
        sign(msg)
    })
}
