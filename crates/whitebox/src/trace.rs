//! Recording the table values an evaluation reads.
//!
//! Evaluators are generic over [`Recorder`]. Shipped builds only ever use
//! [`NoTrace`], whose `record` is empty and inlined away: tracing costs
//! nothing when the `trace` feature is off (the [`Trace`] buffer does not
//! even exist then).

use twinshield_shield_macros::diversify;

/// Something that receives every table value an evaluation reads, one byte
/// per read (a 32-bit table entry is recorded as its four bytes, least
/// significant first, as a byte-granular memory tracer sees it).
pub(crate) trait Recorder {
    /// Records one byte read from a table.
    fn record(&mut self, value: u8);

    /// Records the four bytes of a 32-bit table entry.
    #[inline(always)]
    fn record_u32(&mut self, value: u32) {
        for b in value.to_le_bytes() {
            self.record(b);
        }
    }
}

/// The recorder of untraced evaluations: records nothing.
pub(crate) struct NoTrace;

#[diversify]
impl Recorder for NoTrace {
    #[inline(always)]
    fn record(&mut self, _value: u8) {}
}

/// A trace buffer: the table values read by traced evaluations, in the
/// order they were read. Only with the `trace` feature (attack harness).
#[cfg(feature = "trace")]
#[derive(Clone, Debug, Default)]
pub struct Trace {
    values: Vec<u8>,
}

#[cfg(feature = "trace")]
#[diversify]
impl Trace {
    /// An empty trace.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The values recorded so far.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        &self.values
    }

    /// Takes the recorded values, leaving the trace empty.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.values)
    }

    /// Forgets the recorded values (keeps the allocation).
    pub fn clear(&mut self) {
        self.values.clear();
    }
}

#[cfg(feature = "trace")]
#[diversify]
impl Recorder for Trace {
    #[inline(always)]
    fn record(&mut self, value: u8) {
        self.values.push(value);
    }
}
