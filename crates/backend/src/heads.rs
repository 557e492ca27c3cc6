//! Signed history heads: the device signs its history's chain head
//! ([`ChainHead::signing_bytes`]) with its Ed25519 key and sends it in
//! every state summary; the receiver checks the signature against the
//! device's enrolled key and keeps the heads per device, so that
//! `twinshield history verify` can later tell a history rolled back,
//! truncated or rebuilt from one that still extends what the backend saw.
//!
//! On the wire and in an exported heads file a head is
//! `{"seq", "hash", "time", "signature"}`: `hash` 64 lowercase hex
//! digits, `time` a decimal string (Rust's shortest form that reads back
//! to the same bits: the signature covers the bits), `signature` the
//! 64-byte Ed25519 signature in standard base64.

// A parser of what devices send and files hold: no indexing that can
// panic, no unchecked arithmetic.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use crate::{SignRefused, Signer};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use twinshield_shield_macros::diversify;
use twinshield_store::ChainHead;

/// The path a device reads its own heads from, below the backend URL's path.
pub const HEADS_PATH: &str = "/v1/heads";
/// The newest heads kept in memory and served per device.
pub const RECENT_HEADS: usize = 100;
/// Hours (by the receiver's clock) of which the last head received is
/// kept and served per device, besides the newest ones: 30 days.
pub const HOURLY_HEADS: usize = 24 * 30;
/// Most heads served per device; every head stays in the store's file.
pub const MAX_HEADS_SERVED: usize = RECENT_HEADS + HOURLY_HEADS;

/// One chain head with the device's signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedHead {
    /// The head's commit seq.
    pub seq: u64,
    /// The chain's hash after that commit: 64 lowercase hex digits.
    pub hash: String,
    /// The history's latest record time then, seconds, as a decimal string.
    pub time: String,
    /// Ed25519 over the head's 76 signing bytes, standard base64.
    pub signature: String,
}

/// Why a signed head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// `hash` is not 64 lowercase hex digits.
    #[error("head {0}: hash is not 64 lowercase hex digits")]
    Hash(u64),
    /// `time` is not a finite decimal number.
    #[error("head {0}: time is not a finite number")]
    Time(u64),
    /// `signature` is not 64 bytes in standard base64.
    #[error("head {0}: signature is not 64 bytes of base64")]
    SignatureEncoding(u64),
    /// The signature does not verify with the device's key.
    #[error("head {0}: signature does not verify with the device's key")]
    Signature(u64),
    /// The device key itself is not a valid Ed25519 key.
    #[error("the device's public key is not a valid Ed25519 key")]
    Key,
}

/// `bytes` as lowercase hex.
#[diversify]
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One lowercase hex digit's value.
#[diversify]
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' | b'a'..=b'f' => char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok()),
        _ => None,
    }
}

/// 64 lowercase hex digits as 32 bytes.
#[diversify]
fn unhex32(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *o = (hex_digit(*hi)? << 4) | hex_digit(*lo)?;
    }
    Some(out)
}

#[diversify]
impl SignedHead {
    /// `head` signed through `signer` (the device key, gated).
    pub fn sign(head: &ChainHead, signer: &Signer) -> Result<Self, SignRefused> {
        let signature = signer.sign_raw(&head.signing_bytes())?;
        Ok(SignedHead {
            seq: head.seq,
            hash: hex(&head.hash),
            time: format!("{:?}", head.time),
            signature: STANDARD.encode(signature),
        })
    }

    /// The head it carries, decoded but not verified.
    pub fn head(&self) -> Result<ChainHead, HeadError> {
        let hash = unhex32(&self.hash).ok_or(HeadError::Hash(self.seq))?;
        let time = self
            .time
            .parse::<f64>()
            .ok()
            .filter(|t| t.is_finite())
            .ok_or(HeadError::Time(self.seq))?;
        Ok(ChainHead {
            seq: self.seq,
            hash,
            time,
        })
    }

    /// The head, once its signature verified with the device's Ed25519
    /// public key `public` (strict verification).
    pub fn verify(&self, public: &[u8; 32]) -> Result<ChainHead, HeadError> {
        let key = VerifyingKey::from_bytes(public).map_err(|_| HeadError::Key)?;
        self.verify_with(&key)
    }

