//! The outbox: messages waiting to be delivered, kept in their own redb
//! file, each encrypted with ChaCha20-Poly1305 (`twinshield-atrest`'s
//! `AeadKey`, the message's sequence number in the associated data) under a key the caller
//! supplies (the device's storage key for `outbox`), so they survive a
//! restart and open on this device only. A message leaves the outbox only
//! when the backend has answered 2xx for it.

use crate::message::{Message, MessageKind};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::Path;
use twinshield_atrest::AeadKey;
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const CHECK: &[u8] = b"twinshield/outbox/check/v1";
const AAD: &[u8] = b"twinshield/outbox/v1|";
/// Most messages kept waiting; beyond, new ones are refused.
pub const MAX_PENDING: u64 = 100_000;

/// What can go wrong with the outbox. Where the database or the operating
/// system gave a reason, the message shows it and
/// [`std::error::Error::source`] returns it.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The outbox's directory could not be created.
    #[error("outbox I/O error: {source}")]
    Directory {
        /// The directory.
        path: std::path::PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be read or written (its `redb::Error::Io` holds
    /// the operating system's reason).
    #[error("outbox I/O error: {0}")]
    Database(#[source] redb::Error),
    /// A message could not be encoded.
    #[error("outbox I/O error: {0}")]
    Encode(#[source] serde_json::Error),
    /// The blocking task running an outbox operation failed.
    #[error("outbox I/O error: outbox task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// The outbox was written under another key (another device).
    #[error("the outbox belongs to another device")]
    WrongKey,
    /// A stored message does not decrypt or decode.
    #[error("outbox message {0} is corrupt")]
    Corrupt(u64),
    /// [`MAX_PENDING`] messages are already waiting.
    #[error("the outbox is full ({MAX_PENDING} messages waiting)")]
    Full,
    /// A message could not be sealed: no randomness for a nonce.
    #[error("no randomness available")]
    Random(#[source] twinshield_atrest::EncryptError),
}

#[diversify]
fn io(e: impl Into<redb::Error>) -> OutboxError {
    OutboxError::Database(e.into())
}

/// The encrypted, persistent queue of messages to send.
pub struct Outbox {
    db: Database,
    key: AeadKey,
}

#[diversify]
impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbox")
    }
}

#[diversify]
fn micros_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[diversify]
impl Outbox {
    /// Opens (creating if needed) the outbox file at `path` under `key`.
    pub fn open(path: &Path, key: &Zeroizing<[u8; 32]>) -> Result<Outbox, OutboxError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| OutboxError::Directory {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let db = Database::create(path).map_err(io)?;
        // Sealed messages only, but the owner's all the same (redb creates
        // the file with the process's umask).
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        let outbox = Outbox {
            db,
            key: AeadKey::new(key),
        };
        let stored = {
            let r = outbox.db.begin_read().map_err(io)?;
            match r.open_table(META) {
                Ok(t) => t.get("check").map_err(io)?.map(|v| v.value().to_vec()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(io(e)),
            }
        };
        match stored {
            Some(sealed) => {
                if outbox
                    .open_sealed(b"check", &sealed)
                    .as_deref()
                    .map(Vec::as_slice)
                    != Some(CHECK)
                {
                    return Err(OutboxError::WrongKey);
                }
            }
            None => {
                let sealed = outbox.seal(b"check", CHECK)?;
                let w = outbox.db.begin_write().map_err(io)?;
                {
                    let mut t = w.open_table(META).map_err(io)?;
                    t.insert("check", sealed.as_slice()).map_err(io)?;
                    w.open_table(MESSAGES).map_err(io)?;
                }
                w.commit().map_err(io)?;
            }
        }
        Ok(outbox)
    }

    fn seal(&self, label: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, OutboxError> {
        self.key
            .seal(&[AAD, label].concat(), plaintext)
            .map_err(OutboxError::Random)
    }

    fn open_sealed(&self, label: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.key.open(&[AAD, label].concat(), sealed).ok()
    }

    /// Queues a message from `device` durably (committed to disk before
    /// this returns) and returns it with its id. Its sequence number is
    /// above every earlier one and at least the current time in
    /// microseconds, so ids stay unique even if the outbox file is lost.
    pub fn enqueue(
        &self,
        device: &str,
        kind: MessageKind,
        time: f64,
        body: serde_json::Value,
    ) -> Result<Message, OutboxError> {
        let w = self.db.begin_write().map_err(io)?;
        let msg = {
            let mut meta = w.open_table(META).map_err(io)?;
            let mut t = w.open_table(MESSAGES).map_err(io)?;
            if t.len().map_err(io)? >= MAX_PENDING {
                return Err(OutboxError::Full);
            }
            let next = match meta.get("next")?.map(|v| v.value().to_vec()) {
                Some(b) => <[u8; 8]>::try_from(b.as_slice())
                    .map(u64::from_le_bytes)
                    .map_err(|_| OutboxError::Corrupt(0))?,
                None => 0,
            };
            let seq = next.max(micros_now());
            let msg = Message {
                id: Message::id_for(device, seq),
                device: device.to_owned(),
                seq,
                kind,
                time,
                body,
            };
            let plain = Zeroizing::new(serde_json::to_vec(&msg).map_err(OutboxError::Encode)?);
            let sealed = self.seal(&seq.to_le_bytes(), &plain)?;
            t.insert(seq, sealed.as_slice()).map_err(io)?;
            meta.insert("next", seq.saturating_add(1).to_le_bytes().as_slice())
                .map_err(io)?;
            msg
        };
        w.commit().map_err(io)?;
        Ok(msg)
    }

    /// The oldest waiting message, if any.
    pub fn oldest(&self) -> Result<Option<Message>, OutboxError> {
        let r = self.db.begin_read().map_err(io)?;
        let t = r.open_table(MESSAGES).map_err(io)?;
        let Some((k, v)) = t.first().map_err(io)? else {
            return Ok(None);
        };
        let seq = k.value();
        self.decode(seq, v.value()).map(Some)
    }

    fn decode(&self, seq: u64, sealed: &[u8]) -> Result<Message, OutboxError> {
        let plain = self
            .open_sealed(&seq.to_le_bytes(), sealed)
            .ok_or(OutboxError::Corrupt(seq))?;
        let msg: Message = serde_json::from_slice(&plain).map_err(|_| OutboxError::Corrupt(seq))?;
        if msg.seq != seq {
            return Err(OutboxError::Corrupt(seq));
        }
        Ok(msg)
    }

    /// Every waiting message, oldest first.
    pub fn pending(&self) -> Result<Vec<Message>, OutboxError> {
        let r = self.db.begin_read().map_err(io)?;
        let t = r.open_table(MESSAGES).map_err(io)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(io)? {
            let (k, v) = item.map_err(io)?;
            out.push(self.decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    /// How many messages wait.
    pub fn len(&self) -> Result<u64, OutboxError> {
        let r = self.db.begin_read().map_err(io)?;
        let t = r.open_table(MESSAGES).map_err(io)?;
        t.len().map_err(io)
    }

    /// Whether no message waits.
    pub fn is_empty(&self) -> Result<bool, OutboxError> {
        self.len().map(|n| n == 0)
    }

    /// Removes message `seq` (delivered, or corrupt); whether it was there.
    pub fn remove(&self, seq: u64) -> Result<bool, OutboxError> {
        let w = self.db.begin_write().map_err(io)?;
        let removed = {
            let mut t = w.open_table(MESSAGES).map_err(io)?;
            t.remove(seq).map_err(io)?.is_some()
        };
        w.commit().map_err(io)?;
        Ok(removed)
    }
}

#[diversify]
impl From<redb::StorageError> for OutboxError {
    fn from(e: redb::StorageError) -> Self {
        io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("twinshield-outbox-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// A message queued before `twinshield-atrest` (the outbox's own
    /// ChaCha20-Poly1305 wrapper) still opens, under its sequence number only.
    #[test]
    fn what_the_previous_wrapper_sealed_still_opens() {
        let d = dir("fixture");
        let o = Outbox::open(&d.join("o.redb"), &Zeroizing::new([0x44u8; 32])).unwrap();
        let fixture = "4f7d2daa88e8ae66a0a41ccddd32355a2c8d4a5f11daae90c58a078beea1361c\
                       5da752ebd8ce723b";
        let bytes: Vec<u8> = (0..fixture.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&fixture[i..i + 2], 16).unwrap())
            .collect();
        let plain = o.open_sealed(&42u64.to_le_bytes(), &bytes).unwrap();
        assert_eq!(plain.as_slice(), b"{\"outbox\":1}");
        assert!(o.open_sealed(&43u64.to_le_bytes(), &bytes).is_none());
        drop(o);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn messages_survive_reopening_in_order_and_leave_only_when_removed() {
        let d = dir("reopen");
        let key = Zeroizing::new([7u8; 32]);
        let path = d.join("outbox.redb");
        let (a, b) = {
            let o = Outbox::open(&path, &key).unwrap();
            let a = o
                .enqueue("00aa", MessageKind::Alarm, 1.5, serde_json::json!({"x": 1}))
                .unwrap();
            let b = o
                .enqueue(
                    "00aa",
                    MessageKind::Summary,
                    2.5,
                    serde_json::json!({"y": 2}),
                )
                .unwrap();
            (a, b)
        };
        assert!(b.seq > a.seq);
        assert_eq!(a.id, format!("00aa-{}", a.seq));
        let o = Outbox::open(&path, &key).unwrap();
        assert_eq!(o.pending().unwrap(), vec![a.clone(), b.clone()]);
        assert_eq!(o.oldest().unwrap(), Some(a.clone()));
        assert!(o.remove(a.seq).unwrap());
        assert!(!o.remove(a.seq).unwrap());
        drop(o);
        let o = Outbox::open(&path, &key).unwrap();
        assert_eq!(o.pending().unwrap(), vec![b.clone()]);
        // Sequence numbers keep growing after a reopen.
        let c = o
            .enqueue("00aa", MessageKind::Alarm, 3.0, serde_json::json!(null))
            .unwrap();
        assert!(c.seq > b.seq);
        assert_eq!(o.len().unwrap(), 2);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_file_holds_no_plaintext_and_opens_under_no_other_key() {
        let d = dir("key");
        let path = d.join("outbox.redb");
        let key = Zeroizing::new([1u8; 32]);
        {
            let o = Outbox::open(&path, &key).unwrap();
            o.enqueue(
                "00bb",
                MessageKind::Alarm,
                0.0,
                serde_json::json!({"secret-channel": "tank-level-h1"}),
            )
            .unwrap();
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(13).any(|w| w == b"tank-level-h1"));
        let other = Zeroizing::new([2u8; 32]);
        assert!(matches!(
            Outbox::open(&path, &other),
            Err(OutboxError::WrongKey)
        ));
        let _ = std::fs::remove_dir_all(&d);
    }
}
