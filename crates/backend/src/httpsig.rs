//! HTTP Message Signatures (RFC 9421) with Ed25519, as the device signs
//! its requests and the receiver checks them, and the `Content-Digest`
//! field (RFC 9530).
//!
//! A request covers `"@method"`, `"@path"` and `"content-digest"`; its
//! signature parameters are `created`, `nonce`, `keyid` and `alg`
//! (`"ed25519"`). The signature base is built by hand per RFC 9421 §2.5.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use crate::EnrolError;
use crate::sf::{self, Bare, Item, Member};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use twinshield_seal::DeviceFp;
use twinshield_shield_macros::diversify;

/// The signature's label in `Signature-Input` and `Signature`.
pub const LABEL: &str = "sig1";
/// The covered components, in the order the signer lists them.
pub const COMPONENTS: [&str; 3] = ["@method", "@path", "content-digest"];
/// The `alg` parameter.
pub const ALG: &str = "ed25519";
/// How far `created` may lie from the receiver's clock, seconds.
pub const WINDOW_S: i64 = 60;
/// Random bytes in a nonce.
pub const NONCE_BYTES: usize = 16;
/// Most nonces remembered at once (replays are refused while remembered).
const MAX_NONCES: usize = 1_000_000;
/// Largest device.fp read when enrolling, bytes.
const MAX_FP_FILE: u64 = 64 * 1024;
/// Most enrolled devices read from one directory.
const MAX_DEVICES: usize = 100_000;

/// `Content-Digest` of `body`: `sha-256=:BASE64:` (RFC 9530).
#[diversify]
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)))
}

/// The signature base (RFC 9421 §2.5) of `components` (name and value, in
/// order) and the serialized signature parameters `params` (the inner list
/// as it appears in `Signature-Input`). `None` if a name or value holds a
/// character a base line cannot carry.
#[diversify]
pub fn signature_base(components: &[(&str, &str)], params: &str) -> Option<String> {
    let clean = |s: &str| s.bytes().all(|b| (0x20..=0x7e).contains(&b));
    let mut base = String::new();
    for (name, value) in components {
        if !clean(name) || !clean(value) || name.contains('"') {
            return None;
        }
        base.push('"');
        base.push_str(name);
        base.push_str("\": ");
        base.push_str(value);
        base.push('\n');
    }
    if !clean(params) {
        return None;
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(params);
    Some(base)
}

/// Signature parameters of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureParams {
    /// Creation time, Unix seconds.
    pub created: i64,
    /// A random nonce (base64url of [`NONCE_BYTES`] bytes).
    pub nonce: String,
    /// The device's key id (16 lowercase hex digits).
    pub keyid: String,
}

#[diversify]
impl SignatureParams {
    /// The `Signature-Input` inner list: covered components and parameters;
    /// refused if a parameter holds what a structured field cannot carry.
    pub fn serialize(&self) -> Result<String, sf::SfError> {
        let items: Vec<Item> = COMPONENTS
            .iter()
            .map(|c| Item {
                value: Bare::String((*c).to_owned()),
                params: Vec::new(),
            })
            .collect();
        sf::serialize_inner_list(
            &items,
            &[
                ("created".to_owned(), Bare::Integer(self.created)),
                ("nonce".to_owned(), Bare::String(self.nonce.clone())),
                ("keyid".to_owned(), Bare::String(self.keyid.clone())),
                ("alg".to_owned(), Bare::String(ALG.to_owned())),
            ],
        )
    }
}

/// The three header values of a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `Content-Digest`.
    pub content_digest: String,
    /// `Signature-Input`.
    pub signature_input: String,
    /// `Signature`.
    pub signature: String,
}

/// Why the signer refused to sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signing refused: {0}")]
pub struct SignRefused(pub String);

/// The signing function a [`Signer`] calls: the Ed25519 signature of its
/// argument, or a refusal (the key is gone, the shield degraded the twin).
pub type SignFn = dyn Fn(&[u8]) -> Result<[u8; 64], SignRefused> + Send + Sync;