    /// As [`SignedHead::verify`], with the key already parsed.
    pub(crate) fn verify_with(&self, key: &VerifyingKey) -> Result<ChainHead, HeadError> {
        let head = self.head()?;
        let raw = STANDARD
            .decode(&self.signature)
            .ok()
            .and_then(|s| <[u8; 64]>::try_from(s).ok())
            .ok_or(HeadError::SignatureEncoding(self.seq))?;
        key.verify_strict(&head.signing_bytes(), &Signature::from_bytes(&raw))
            .map_err(|_| HeadError::Signature(self.seq))?;
        Ok(head)
    }
}

/// A device's heads as the backend serves and exports them
/// (`GET /v1/heads`, `twinshield backend heads`): oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadList {
    /// The device's key id.
    pub device: String,
    /// Its heads, oldest first.
    pub heads: Vec<SignedHead>,
}

/// Why a heads file cannot be used for this device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadListError {
    /// The file names another device.
    #[error("the heads are device {found}'s, not this device's ({expected})")]
    OtherDevice {
        /// This device's key id.
        expected: String,
        /// The device the file names.
        found: String,
    },
    /// A head in it is malformed or its signature does not verify.
    #[error(transparent)]
    Head(#[from] HeadError),
}

#[diversify]
impl HeadList {
    /// Every head, verified as `device`'s with its public key `public`;
    /// refused whole if any one does not verify.
    pub fn verify(&self, device: &str, public: &[u8; 32]) -> Result<Vec<ChainHead>, HeadListError> {
        if self.device != device {
            return Err(HeadListError::OtherDevice {
                expected: device.to_owned(),
                found: self.device.clone(),
            });
        }
        let key = VerifyingKey::from_bytes(public).map_err(|_| HeadError::Key)?;
        self.heads
            .iter()
            .map(|h| h.verify_with(&key).map_err(HeadListError::Head))
            .collect()
    }
}

/// The heads kept of one device: the newest [`RECENT_HEADS`] received,
/// and the last one received in each of the last [`HOURLY_HEADS`] hours of
/// the receiver's clock. A device (or whoever holds its key) sending a
/// flood of heads from a rebuilt history displaces only the newest ones
/// and the current hour's: what it sent in earlier hours stays served.
#[derive(Debug, Default)]
pub(crate) struct HeadBook {
    recent: VecDeque<(f64, SignedHead)>,
    hourly: BTreeMap<u64, (f64, SignedHead)>,
}

#[diversify]
impl HeadBook {
    /// The last head added.
    pub(crate) fn last(&self) -> Option<&SignedHead> {
        self.recent.back().map(|(_, h)| h)
    }

    /// Adds `head`, received at `received_at` (Unix seconds).
    pub(crate) fn add(&mut self, received_at: f64, head: SignedHead) {
        let hour = (received_at.max(0.0) / 3600.0) as u64;
        self.hourly.insert(hour, (received_at, head.clone()));
        while self.hourly.len() > HOURLY_HEADS {
            self.hourly.pop_first();
        }
        if self.recent.len() >= RECENT_HEADS {
            self.recent.pop_front();
        }
        self.recent.push_back((received_at, head));
    }

