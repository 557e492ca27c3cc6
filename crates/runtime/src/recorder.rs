//! Records what the sync loop sees into the encrypted history store, and
//! reports storage faults without ever holding the loop up.

use crate::gate::{Gate, ShieldHandle};
use std::path::PathBuf;
use twinshield_model::Model;
use twinshield_shield_macros::diversify;
use twinshield_store::{EventKind, Sample, StoreWriter};
use twinshield_twin::{AlarmEvent, Twin};

/// The channel layout of a stored sample for `model`: inputs, outputs, the
/// twin's estimates and its residuals.
#[diversify]
pub fn schema(model: &Model) -> Vec<String> {
    let mut s: Vec<String> = model.inputs.iter().map(|i| i.name.clone()).collect();
    s.extend(model.outputs.iter().map(|o| o.name.clone()));
    s.extend(model.states.iter().map(|x| format!("est:{}", x.name)));
    s.extend(model.outputs.iter().map(|o| format!("res:{}", o.name)));
    s
}

/// The sync loop's link to the store.
pub struct Recorder {
    writer: StoreWriter,
    ack_file: Option<PathBuf>,
    last_acked: u64,
    fault: Option<String>,
    values: Vec<f32>,
    shield_recorded: usize,
    gate: Gate,
    shield: ShieldHandle,
}

#[diversify]
impl Recorder {
    /// A recorder writing through `writer` while `shield`'s gate allows
    /// it; with `ack_file`, the count of durably stored samples is written
    /// there after every commit.
    pub fn new(writer: StoreWriter, ack_file: Option<PathBuf>, shield: ShieldHandle) -> Self {
        Recorder {
            gate: shield.gate(),
            shield,
            writer,
            ack_file,
            last_acked: 0,
            fault: None,
            values: Vec::new(),
            shield_recorded: 0,
        }
    }

    /// Queues the twin's latest record (refused while the shield has
    /// degraded the twin: it keeps monitoring, but writes nothing but the
    /// audit log).
    pub fn sample(&mut self, time: f64, twin: &Twin) {
        if !self.gate.allows_writes() {
            return;
        }
        let Some(r) = twin.history().latest() else {
            return;
        };
        self.values.clear();
        for v in r
            .inputs
            .iter()
            .chain(&r.outputs)
            .chain(&r.estimate)
            .chain(&r.residual)
        {
            self.values.push(*v as f32);
        }
        self.writer.push(Sample {
            time,
            values: self.values.clone(),
        });
    }

    /// Queues an alarm's lifecycle event.
    pub fn alarm(&self, e: &AlarmEvent) {
        if !self.gate.allows_writes() {
            return;
        }
        let a = e.alarm();
        let text = format!(
            "alarm {} {} on {} (statistic {:.3}, threshold {:.3})",
            a.id,
            a.kind.name(),
            a.channels.join("+"),
            a.statistic_at_raise,
            a.threshold
        );
        match e {
            AlarmEvent::Raised(a) => self.writer.event(EventKind::AlarmRaised, a.start, text),
            AlarmEvent::Cleared(a) => {
                self.writer
                    .event(EventKind::AlarmCleared, a.clear.unwrap_or(a.start), text)
            }
        };
    }

    /// Queues an audit-log entry (who did what).
    pub fn audit(&self, time: f64, what: &str) {
        self.writer.event(EventKind::Audit, time, what);
    }

    /// Queues a data-quality event.
    pub fn quality(&self, time: f64, what: &str) {
        if !self.gate.allows_writes() {
            return;
        }
        self.writer.event(EventKind::DataQuality, time, what);
    }

    /// Notices new acknowledgements and fault changes; returns a line to
    /// show when the storage state changed.
    pub fn poll(&mut self, time: f64) -> Option<String> {
        self.record_shield_findings(time);
        let st = self.writer.status();
        if st.acknowledged != self.last_acked {
            self.last_acked = st.acknowledged;
            if let Some(f) = &self.ack_file {
                let _ = std::fs::write(f, format!("{}\n", st.acknowledged));
            }
        }
        if st.fault != self.fault {
            let line = match &st.fault {
                Some(f) => {
                    format!("storage fault: {f}; monitoring goes on, samples wait in memory")
                }
                None => "storage resumed: writing history again".to_owned(),
            };
            self.writer.event(EventKind::Storage, time, line.clone());
            self.fault = st.fault;
            return Some(line);
        }
        None
    }

    /// Queues the shield's findings not recorded yet, with the action
    /// taken: the audit trail of what the shield saw (never a secret).
    pub fn record_shield_findings(&mut self, time: f64) {
        let Some(shield) = self.shield.shield() else {
            return;
        };
        for (f, action) in shield.findings_since(self.shield_recorded) {
            self.writer
                .event(EventKind::Shield, time, format!("{f} ({action})"));
            self.shield_recorded += 1;
        }
    }

    /// A handle that reads the history (and queues events) alongside the
    /// writer: the API's.
    pub fn store_handle(&self) -> twinshield_store::StoreHandle {
        self.writer.handle()
    }

    /// Samples durably stored so far.
    pub fn acknowledged(&self) -> u64 {
        self.writer.status().acknowledged
    }

    /// Storage faults seen.
    pub fn faults(&self) -> u64 {
        self.writer.status().faults
    }

    /// Waits for everything queued to be committed (or refused).
    pub fn flush(&mut self, time: f64) {
        self.writer.flush();
        let _ = self.poll(time);
    }
}
