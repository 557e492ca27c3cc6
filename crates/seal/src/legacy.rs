//! Identity files of format 1, read once to upgrade them in place.
//!
//! Format 1 kept each component's share under its own key beside a salted
//! commitment to it, so a stolen disk could test every component alone.
//! Opening one recovers the device's seeds (so its history and the bundles
//! sealed for it stay readable); the caller rewrites the file as format 2
//! at once and format 1 is never written again.

use crate::SealError;
use crate::fingerprint::Component;
use crate::secret::RuntimeSecret;
use crate::shamir::{self, Share};
use crate::wire::Reader;
use hkdf::Hkdf;
use sha2::Sha256;
use twinshield_atrest::AeadKey;
use twinshield_shield::{obf_bytes, protect};
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

/// What a format-1 identity yields: the two seeds and the commitments its
/// device.fp (and so its bundles' key wraps) was bound to.
pub(crate) struct LegacyIdentity {
    pub x25519_ikm: Zeroizing<[u8; 32]>,
    pub ed_seed: Zeroizing<[u8; 32]>,
    pub commitments: Vec<(String, [u8; 32])>,
}

/// Key that encrypted the KEK share of one component in format 1.
#[protect]
fn share_key(secret: &dyn RuntimeSecret, salt: &[u8; 32], c: &Component) -> Zeroizing<[u8; 32]> {
    let root = secret.derive(obf_bytes!(b"twinshield/fp/share-root/v1").bytes());
    let hk = Hkdf::<Sha256>::new(Some(salt), root.as_slice());
    let mut key = Zeroizing::new([0u8; 32]);
    let info = Zeroizing::new(
        [
            obf_bytes!(b"twinshield/fp/share/v1|").bytes(),
            c.label.as_bytes(),
            b"|",
            &c.value,
        ]
        .concat(),
    );
    let _ = hk.expand(&info, key.as_mut_slice());
    key
}

/// Opens a format-1 identity (`r` positioned after magic and version) with
/// this machine's `components`.
#[protect]
pub(crate) fn open(
    mut r: Reader<'_>,
    secret: &dyn RuntimeSecret,
    components: &[Component],
) -> Result<LegacyIdentity, SealError> {
    let bad = |m: &str| SealError::Malformed(format!("device identity is corrupt: {m}"));
    let salt = r.array::<32>()?;
    let k = r.u8()?;
    let n = r.u8()?;
    if usize::from(k) < crate::MIN_COMPONENTS || k > n {
        return Err(bad("threshold out of range"));
    }
    let mut shares: Vec<Share> = Vec::new();
    for _ in 0..n {
        let label = r.str()?;
        let sealed = r.blob()?;
        let Some(c) = components.iter().find(|c| c.label == label) else {
            continue;
        };
        let aad = [
            obf_bytes!(b"twinshield/id/share/v1|").bytes(),
            label.as_bytes(),
        ]
        .concat();
        if let Ok(pt) = AeadKey::new(&share_key(secret, &salt, c)).open(&aad, sealed)
            && let (Some(&x), Some(y)) = (pt.first(), pt.get(1..33))
            && x != 0
            && !shares.iter().any(|s| s.x == x)
        {
            let mut share = Share { x, y: [0u8; 32] };
            share.y.copy_from_slice(y);
            shares.push(share);
        }
    }
    let sealed_keys = r.blob()?;
    let m = r.u8()?;
    let mut commitments = Vec::with_capacity(usize::from(m));
    for _ in 0..m {
        let label = r.str()?;
        commitments.push((label, r.array::<32>()?));
    }
    r.finish()?;
    let not_this = SealError::NotThisDevice {
        tried: usize::from(n),
    };
    if shares.len() < usize::from(k) {
        return Err(not_this);
    }
    let kek = shamir::combine(&shares);
    let keys = AeadKey::new(&kek)
        .open(obf_bytes!(b"twinshield/id/keys/v1").bytes(), sealed_keys)
        .map_err(|_| not_this)?;
    seeds_of(&keys).map(|(x25519_ikm, ed_seed)| LegacyIdentity {
        x25519_ikm,
        ed_seed,
        commitments,
    })
}

/// A 32-byte seed, zeroized on drop.
pub(crate) type Seed = Zeroizing<[u8; 32]>;

/// The two 32-byte seeds at the start of a key block.
#[diversify]
pub(crate) fn seeds_of(keys: &[u8]) -> Result<(Seed, Seed), SealError> {
    let (Some(xi), Some(es)) = (keys.get(..32), keys.get(32..64)) else {
        return Err(SealError::Malformed(
            "device identity is corrupt: key block has the wrong size".into(),
        ));
    };
    let mut x25519_ikm = Zeroizing::new([0u8; 32]);
    x25519_ikm.copy_from_slice(xi);
    let mut ed_seed = Zeroizing::new([0u8; 32]);
    ed_seed.copy_from_slice(es);
    Ok((x25519_ikm, ed_seed))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::Writer;
    use sha2::Digest;

    /// Writes a format-1 identity as releases before format 2 did, for
    /// `components` and the two seeds.
    pub(crate) fn write_v1(
        secret: &dyn RuntimeSecret,
        components: &[Component],
        x25519_ikm: &[u8; 32],
        ed_seed: &[u8; 32],
    ) -> Vec<u8> {
        let salt = [5u8; 32];
        let kek = [6u8; 32];
        let n = u8::try_from(components.len()).unwrap();
        let k = n.saturating_sub(2).max(3).min(n);
        let mut counter = 0u8;
        let mut random = |b: &mut [u8]| {
            for x in b.iter_mut() {
                counter = counter.wrapping_add(37);
                *x = counter;
            }
            Ok(())
        };
        let shares = shamir::split(&kek, n, k, &mut random).unwrap();
        let mut w = Writer::default();
        w.bytes(b"TSID");
        w.u8(1);
        w.bytes(&salt);
        w.u8(k);
        w.u8(n);
        for (c, share) in components.iter().zip(&shares) {
            let mut pt = vec![share.x];
            pt.extend_from_slice(&share.y);
            let aad = [b"twinshield/id/share/v1|".as_slice(), c.label.as_bytes()].concat();
            w.str(c.label);
            w.blob(
                &AeadKey::new(&share_key(secret, &salt, c))
                    .seal(&aad, &pt)
                    .unwrap(),
            );
        }
        let keys = [x25519_ikm.as_slice(), ed_seed].concat();
        w.blob(
            &AeadKey::new(&kek)
                .seal(b"twinshield/id/keys/v1", &keys)
                .unwrap(),
        );
        w.u8(n);
        for c in components {
            let mut h = sha2::Sha256::new();
            for p in [
                b"twinshield/fp/commit/v1".as_slice(),
                &salt,
                c.label.as_bytes(),
                &c.value,
            ] {
                h.update((p.len() as u64).to_le_bytes());
                h.update(p);
            }
            w.str(c.label);
            w.bytes(&h.finalize());
        }
        w.buf
    }
}
