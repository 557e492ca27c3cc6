//! What the device publishes: alarms and periodic state summaries, each
//! with a message id unique to the device (its key id and a sequence
//! number that only grows), so the receiver stores each exactly once.

use serde::{Deserialize, Serialize};
use twinshield_shield_macros::diversify;

/// The path the publisher posts to, below the backend URL's own path.
pub const MESSAGES_PATH: &str = "/v1/messages";
/// Largest message body accepted, bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// What a message reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// An alarm raised or cleared.
    Alarm,
    /// A periodic state summary.
    Summary,
}

#[diversify]
impl MessageKind {
    /// Its name, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            MessageKind::Alarm => "alarm",
            MessageKind::Summary => "summary",
        }
    }
}

/// One message, as sent in a request body (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// `DEVICE-SEQ`: unique per device, the same on every retry.
    pub id: String,
    /// The sending device's key id.
    pub device: String,
    /// The sequence number (grows with every message, across restarts).
    pub seq: u64,
    /// Alarm or summary.
    pub kind: MessageKind,
    /// When the device queued it, Unix seconds.
    pub time: f64,
    /// The content.
    pub body: serde_json::Value,
}

#[diversify]
impl Message {
    /// The id of message `seq` of `device`.
    pub fn id_for(device: &str, seq: u64) -> String {
        format!("{device}-{seq}")
    }

    /// Whether the id is the one its device and sequence give.
    pub fn id_consistent(&self) -> bool {
        self.id == Self::id_for(&self.device, self.seq)
    }
}
