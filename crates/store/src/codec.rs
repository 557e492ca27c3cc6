//! The plaintext layouts inside sealed records: sample blocks, minute
//! aggregates and events. Decoders trust nothing.

// A parser of stored (possibly damaged) records: no indexing that can
// panic, no unchecked arithmetic.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use twinshield_shield_macros::diversify;

/// One stored sample: its time (seconds) and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Time, seconds (Unix time in `twinshield run`).
    pub time: f64,
    /// Values in the schema's channel order.
    pub values: Vec<f32>,
}

/// Samples stored together: times as offsets from the block's start.
/// Layout: `start f64 | count u32 | channels u16 | count × (offset f32 | channels × f32)`.
/// The writer builds blocks with [`BlockBytes`]; this is the reference
/// layout it is tested against.
#[cfg(test)]
#[diversify]
pub(crate) fn encode_block(samples: &[Sample], channels: usize) -> Vec<u8> {
    let start = samples.first().map_or(0.0, |s| s.time);
    let mut out = Vec::with_capacity(
        14usize.saturating_add(
            samples
                .len()
                .saturating_mul(4usize.saturating_add(channels.saturating_mul(4))),
        ),
    );
    out.extend_from_slice(&start.to_le_bytes());
    out.extend_from_slice(
        &u32::try_from(samples.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&u16::try_from(channels).unwrap_or(u16::MAX).to_le_bytes());
    for s in samples {
        out.extend_from_slice(&((s.time - start) as f32).to_le_bytes());
        for k in 0..channels {
            out.extend_from_slice(&s.values.get(k).copied().unwrap_or(f32::NAN).to_le_bytes());
        }
    }
    out
}

/// A reader over stored bytes: every read is checked, none panics.
pub(crate) struct R<'a>(pub(crate) &'a [u8]);

#[diversify]
impl R<'_> {
    pub(crate) fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (h, t) = self.0.split_at_checked(N)?;
        self.0 = t;
        h.try_into().ok()
    }
    pub(crate) fn f64(&mut self) -> Option<f64> {
        self.take().map(f64::from_le_bytes)
    }
    fn f32(&mut self) -> Option<f32> {
        self.take().map(f32::from_le_bytes)
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }
    /// Nothing left: a record must be read to its end.
    pub(crate) fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// Bytes before a block's first sample: `start f64 | count u32 | channels u16`.
pub(crate) const BLOCK_HEADER: usize = 14;

/// A block's plaintext kept as bytes: samples are appended to it and
/// those already in it are never re-encoded, so a block only ever grows
/// at its end (the hash chain digests each batch's part of a block once,
/// and finds the same bytes there later). Same layout as `encode_block`.
pub(crate) struct BlockBytes {
    bytes: Vec<u8>,
    start: f64,
    count: u32,
    channels: u16,
}

#[diversify]
impl BlockBytes {
    /// An empty block starting at `start`, for samples of `channels` values.
    pub(crate) fn new(start: f64, channels: usize) -> Self {
        let channels = u16::try_from(channels).unwrap_or(u16::MAX);
        let mut bytes = Vec::with_capacity(4096);
        bytes.extend_from_slice(&start.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&channels.to_le_bytes());
        BlockBytes {
            bytes,
            start,
            count: 0,
            channels,
        }
    }

    /// A stored block's plaintext, if its layout holds (the same check as
    /// `decode_block`).
    pub(crate) fn parse(bytes: Vec<u8>) -> Option<Self> {
        let mut r = R(&bytes);
        let start = r.f64()?;
        let count = r.u32()?;
        let channels = r.u16()?;
        let per = usize::from(channels).checked_add(1)?.checked_mul(4)?;
        if r.0.len() != usize::try_from(count).ok()?.checked_mul(per)? {
            return None;
        }
        Some(BlockBytes {
            bytes,
            start,
            count,
            channels,
        })
    }

