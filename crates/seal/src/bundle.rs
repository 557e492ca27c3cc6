//! The sealed bundle: format, sealing, inspection and opening. The format
//! is described in `docs/bundle-format.md`.

use crate::SealError;
use crate::device::{DeviceFp, DeviceIdentity, hex};
use crate::publisher::{PublisherKey, PublisherPub};
use crate::random;
use crate::wire::{Reader, Writer};
use hkdf::Hkdf;
use hpke::aead::ChaCha20Poly1305 as HpkeAead;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use sha2::{Digest, Sha256};
use twinshield_atrest::AeadKey;
use twinshield_model::Model;
use twinshield_model::bytecode::Encoding;
use twinshield_shield::{obf_bytes, protect};
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"TWSB";
/// Format 2 derives the bytecode's encoding seed from the content key;
/// format 1 carried it in the payload and is still opened.
const VERSION: u8 = 2;
const SEED_IN_PAYLOAD: u8 = 1;
/// Largest bundle accepted, bytes.
const MAX_BUNDLE: usize = 64 * 1024 * 1024;
/// Most devices one bundle may be sealed for.
const MAX_RECIPIENTS: usize = 10_000;

/// What a vendor seals.
pub struct SealRequest<'a> {
    /// The checked model.
    pub model: &'a Model,
    /// Devices to seal for.
    pub devices: &'a [DeviceFp],
    /// The publisher's signing key.
    pub publisher: &'a PublisherKey,
    /// Monotonic release number.
    pub release: u64,
    /// Secrets sealed with the model (name, value), e.g. backend credentials.
    pub secrets: &'a [(String, Zeroizing<Vec<u8>>)],
    /// The runtime shield's response policy (its text form, as the shield
    /// parses it), if the publisher sets one.
    pub shield_policy: Option<&'a str>,
    /// The backend URL the twin publishes its alarms and summaries to, if
    /// any (signed with the device key; see `docs/backend.md`).
    pub backend: Option<&'a str>,
    /// The trust anchors of an `https://` backend (PEM certificates: its
    /// CA, or its own certificate), pinned: the twin trusts these and
    /// nothing else for it. Only with a `backend`.
    pub backend_ca: Option<&'a [u8]>,
}

/// The public header of a bundle: what `inspect` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleHeader {
    /// Model name.
    pub model_name: String,
    /// Model version.
    pub model_version: String,
    /// Release number.
    pub release: u64,
    /// Publisher key id (hex).
    pub publisher: String,
    /// Device key ids (hex) the bundle is sealed for.
    pub devices: Vec<String>,
    /// Size of the encrypted payload, bytes.
    pub payload_bytes: usize,
    /// Size of the whole bundle, bytes.
    pub total_bytes: usize,
}

/// An opened bundle: the model in memory and its secrets (zeroized on drop).
pub struct OpenedBundle {
    /// The public header.
    pub header: BundleHeader,
    /// The model, ready to run.
    pub model: Model,
    /// Sealed secrets by name.
    pub secrets: Vec<(String, Zeroizing<Vec<u8>>)>,
    /// The shield's response policy as sealed (text), if any.
    pub shield_policy: Option<String>,
    /// The backend URL as sealed, if any.
    pub backend: Option<String>,
    /// The backend's pinned trust anchors (PEM) as sealed, if any.
    pub backend_ca: Option<Vec<u8>>,
}

#[diversify]
impl std::fmt::Debug for OpenedBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OpenedBundle({} release {})",
            self.header.model_name, self.header.release
        )
    }
}

/// The seed of the payload's bytecode encoding: derived from the content
/// key, so it is nowhere in the payload it diversifies (a dump of the
/// decrypted payload alone does not undo the encoding).
#[protect]
fn encoding_seed(cek: &[u8; 32]) -> u64 {
    let hk = Hkdf::<Sha256>::new(None, cek);
    let mut seed = [0u8; 8];
    // 8 bytes is always a valid HKDF-SHA256 output length.
    let _ = hk.expand(
        obf_bytes!(b"twinshield/bundle/encoding-seed/v2").bytes(),
        &mut seed,
    );
    u64::from_le_bytes(seed)
}

#[diversify]
fn hpke_info(binding: &[u8; 32]) -> Vec<u8> {
    [obf_bytes!(b"twinshield/bundle/hpke/v1|").bytes(), binding].concat()
}

#[diversify]
fn wrap_aad(name: &str, release: u64, publisher: &[u8; 8]) -> Vec<u8> {
    let mut w = Writer::default();
    w.bytes(obf_bytes!(b"twinshield/bundle/cek/v1").bytes());
    w.str(name);
    w.u64(release);
    w.bytes(publisher);
    w.buf
}

