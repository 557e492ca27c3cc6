//! The device's identity: its key pairs, kept in the state directory
//! sealed under keys that only this machine's own components derive, and
//! `device.fp`, the public description a vendor seals bundles for.
//!
//! The seeds are sealed once per allowed subset of the components (see
//! [`crate::wraps`]): any `k` matching components, at least two of them
//! hardware-resident, open them, where `k` is `n − 2`, at least 3. Nothing
//! stored tests a component alone, and every guess costs an Argon2id
//! derivation.

use crate::SealError;
use crate::fingerprint::{self, Component, Residence};
use crate::legacy;
use crate::random;
use crate::secret::RuntimeSecret;
use crate::wire::{Reader, Writer};
use crate::wraps::{self, HARDWARE_NEEDED, Slot};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use hpke::kem::{Kem as KemTrait, X25519HkdfSha256};
use hpke::{Deserializable, Serializable};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use twinshield_atrest::{AeadKey, MaskedKey};
use twinshield_shield::{obf_bytes, protect};
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

/// Fewest components a device must have for a fingerprint.
pub const MIN_COMPONENTS: usize = 3;

const IDENTITY_FILE: &str = "identity.bin";
const RELEASES_FILE: &str = "releases.bin";
const ID_MAGIC: &[u8; 4] = b"TSID";
const FP_MAGIC: &[u8; 4] = b"TSFP";
/// Format 1 kept per-component commitments; read only to upgrade.
const LEGACY_VERSION: u8 = 1;
const VERSION: u8 = 2;

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

/// Digest of one component as the identity was created, kept inside the
/// sealed key block (never beside it): after opening, it tells how many
/// components still match, for the audit log.
#[protect]
fn present_digest(salt: &[u8; 32], c: &Component) -> [u8; 32] {
    sha256(&[
        obf_bytes!(b"twinshield/id/present/v2").bytes(),
        salt,
        c.label.as_bytes(),
        &c.value,
    ])
}

/// Format 1's binding: the digest of its labelled commitments, kept for
/// devices upgraded from it so that bundles sealed for them still open.
#[protect]
fn legacy_binding(commitments: &[(String, [u8; 32])]) -> [u8; 32] {
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

/// The device's opened identity: its private keys and public description.
/// Both private seeds are kept masked ([`MaskedKey`]) and put together
/// only inside a use; the bundle key (X25519) can be dropped once the
/// bundle is open ([`DeviceIdentity::forget_bundle_key`]).
pub struct DeviceIdentity {
    x25519_ikm: Option<MaskedKey>,
    ed25519: MaskedKey,
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

/// The public description of a device: its public keys, the value bundles
/// bind their key wrap to, and which components (by label and residence)
/// open its keys, signed by the device's Ed25519 key. It holds nothing
/// derived from a component's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFp {
    x25519: [u8; 32],
    ed25519: [u8; 32],
    binding: [u8; 32],
    slots: Vec<Slot>,
    threshold: u8,
    hardware_needed: u8,
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

    /// Labels of the components the keys are bound to.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|s| s.label.as_str())
    }

    /// Labels of the hardware-resident components among them.
    pub fn hardware_components(&self) -> impl Iterator<Item = &str> {
        self.slots
            .iter()
            .filter(|s| s.residence == Residence::Hardware)
            .map(|s| s.label.as_str())
    }

    /// Components needed to open the keys.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// Hardware-resident components needed among them.
    pub fn hardware_needed(&self) -> u8 {
        self.hardware_needed
    }

    /// Whether the keys need [`HARDWARE_NEEDED`] hardware-resident
    /// components: if not, a copy of the disk comes closer to opening them
    /// than it should, and the device says so.
    pub fn hardware_bound(&self) -> bool {
        usize::from(self.hardware_needed) >= HARDWARE_NEEDED
    }

    pub(crate) fn binding(&self) -> [u8; 32] {
        self.binding
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
        w.bytes(&self.binding);
        w.u8(self.threshold);
        w.u8(self.hardware_needed);
        write_slots(&mut w, &self.slots);
        w.buf
    }

    /// Reads and verifies a device.fp (format and self-signature). Format
    /// 1 files (per-component commitments) are still read, so a vendor can
    /// seal for a device that has not upgraded yet.
    pub fn decode(bytes: &[u8]) -> Result<DeviceFp, SealError> {
        let bad = |m: &str| SealError::Malformed(format!("device.fp is corrupt: {m}"));
        let mut r = Reader::new(bytes, "device.fp");
        if r.take(4)? != FP_MAGIC {
            return Err(bad("not a twinshield device.fp"));
        }
        let version = r.u8()?;
        let x25519 = r.array::<32>()?;
        let ed25519 = r.array::<32>()?;
        let (binding, threshold, hardware_needed, slots) = match version {
            VERSION => {
                let binding = r.array::<32>()?;
                let (threshold, hardware_needed) = (r.u8()?, r.u8()?);
                (
                    binding,
                    threshold,
                    hardware_needed,
                    read_slots(&mut r, "device.fp")?,
                )
            }
            LEGACY_VERSION => {
                let threshold = r.u8()?;
                let commitments = read_commitments(&mut r)?;
                let slots = commitments.iter().map(|(l, _)| slot_of(l)).collect();
                (legacy_binding(&commitments), threshold, 0, slots)
            }
            _ => return Err(bad("unsupported version")),
        };
        let signed_len = bytes.len().saturating_sub(r.remaining());
        let sig = r.array::<64>()?;
        r.finish()?;
        check_threshold(threshold, hardware_needed, &slots).map_err(|m| bad(m))?;
        let vk = VerifyingKey::from_bytes(&ed25519).map_err(|_| bad("invalid Ed25519 key"))?;
        let signed = bytes.get(..signed_len).ok_or_else(|| bad("length"))?;
        vk.verify_strict(signed, &ed25519_dalek::Signature::from_bytes(&sig))
            .map_err(|_| SealError::BadFingerprint)?;
        let fp = DeviceFp {
            x25519,
            ed25519,
            binding,
            slots,
            threshold,
            hardware_needed,
        };
        fp.hpke_public()?;
        Ok(fp)
    }
}

