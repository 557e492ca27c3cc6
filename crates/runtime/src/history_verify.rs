//! `history verify`: the device's history checked against its own hash
//! chain and, where given, against the signed heads its backend kept, so
//! that a rewritten, deleted or rolled-back history is named.
//!
//! The heads come from the backend as a [`HeadList`]: a file exported with
//! `twinshield backend heads`, or read from the backend the twin's bundle
//! names over the signed `GET /v1/heads`, trusting the anchors the bundle
//! pins. Each head must carry this device's valid signature, or nothing
//! is checked. The history's file is opened read only.

use crate::device::{DeviceError, backend_tls};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use twinshield_backend::{BackendError, HeadList, HeadListError, Signer, fetch_heads};
use twinshield_seal::{DeviceIdentity, EmbeddedSecret, PublisherPub, SealError};
use twinshield_shield_macros::diversify;
use twinshield_store::{ChainHead, ChainReport, HeadCheck, KnownHeadCheck, Store, StoreError};
use zeroize::Zeroizing;

/// Largest heads file read, bytes (the 820 served take about 170 KB).
const MAX_HEADS_FILE: u64 = 4 * 1024 * 1024;
/// Time limit of reading the heads from the backend.
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the history could not be verified (damage is not an error: it is
/// the [`Verdict`]).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The data directory holds no history.
    #[error("no history in {}", .0.display())]
    NoHistory(PathBuf),
    /// The device identity did not open.
    #[error(transparent)]
    Device(#[from] SealError),
    /// The history did not open, or could not be read.
    #[error("data directory {}: {source}", data.display())]
    Store {
        /// The data directory.
        data: PathBuf,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The heads file could not be read.
    #[error("heads file {}: {source}", path.display())]
    HeadsRead {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The heads file is larger than any the backend exports.
    #[error("heads file {}: larger than 4 MiB", .0.display())]
    HeadsTooLarge(PathBuf),
    /// The heads file is not a heads list.
    #[error("heads file {}: not a list of heads ({source})", path.display())]
    HeadsFormat {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The heads are another device's, or one does not verify.
    #[error("heads file {}: {source}", path.display())]
    Heads {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: HeadListError,
    },
    /// A history not closed cleanly could not be copied to be repaired.
    #[error("cannot copy the history to repair it: {0}")]
    Copy(#[source] std::io::Error),
    /// The async runtime to ask the backend with did not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The heads file or the backend holds no head of this device.
    #[error(
        "{0} holds no history heads of this device (has the twin published since its history began?)"
    )]
    NoHeads(String),
    /// The bundle names no backend to read heads from.
    #[error("the bundle names no backend to read the heads from")]
    NoBackend,
    /// The backend's TLS client could not be built.
    #[error(transparent)]
    BackendTls(DeviceError),
    /// The backend could not be asked, or refused.
    #[error("reading the heads from {url}: {source}")]
    Fetch {
        /// The backend's URL.
        url: String,
        /// Why.
        #[source]
        source: BackendError,
    },
    /// The backend's heads are another device's, or one does not verify.
    #[error("the heads from {url}: {source}")]
    FetchedHeads {
        /// The backend's URL.
        url: String,
        /// Why.
        #[source]
        source: HeadListError,
    },
}

/// The history of a data directory, to be read (never written) with this
/// device's key, and the device's identity to check heads with.
pub struct HistoryVerify {
    key: Zeroizing<[u8; 32]>,
    data: PathBuf,
    device: String,
    public: [u8; 32],
    identity: Arc<DeviceIdentity>,
}

/// What verification found.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The chain's report.
    pub report: ChainReport,
    /// Read from a repaired copy: the history was not closed cleanly.
    pub repaired: bool,
}

#[diversify]
impl HistoryVerify {
    /// The history in `data`, with the device key in `state`.
    pub fn open(state: &Path, data: &Path) -> Result<Self, VerifyError> {
        if !data.join("history.redb").is_file() {
            return Err(VerifyError::NoHistory(data.to_path_buf()));
        }
        let identity = DeviceIdentity::open(state, &EmbeddedSecret)?;
        Ok(HistoryVerify {
            key: identity.storage_key("history"),
            data: data.to_path_buf(),
            device: identity.fingerprint().key_id_hex(),
            public: identity.fingerprint().signing_public(),
            identity: Arc::new(identity),
        })
    }

    /// This device's key id (what the backend files its heads under).
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The heads in `list`, each verified as this device's.
    pub fn heads_of(&self, list: &HeadList) -> Result<Vec<ChainHead>, HeadListError> {
        list.verify(&self.device, &self.public)
    }

    /// `heads`, unless there are none: a check against the backend that
    /// holds nothing to check against is refused, not passed.
    fn some(heads: Vec<ChainHead>, from: String) -> Result<Vec<ChainHead>, VerifyError> {
        if heads.is_empty() {
            return Err(VerifyError::NoHeads(from));
        }
        Ok(heads)
    }

    /// The heads in the file at `path` (a [`HeadList`] as the backend
    /// exports it), each verified as this device's.
    pub fn heads_from_file(&self, path: &Path) -> Result<Vec<ChainHead>, VerifyError> {
        let read = |source| VerifyError::HeadsRead {
            path: path.to_path_buf(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read)?.len();
        if len > MAX_HEADS_FILE {
            return Err(VerifyError::HeadsTooLarge(path.to_path_buf()));
        }
        let bytes = std::fs::read(path).map_err(read)?;
        let list: HeadList =
            serde_json::from_slice(&bytes).map_err(|source| VerifyError::HeadsFormat {
                path: path.to_path_buf(),
                source,
            })?;
        let heads = self.heads_of(&list).map_err(|source| VerifyError::Heads {
            path: path.to_path_buf(),
            source,
        })?;
        Self::some(heads, format!("heads file {}", path.display()))
    }

    /// The heads the backend named by `bundle` (opened with this device's
    /// identity, signed by the publisher key `trust`) keeps for this
    /// device, read over its signed `GET /v1/heads` and trusting what the
    /// bundle pins (for a bundle that pins nothing, the system's store and
    /// `ca`), each verified as this device's.
    pub fn heads_from_backend(
        &self,
        bundle: &[u8],
        trust: &PublisherPub,
        ca: Option<&[u8]>,
    ) -> Result<Vec<ChainHead>, VerifyError> {
        let opened = twinshield_seal::open(bundle, trust, &self.identity)?;
        let url = opened.backend.clone().ok_or(VerifyError::NoBackend)?;
        let tls = backend_tls(Some(&url), opened.backend_ca.as_deref(), ca)
            .map_err(VerifyError::BackendTls)?;
        drop(opened);
        let identity = Arc::clone(&self.identity);
        let signer = Signer::new(self.device.clone(), move |m| Ok(identity.sign(m)));
        let fetched = crate::executor::executor()
            .map_err(VerifyError::Runtime)?
            .block_on(fetch_heads(&url, &signer, tls.as_ref(), FETCH_TIMEOUT));
        let list = fetched.map_err(|source| VerifyError::Fetch {
            url: url.clone(),
            source,
        })?;
        let heads = self
            .heads_of(&list)
            .map_err(|source| VerifyError::FetchedHeads {
                url: url.clone(),
                source,
            })?;
        Self::some(heads, format!("the backend {url}"))
    }

    /// Walks the chain and checks it against `known` heads: in place, the
    /// file opened read only, or, for a history its writer did not close
    /// cleanly, on a copy repaired as the next writer would repair it
    /// (the original stays as it is).
    pub fn verify(&self, known: &[ChainHead]) -> Result<Verdict, VerifyError> {
        let failed = |source| VerifyError::Store {
            data: self.data.clone(),
            source,
        };
        let (report, repaired) = match Store::verify_dir(&self.data, &self.key, known) {
            Err(StoreError::NeedsRepair(_)) => (self.verify_repaired_copy(known)?, true),
            other => (other.map_err(failed)?, false),
        };
        tracing::info!(
            clean = report.is_clean(),
            faults = report.faults.len(),
            heads = known.len(),
            "history verified"
        );
        Ok(Verdict { report, repaired })
    }

    /// [`HistoryVerify::verify`] of a copy of the history in a private
    /// temporary directory, repaired by opening it for writing.
    fn verify_repaired_copy(&self, known: &[ChainHead]) -> Result<ChainReport, VerifyError> {
        let copy = tempfile::Builder::new()
            .prefix("twinshield-verify-")
            .tempdir()
            .map_err(VerifyError::Copy)?;
        std::fs::copy(
            self.data.join("history.redb"),
            copy.path().join("history.redb"),
        )
        .map_err(VerifyError::Copy)?;
        let failed = |source| VerifyError::Store {
            data: self.data.clone(),
            source,
        };
        let store = Store::open(copy.path(), &self.key, None).map_err(failed)?;
        store.verify_chain(known).map_err(failed)
    }
}

#[diversify]
impl Verdict {
    /// No finding, and every known head matched (or predates retention).
    pub fn is_intact(&self) -> bool {
        self.report.is_clean()
    }

    /// Records checked: events and blocks of samples.
    pub fn records(&self) -> u64 {
        self.report.events.saturating_add(self.report.sample_blocks)
    }

    /// The first known head the history does not stand up to.
    fn first_bad_head(&self) -> Option<&KnownHeadCheck> {
        self.report
            .known
            .iter()
            .find(|k| !matches!(k.check, HeadCheck::Matches | HeadCheck::BeforeBase { .. }))
    }

    /// Findings beyond the one named.
    fn more(&self) -> u64 {
        let bad_heads = self
            .report
            .known
            .iter()
            .filter(|k| !matches!(k.check, HeadCheck::Matches | HeadCheck::BeforeBase { .. }))
            .count();
        (self.report.faults.len().saturating_add(bad_heads) as u64)
            .saturating_add(self.report.faults_omitted)
            .saturating_sub(1)
    }
}

/// A head as a reader names it.
#[diversify]
fn head_text(h: &ChainHead) -> String {
    format!("seq {} (time {})", h.seq, h.time)
}

/// What is wrong with the history against one head the backend kept,
/// after "history ".
#[diversify]
fn head_problem(k: &KnownHeadCheck) -> String {
    let known = head_text(&k.known);
    match &k.check {
        HeadCheck::Behind { store } => {
            let ends = store.map_or("no commit at all".to_owned(), |h| head_text(&h));
            format!(
                "rolled back or truncated: the backend holds head {known}, the history ends at {ends}"
            )
        }
        HeadCheck::Diverged { .. } => format!(
            "rewritten at or before commit {}: its hash is not the one in the backend's head {known}",
            k.known.seq
        ),
        HeadCheck::Missing => {
            format!(
                "damaged: commit {} of the backend's head {known} is gone",
                k.known.seq
            )
        }
        HeadCheck::Unchecked => {
            format!("damaged: the chain's state is unreadable, head {known} cannot be checked")
        }
        HeadCheck::Matches | HeadCheck::BeforeBase { .. } => format!("head {known} matches"),
    }
}

#[diversify]
impl std::fmt::Display for Verdict {
    /// One line: `history intact (N records, head seq S)`, or the first
    /// record (or backend head) that does not fit.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.report;
        if self.is_intact() {
            let seq = r.head.map_or(0, |h| h.seq);
            write!(
                f,
                "history intact ({} records, head seq {seq}",
                self.records()
            )?;
            let unchained = r.unchained.events.saturating_add(r.unchained.sample_blocks);
            if unchained > 0 {
                write!(f, "; {unchained} records from before the chain not covered")?;
            }
            if !r.known.is_empty() {
                write!(f, "; extends all {} heads from the backend", r.known.len())?;
            }
            if self.repaired {
                f.write_str("; read from a repaired copy: it was not closed cleanly")?;
            }
            return f.write_str(")");
        }
        let first = match (r.first_fault(), self.first_bad_head()) {
            (Some(fault), _) => format!("damaged: {fault}"),
            (None, Some(head)) => head_problem(head),
            (None, None) => "damaged: findings beyond the report's limit".to_owned(),
        };
        write!(f, "history {first}")?;
        match self.more() {
            0 => Ok(()),
            n => write!(f, " (and {n} more findings)"),
        }
    }
}