    /// Every head kept, in the order received (oldest first), each once.
    pub(crate) fn list(&self) -> Vec<SignedHead> {
        let mut all: Vec<&(f64, SignedHead)> =
            self.hourly.values().chain(self.recent.iter()).collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        all.dedup_by(|a, b| a.0.to_bits() == b.0.to_bits() && a.1 == b.1);
        all.into_iter().map(|(_, h)| h.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
    use super::*;
    use ed25519_dalek::SigningKey;

    fn head() -> ChainHead {
        ChainHead {
            seq: 42,
            hash: [0xa7; 32],
            time: 1_764_606_450.123_456_7,
        }
    }

    #[test]
    fn a_signed_head_verifies_with_its_key_only_and_reads_back_bit_for_bit() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let signer = Signer::from_signing_key("0123456789abcdef", key.clone());
        let signed = SignedHead::sign(&head(), &signer).unwrap();
        let json = serde_json::to_string(&signed).unwrap();
        let back: SignedHead = serde_json::from_str(&json).unwrap();
        let got = back.verify(&key.verifying_key().to_bytes()).unwrap();
        assert_eq!(got.time.to_bits(), head().time.to_bits());
        assert_eq!((got.seq, got.hash), (42, [0xa7; 32]));
        let other = SigningKey::from_bytes(&[4; 32]).verifying_key().to_bytes();
        assert_eq!(back.verify(&other), Err(HeadError::Signature(42)));
    }

    #[test]
    fn any_change_to_a_signed_head_is_refused() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let public = key.verifying_key().to_bytes();
        let signer = Signer::from_signing_key("0123456789abcdef", key);
        let signed = SignedHead::sign(&head(), &signer).unwrap();
        let mut seq = signed.clone();
        seq.seq = 43;
        assert_eq!(seq.verify(&public), Err(HeadError::Signature(43)));
        let mut hash = signed.clone();
        hash.hash.replace_range(0..1, "b");
        assert_eq!(hash.verify(&public), Err(HeadError::Signature(42)));
        let mut time = signed.clone();
        time.time = "1764606450.125".into();
        assert_eq!(time.verify(&public), Err(HeadError::Signature(42)));
        for (bad_hash, bad_time, bad_sig, want) in [
            ("A7", "1", signed.signature.as_str(), HeadError::Hash(42)),
            (signed.hash.as_str(), "NaN", "", HeadError::Time(42)),
            (signed.hash.as_str(), "inf", "", HeadError::Time(42)),
            (
                signed.hash.as_str(),
                "1",
                "AAAA",
                HeadError::SignatureEncoding(42),
            ),
        ] {
            let h = SignedHead {
                seq: 42,
                hash: bad_hash.into(),
                time: bad_time.into(),
                signature: bad_sig.into(),
            };
            assert_eq!(h.verify(&public), Err(want));
        }
    }

    #[test]
    fn a_head_list_is_verified_whole_and_for_its_device() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let public = key.verifying_key().to_bytes();
        let signer = Signer::from_signing_key("0123456789abcdef", key);
        let mut list = HeadList {
            device: "0123456789abcdef".into(),
            heads: vec![SignedHead::sign(&head(), &signer).unwrap()],
        };
        assert_eq!(list.verify("0123456789abcdef", &public).unwrap().len(), 1);
        assert!(matches!(
            list.verify("fedcba9876543210", &public),
            Err(HeadListError::OtherDevice { .. })
        ));
        if let Some(h) = list.heads.first_mut() {
            h.seq = 7;
        }
        assert_eq!(
            list.verify("0123456789abcdef", &public),
            Err(HeadListError::Head(HeadError::Signature(7)))
        );
    }

    #[test]
    fn a_flood_of_heads_displaces_neither_earlier_hours_nor_itself_beyond_the_newest() {
        let signer = Signer::from_signing_key("0123456789abcdef", SigningKey::from_bytes(&[3; 32]));
        let signed = |seq| {
            let h = ChainHead {
                seq,
                hash: [1; 32],
                time: 0.0,
            };
            SignedHead::sign(&h, &signer).unwrap()
        };
        let mut book = HeadBook::default();
        let t0 = 1_764_000_000.0;
        // A genuine head every 10 s for two hours.
        for i in 0..720u32 {
            book.add(t0 + 10.0 * f64::from(i), signed(u64::from(i)));
        }
        // Then 5000 heads of a rebuilt history within one minute.
        for i in 0..5000u32 {
            book.add(
                t0 + 7200.0 + 0.01 * f64::from(i),
                signed(10_000 + u64::from(i)),
            );
        }
        let seqs: Vec<u64> = book.list().iter().map(|h| h.seq).collect();
        assert_eq!(seqs.len(), RECENT_HEADS + 2, "{seqs:?}");
        // The last genuine head of each earlier hour is still there.
        assert!(seqs.starts_with(&[359, 719]), "{seqs:?}");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(book.last().map(|h| h.seq), Some(14_999));
    }
}