/// Signs requests with a device's Ed25519 key. Holds no key itself when
/// built with [`Signer::new`]: it calls the device's signing function.
/// Clones share that function.
#[derive(Clone)]
pub struct Signer {
    key_id: String,
    sign: std::sync::Arc<SignFn>,
}

#[diversify]
impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.key_id)
    }
}

#[diversify]
impl Signer {
    /// A signer for the device `key_id` that signs through `sign`.
    pub fn new(
        key_id: impl Into<String>,
        sign: impl Fn(&[u8]) -> Result<[u8; 64], SignRefused> + Send + Sync + 'static,
    ) -> Self {
        Signer {
            key_id: key_id.into(),
            sign: std::sync::Arc::new(sign),
        }
    }

    /// A signer holding `key` itself (zeroized on drop), for tests and tools.
    pub fn from_signing_key(key_id: impl Into<String>, key: SigningKey) -> Self {
        Self::new(key_id, move |msg| Ok(key.sign(msg).to_bytes()))
    }

    /// The device's key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The signature of `msg` itself: for the crate's own fixed-layout,
    /// domain-separated messages only (a history head), never a caller's
    /// bytes.
    pub(crate) fn sign_raw(&self, msg: &[u8]) -> Result<[u8; 64], SignRefused> {
        (self.sign)(msg)
    }

    /// Signs a request with a fresh random nonce, created at `created`.
    pub fn sign_request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        created: i64,
    ) -> Result<SignedHeaders, crate::BackendError> {
        let mut raw = [0u8; NONCE_BYTES];
        getrandom::fill(&mut raw).map_err(crate::BackendError::Random)?;
        let params = SignatureParams {
            created,
            nonce: URL_SAFE_NO_PAD.encode(raw),
            keyid: self.key_id.clone(),
        };
        self.sign_with(method, path, body, &params)
    }

    /// Signs a request with the given parameters (deterministic: tests).
    pub fn sign_with(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        params: &SignatureParams,
    ) -> Result<SignedHeaders, crate::BackendError> {
        let content_digest = content_digest(body);
        let inner = params
            .serialize()
            .map_err(|_| crate::BackendError::Unsignable)?;
        let base = signature_base(
            &[
                ("@method", method),
                ("@path", path),
                ("content-digest", &content_digest),
            ],
            &inner,
        )
        .ok_or(crate::BackendError::Unsignable)?;
        let sig = (self.sign)(base.as_bytes())?;
        Ok(SignedHeaders {
            content_digest,
            signature_input: format!("{LABEL}={inner}"),
            signature: format!("{LABEL}=:{}:", STANDARD.encode(sig)),
        })
    }
}

/// Why the receiver refused a request. The receiver logs the precise
/// reason and answers every one of them with the same generic 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A required header is absent (or not visible ASCII, or repeated).
    #[error("missing or repeated header {0}")]
    MissingHeader(&'static str),
    /// A header does not parse as the structured field it must be.
    #[error("malformed {header}: {reason}")]
    Malformed {
        /// The header.
        header: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `alg` is not `ed25519`.
    #[error("unsupported signature algorithm")]
    UnsupportedAlgorithm,
    /// The signature does not cover exactly `@method`, `@path` and
    /// `content-digest`.
    #[error("the signature does not cover exactly @method, @path and content-digest")]
    Coverage,
    /// The key id names no enrolled device.
    #[error("unknown device {0}")]
    UnknownDevice(String),
    /// `Content-Digest` does not match the body.
    #[error("content digest does not match the body")]
    DigestMismatch,
    /// `created` is more than [`WINDOW_S`] seconds from the receiver's clock.
    #[error("stale signature: created {skew_s} s from the receiver's clock")]
    Stale {
        /// `created` minus now, seconds.
        skew_s: i64,
    },
    /// The Ed25519 signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// The nonce was already used by this device within the window.
    #[error("replayed nonce")]
    Replay,
    /// Too many nonces remembered: refused until old ones expire.
    #[error("replay cache full")]
    Busy,
}

/// The parts of a request the verifier reads.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The method, as sent (`POST`).
    pub method: &'a str,
    /// The path of the target URI (no query).
    pub path: &'a str,
    /// `Signature-Input`, if present.
    pub signature_input: Option<&'a str>,
    /// `Signature`, if present.
    pub signature: Option<&'a str>,
    /// `Content-Digest`, if present.
    pub content_digest: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// `Signature-Input` and `Signature` as parsed, before any key is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSignature {
    /// The covered components in the order listed.
    pub components: Vec<String>,
    /// The parameters.
    pub params: SignatureParams,
    /// The inner list re-serialized: the `@signature-params` value.
    pub signature_params: String,
    /// The signature.
    pub signature: [u8; 64],
}