/// A slot for `label`, classed by [`fingerprint::residence_of`]; labels a
/// later release no longer reads count as disk-resident.
#[diversify]
fn slot_of(label: &str) -> Slot {
    Slot {
        label: label.to_owned(),
        residence: fingerprint::residence_of(label).unwrap_or(Residence::Disk),
    }
}

#[diversify]
fn write_slots(w: &mut Writer, slots: &[Slot]) {
    w.u8(u8::try_from(slots.len()).unwrap_or(u8::MAX));
    for s in slots {
        w.str(&s.label);
        w.u8(match s.residence {
            Residence::Hardware => 1,
            Residence::Disk => 0,
        });
    }
}

#[diversify]
fn read_slots(r: &mut Reader<'_>, what: &str) -> Result<Vec<Slot>, SealError> {
    let n = r.u8()?;
    if usize::from(n) > fingerprint::LABELS.len() {
        return Err(SealError::Malformed(format!(
            "{what} is corrupt: too many components"
        )));
    }
    let mut slots = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let label = r.str()?;
        let residence = match r.u8()? {
            1 => Residence::Hardware,
            0 => Residence::Disk,
            _ => {
                return Err(SealError::Malformed(format!(
                    "{what} is corrupt: unknown residence"
                )));
            }
        };
        slots.push(Slot { label, residence });
    }
    Ok(slots)
}

#[diversify]
fn read_commitments(r: &mut Reader<'_>) -> Result<Vec<(String, [u8; 32])>, SealError> {
    let n = r.u8()?;
    let mut commitments = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let label = r.str()?;
        commitments.push((label, r.array::<32>()?));
    }
    Ok(commitments)
}

/// Whether a threshold and hardware requirement fit the slots they are for.
#[diversify]
fn check_threshold(threshold: u8, hardware_needed: u8, slots: &[Slot]) -> Result<(), &'static str> {
    let hardware = slots
        .iter()
        .filter(|s| s.residence == Residence::Hardware)
        .count();
    if usize::from(threshold) < MIN_COMPONENTS || usize::from(threshold) > slots.len() {
        return Err("threshold out of range");
    }
    if usize::from(hardware_needed) > hardware.min(usize::from(threshold)) {
        return Err("hardware requirement out of range");
    }
    Ok(())
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

/// The identity file (format 2) as stored, parsed but not opened.
struct StoredIdentity {
    /// Salt of the key derivations and of the digests in the key block.
    salt: [u8; 32],
    /// Components needed, and hardware-resident ones among them.
    threshold: u8,
    hardware_needed: u8,
    /// The components the identity was created with.
    slots: Vec<Slot>,
    /// What bundles bind their key wrap to.
    binding: [u8; 32],
    /// Per allowed subset (a bit mask over `slots`): the sealed key block.
    wraps: Vec<(u8, Vec<u8>)>,
}

