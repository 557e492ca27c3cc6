//! Plant protocols: a validating Modbus TCP client for the twin, and a
//! register server for plants (the reference plant, test peers).
//!
//! The client never trusts the plant: every reply is checked against what was
//! asked (exception codes, short replies, values outside their declared
//! range) and each problem becomes a typed [`ReadError`] that the sync loop
//! records as a data-quality event. A sample is delivered whole or not at
//! all, so nothing half-read reaches the estimator. Timeouts, dropped
//! connections and transaction-id mismatches drop the connection; the next
//! read reconnects after an exponential backoff, which also resynchronises a
//! stream that got out of step.
//!
//! Every plant source implements [`PlantSource`], the one trait the
//! application layer knows: it yields whole samples with each value's
//! quality and, where the plant provides it, the plant's own timestamp.
//!
//! This crate knows nothing of twin models: it deals in [`Point`]s.
#![forbid(unsafe_code)]

mod client;
mod map;
mod server;
mod source;

pub use client::{ClientConfig, Mismatch, ModbusClient, ReadError, Reading, SharedCause};
pub use map::{MapError, Point, PointMap, Table};
pub use server::{RegisterBank, SharedBank, serve};
pub use source::{ConnectionState, PlantSample, PlantSource, Quality, SourceInfo};
