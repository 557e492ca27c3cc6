//! The device's identity: its key pairs, kept in the state directory
//! encrypted under a key-encryption key that only this machine's own
//! components rebuild, and `device.fp`, the public description a vendor
//! seals bundles for.
//!
//! The key-encryption key (KEK) is split into Shamir shares, one per
//! identifying component; share `i` is encrypted under a key derived from
//! the runtime secret, a per-device salt, and component `i`'s raw value. Any
//! `k` matching components rebuild the KEK; `k` is `n − 2`, at least 3.

use crate::SealError;
use crate::fingerprint::{self, Component};
use crate::random;
use crate::secret::RuntimeSecret;
use crate::shamir::{self, Share};
use crate::wire::{Reader, Writer};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use hpke::kem::{Kem as KemTrait, X25519HkdfSha256};
use hpke::{Deserializable, Serializable};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use twinshield_atrest::AeadKey;
use twinshield_shield::{obf_bytes, protect};
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

/// Fewest components a device must have for a fingerprint.
pub const MIN_COMPONENTS: usize = 3;

const IDENTITY_FILE: &str = "identity.bin";
const RELEASES_FILE: &str = "releases.bin";
const ID_MAGIC: &[u8; 4] = b"TSID";
const FP_MAGIC: &[u8; 4] = b"TSFP";
const VERSION: u8 = 1;

type Kem = X25519HkdfSha256;

#[diversify]
fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Public commitment to one component: reveals nothing without the salt.
#[protect]
fn commitment(salt: &[u8; 32], c: &Component) -> [u8; 32] {
    sha256(&[
        obf_bytes!(b"twinshield/fp/commit/v1").bytes(),
        salt,
        c.label.as_bytes(),
        &c.value,
    ])
}

/// Key that encrypts the KEK share of one component.
#[protect]
fn share_key(secret: &dyn RuntimeSecret, salt: &[u8; 32], c: &Component) -> Zeroizing<[u8; 32]> {
    let root = secret.derive(obf_bytes!(b"twinshield/fp/share-root/v1").bytes());
    let hk = Hkdf::<Sha256>::new(Some(salt), root.as_slice());
    let mut key = Zeroizing::new([0u8; 32]);
    let info = [
        obf_bytes!(b"twinshield/fp/share/v1|").bytes(),
        c.label.as_bytes(),
        b"|",
        &c.value,
    ]
    .concat();
    let info = Zeroizing::new(info);
    let _ = hk.expand(&info, key.as_mut_slice());
    key
}

/// Digest of the labelled commitments: what bundles bind their key wrap to.
#[protect]
fn binding(commitments: &[(String, [u8; 32])]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(obf_bytes!(b"twinshield/fp/binding/v1").bytes());
    for (label, c) in commitments {
        h.update((label.len() as u64).to_le_bytes());
        h.update(label.as_bytes());
        h.update(c);
    }
    h.finalize().into()
}

/// Short id of a device or publisher key (first 8 bytes of a SHA-256).
#[diversify]
pub(crate) fn key_id(parts: &[&[u8]]) -> [u8; 8] {
    let d = sha256(parts);
    let mut id = [0u8; 8];
    id.copy_from_slice(d.get(..8).unwrap_or(&[0; 8]));
    id
}

/// The device's opened identity: its private keys (zeroized on drop) and
/// public description.
pub struct DeviceIdentity {
    x25519_ikm: Zeroizing<[u8; 32]>,
    ed25519: SigningKey,
    fp: DeviceFp,
    state: PathBuf,
    matched: usize,
}

#[diversify]
impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceIdentity({})", self.fp.key_id_hex())
    }
}

/// The public description of a device: its public keys and salted
/// component commitments, signed by the device's Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFp {
    x25519: [u8; 32],
    ed25519: [u8; 32],
    commitments: Vec<(String, [u8; 32])>,
    threshold: u8,
}

#[diversify]
impl DeviceFp {
    /// The device's key id (hex), as bundles list their recipients.
    pub fn key_id_hex(&self) -> String {
        hex(&self.key_id())
    }

    pub(crate) fn key_id(&self) -> [u8; 8] {
        key_id(&[&self.x25519, &self.ed25519])
    }