/// Seals a model: see the crate documentation for the construction.
#[diversify]
pub fn seal(req: &SealRequest<'_>) -> Result<Vec<u8>, SealError> {
    if req.devices.is_empty() {
        return Err(SealError::Identity(
            "a bundle needs at least one device".into(),
        ));
    }
    if req.devices.len() > MAX_RECIPIENTS {
        return Err(SealError::Identity(format!(
            "at most {MAX_RECIPIENTS} devices per bundle"
        )));
    }
    let mut cek = Zeroizing::new([0u8; 32]);
    random::fill(cek.as_mut_slice())?;
    let mut plaintext = Writer::default();
    plaintext.blob(
        &req.model
            .to_payload(&Encoding::from_seed(encoding_seed(&cek))),
    );
    plaintext.u16(u16::try_from(req.secrets.len()).unwrap_or(u16::MAX));
    for (name, value) in req.secrets {
        plaintext.str(name);
        plaintext.blob(value);
    }
    // Optional trailing fields: bundles without a policy or backend end
    // here; a backend without a policy writes an empty policy.
    if req.shield_policy.is_some() || req.backend.is_some() {
        plaintext.str(req.shield_policy.unwrap_or(""));
    }
    if let Some(backend) = req.backend {
        plaintext.str(backend);
    }
    match (req.backend, req.backend_ca) {
        (Some(_), Some(ca)) => plaintext.blob(ca),
        (None, Some(_)) => {
            return Err(SealError::Identity(
                "backend trust anchors need a backend URL".into(),
            ));
        }
        (_, None) => {}
    }
    let plaintext = Zeroizing::new(plaintext.buf);

    let publisher = req.publisher.public().key_id();
    let aad = wrap_aad(&req.model.name, req.release, &publisher);
    let mut header = Writer::default();
    header.str(&req.model.name);
    header.str(&req.model.version);
    header.u64(req.release);
    header.bytes(&publisher);
    header.u16(u16::try_from(req.devices.len()).unwrap_or(u16::MAX));
    for d in req.devices {
        let pk = d.hpke_public()?;
        let (enc, wrapped) = hpke::single_shot_seal::<HpkeAead, HkdfSha256, X25519HkdfSha256>(
            &OpModeS::Base,
            &pk,
            &hpke_info(&d.binding()),
            cek.as_slice(),
            &aad,
        )
        .map_err(SealError::Wrap)?;
        header.bytes(&d.key_id());
        header.bytes(&enc.to_bytes());
        header.blob(&wrapped);
    }
    let header = header.buf;
    let header_digest: [u8; 32] = Sha256::digest(&header).into();
    let payload = AeadKey::new(&cek).seal(&header_digest, &plaintext)?;

    let mut out = Writer::default();
    out.bytes(MAGIC);
    out.u8(VERSION);
    out.blob(&header);
    out.blob(&payload);
    let sig = req.publisher.sign(&out.buf);
    out.bytes(&sig);
    Ok(out.buf)
}

struct Recipient<'a> {
    device: [u8; 8],
    enc: [u8; 32],
    wrapped: &'a [u8],
}

struct Parsed<'a> {
    version: u8,
    header: BundleHeader,
    header_bytes: &'a [u8],
    publisher: [u8; 8],
    recipients: Vec<Recipient<'a>>,
    payload: &'a [u8],
    signed: &'a [u8],
    signature: [u8; 64],
}

#[protect]
fn parse(bytes: &[u8]) -> Result<Parsed<'_>, SealError> {
    if bytes.len() > MAX_BUNDLE {
        return Err(SealError::Malformed("bundle is larger than 64 MiB".into()));
    }
    let mut r = Reader::new(bytes, "bundle");
    if r.take(4)? != MAGIC {
        return Err(SealError::Malformed("not a twinshield bundle".into()));
    }
    let version = r.u8()?;
    if version != VERSION && version != SEED_IN_PAYLOAD {
        return Err(SealError::Malformed(format!(
            "unsupported bundle format version {version}"
        )));
    }
    let header_bytes = r.blob()?;
    let payload = r.blob()?;
    let signed_len = bytes.len().saturating_sub(r.remaining());
    let signature = r.array::<64>()?;
    r.finish()?;
    let signed = bytes
        .get(..signed_len)
        .ok_or_else(|| SealError::Malformed("bundle is truncated".into()))?;

    let mut h = Reader::new(header_bytes, "bundle header");
    let model_name = h.str()?;
    let model_version = h.str()?;
    let release = h.u64()?;
    let publisher = h.array::<8>()?;
    let n = usize::from(h.u16()?);
    if n == 0 || n > MAX_RECIPIENTS {
        return Err(SealError::Malformed(
            "bundle lists no devices or too many".into(),
        ));
    }
    let mut recipients = Vec::with_capacity(n);
    for _ in 0..n {
        recipients.push(Recipient {
            device: h.array::<8>()?,
            enc: h.array::<32>()?,
            wrapped: h.blob()?,
        });
    }
    h.finish()?;
    let header = BundleHeader {
        model_name,
        model_version,
        release,
        publisher: hex(&publisher),
        devices: recipients.iter().map(|r| hex(&r.device)).collect(),
        payload_bytes: payload.len(),
        total_bytes: bytes.len(),
    };
    Ok(Parsed {
        version,
        header,
        header_bytes,
        publisher,
        recipients,
        payload,
        signed,
        signature,
    })
}