/// The two private seeds and the binding an identity is made of.
struct Seeds {
    x25519_ikm: Zeroizing<[u8; 32]>,
    ed_seed: Zeroizing<[u8; 32]>,
    binding: [u8; 32],
}

#[diversify]
impl DeviceIdentity {
    /// Opens the identity kept in `state`, creating it (keys, key wraps,
    /// device.fp data) on first use. Returns whether it was created.
    /// Creating costs one Argon2id derivation per allowed subset of
    /// components (a few seconds on a typical device).
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
        let seeds = Seeds {
            x25519_ikm: random_seed()?,
            ed_seed: random_seed()?,
            binding: *random_seed()?,
        };
        let created = Self::create(state, secret, seeds, &fingerprint::collect());
        twinshield_atrest::scrub_stack();
        created.map(|d| (d, true))
    }

    /// Writes a format-2 identity for `seeds`, bound to `components`.
    fn create(
        state: &Path,
        secret: &dyn RuntimeSecret,
        seeds: Seeds,
        components: &[Component],
    ) -> Result<Self, SealError> {
        let n = components.len();
        if n < MIN_COMPONENTS {
            return Err(SealError::Identity(format!(
                "this machine provides only {n} identifying components; at least {MIN_COMPONENTS} are needed"
            )));
        }
        let slots: Vec<Slot> = components.iter().map(|c| slot_of(c.label)).collect();
        let hardware = slots
            .iter()
            .filter(|s| s.residence == Residence::Hardware)
            .count();
        let k = n.saturating_sub(2).max(MIN_COMPONENTS).min(n);
        let hardware_needed = hardware.min(HARDWARE_NEEDED);
        create_state_dir(state)?;
        let mut salt = [0u8; 32];
        random::fill(&mut salt)?;
        // Sized once: a growing Vec would leave copies of the seeds behind
        // in the buffers it outgrew.
        let mut block = Zeroizing::new(Vec::with_capacity(64 + 32 * n));
        block.extend_from_slice(seeds.x25519_ikm.as_slice());
        block.extend_from_slice(seeds.ed_seed.as_slice());
        for c in components {
            block.extend_from_slice(&present_digest(&salt, c));
        }
        let masks = wraps::allowed_subsets(&slots, k, hardware_needed);
        tracing::info!(
            wraps = masks.len(),
            "sealing the device keys once per allowed subset of components"
        );
        let mut sealed = Vec::with_capacity(masks.len());
        for mask in masks {
            let members = wraps::members(&slots, mask, components).unwrap_or_default();
            let key = wraps::wrap_key(secret, &salt, &members)?;
            sealed.push((mask, key.seal(&wraps::wrap_aad(&slots, mask), &block)?));
        }
        let stored = StoredIdentity {
            salt,
            threshold: u8::try_from(k).unwrap_or(u8::MAX),
            hardware_needed: u8::try_from(hardware_needed).unwrap_or(0),
            slots,
            binding: seeds.binding,
            wraps: sealed,
        };
        write_private(&state.join(IDENTITY_FILE), &stored.encode())?;
        Ok(Self::from_seeds(&seeds, &stored, state, n))
    }

    /// The identity from its seeds and its stored description.
    fn from_seeds(seeds: &Seeds, stored: &StoredIdentity, state: &Path, matched: usize) -> Self {
        let verifying = SigningKey::from_bytes(&seeds.ed_seed).verifying_key();
        let (_, x_pub) = Kem::derive_keypair(seeds.x25519_ikm.as_slice());
        let mut x25519 = [0u8; 32];
        x25519.copy_from_slice(&x_pub.to_bytes());
        DeviceIdentity {
            fp: DeviceFp {
                x25519,
                ed25519: verifying.to_bytes(),
                binding: stored.binding,
                slots: stored.slots.clone(),
                threshold: stored.threshold,
                hardware_needed: stored.hardware_needed,
            },
            x25519_ikm: Some(MaskedKey::new(&seeds.x25519_ikm)),
            ed25519: MaskedKey::new(&seeds.ed_seed),
            state: state.to_path_buf(),
            matched,
        }
    }

    /// Opens an existing identity with this machine's components; fails
    /// unless the components of one allowed subset all still match.
    pub fn open(state: &Path, secret: &dyn RuntimeSecret) -> Result<Self, SealError> {
        let opened = Self::open_with(state, secret, &fingerprint::collect());
        // The derivations' frames held the key block's seeds.
        twinshield_atrest::scrub_stack();
        opened
    }

    /// Opens an existing identity with the given components, as [`open`]
    /// does with the ones it reads: what an attacker holding a copy of the
    /// state directory can try offline, and what the tests try. A format-1
    /// identity is upgraded to format 2 in place.
    ///
    /// [`open`]: DeviceIdentity::open
    #[protect]
    pub fn open_with(
        state: &Path,
        secret: &dyn RuntimeSecret,
        components: &[Component],
    ) -> Result<Self, SealError> {
        let stored = match read_stored(state)? {
            Stored::Current(stored) => stored,
            Stored::Legacy(bytes) => return Self::upgrade(state, secret, &bytes, components),
        };
        let mut tried = 0;
        for (mask, sealed) in &stored.wraps {
            let Some(members) = wraps::members(&stored.slots, *mask, components) else {
                continue;
            };
            tried += 1;
            let key = wraps::wrap_key(secret, &stored.salt, &members)?;
            if let Ok(block) = key.open(&wraps::wrap_aad(&stored.slots, *mask), sealed) {
                return Self::opened(&block, &stored, state, components);
            }
        }
        tracing::warn!(
            tried,
            wraps = stored.wraps.len(),
            present = components.len(),
            "no key wrap of the device identity opened with this machine's components"
        );
        Err(SealError::NotThisDevice { tried })
    }

    /// The identity from an opened key block: its seeds, and how many of
    /// the components it was created with still match (for the audit log).
    fn opened(
        block: &[u8],
        stored: &StoredIdentity,
        state: &Path,
        components: &[Component],
    ) -> Result<Self, SealError> {
        let (x25519_ikm, ed_seed) = legacy::seeds_of(block)?;
        let digests = block.get(64..).unwrap_or_default();
        let matched = stored
            .slots
            .iter()
            .zip(digests.chunks_exact(32))
            .filter(|(slot, digest)| {
                components
                    .iter()
                    .find(|c| c.label == slot.label)
                    .is_some_and(|c| present_digest(&stored.salt, c) == **digest)
            })
            .count();
        let seeds = Seeds {
            x25519_ikm,
            ed_seed,
            binding: stored.binding,
        };
        Ok(Self::from_seeds(&seeds, stored, state, matched))
    }

    /// Opens a format-1 identity and rewrites it as format 2, keeping its
    /// seeds (the history stays readable) and its binding (bundles sealed
    /// for its device.fp still open).
    fn upgrade(
        state: &Path,
        secret: &dyn RuntimeSecret,
        bytes: &[u8],
        components: &[Component],
    ) -> Result<Self, SealError> {
        let mut r = Reader::new(bytes, "device identity");
        r.take(5)?;
        let old = legacy::open(r, secret, components)?;
        tracing::warn!("upgrading the device identity to format 2 (no per-component commitments)");
        let seeds = Seeds {
            x25519_ikm: old.x25519_ikm,
            ed_seed: old.ed_seed,
            binding: legacy_binding(&old.commitments),
        };
        Self::create(state, secret, seeds, components)
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
        let sig = self.sign(&body);
        body.extend_from_slice(&sig);
        body
    }

    /// The HPKE private key bundles are wrapped to; `None` once
    /// [`DeviceIdentity::forget_bundle_key`] has dropped it.
    pub(crate) fn hpke_private(&self) -> Option<<Kem as KemTrait>::PrivateKey> {
        let ikm = self.x25519_ikm.as_ref()?;
        Some(ikm.with(|ikm| Kem::derive_keypair(ikm).0))
    }

    /// Wipes the bundle key: a twin that has opened its bundle needs it no
    /// more, and a key that is gone cannot be read from memory.
    pub fn forget_bundle_key(&mut self) {
        self.x25519_ikm = None;
    }

    /// The device's Ed25519 signature of `msg`, verifiable with
    /// [`DeviceFp::signing_public`]: how the device signs what it sends
    /// (backend requests), so no password or API key is ever stored. The
    /// signing key exists only for this call (it wipes itself on drop).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.ed25519
            .with(|seed| SigningKey::from_bytes(seed).sign(msg).to_bytes())
    }

    /// A key for encrypting data at rest for `purpose`, derived from the
    /// device's private key: data encrypted with it opens on this device only.
    #[protect]
    pub fn storage_key(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let salt = obf_bytes!(b"twinshield/storage/v1");
        let mut key = Zeroizing::new([0u8; 32]);
        self.ed25519.with(|seed| {
            let hk = Hkdf::<Sha256>::new(Some(salt.bytes()), seed);
            let _ = hk.expand(purpose.as_bytes(), key.as_mut_slice());
        });
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

/// 32 fresh random bytes, zeroized on drop.
#[diversify]
fn random_seed() -> Result<Zeroizing<[u8; 32]>, SealError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    random::fill(seed.as_mut_slice())?;
    Ok(seed)
}