    /// Labels of the components committed to.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.commitments.iter().map(|(l, _)| l.as_str())
    }

    /// Components needed to open the keys.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    pub(crate) fn binding(&self) -> [u8; 32] {
        binding(&self.commitments)
    }

    pub(crate) fn hpke_public(&self) -> Result<<Kem as KemTrait>::PublicKey, SealError> {
        <Kem as KemTrait>::PublicKey::from_bytes(&self.x25519)
            .map_err(|_| SealError::Malformed("device.fp holds an invalid X25519 key".into()))
    }

    /// The device's Ed25519 verifying key (for what the device signs).
    pub fn signing_public(&self) -> [u8; 32] {
        self.ed25519
    }

    fn body(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(FP_MAGIC);
        w.u8(VERSION);
        w.bytes(&self.x25519);
        w.bytes(&self.ed25519);
        w.u8(self.threshold);
        w.u8(u8::try_from(self.commitments.len()).unwrap_or(u8::MAX));
        for (label, c) in &self.commitments {
            w.str(label);
            w.bytes(c);
        }
        w.buf
    }

    /// Reads and verifies a device.fp (format and self-signature).
    pub fn decode(bytes: &[u8]) -> Result<DeviceFp, SealError> {
        let bad = |m: &str| SealError::Malformed(format!("device.fp is corrupt: {m}"));
        let mut r = Reader::new(bytes, "device.fp");
        if r.take(4)? != FP_MAGIC {
            return Err(bad("not a twinshield device.fp"));
        }
        if r.u8()? != VERSION {
            return Err(bad("unsupported version"));
        }
        let x25519 = r.array::<32>()?;
        let ed25519 = r.array::<32>()?;
        let threshold = r.u8()?;
        let n = r.u8()?;
        let mut commitments = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let label = r.str()?;
            commitments.push((label, r.array::<32>()?));
        }
        let signed_len = bytes.len().saturating_sub(r.remaining());
        let sig = r.array::<64>()?;
        r.finish()?;
        if usize::from(threshold) < MIN_COMPONENTS || threshold > n {
            return Err(bad("threshold out of range"));
        }
        let vk = VerifyingKey::from_bytes(&ed25519).map_err(|_| bad("invalid Ed25519 key"))?;
        let signed = bytes.get(..signed_len).ok_or_else(|| bad("length"))?;
        vk.verify_strict(signed, &ed25519_dalek::Signature::from_bytes(&sig))
            .map_err(|_| SealError::BadFingerprint)?;
        let fp = DeviceFp {
            x25519,
            ed25519,
            commitments,
            threshold,
        };
        fp.hpke_public()?;
        Ok(fp)
    }
}

/// Lowercase hex.
#[diversify]
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes `bytes` to `path`, readable by the owner only, whole or not at all.
#[diversify]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SealError> {
    twinshield_atrest::write_atomic(path, bytes, 0o600)
        .map_err(|e| SealError::io(format!("cannot write {}", path.display()), e.source))
}

/// The identity file as stored, parsed but not opened.
struct StoredIdentity {
    /// Salt of the share keys and commitments.
    salt: [u8; 32],
    /// Shares needed to rebuild the key-encryption key.
    threshold: u8,
    /// Per component: its label and its sealed share.
    slots: Vec<(String, Vec<u8>)>,
    /// The device's two private seeds, sealed under the key-encryption key.
    sealed_keys: Vec<u8>,
    /// Per component: its label and its commitment.
    commitments: Vec<(String, [u8; 32])>,
}

#[diversify]
impl DeviceIdentity {
    /// Opens the identity kept in `state`, creating it (keys, shares,
    /// device.fp data) on first use. Returns whether it was created.
    pub fn open_or_create(
        state: &Path,
        secret: &dyn RuntimeSecret,
    ) -> Result<(Self, bool), SealError> {
        let file = state.join(IDENTITY_FILE);
        let exists = file
            .try_exists()
            .map_err(|e| SealError::io(format!("cannot read {}", file.display()), e))?;
        if exists {
            return Self::open(state, secret).map(|d| (d, false));
        }
        Self::create(state, secret).map(|d| (d, true))
    }