#[diversify]
fn malformed(header: &'static str) -> impl Fn(sf::SfError) -> Rejection {
    move |e| Rejection::Malformed {
        header,
        reason: e.reason(),
    }
}

/// Parses `Signature-Input` and `Signature` strictly: exactly one
/// signature, labelled alike in both; components and parameters as this
/// protocol uses them.
#[diversify]
pub fn parse_signature_headers(
    signature_input: &str,
    signature: &str,
) -> Result<ParsedSignature, Rejection> {
    const SI: &str = "Signature-Input";
    const SIG: &str = "Signature";
    let bad = |header: &'static str, reason: &'static str| Rejection::Malformed { header, reason };
    let input = sf::parse_dictionary(signature_input).map_err(malformed(SI))?;
    let sigs = sf::parse_dictionary(signature).map_err(malformed(SIG))?;
    let [(label, member)] = input.as_slice() else {
        return Err(bad(SI, "must hold exactly one signature"));
    };
    let [(sig_label, sig_member)] = sigs.as_slice() else {
        return Err(bad(SIG, "must hold exactly one signature"));
    };
    if label != sig_label {
        return Err(bad(SIG, "label differs from Signature-Input's"));
    }
    let Member::InnerList(items, params) = member else {
        return Err(bad(SI, "not an inner list"));
    };
    let signature: [u8; 64] = match sig_member {
        Member::Item(Item {
            value: Bare::Bytes(b),
            params,
        }) if params.is_empty() => b
            .as_slice()
            .try_into()
            .map_err(|_| bad(SIG, "not 64 bytes"))?,
        _ => return Err(bad(SIG, "not a byte sequence")),
    };
    let mut components = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Item {
                value: Bare::String(s),
                params,
            } if params.is_empty() => components.push(s.clone()),
            _ => return Err(Rejection::Coverage),
        }
    }
    let parameters = signature_params(params)?;
    let wanted: BTreeSet<&str> = COMPONENTS.into_iter().collect();
    let got: BTreeSet<&str> = components.iter().map(String::as_str).collect();
    if got != wanted || components.len() != COMPONENTS.len() {
        return Err(Rejection::Coverage);
    }
    Ok(ParsedSignature {
        signature_params: sf::serialize_inner_list(items, params).map_err(malformed(SI))?,
        components,
        params: parameters,
        signature,
    })
}