/// Reads a bundle's public header without opening it (no key needed, no
/// signature checked): model name and version, release, publisher and
/// devices by key id, sizes. Never the model.
#[diversify]
pub fn inspect(bytes: &[u8]) -> Result<BundleHeader, SealError> {
    parse(bytes).map(|p| p.header)
}

/// A bundle's parts, its content key and its decrypted payload.
type Decrypted<'b> = (Parsed<'b>, Zeroizing<[u8; 32]>, Zeroizing<Vec<u8>>);

/// The bundle's parts, its content key and its decrypted payload, once
/// the signature verifies and this device's wrap opens.
#[protect]
fn decrypt<'b>(
    bytes: &'b [u8],
    trust: &PublisherPub,
    device: &DeviceIdentity,
) -> Result<Decrypted<'b>, SealError> {
    let p = parse(bytes)?;
    if p.publisher != trust.key_id() || !trust.verify(p.signed, &p.signature) {
        return Err(SealError::BadSignature);
    }
    let fp = device.fingerprint();
    let me = fp.key_id();
    let recipient = p
        .recipients
        .iter()
        .find(|r| r.device == me)
        .ok_or(SealError::NotLicensed)?;
    let enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&recipient.enc)
        .map_err(|_| SealError::NotLicensed)?;
    let aad = wrap_aad(&p.header.model_name, p.header.release, &p.publisher);
    let cek = hpke::single_shot_open::<HpkeAead, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        &device.hpke_private().ok_or(SealError::BundleKeyWiped)?,
        &enc,
        &hpke_info(&fp.binding()),
        recipient.wrapped,
        &aad,
    )
    .map(Zeroizing::new)
    .map_err(|_| SealError::NotLicensed)?;
    let cek: Zeroizing<[u8; 32]> = Zeroizing::new(
        cek.as_slice()
            .try_into()
            .map_err(|_| SealError::NotLicensed)?,
    );
    let header_digest: [u8; 32] = Sha256::digest(p.header_bytes).into();
    let plaintext = AeadKey::new(&cek)
        .open(&header_digest, p.payload)
        .map_err(|_| SealError::Decrypt)?;
    Ok((p, cek, plaintext))
}

/// Verifies a bundle against the trusted publisher key, unwraps it with this
/// device's key and decrypts the model into memory. Does not check the
/// release counter: call [`DeviceIdentity::check_and_record_release`].
#[protect]
pub fn open(
    bytes: &[u8],
    trust: &PublisherPub,
    device: &DeviceIdentity,
) -> Result<OpenedBundle, SealError> {
    let (p, cek, plaintext) = decrypt(bytes, trust, device)?;
    let mut r = Reader::new(&plaintext, "bundle payload");
    let seed = match p.version {
        SEED_IN_PAYLOAD => r.u64()?,
        _ => encoding_seed(&cek),
    };
    let model =
        Model::from_payload(r.blob()?, &Encoding::from_seed(seed)).map_err(SealError::Model)?;
    let n = r.u16()?;
    let mut secrets = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let name = r.str()?;
        secrets.push((name, Zeroizing::new(r.blob()?.to_vec())));
    }
    let shield_policy = if r.remaining() > 0 {
        Some(r.str()?).filter(|p| !p.is_empty())
    } else {
        None
    };
    let backend = if r.remaining() > 0 {
        Some(r.str()?)
    } else {
        None
    };
    let backend_ca = if r.remaining() > 0 {
        Some(r.blob()?.to_vec())
    } else {
        None
    };
    r.finish()?;
    if model.name != p.header.model_name || model.version != p.header.model_version {
        return Err(SealError::ModelMismatch);
    }
    Ok(OpenedBundle {
        header: p.header,
        model,
        secrets,
        shield_policy,
        backend,
        backend_ca,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmbeddedSecret;

    #[test]
    fn the_payload_does_not_carry_the_seed_of_its_own_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let (device, _) = DeviceIdentity::open_or_create(dir.path(), &EmbeddedSecret).unwrap();
        let model = Model::parse("q.twin", include_str!("../../../models/quadtank.twin")).unwrap();
        let publisher = PublisherKey::generate().unwrap();
        let bundle = seal(&SealRequest {
            model: &model,
            devices: &[device.fingerprint().clone()],
            publisher: &publisher,
            release: 1,
            secrets: &[],
            shield_policy: None,
            backend: None,
            backend_ca: None,
        })
        .unwrap();
        let (p, cek, plaintext) = decrypt(&bundle, &publisher.public(), &device).unwrap();
        assert_eq!(p.version, VERSION);
        let seed = encoding_seed(&cek).to_le_bytes();
        assert!(!plaintext.windows(8).any(|w| w == seed));
        // The payload starts with the model's blob, which decodes only
        // under the seed derived from the content key.
        let mut r = Reader::new(&plaintext, "payload");
        let payload = r.blob().unwrap();
        assert!(
            Model::from_payload(payload, &Encoding::from_seed(u64::from_le_bytes(seed))).is_ok()
        );
        assert!(Model::from_payload(payload, &Encoding::from_seed(1)).is_err());
    }
}
