//! The twin's in-memory history: a bounded ring of per-sample records and
//! the data-quality log. The store issue makes both durable and encrypted;
//! until then the newest records win when the ring is full.

use serde::Serialize;
use std::collections::VecDeque;
use twinshield_shield_macros::diversify;

/// What the twin saw and concluded at one sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// Sample time, seconds.
    pub time: f64,
    /// Inputs as read from the plant.
    pub inputs: Vec<f64>,
    /// Outputs as read from the plant.
    pub outputs: Vec<f64>,
    /// The twin's state estimate after the update.
    pub estimate: Vec<f64>,
    /// Measured minus predicted output.
    pub residual: Vec<f64>,
    /// Normalized innovation squared.
    pub nis: f64,
}

/// A data-quality event: a sample that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityEvent {
    /// When it happened, seconds.
    pub time: f64,
    /// What happened, in one line.
    pub what: String,
}

/// A bounded ring of records and quality events.
#[derive(Debug, Clone)]
pub struct History {
    records: VecDeque<Record>,
    quality: VecDeque<QualityEvent>,
    capacity: usize,
    appended: u64,
    quality_total: u64,
}

#[diversify]
impl History {
    /// A history keeping the newest `capacity` records and quality events.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        History {
            records: VecDeque::with_capacity(capacity.min(1 << 16)),
            quality: VecDeque::new(),
            capacity,
            appended: 0,
            quality_total: 0,
        }
    }

    /// Appends a record, dropping the oldest when full.
    pub fn push(&mut self, r: Record) {
        if self.records.len() == self.capacity {
            self.records.pop_front();
        }
        self.records.push_back(r);
        self.appended += 1;
    }

    /// Appends a quality event, dropping the oldest when full.
    pub fn push_quality(&mut self, e: QualityEvent) {
        if self.quality.len() == self.capacity {
            self.quality.pop_front();
        }
        self.quality.push_back(e);
        self.quality_total += 1;
    }

    /// Records held, oldest first.
    pub fn records(&self) -> impl DoubleEndedIterator<Item = &Record> {
        self.records.iter()
    }

    /// The newest record.
    pub fn latest(&self) -> Option<&Record> {
        self.records.back()
    }

    /// Quality events held, oldest first.
    pub fn quality(&self) -> impl DoubleEndedIterator<Item = &QualityEvent> {
        self.quality.iter()
    }

    /// Records appended since the start (held or dropped).
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// Quality events since the start (held or dropped).
    pub fn quality_total(&self) -> u64 {
        self.quality_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(t: f64) -> Record {
        Record {
            time: t,
            inputs: vec![],
            outputs: vec![],
            estimate: vec![],
            residual: vec![],
            nis: 0.0,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest() {
        let mut h = History::new(3);
        for t in 0..5 {
            h.push(rec(f64::from(t)));
        }
        let times: Vec<f64> = h.records().map(|r| r.time).collect();
        assert_eq!(times, [2.0, 3.0, 4.0]);
        assert_eq!(h.appended(), 5);
        assert_eq!(h.latest().map(|r| r.time), Some(4.0));
    }
}