    /// Appends `s` (values beyond the block's channels dropped, missing
    /// ones NaN) and returns its time as stored (start + the `f32` offset).
    #[inline]
    pub(crate) fn push(&mut self, s: &Sample) -> f64 {
        let offset = (s.time - self.start) as f32;
        self.bytes.extend_from_slice(&offset.to_le_bytes());
        for k in 0..usize::from(self.channels) {
            let v = s.values.get(k).copied().unwrap_or(f32::NAN);
            self.bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.count = self.count.saturating_add(1);
        if let Some(c) = self.bytes.get_mut(8..12) {
            c.copy_from_slice(&self.count.to_le_bytes());
        }
        self.start + f64::from(offset)
    }

    /// The whole plaintext.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Time of the block's first sample.
    pub(crate) fn start(&self) -> f64 {
        self.start
    }

    /// Samples in the block.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// Values per sample.
    pub(crate) fn channels(&self) -> usize {
        usize::from(self.channels)
    }

    /// What every part of the block shares: `start f64 | channels u16`.
    pub(crate) fn fixed_header(&self) -> [u8; 10] {
        let mut h = [0u8; 10];
        let (a, b) = h.split_at_mut(8);
        a.copy_from_slice(&self.start.to_le_bytes());
        b.copy_from_slice(&self.channels.to_le_bytes());
        h
    }

    /// The bytes of samples `from..to`, if the block holds them.
    pub(crate) fn entries(&self, from: u32, to: u32) -> Option<&[u8]> {
        let per = usize::from(self.channels).checked_add(1)?.checked_mul(4)?;
        let at = |i: u32| {
            usize::try_from(i)
                .ok()?
                .checked_mul(per)?
                .checked_add(BLOCK_HEADER)
        };
        if from > to || to > self.count {
            return None;
        }
        self.bytes.get(at(from)?..at(to)?)
    }

    /// The latest finite stored time among samples `from..to` (NaN if none).
    pub(crate) fn latest(&self, from: u32, to: u32) -> f64 {
        let per = usize::from(self.channels)
            .saturating_add(1)
            .saturating_mul(4);
        let Some(entries) = self.entries(from, to) else {
            return f64::NAN;
        };
        entries
            .chunks_exact(per.max(4))
            .filter_map(|e| e.first_chunk::<4>().map(|b| f32::from_le_bytes(*b)))
            .map(|off| self.start + f64::from(off))
            .filter(|t| t.is_finite())
            .fold(f64::NAN, f64::max)
    }
}

#[diversify]
pub(crate) fn decode_block(bytes: &[u8]) -> Option<Vec<Sample>> {
    let mut r = R(bytes);
    let start = r.f64()?;
    let count = usize::try_from(r.u32()?).ok()?;
    let channels = usize::from(r.u16()?);
    let per = channels.checked_add(1)?.checked_mul(4)?;
    if r.0.len() != count.checked_mul(per)? {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let dt = f64::from(r.f32()?);
        let mut values = Vec::with_capacity(channels);
        for _ in 0..channels {
            values.push(r.f32()?);
        }
        out.push(Sample {
            time: start + dt,
            values,
        });
    }
    Some(out)
}

/// Per-minute min, mean and max of every channel.
#[derive(Debug, Clone, PartialEq)]
pub struct MinuteRow {
    /// Start of the minute, seconds.
    pub minute: f64,
    /// Samples aggregated.
    pub count: u32,
    /// Per channel: (min, mean, max).
    pub stats: Vec<(f32, f32, f32)>,
}

#[diversify]
pub(crate) fn encode_minute(m: &MinuteRow) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&m.minute.to_le_bytes());
    out.extend_from_slice(&m.count.to_le_bytes());
    out.extend_from_slice(
        &u16::try_from(m.stats.len())
            .unwrap_or(u16::MAX)
            .to_le_bytes(),
    );
    for (a, b, c) in &m.stats {
        for v in [a, b, c] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

#[diversify]
pub(crate) fn decode_minute(bytes: &[u8]) -> Option<MinuteRow> {
    let mut r = R(bytes);
    let minute = r.f64()?;
    let count = r.u32()?;
    let n = usize::from(r.u16()?);
    let mut stats = Vec::with_capacity(n);
    for _ in 0..n {
        stats.push((r.f32()?, r.f32()?, r.f32()?));
    }
    r.0.is_empty().then_some(MinuteRow {
        minute,
        count,
        stats,
    })
}

/// What kind of event a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A sample that could not be used.
    DataQuality,
    /// An alarm raised.
    AlarmRaised,
    /// An alarm acknowledged by an operator.
    AlarmAcknowledged,
    /// An alarm cleared.
    AlarmCleared,
    /// A finding of the runtime shield.
    Shield,
    /// An audit-log entry (who did what).
    Audit,
    /// A message waiting for a backend.
    Outbox,
    /// A storage problem (disk full, write error) and its resolution.
    Storage,
}