/// Creates the state directory, readable by its owner only.
#[diversify]
fn create_state_dir(state: &Path) -> Result<(), SealError> {
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
    Ok(())
}

/// An identity file as read: format 2 parsed, or format 1's bytes.
enum Stored {
    Current(StoredIdentity),
    Legacy(Vec<u8>),
}

/// Reads and parses the identity file in `state`. Protected like
/// [`DeviceIdentity::open_with`], whose first half it is: the file's layout
/// stays as hidden as the rest of opening.
#[protect]
fn read_stored(state: &Path) -> Result<Stored, SealError> {
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
    if r.take(4)? != ID_MAGIC {
        return Err(bad("not a twinshield identity"));
    }
    match r.u8()? {
        VERSION => StoredIdentity::parse(r).map(Stored::Current),
        LEGACY_VERSION => Ok(Stored::Legacy(bytes)),
        _ => Err(bad("unsupported version")),
    }
}

#[diversify]
impl StoredIdentity {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(ID_MAGIC);
        w.u8(VERSION);
        w.bytes(&self.salt);
        w.u8(self.threshold);
        w.u8(self.hardware_needed);
        write_slots(&mut w, &self.slots);
        w.bytes(&self.binding);
        w.u8(u8::try_from(self.wraps.len()).unwrap_or(u8::MAX));
        for (mask, sealed) in &self.wraps {
            w.u8(*mask);
            w.blob(sealed);
        }
        w.buf
    }

    /// Parses the rest of a format-2 file (`r` after magic and version).
    fn parse(mut r: Reader<'_>) -> Result<Self, SealError> {
        let bad = |m: &str| SealError::Malformed(format!("device identity is corrupt: {m}"));
        let salt = r.array::<32>()?;
        let (threshold, hardware_needed) = (r.u8()?, r.u8()?);
        let slots = read_slots(&mut r, "device identity")?;
        check_threshold(threshold, hardware_needed, &slots).map_err(|m| bad(m))?;
        let binding = r.array::<32>()?;
        let n = r.u8()?;
        let mut wraps = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let mask = r.u8()?;
            if mask.count_ones() != u32::from(threshold) || usize::from(mask) >> slots.len() != 0 {
                return Err(bad("a key wrap names components the identity lacks"));
            }
            wraps.push((mask, r.blob()?.to_vec()));
        }
        r.finish()?;
        Ok(StoredIdentity {
            salt,
            threshold,
            hardware_needed,
            slots,
            binding,
            wraps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmbeddedSecret;

    fn component(label: &'static str, value: &str) -> Component {
        Component {
            label,
            residence: fingerprint::residence_of(label).unwrap(),
            value: Zeroizing::new(value.as_bytes().to_vec()),
        }
    }

    /// A machine with three disk-resident and two hardware-resident
    /// components, like this project's CI machine.
    fn machine() -> Vec<Component> {
        vec![
            component("machine-id", "3d1219c7c4c5404aaa1f6d2a48adfda4"),
            component("mac-addresses", "02:fc:00:00:00:01"),
            component("cpu-signature", "AuthenticAMD a00f11 AMD EPYC"),
            component("rootfs-uuid", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"),
            component("hostname", "vm"),
        ]
    }

    fn without(components: &[Component], label: &str) -> Vec<Component> {
        components
            .iter()
            .filter(|c| c.label != label)
            .map(|c| component(c.label, std::str::from_utf8(&c.value).unwrap()))
            .collect()
    }

    fn created(dir: &Path) -> DeviceIdentity {
        let seeds = Seeds {
            x25519_ikm: random_seed().unwrap(),
            ed_seed: random_seed().unwrap(),
            binding: [9; 32],
        };
        DeviceIdentity::create(dir, &EmbeddedSecret, seeds, &machine()).unwrap()
    }

    #[test]
    fn every_component_or_all_but_one_disk_component_opens_the_keys() {
        let dir = tempfile::tempdir().unwrap();
        let id = created(dir.path());
        assert!(id.fingerprint().hardware_bound());
        let all = DeviceIdentity::open_with(dir.path(), &EmbeddedSecret, &machine()).unwrap();
        assert_eq!(all.fingerprint(), id.fingerprint());
        assert_eq!(all.matched_components(), 5);
        let mut renamed = without(&machine(), "hostname");
        renamed.push(component("hostname", "renamed"));
        let one_changed = DeviceIdentity::open_with(dir.path(), &EmbeddedSecret, &renamed).unwrap();
        assert_eq!(one_changed.sign(b"m"), id.sign(b"m"));
        assert_eq!(one_changed.matched_components(), 4);
    }

    #[test]
    fn the_disk_alone_or_with_one_hardware_component_opens_nothing() {
        let dir = tempfile::tempdir().unwrap();
        created(dir.path());
        let disk = without(&without(&machine(), "mac-addresses"), "cpu-signature");
        let one_hardware = without(&machine(), "mac-addresses");
        for components in [disk, one_hardware] {
            let err =
                DeviceIdentity::open_with(dir.path(), &EmbeddedSecret, &components).unwrap_err();
            assert!(matches!(err, SealError::NotThisDevice { .. }), "{err}");
            // The refusal says nothing about how close the guess came.
            assert_eq!(
                err.to_string(),
                "this machine is not the device its keys belong to"
            );
        }
        let mut other_nic = without(&machine(), "mac-addresses");
        other_nic.push(component("mac-addresses", "02:fc:00:00:00:02"));
        assert!(DeviceIdentity::open_with(dir.path(), &EmbeddedSecret, &other_nic).is_err());
    }

    #[test]
    fn the_stored_identity_names_no_component_value_and_no_commitment() {
        let dir = tempfile::tempdir().unwrap();
        created(dir.path());
        let bytes = fs::read(dir.path().join(IDENTITY_FILE)).unwrap();
        let Stored::Current(stored) = read_stored(dir.path()).unwrap() else {
            panic!("format 2 expected");
        };
        // One wrap per allowed subset: three disk components choose one
        // beside both hardware ones. Nothing else but labels and salt.
        assert_eq!(stored.wraps.len(), 3);
        for c in machine() {
            let digest = present_digest(&stored.salt, &c);
            assert!(!bytes.windows(32).any(|w| w == digest));
            assert!(
                !bytes
                    .windows(c.value.len())
                    .any(|w| w == c.value.as_slice())
            );
        }
    }

    #[test]
    fn a_format_1_identity_is_upgraded_in_place_with_its_keys_and_binding() {
        let dir = tempfile::tempdir().unwrap();
        let (x, e) = ([1u8; 32], [2u8; 32]);
        let v1 = legacy::tests::write_v1(&EmbeddedSecret, &machine(), &x, &e);
        fs::write(dir.path().join(IDENTITY_FILE), v1).unwrap();
        let upgraded = DeviceIdentity::open_with(dir.path(), &EmbeddedSecret, &machine()).unwrap();
        assert_eq!(
            upgraded.fingerprint().signing_public(),
            SigningKey::from_bytes(&e).verifying_key().to_bytes()
        );
        assert!(matches!(
            read_stored(dir.path()).unwrap(),
            Stored::Current(_)
        ));
        let again = DeviceIdentity::open_with(dir.path(), &EmbeddedSecret, &machine()).unwrap();
        assert_eq!(again.fingerprint(), upgraded.fingerprint());
        // Bundles sealed for the format-1 device.fp bound to its commitments.
        assert_ne!(again.fingerprint().binding(), [0; 32]);
        let fp = DeviceFp::decode(&again.device_fp_bytes()).unwrap();
        assert_eq!(&fp, again.fingerprint());
    }

    #[test]
    fn corrupt_identity_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        created(dir.path());
        let path = dir.path().join(IDENTITY_FILE);
        let good = fs::read(&path).unwrap();
        for cut in [0, 4, 5, 37, 40, good.len() - 1] {
            fs::write(&path, &good[..cut]).unwrap();
            assert!(DeviceIdentity::open_with(dir.path(), &EmbeddedSecret, &machine()).is_err());
        }
    }
}
