//! The one seam between a twin and its plant: a [`PlantSource`] yields
//! whole samples, says whether it is connected and describes itself. The
//! application layer knows only this trait; each protocol is one
//! implementation (Modbus TCP today).

use crate::client::{ModbusClient, ReadError};
use std::future::Future;
use twinshield_shield_macros::diversify;

/// How far a value can be trusted, as its source reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quality {
    /// Measured and valid.
    Good,
    /// Delivered, but the source doubts it (a sensor out of calibration,
    /// a substituted value).
    Uncertain,
    /// Not a usable value.
    Bad,
}

/// One sample from a plant: a value per channel, in the order of
/// [`SourceInfo::channels`].
#[derive(Debug, Clone, PartialEq)]
pub struct PlantSample {
    /// Engineering values, one per channel.
    pub values: Vec<f64>,
    /// The quality of each value.
    pub quality: Vec<Quality>,
    /// When the plant took the sample, in its own time base, if the plant
    /// says so (else the twin stamps the sample with its poll time).
    pub source_time: Option<f64>,
}

/// Whether a source is talking to its plant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// A connection is open.
    Connected,
    /// No connection: the next read tries to open one.
    Disconnected,
}

/// What a source says of itself: enough for an operator to tell which
/// plant a twin watches, never a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// The protocol, e.g. `modbus`.
    pub protocol: &'static str,
    /// The plant's address, e.g. `127.0.0.1:5020`.
    pub address: String,
    /// The channels every sample carries, in order.
    pub channels: Vec<String>,
}

/// A plant the twin reads samples from.
pub trait PlantSource: Send {
    /// Why a read produced no sample (a data-quality event for the twin).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Reads one whole sample, or nothing: a partial sample never leaves
    /// a source.
    fn read(&mut self) -> impl Future<Output = Result<PlantSample, Self::Error>> + Send;

    /// Whether the source is connected now.
    fn state(&self) -> ConnectionState;

    /// The source's protocol, address and channels.
    fn describe(&self) -> SourceInfo;
}

#[diversify]
impl PlantSource for ModbusClient {
    type Error = ReadError;

    /// A Modbus reading is validated whole (ranges included), so every
    /// value it delivers is good; its time is the map's timestamp point,
    /// where the plant has one.
    async fn read(&mut self) -> Result<PlantSample, ReadError> {
        let reading = ModbusClient::read(self).await?;
        let quality = vec![Quality::Good; reading.values.len()];
        Ok(PlantSample {
            values: reading.values,
            quality,
            source_time: reading.time,
        })
    }

    fn state(&self) -> ConnectionState {
        if self.is_connected() {
            ConnectionState::Connected
        } else {
            ConnectionState::Disconnected
        }
    }

    fn describe(&self) -> SourceInfo {
        SourceInfo {
            protocol: "modbus",
            address: self.address().to_string(),
            channels: self.map().points().iter().map(|p| p.name.clone()).collect(),
        }
    }
}
