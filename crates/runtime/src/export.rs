//! `history export`: the device's encrypted history read back, as CSV
//! (time and channels) or one JSON object (samples and events).

use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use twinshield_seal::{DeviceIdentity, EmbeddedSecret, SealError};
use twinshield_shield_macros::diversify;
use twinshield_store::{Store, StoreError};

/// Why the history could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The data directory holds no history.
    #[error("no history in {}", .0.display())]
    NoHistory(PathBuf),
    /// The device identity did not open.
    #[error(transparent)]
    Device(#[from] SealError),
    /// The history did not open or a query failed.
    #[error("data directory {}: {source}", data.display())]
    Store {
        /// The data directory.
        data: PathBuf,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The history has no such channel.
    #[error("unknown channel `{name}`; the channels are {known}")]
    UnknownChannel {
        /// The name given.
        name: String,
        /// The history's channels, comma-separated.
        known: String,
    },
    /// The export could not be written.
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}

/// The history of a data directory, opened with this device's key, and
/// the channels to export.
pub struct HistoryExport {
    store: Store,
    data: PathBuf,
    columns: Vec<usize>,
}

/// One exported sample in JSON (values widened to f64 as before, so the
/// digits printed stay what scripts read; fields in alphabetical order,
/// as the export always printed them).
#[derive(Serialize)]
struct JsonSample {
    time: f64,
    values: Vec<Option<f64>>,
}

/// One exported event in JSON.
#[derive(Serialize)]
struct JsonEvent<'a> {
    kind: &'static str,
    text: &'a str,
    time: f64,
}

/// The JSON export.
#[derive(Serialize)]
struct JsonExport<'a> {
    channels: Vec<&'a str>,
    events: Vec<JsonEvent<'a>>,
    samples: Vec<JsonSample>,
}

#[diversify]
impl HistoryExport {
    /// Opens the history in `data` with the device key in `state`, for
    /// `channel` (default: all).
    pub fn open(state: &Path, data: &Path, channel: Option<&str>) -> Result<Self, ExportError> {
        if !data.join("history.redb").exists() {
            return Err(ExportError::NoHistory(data.to_path_buf()));
        }
        let device = DeviceIdentity::open(state, &EmbeddedSecret)?;
        let store = Store::open(data, &device.storage_key("history"), None).map_err(|source| {
            ExportError::Store {
                data: data.to_path_buf(),
                source,
            }
        })?;
        let columns = match channel {
            Some(name) => vec![
                store
                    .channel(name)
                    .ok_or_else(|| ExportError::UnknownChannel {
                        name: name.to_owned(),
                        known: store.schema().join(", "),
                    })?,
            ],
            None => (0..store.schema().len()).collect(),
        };
        let data = data.to_path_buf();
        Ok(HistoryExport {
            store,
            data,
            columns,
        })
    }

    /// Writes the samples from `from` to `to` as CSV: `time,` and the
    /// channels, one row per sample.
    pub fn write_csv(&self, from: f64, to: f64, out: &mut dyn Write) -> Result<(), ExportError> {
        writeln!(out, "time,{}", self.names().join(","))?;
        for s in &self.store.samples(from, to).map_err(|e| self.failed(e))? {
            let vals: Vec<String> = self
                .columns
                .iter()
                .map(|&c| s.values.get(c).map_or(String::new(), |v| v.to_string()))
                .collect();
            writeln!(out, "{:.6},{}", s.time, vals.join(","))?;
        }
        Ok(())
    }

    /// Writes the samples and events from `from` to `to` as one JSON
    /// object (`channels`, `samples`, `events`) and a newline.
    pub fn write_json(&self, from: f64, to: f64, out: &mut dyn Write) -> Result<(), ExportError> {
        let samples = self.store.samples(from, to).map_err(|e| self.failed(e))?;
        let events = self.store.events(from, to).map_err(|e| self.failed(e))?;
        let export = JsonExport {
            channels: self.names(),
            events: events
                .iter()
                .map(|e| JsonEvent {
                    kind: e.kind.name(),
                    time: e.time,
                    text: &e.text,
                })
                .collect(),
            samples: samples
                .iter()
                .map(|s| JsonSample {
                    time: s.time,
                    values: self
                        .columns
                        .iter()
                        .map(|&c| s.values.get(c).map(|&v| f64::from(v)))
                        .collect(),
                })
                .collect(),
        };
        serde_json::to_writer(&mut *out, &export).map_err(std::io::Error::from)?;
        writeln!(out)?;
        Ok(())
    }

    fn names(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter_map(|&c| self.store.schema().get(c).map(String::as_str))
            .collect()
    }

    fn failed(&self, source: StoreError) -> ExportError {
        ExportError::Store {
            data: self.data.clone(),
            source,
        }
    }
}