/// The parameters of `Signature-Input`'s inner list: exactly `created`,
/// `nonce` (16 bytes of base64url), `keyid` (16 lowercase hex digits) and
/// `alg` (`ed25519`), each of its type.
#[diversify]
fn signature_params(params: &sf::Params) -> Result<SignatureParams, Rejection> {
    const SI: &str = "Signature-Input";
    let bad = |reason: &'static str| Rejection::Malformed { header: SI, reason };
    let (mut created, mut nonce, mut keyid, mut alg) = (None, None, None, None);
    for (k, v) in params {
        match (k.as_str(), v) {
            ("created", Bare::Integer(i)) => created = Some(*i),
            ("nonce", Bare::String(s)) => nonce = Some(s.clone()),
            ("keyid", Bare::String(s)) => keyid = Some(s.clone()),
            ("alg", Bare::String(s)) => alg = Some(s.clone()),
            ("created" | "nonce" | "keyid" | "alg", _) => {
                return Err(bad("a parameter has the wrong type"));
            }
            _ => return Err(bad("unexpected parameter")),
        }
    }
    let created = created.ok_or(bad("no created parameter"))?;
    let nonce = nonce.ok_or(bad("no nonce parameter"))?;
    let keyid = keyid.ok_or(bad("no keyid parameter"))?;
    if alg.ok_or(bad("no alg parameter"))? != ALG {
        return Err(Rejection::UnsupportedAlgorithm);
    }
    let nonce_ok = URL_SAFE_NO_PAD
        .decode(&nonce)
        .is_ok_and(|n| n.len() == NONCE_BYTES);
    if !nonce_ok {
        return Err(bad("nonce is not 16 bytes of base64url"));
    }
    if keyid.len() != 16
        || !keyid
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(bad("keyid is not 16 lowercase hex digits"));
    }
    Ok(SignatureParams {
        created,
        nonce,
        keyid,
    })
}

/// Parses `Content-Digest` and returns its SHA-256 value (other
/// algorithms listed beside it are ignored; SHA-256 must be there).
#[diversify]
pub fn parse_content_digest(field: &str) -> Result<[u8; 32], Rejection> {
    const CD: &str = "Content-Digest";
    let dict = sf::parse_dictionary(field).map_err(malformed(CD))?;
    let Some((_, member)) = dict.iter().find(|(k, _)| k == "sha-256") else {
        return Err(Rejection::Malformed {
            header: CD,
            reason: "no sha-256 digest",
        });
    };
    match member {
        Member::Item(Item {
            value: Bare::Bytes(b),
            ..
        }) => b.as_slice().try_into().map_err(|_| Rejection::Malformed {
            header: CD,
            reason: "sha-256 digest is not 32 bytes",
        }),
        _ => Err(Rejection::Malformed {
            header: CD,
            reason: "sha-256 digest is not a byte sequence",
        }),
    }
}

/// Nonces seen within the window, per device, with their expiry.
#[derive(Default)]
struct NonceCache {
    seen: HashSet<(String, String)>,
    by_expiry: BTreeSet<(i64, String, String)>,
}

#[diversify]
impl NonceCache {
    fn prune(&mut self, now: i64) {
        while let Some(first) = self.by_expiry.first() {
            if first.0 >= now {
                break;
            }
            if let Some((_, k, n)) = self.by_expiry.pop_first() {
                self.seen.remove(&(k, n));
            }
        }
    }

    /// Remembers a nonce until `expiry`; `Err(Replay)` if already there.
    fn insert(&mut self, keyid: &str, nonce: &str, expiry: i64, now: i64) -> Result<(), Rejection> {
        self.prune(now);
        let key = (keyid.to_owned(), nonce.to_owned());
        if self.seen.contains(&key) {
            return Err(Rejection::Replay);
        }
        if self.seen.len() >= MAX_NONCES {
            return Err(Rejection::Busy);
        }
        self.by_expiry
            .insert((expiry, key.0.clone(), key.1.clone()));
        self.seen.insert(key);
        Ok(())
    }
}

/// What a verified request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The device that signed it.
    pub keyid: String,
    /// The signature's creation time.
    pub created: i64,
}

/// Checks signed requests against the enrolled devices' keys.
pub struct Verifier {
    devices: HashMap<String, VerifyingKey>,
    nonces: Mutex<NonceCache>,
}

#[diversify]
impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verifier({} devices)", self.devices.len())
    }
}

#[diversify]
impl Verifier {
    /// A verifier that knows `devices`.
    pub fn new(devices: impl IntoIterator<Item = DeviceFp>) -> Result<Self, crate::BackendError> {
        Self::from_keys(
            devices
                .into_iter()
                .map(|fp| (fp.key_id_hex(), fp.signing_public())),
        )
    }