#[diversify]
impl EventKind {
    const ALL: [EventKind; 8] = [
        EventKind::DataQuality,
        EventKind::AlarmRaised,
        EventKind::AlarmAcknowledged,
        EventKind::AlarmCleared,
        EventKind::Shield,
        EventKind::Audit,
        EventKind::Outbox,
        EventKind::Storage,
    ];

    /// Stable name, for exports.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::DataQuality => "data-quality",
            EventKind::AlarmRaised => "alarm-raised",
            EventKind::AlarmAcknowledged => "alarm-acknowledged",
            EventKind::AlarmCleared => "alarm-cleared",
            EventKind::Shield => "shield",
            EventKind::Audit => "audit",
            EventKind::Outbox => "outbox",
            EventKind::Storage => "storage",
        }
    }

    fn code(self) -> u8 {
        EventKind::ALL
            .iter()
            .position(|k| *k == self)
            .and_then(|i| u8::try_from(i).ok())
            .unwrap_or(u8::MAX)
    }

    fn from_code(c: u8) -> Option<Self> {
        EventKind::ALL.get(usize::from(c)).copied()
    }
}

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its kind.
    pub kind: EventKind,
    /// When, seconds.
    pub time: f64,
    /// What, in one line.
    pub text: String,
}

#[diversify]
pub(crate) fn encode_event(e: &Event) -> Vec<u8> {
    let mut out = vec![e.kind.code()];
    out.extend_from_slice(&e.time.to_le_bytes());
    out.extend_from_slice(e.text.as_bytes());
    out
}

#[diversify]
pub(crate) fn decode_event(bytes: &[u8]) -> Option<Event> {
    let mut r = R(bytes);
    let kind = EventKind::from_code(r.u8()?)?;
    let time = r.f64()?;
    let text = String::from_utf8(r.0.to_vec()).ok()?;
    Some(Event { kind, time, text })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_and_refuse_damage() {
        let s: Vec<Sample> = (0..5)
            .map(|i| Sample {
                time: 1.7e9 + f64::from(i) * 0.001,
                values: vec![i as f32, 2.5],
            })
            .collect();
        let b = encode_block(&s, 2);
        assert_eq!(b.len(), 14 + 5 * 12);
        let d = decode_block(&b).expect("decodes");
        assert_eq!(d.len(), 5);
        assert!((d[4].time - s[4].time).abs() < 1e-4);
        assert!(decode_block(&b[..b.len() - 1]).is_none());
        // Appending to a block gives the reference layout's bytes.
        let mut bb = BlockBytes::new(s[0].time, 2);
        for x in &s {
            bb.push(x);
        }
        assert_eq!(bb.bytes(), b.as_slice());
        let again = BlockBytes::parse(b.clone()).expect("parses");
        assert_eq!(again.count(), 5);
        assert_eq!(again.entries(1, 3).map(<[u8]>::len), Some(24));
        assert!(again.entries(3, 6).is_none());
        assert!(BlockBytes::parse(b[..b.len() - 1].to_vec()).is_none());
        let e = Event {
            kind: EventKind::Audit,
            time: 3.0,
            text: "x".into(),
        };
        assert_eq!(decode_event(&encode_event(&e)), Some(e));
        let m = MinuteRow {
            minute: 60.0,
            count: 3,
            stats: vec![(1.0, 2.0, 3.0)],
        };
        assert_eq!(decode_minute(&encode_minute(&m)), Some(m));
    }
}