    fn create(state: &Path, secret: &dyn RuntimeSecret) -> Result<Self, SealError> {
        let components = fingerprint::collect();
        let n = components.len();
        if n < MIN_COMPONENTS {
            return Err(SealError::Identity(format!(
                "this machine provides only {n} identifying components; at least {MIN_COMPONENTS} are needed"
            )));
        }
        let n8 = u8::try_from(n).map_err(|_| SealError::Identity("too many components".into()))?;
        let k = n8.saturating_sub(2).max(MIN_COMPONENTS as u8).min(n8);
        fs::create_dir_all(state).map_err(|e| {
            SealError::io(
                format!("cannot create state directory {}", state.display()),
                e,
            )
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(state, fs::Permissions::from_mode(0o700));
        }
        let mut salt = [0u8; 32];
        random::fill(&mut salt)?;
        let mut kek = Zeroizing::new([0u8; 32]);
        random::fill(kek.as_mut_slice())?;
        let mut x25519_ikm = Zeroizing::new([0u8; 32]);
        random::fill(x25519_ikm.as_mut_slice())?;
        let mut ed_seed = Zeroizing::new([0u8; 32]);
        random::fill(ed_seed.as_mut_slice())?;
        let shares = shamir::split(&kek, n8, k, &mut random::fill)?;

        let mut w = Writer::default();
        w.bytes(ID_MAGIC);
        w.u8(VERSION);
        w.bytes(&salt);
        w.u8(k);
        w.u8(n8);
        let mut commitments = Vec::with_capacity(n);
        for (c, share) in components.iter().zip(&shares) {
            let key = share_key(secret, &salt, c);
            let mut pt = Zeroizing::new(vec![share.x]);
            pt.extend_from_slice(&share.y);
            let aad = [
                obf_bytes!(b"twinshield/id/share/v1|").bytes(),
                c.label.as_bytes(),
            ]
            .concat();
            w.str(c.label);
            w.blob(&AeadKey::new(&key).seal(&aad, &pt)?);
            commitments.push((c.label.to_owned(), commitment(&salt, c)));
        }
        let mut keys = Zeroizing::new(x25519_ikm.to_vec());
        keys.extend_from_slice(ed_seed.as_slice());
        w.blob(&AeadKey::new(&kek).seal(obf_bytes!(b"twinshield/id/keys/v1").bytes(), &keys)?);
        // The commitments themselves, so bundles can be opened after a
        // component changed (the binding is to the device as it was sealed for).
        w.u8(n8);
        for (label, c) in &commitments {
            w.str(label);
            w.bytes(c);
        }
        write_private(&state.join(IDENTITY_FILE), &w.buf)?;
        Ok(Self::from_seeds(
            x25519_ikm,
            &ed_seed,
            commitments,
            k,
            state,
            n,
        ))
    }

    /// The identity from its two private seeds and its public description.
    fn from_seeds(
        x25519_ikm: Zeroizing<[u8; 32]>,
        ed_seed: &[u8; 32],
        commitments: Vec<(String, [u8; 32])>,
        threshold: u8,
        state: &Path,
        matched: usize,
    ) -> Self {
        let ed25519 = SigningKey::from_bytes(ed_seed);
        let (_, x_pub) = Kem::derive_keypair(x25519_ikm.as_slice());
        let mut x25519 = [0u8; 32];
        x25519.copy_from_slice(&x_pub.to_bytes());
        DeviceIdentity {
            fp: DeviceFp {
                x25519,
                ed25519: ed25519.verifying_key().to_bytes(),
                commitments,
                threshold,
            },
            x25519_ikm,
            ed25519,
            state: state.to_path_buf(),
            matched,
        }
    }

    /// Opens an existing identity; fails unless at least `k` of the
    /// components it was created with still match this machine.
    #[protect]
    pub fn open(state: &Path, secret: &dyn RuntimeSecret) -> Result<Self, SealError> {
        let StoredIdentity {
            salt,
            threshold: k,
            slots,
            sealed_keys,
            commitments,
        } = Self::read_stored(state)?;
        let components = fingerprint::collect();
        let mut shares: Vec<Share> = Vec::new();
        for (label, sealed) in &slots {
            let Some(c) = components.iter().find(|c| c.label == label) else {
                continue;
            };
            let key = share_key(secret, &salt, c);
            let aad = [
                obf_bytes!(b"twinshield/id/share/v1|").bytes(),
                label.as_bytes(),
            ]
            .concat();
            if let Ok(pt) = AeadKey::new(&key).open(&aad, sealed)
                && let (Some(&x), Some(y)) = (pt.first(), pt.get(1..33))
                && x != 0
                && !shares.iter().any(|s| s.x == x)
            {
                let mut share = Share { x, y: [0u8; 32] };
                share.y.copy_from_slice(y);
                shares.push(share);
            }
        }
        let matched = shares.len();
        let not_this = SealError::NotThisDevice {
            matched,
            needed: usize::from(k),
        };
        if matched < usize::from(k) {
            return Err(not_this);
        }
        let kek = shamir::combine(&shares);
        let keys = AeadKey::new(&kek)
            .open(obf_bytes!(b"twinshield/id/keys/v1").bytes(), &sealed_keys)
            .map_err(|_| not_this)?;
        let (Some(xi), Some(es)) = (keys.get(..32), keys.get(32..64)) else {
            return Err(SealError::Malformed(
                "device identity is corrupt: key block has the wrong size".into(),
            ));
        };
        let mut x25519_ikm = Zeroizing::new([0u8; 32]);
        x25519_ikm.copy_from_slice(xi);
        let mut ed_seed = Zeroizing::new([0u8; 32]);
        ed_seed.copy_from_slice(es);
        Ok(Self::from_seeds(
            x25519_ikm,
            &ed_seed,
            commitments,
            k,
            state,
            matched,
        ))
    }

    /// Reads and parses the identity file in `state`. Protected like
    /// [`DeviceIdentity::open`], whose first half it is: the file's layout
    /// stays as hidden as the rest of opening.
    #[protect]
    fn read_stored(state: &Path) -> Result<StoredIdentity, SealError> {
        let path = state.join(IDENTITY_FILE);
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                SealError::NoIdentity(state.to_path_buf())
            } else {
                SealError::io(format!("cannot read {}", path.display()), e)
            }
        })?;
        let bad = |m: &str| SealError::Malformed(format!("device identity is corrupt: {m}"));
        let mut r = Reader::new(&bytes, "device identity");
        if r.take(4)? != ID_MAGIC || r.u8()? != VERSION {
            return Err(bad("not a twinshield identity of this version"));
        }
        let salt = r.array::<32>()?;
        let k = r.u8()?;
        let n = r.u8()?;
        if usize::from(k) < MIN_COMPONENTS || k > n {
            return Err(bad("threshold out of range"));
        }
        let mut slots = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let label = r.str()?;
            slots.push((label, r.blob()?.to_vec()));
        }
        let sealed_keys = r.blob()?.to_vec();
        let m = r.u8()?;
        let mut commitments = Vec::with_capacity(usize::from(m));
        for _ in 0..m {
            let label = r.str()?;
            commitments.push((label, r.array::<32>()?));
        }
        r.finish()?;
        Ok(StoredIdentity {
            salt,
            threshold: k,
            slots,
            sealed_keys,
            commitments,
        })
    }

    /// The public description, for sealing.
    pub fn fingerprint(&self) -> &DeviceFp {
        &self.fp
    }

    /// How many components matched when the identity was opened.
    pub fn matched_components(&self) -> usize {
        self.matched
    }

    /// device.fp's bytes, signed by this device.
    pub fn device_fp_bytes(&self) -> Vec<u8> {
        let mut body = self.fp.body();
        let sig = self.ed25519.sign(&body);
        body.extend_from_slice(&sig.to_bytes());
        body
    }

    pub(crate) fn hpke_private(&self) -> <Kem as KemTrait>::PrivateKey {
        Kem::derive_keypair(self.x25519_ikm.as_slice()).0
    }

    /// The device's Ed25519 signature of `msg`, verifiable with
    /// [`DeviceFp::signing_public`]: how the device signs what it sends
    /// (backend requests), so no password or API key is ever stored.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.ed25519.sign(msg).to_bytes()
    }

    /// A key for encrypting data at rest for `purpose`, derived from the
    /// device's private key: data encrypted with it opens on this device only.
    #[protect]
    pub fn storage_key(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let seed = Zeroizing::new(self.ed25519.to_bytes());
        let hk = Hkdf::<Sha256>::new(
            Some(obf_bytes!(b"twinshield/storage/v1").bytes()),
            seed.as_slice(),
        );
        let mut key = Zeroizing::new([0u8; 32]);
        let _ = hk.expand(purpose.as_bytes(), key.as_mut_slice());
        key
    }

    /// Records that release `release` of `model` is about to run, refusing
    /// a release older than the highest already run for that model (rollback
    /// protection). The counters are kept encrypted in the state directory
    /// under a key derived from the device key.
    pub fn check_and_record_release(&self, model: &str, release: u64) -> Result<(), SealError> {
        let key = self.storage_key("release-counters");
        let path = self.state.join(RELEASES_FILE);
        let aad_label = obf_bytes!(b"twinshield/releases/v1");
        let aad = aad_label.bytes();
        let mut counters: Vec<(String, u64)> = Vec::new();
        // No file yet means no release run yet; a file that cannot be read
        // is an error, never a reset of the counters.
        let stored = match fs::read(&path) {
            Ok(sealed) => Some(sealed),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(SealError::io(format!("cannot read {}", path.display()), e)),
        };
        if let Some(sealed) = stored {
            let pt = AeadKey::new(&key).open(aad, &sealed).map_err(|_| {
                SealError::Malformed(
                    "release counters are corrupt or belong to another device".into(),
                )
            })?;
            let mut r = Reader::new(&pt, "release counters");
            let n = r.u16()?;
            for _ in 0..n {
                let name = r.str()?;
                counters.push((name, r.u64()?));
            }
            r.finish()?;
        }
        match counters.iter_mut().find(|(m, _)| m == model) {
            Some((_, highest)) if release < *highest => {
                return Err(SealError::Rollback {
                    release,
                    highest: *highest,
                });
            }
            Some((_, highest)) => *highest = release,
            None => counters.push((model.to_owned(), release)),
        }
        let mut w = Writer::default();
        w.u16(u16::try_from(counters.len()).unwrap_or(u16::MAX));
        for (m, r) in &counters {
            w.str(m);
            w.u64(*r);
        }
        write_private(&path, &AeadKey::new(&key).seal(aad, &w.buf)?)
    }
}