    /// A verifier that knows the devices given as (key id, Ed25519 public key).
    pub fn from_keys(
        devices: impl IntoIterator<Item = (String, [u8; 32])>,
    ) -> Result<Self, crate::BackendError> {
        let mut map = HashMap::new();
        for (keyid, public) in devices {
            let key = VerifyingKey::from_bytes(&public).map_err(|source| {
                crate::BackendError::Enrol(EnrolError::BadKey {
                    device: keyid.clone(),
                    source,
                })
            })?;
            map.insert(keyid, key);
        }
        Ok(Verifier {
            devices: map,
            nonces: Mutex::new(NonceCache::default()),
        })
    }

    /// A verifier that knows the devices enrolled in `dir`: every file
    /// whose name ends in `.fp`, decoded and self-signature checked.
    pub fn from_dir(dir: &Path) -> Result<Self, crate::BackendError> {
        let enrol = crate::BackendError::Enrol;
        let unreadable = |path: &Path| {
            let path = path.to_path_buf();
            move |source| enrol(EnrolError::Read { path, source })
        };
        let entries = std::fs::read_dir(dir).map_err(unreadable(dir))?;
        let mut fps = Vec::new();
        for entry in entries {
            let entry = entry.map_err(unreadable(dir))?;
            let path = entry.path();
            if path.extension().is_none_or(|x| x != "fp") || !path.is_file() {
                continue;
            }
            if fps.len() >= MAX_DEVICES {
                return Err(enrol(EnrolError::TooMany {
                    dir: dir.to_path_buf(),
                    max: MAX_DEVICES,
                }));
            }
            let meta = std::fs::metadata(&path).map_err(unreadable(&path))?;
            if meta.len() > MAX_FP_FILE {
                return Err(enrol(EnrolError::TooLarge(path)));
            }
            let bytes = std::fs::read(&path).map_err(unreadable(&path))?;
            let fp = DeviceFp::decode(&bytes).map_err(|source| {
                enrol(EnrolError::Fingerprint {
                    path: path.clone(),
                    source,
                })
            })?;
            tracing::info!(device = %fp.key_id_hex(), file = %path.display(), "device enrolled");
            fps.push(fp);
        }
        if fps.is_empty() {
            return Err(enrol(EnrolError::NoDevices(dir.to_path_buf())));
        }
        Self::new(fps)
    }

    /// How many devices are enrolled.
    pub fn devices(&self) -> usize {
        self.devices.len()
    }

    /// The enrolled public key of `device`.
    pub(crate) fn key(&self, device: &str) -> Option<&VerifyingKey> {
        self.devices.get(device)
    }

    /// Verifies a request at time `now` (Unix seconds). In order: headers
    /// present and well-formed, algorithm and coverage, known device,
    /// digest of the body, `created` within ±[`WINDOW_S`], the signature,
    /// and last the nonce (remembered only once the signature verified, so
    /// nobody but the device can fill the cache with its nonces).
    pub fn verify(&self, req: &RequestParts<'_>, now: i64) -> Result<Verified, Rejection> {
        let si = req
            .signature_input
            .ok_or(Rejection::MissingHeader("Signature-Input"))?;
        let sig = req.signature.ok_or(Rejection::MissingHeader("Signature"))?;
        let cd = req
            .content_digest
            .ok_or(Rejection::MissingHeader("Content-Digest"))?;
        let parsed = parse_signature_headers(si, sig)?;
        let digest = parse_content_digest(cd)?;
        let key = self
            .devices
            .get(&parsed.params.keyid)
            .ok_or_else(|| Rejection::UnknownDevice(parsed.params.keyid.clone()))?;
        let actual: [u8; 32] = Sha256::digest(req.body).into();
        if !bool::from(subtle_eq(&actual, &digest)) {
            return Err(Rejection::DigestMismatch);
        }
        let skew = parsed.params.created.saturating_sub(now);
        if skew.saturating_abs() > WINDOW_S {
            return Err(Rejection::Stale { skew_s: skew });
        }
        let values: Vec<(&str, &str)> = parsed
            .components
            .iter()
            .map(|c| {
                let v = match c.as_str() {
                    "@method" => req.method,
                    "@path" => req.path,
                    _ => cd,
                };
                (c.as_str(), v)
            })
            .collect();
        let base =
            signature_base(&values, &parsed.signature_params).ok_or(Rejection::Malformed {
                header: "Content-Digest",
                reason: "not visible ASCII",
            })?;
        key.verify_strict(base.as_bytes(), &Signature::from_bytes(&parsed.signature))
            .map_err(|_| Rejection::BadSignature)?;
        let expiry = parsed.params.created.saturating_add(WINDOW_S);
        self.nonces.lock().map_err(|_| Rejection::Busy)?.insert(
            &parsed.params.keyid,
            &parsed.params.nonce,
            expiry,
            now,
        )?;
        Ok(Verified {
            keyid: parsed.params.keyid,
            created: parsed.params.created,
        })
    }
}

