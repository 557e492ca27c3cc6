//! The JSON documents `run` and `demo` print when they end: a contract
//! outside scripts read (docs/cli.md). Fields are declared in alphabetical
//! order, the order these documents have always had.

use serde::Serialize;

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

/// The shield's state at the end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct ShieldStatus {
    /// Whether writes and key use were refused.
    pub degraded: bool,
    /// Every finding, with the action taken: `EVIDENCE (ACTION)`.
    pub findings: Vec<String>,
    /// Code regions the integrity guards cover.
    pub guard_regions: usize,
    /// Whether the binary is hardened and its guards ran.
    pub guarded: bool,
    /// The response policy in force.
    pub policy: String,
}

/// What the backend publisher delivered.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BackendReport {
    /// Messages dropped (the outbox was full).
    pub dropped: u64,
    /// Delivery attempts that failed.
    pub failed_attempts: u64,
    /// Messages left in the outbox.
    pub pending: u64,
    /// Messages delivered.
    pub sent: u64,
}

/// `twinshield run`'s summary.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Every alarm raised.
    pub alarms: Vec<AlarmSummary>,
    /// The backend's delivery report, when the bundle names a backend.
    pub backend: Option<BackendReport>,
    /// Samples that could not be used.
    pub data_quality_events: u64,
    /// The model's name.
    pub model: String,
    /// The bundle's release.
    pub release: u64,
    /// Samples the twin took.
    pub samples: u64,
    /// The shield's state (`null` without a shield).
    pub shield: Option<ShieldStatus>,
    /// Storage faults seen.
    pub storage_faults: Option<u64>,
    /// Samples durably stored.
    pub stored_samples: Option<u64>,
}

/// The demo's attack, as its summary reports it.
#[derive(Debug, Clone, Serialize)]
pub struct AttackSummary {
    /// Plant time of the attack's start, seconds.
    pub at_s: f64,
    /// Its magnitude (unit depends on the attack).
    pub magnitude: f64,
    /// The scenario's name.
    pub name: String,
}

/// `twinshield demo`'s summary.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    /// Every alarm raised, with its delay after the attack's start.
    pub alarms: Vec<AlarmSummary>,
    /// The attack injected, if any.
    pub attack: Option<AttackSummary>,
    /// Samples that could not be used.
    pub data_quality_events: u64,
    /// The plant's address, e.g. `modbus://127.0.0.1:40123`.
    pub plant: String,
    /// Plant seconds run.
    pub plant_seconds: f64,
    /// Samples the twin took.
    pub samples: u64,
    /// The shield's state (`null` without a shield).
    pub shield: Option<ShieldStatus>,
    /// Plant time ran this many times faster than wall time.
    pub speed: f64,
}

/// Rounds to one decimal, as the summaries report times.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
