//! The identity file's key wraps: the device's private seeds, sealed once
//! per allowed subset of its components, under a key only that whole
//! subset derives.
//!
//! Nothing in the file lets one component be checked alone: there are no
//! per-component commitments and no per-component shares, so a guess at a
//! component is only tested together with every other component of a
//! subset, and each test costs one Argon2id derivation (memory-hard, its
//! parameters in [`KDF`]). The derivation's password also holds a key the
//! runtime's white-box derives for this device's salt, so no constant of
//! the binary opens any device by itself.
//!
//! A subset is allowed when it holds at least `hardware_needed` of the
//! device's hardware-resident components: a copied disk (its machine-id,
//! hostname, file-system UUID) opens nothing without the hardware.

use crate::SealError;
use crate::fingerprint::{Component, Residence};
use crate::secret::RuntimeSecret;
use argon2::{Algorithm, Argon2, Params, Version};
use twinshield_atrest::AeadKey;
use twinshield_shield::{obf_bytes, protect};
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

/// Argon2id's cost per derivation: memory in KiB, passes, lanes. Measured
/// in docs/benchmarks.md ("Device identity").
pub const KDF: (u32, u32, u32) = (64 * 1024, 2, 1);

/// Hardware-resident components every allowed subset must hold (fewer when
/// the device has fewer, which `fingerprint` and `/security` report).
pub const HARDWARE_NEEDED: usize = 2;

/// One component the identity was created with: its label and residence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The component's label.
    pub label: String,
    /// Where it lives.
    pub residence: Residence,
}

/// The subsets of `slots` (as bit masks) whose key derivation wraps the
/// seeds: every `k`-subset holding at least `hardware_needed` hardware
/// components.
#[diversify]
pub(crate) fn allowed_subsets(slots: &[Slot], k: usize, hardware_needed: usize) -> Vec<u8> {
    let n = slots.len().min(8);
    (0u16..(1 << n))
        .filter_map(|m| u8::try_from(m).ok())
        .filter(|m| m.count_ones() as usize == k)
        .filter(|m| {
            let hardware = slots
                .iter()
                .enumerate()
                .filter(|(i, s)| m & (1 << i) != 0 && s.residence == Residence::Hardware)
                .count();
            hardware >= hardware_needed
        })
        .collect()
}

/// The components of `mask`, in slot order, taken from `present`; `None`
/// when one of them is not present on this machine.
#[diversify]
pub(crate) fn members<'c>(
    slots: &[Slot],
    mask: u8,
    present: &'c [Component],
) -> Option<Vec<&'c Component>> {
    slots
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, s)| present.iter().find(|c| c.label == s.label))
        .collect()
}

/// The key that seals the seeds for one subset: Argon2id over the white-box
/// key of this device's salt and the subset's labelled values.
#[protect]
pub(crate) fn wrap_key(
    secret: &dyn RuntimeSecret,
    salt: &[u8; 32],
    subset: &[&Component],
) -> Result<AeadKey, SealError> {
    let context = [obf_bytes!(b"twinshield/id/wrap-root/v2|").bytes(), salt].concat();
    let root = secret.derive(&context);
    // Sized once: a growing Vec would leave copies of the components
    // behind in the buffers it outgrew.
    let size = subset
        .iter()
        .map(|c| 16 + c.label.len() + c.value.len())
        .sum::<usize>();
    let mut password = Zeroizing::new(Vec::with_capacity(root.len() + size));
    password.extend_from_slice(root.as_slice());
    for c in subset {
        for part in [c.label.as_bytes(), c.value.as_slice()] {
            password.extend_from_slice(&(part.len() as u64).to_le_bytes());
            password.extend_from_slice(part);
        }
    }
    let (m, t, p) = KDF;
    let params = Params::new(m, t, p, Some(32))
        .map_err(|e| SealError::Identity(format!("key derivation parameters: {e}")))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(&password, salt, key.as_mut_slice())
        .map_err(|e| SealError::Identity(format!("key derivation failed: {e}")))?;
    Ok(AeadKey::new(&key))
}

/// What a wrap's sealed block is bound to: its subset's labels.
#[diversify]
pub(crate) fn wrap_aad(slots: &[Slot], mask: u8) -> Vec<u8> {
    let mut aad = obf_bytes!(b"twinshield/id/wrap/v2").bytes().to_vec();
    for (i, s) in slots.iter().enumerate() {
        if mask & (1 << i) != 0 {
            aad.push(b'|');
            aad.extend_from_slice(s.label.as_bytes());
        }
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(kinds: &[Residence]) -> Vec<Slot> {
        kinds
            .iter()
            .enumerate()
            .map(|(i, &residence)| Slot {
                label: format!("c{i}"),
                residence,
            })
            .collect()
    }

    #[test]
    fn every_allowed_subset_holds_the_hardware_it_needs() {
        use Residence::{Disk, Hardware};
        let s = slots(&[Disk, Hardware, Hardware, Disk, Hardware, Disk, Disk]);
        let masks = allowed_subsets(&s, 5, 2);
        // Of the 21 five-subsets, those with at most one hardware component
        // (4 disk + 1 hardware: 3 of them) are left out.
        assert_eq!(masks.len(), 18);
        let disk_only_plus_one = 0b110_1001u8 | 0b10;
        assert!(!masks.contains(&disk_only_plus_one));
        assert!(masks.iter().all(|m| m.count_ones() == 5));
    }

    #[test]
    fn a_disk_only_subset_is_never_allowed_when_hardware_is_needed() {
        use Residence::{Disk, Hardware};
        let s = slots(&[Disk, Disk, Disk, Hardware, Hardware]);
        let masks = allowed_subsets(&s, 3, 2);
        assert_eq!(masks, vec![0b11001, 0b11010, 0b11100]);
    }
}