/// Constant-time equality of two digests.
#[diversify]
fn subtle_eq(a: &[u8; 32], b: &[u8; 32]) -> subtle::Choice {
    use subtle::ConstantTimeEq;
    a.ct_eq(b)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
    use super::*;

    const DEVICE: &str = "0123456789abcdef";
    const NOW: i64 = 1_700_000_000;
    const PATH: &str = "/v1/messages";
    const BODY: &[u8] = br#"{"hello": "world"}"#;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn signer() -> Signer {
        Signer::from_signing_key(DEVICE, key(1))
    }

    fn verifier() -> Verifier {
        Verifier::from_keys([(DEVICE.to_owned(), key(1).verifying_key().to_bytes())]).unwrap()
    }

    fn params(created: i64, nonce: u8) -> SignatureParams {
        SignatureParams {
            created,
            nonce: URL_SAFE_NO_PAD.encode([nonce; NONCE_BYTES]),
            keyid: DEVICE.to_owned(),
        }
    }

    fn signed(created: i64, nonce: u8) -> SignedHeaders {
        signer()
            .sign_with("POST", PATH, BODY, &params(created, nonce))
            .unwrap()
    }

    fn verify(v: &Verifier, h: &SignedHeaders, body: &[u8]) -> Result<Verified, Rejection> {
        v.verify(
            &RequestParts {
                method: "POST",
                path: PATH,
                signature_input: Some(&h.signature_input),
                signature: Some(&h.signature),
                content_digest: Some(&h.content_digest),
                body,
            },
            NOW,
        )
    }

    #[test]
    fn content_digest_matches_rfc_9530() {
        // RFC 9530 §2 / Appendix B.1.
        assert_eq!(
            content_digest(BODY),
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
        );
    }

    #[test]
    fn signature_base_and_signature_match_rfc_9421_b_2_6() {
        // RFC 9421 Appendix B.2.6: "Signing a Request Using ed25519", with
        // test-key-ed25519 (the PKCS#8 document's last 32 bytes are the seed).
        let pkcs8 = STANDARD
            .decode("MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF")
            .unwrap();
        let seed: [u8; 32] = pkcs8[pkcs8.len() - 32..].try_into().unwrap();
        let input = r#"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#;
        let dict = sf::parse_dictionary(input).unwrap();
        let Member::InnerList(items, params) = &dict[0].1 else {
            panic!("not an inner list");
        };
        let inner = sf::serialize_inner_list(items, params).unwrap();
        let base = signature_base(
            &[
                ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
                ("@method", "POST"),
                ("@path", "/foo"),
                ("@authority", "example.com"),
                ("content-type", "application/json"),
                ("content-length", "18"),
            ],
            &inner,
        )
        .unwrap();
        assert_eq!(
            base,
            "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\"@method\": POST\n\"@path\": /foo\n\
             \"@authority\": example.com\n\"content-type\": application/json\n\
             \"content-length\": 18\n\"@signature-params\": (\"date\" \"@method\" \"@path\" \
             \"@authority\" \"content-type\" \"content-length\");created=1618884473;\
             keyid=\"test-key-ed25519\""
        );
        let sig = SigningKey::from_bytes(&seed).sign(base.as_bytes());
        assert_eq!(
            STANDARD.encode(sig.to_bytes()),
            "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
        );
    }

    #[test]
    fn our_signature_base_is_the_three_components_and_the_params() {
        let p = params(NOW, 0);
        let cd = content_digest(BODY);
        let base = signature_base(
            &[
                ("@method", "POST"),
                ("@path", PATH),
                ("content-digest", &cd),
            ],
            &p.serialize().unwrap(),
        )
        .unwrap();
        assert_eq!(
            base,
            "\"@method\": POST\n\"@path\": /v1/messages\n\
             \"content-digest\": sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:\n\
             \"@signature-params\": (\"@method\" \"@path\" \"content-digest\");\
             created=1700000000;nonce=\"AAAAAAAAAAAAAAAAAAAAAA\";keyid=\"0123456789abcdef\";\
             alg=\"ed25519\""
        );
        let h = signed(NOW, 0);
        assert_eq!(
            h.signature_input,
            format!("sig1={}", p.serialize().unwrap())
        );
        assert!(h.signature.starts_with("sig1=:") && h.signature.ends_with(':'));
        // A newline in a component cannot be smuggled into the base.
        assert!(signature_base(&[("@path", "/a\n\"@method\": GET")], "()").is_none());
    }

    #[test]
    fn a_signed_request_verifies_within_the_window_and_once() {
        let v = verifier();
        for (i, created) in [NOW, NOW - WINDOW_S, NOW + WINDOW_S]
            .into_iter()
            .enumerate()
        {
            let got = verify(&v, &signed(created, i as u8), BODY).unwrap();
            assert_eq!(got.keyid, DEVICE);
            assert_eq!(got.created, created);
        }
        // Fresh nonces from the signer differ every time.
        let a = signer().sign_request("POST", PATH, BODY, NOW).unwrap();
        let b = signer().sign_request("POST", PATH, BODY, NOW).unwrap();
        assert_ne!(a.signature_input, b.signature_input);
        assert!(verify(&v, &a, BODY).is_ok());
        assert!(verify(&v, &b, BODY).is_ok());
    }

    #[test]
    fn every_rejection_reason_is_precise() {
        let v = verifier();
        let good = signed(NOW, 9);
        let with = |f: &dyn Fn(&mut SignedHeaders)| {
            let mut h = good.clone();
            f(&mut h);
            h
        };
        // Missing headers.
        for (which, name) in [
            (0, "Signature-Input"),
            (1, "Signature"),
            (2, "Content-Digest"),
        ] {
            let r = v.verify(
                &RequestParts {
                    method: "POST",
                    path: PATH,
                    signature_input: (which != 0).then_some(good.signature_input.as_str()),
                    signature: (which != 1).then_some(good.signature.as_str()),
                    content_digest: (which != 2).then_some(good.content_digest.as_str()),
                    body: BODY,
                },
                NOW,
            );
            assert_eq!(r, Err(Rejection::MissingHeader(name)));
        }
        // Malformed structured fields.
        let r = verify(&v, &with(&|h| h.signature_input = "sig1=(".into()), BODY);
        assert!(
            matches!(
                r,
                Err(Rejection::Malformed {
                    header: "Signature-Input",
                    ..
                })
            ),
            "{r:?}"
        );
        let r = verify(&v, &with(&|h| h.signature = "sig1=:AAAA:".into()), BODY);
        assert!(
            matches!(
                r,
                Err(Rejection::Malformed {
                    header: "Signature",
                    reason: "not 64 bytes"
                })
            ),
            "{r:?}"
        );
        let r = verify(
            &v,
            &with(&|h| h.signature = h.signature.replace("sig1", "sig2")),
            BODY,
        );
        assert!(matches!(r, Err(Rejection::Malformed { .. })), "{r:?}");
        let r = verify(&v, &with(&|h| h.content_digest = "md5=:AAAA:".into()), BODY);
        assert!(
            matches!(
                r,
                Err(Rejection::Malformed {
                    header: "Content-Digest",
                    ..
                })
            ),
            "{r:?}"
        );
        let r = verify(
            &v,
            &with(&|h| {
                h.signature_input = h.signature_input.replace("keyid=\"0123", "keyid=\"XY23")
            }),
            BODY,
        );
        assert!(matches!(r, Err(Rejection::Malformed { .. })), "{r:?}");
        // Algorithm and coverage.
        let r = verify(
            &v,
            &with(&|h| h.signature_input = h.signature_input.replace("ed25519", "rsa-pss-sha512")),
            BODY,
        );
        assert_eq!(r, Err(Rejection::UnsupportedAlgorithm));
        let r = verify(
            &v,
            &with(&|h| h.signature_input = h.signature_input.replace(" \"content-digest\"", "")),
            BODY,
        );
        assert_eq!(r, Err(Rejection::Coverage));
        // Unknown device: signed correctly, by a key not enrolled.
        let stranger = Signer::from_signing_key("fedcba9876543210", key(2))
            .sign_with(
                "POST",
                PATH,
                BODY,
                &SignatureParams {
                    keyid: "fedcba9876543210".into(),
                    ..params(NOW, 1)
                },
            )
            .unwrap();
        assert_eq!(
            verify(&v, &stranger, BODY),
            Err(Rejection::UnknownDevice("fedcba9876543210".into()))
        );
        // Bad digest: the body changed.
        assert_eq!(
            verify(&v, &good, br#"{"hello": "w0rld"}"#),
            Err(Rejection::DigestMismatch)
        );
        // Stale, both ways.
        assert_eq!(
            verify(&v, &signed(NOW - WINDOW_S - 1, 2), BODY),
            Err(Rejection::Stale {
                skew_s: -WINDOW_S - 1
            })
        );
        assert_eq!(
            verify(&v, &signed(NOW + 3600, 3), BODY),
            Err(Rejection::Stale { skew_s: 3600 })
        );
        // Bad signature: another key claiming the enrolled key id; a
        // changed method or path; a changed digest matching a changed body.
        let forged = Signer::from_signing_key(DEVICE, key(3))
            .sign_with("POST", PATH, BODY, &params(NOW, 4))
            .unwrap();
        assert_eq!(verify(&v, &forged, BODY), Err(Rejection::BadSignature));
        let r = v.verify(
            &RequestParts {
                method: "PUT",
                path: PATH,
                signature_input: Some(&good.signature_input),
                signature: Some(&good.signature),
                content_digest: Some(&good.content_digest),
                body: BODY,
            },
            NOW,
        );
        assert_eq!(r, Err(Rejection::BadSignature));
        let other_body = b"{}";
        let swapped = with(&|h| h.content_digest = content_digest(other_body));
        assert_eq!(
            verify(&v, &swapped, other_body),
            Err(Rejection::BadSignature)
        );
        // None of the failures above used up the nonce: the good request
        // still verifies once, and its replay is refused.
        assert!(verify(&v, &good, BODY).is_ok());
        assert_eq!(verify(&v, &good, BODY), Err(Rejection::Replay));
    }

    #[test]
    fn nonces_are_forgotten_once_the_window_passed() {
        let mut cache = NonceCache::default();
        cache.insert(DEVICE, "n", NOW + WINDOW_S, NOW).unwrap();
        assert_eq!(
            cache.insert(DEVICE, "n", NOW + WINDOW_S, NOW + 10),
            Err(Rejection::Replay)
        );
        // Another device may use the same nonce.
        assert!(
            cache
                .insert("ffffffffffffffff", "n", NOW + WINDOW_S, NOW)
                .is_ok()
        );
        assert!(
            cache
                .insert(DEVICE, "n", NOW + 200, NOW + WINDOW_S + 1)
                .is_ok()
        );
        assert_eq!(cache.seen.len(), 1);
    }
}
