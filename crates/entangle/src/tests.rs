//! The encoding's promises: round trip, no plain bit pattern, every single
//! 8-byte overwrite found or harmless, faults that survive rewrites.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use proptest::prelude::*;

/// A row of cells as the bytes memory holds them (little-endian words).
fn bytes_of(cells: &[Sealed]) -> Vec<u8> {
    cells
        .iter()
        .flat_map(|c| c.words())
        .flat_map(u64::to_le_bytes)
        .collect()
}

fn cells_of(bytes: &[u8]) -> Vec<Sealed> {
    bytes
        .chunks(16)
        .map(|c| {
            let w = |r: std::ops::Range<usize>| u64::from_le_bytes(c[r].try_into().unwrap());
            Sealed::from_words([w(0..8), w(8..16)])
        })
        .collect()
}

#[test]
fn values_round_trip_and_the_plain_pattern_is_not_stored() {
    for v in [0.0025, 1e-4, 14.0, -0.0, f64::MAX, f64::MIN_POSITIVE] {
        let c = Sealed::new(v);
        assert_eq!(c.check(), Ok(v));
        assert_eq!(c.get().to_bits(), v.to_bits());
        assert!(!c.words().contains(&v.to_bits()), "{v}");
    }
}

#[test]
fn a_rewritten_broken_cell_stays_broken() {
    let mut c = Sealed::new(3.0);
    let [m, t] = c.words();
    c = Sealed::from_words([m ^ 1, t]);
    assert!(c.check().is_err());
    c.set(4.0);
    assert!(c.check().is_err(), "set launders a fault");
    let mut d = Sealed::new(1.0);
    d.set_carrying(2.0, c.fault());
    assert!(d.check().is_err(), "a fault carried over is lost");
    let mut e = Sealed::new(1.0);
    e.set_carrying(2.0, Sealed::new(5.0).fault());
    assert_eq!(e.check(), Ok(2.0));
}

#[test]
fn the_digest_finds_a_changed_word_and_a_changed_digest() {
    let x = [1.0, 2.0, 3.0];
    let p = [0.5; 9];
    let d = Digest::of(&[&x, &p]);
    assert!(d.verify(&[&x, &p], "state").is_ok());
    let mut y = x;
    y[1] = 2.000_000_1;
    assert_eq!(
        d.verify(&[&y, &p], "state"),
        Err(Tampered { what: "state" })
    );
    let mut swapped = p;
    swapped[0] = 0.25;
    swapped[1] = 0.75;
    assert!(d.verify(&[&x, &swapped], "state").is_err());
    let mut sealed = d;
    sealed.seal(&[&y, &p]);
    assert!(sealed.verify(&[&y, &p], "state").is_ok());
    assert!(sealed.verify(&[&x, &p], "state").is_err());
}

#[test]
fn faults_of_a_group_and_verify() {
    let mut cells = seal_all([1.0, 2.0, 3.0]);
    assert_eq!(faults(&cells), 0);
    assert!(verify(faults(&cells), "g").is_ok());
    let [m, t] = cells[2].words();
    cells[2] = Sealed::from_words([m, t.wrapping_add(1)]);
    assert_eq!(verify(faults(&cells), "g"), Err(Tampered { what: "g" }));
}

proptest! {
    /// One 8-byte write anywhere in a row of cells (aligned or not, any
    /// value): either the bytes did not change, or the row's fault is
    /// non-zero.
    #[test]
    fn any_single_8_byte_overwrite_is_found_or_harmless(
        values in proptest::collection::vec(any::<f64>(), 1..6),
        at in any::<prop::sample::Index>(),
        written in any::<u64>(),
    ) {
        let cells = seal_all(values.iter().copied());
        let mut bytes = bytes_of(&cells);
        let at = at.index(bytes.len() - 7);
        bytes[at..at + 8].copy_from_slice(&written.to_le_bytes());
        let after = cells_of(&bytes);
        if after == cells {
            // Harmless: the same bytes, the same values.
            for (a, v) in after.iter().zip(&values) {
                prop_assert_eq!(a.get().to_bits(), v.to_bits());
            }
        } else {
            prop_assert_ne!(faults(&after), 0);
        }
    }

    /// The same under fixed keys, with the write confined to one cell's
    /// words (the aligned case is certain, not probable).
    #[test]
    fn an_aligned_word_write_is_always_found(
        value in any::<f64>(),
        word in 0usize..2,
        written in any::<u64>(),
        mask in any::<u64>(), tweak in any::<u64>(), mul in any::<u64>(),
    ) {
        let keys = Keys::from_words(mask, tweak, mul);
        let cell = Sealed::with_keys(&keys, value);
        let mut words = cell.words();
        prop_assume!(words[word] != written);
        words[word] = written;
        prop_assert_ne!(Sealed::from_words(words).fault_with(&keys), 0);
    }

    /// Any one word of a digested sequence changed: found.
    #[test]
    fn a_digest_finds_any_one_changed_word(
        values in proptest::collection::vec(any::<f64>(), 1..30),
        at in any::<prop::sample::Index>(),
        written in any::<u64>(),
    ) {
        let d = Digest::of(&[&values]);
        let mut changed = values.clone();
        let i = at.index(changed.len());
        prop_assume!(changed[i].to_bits() != written);
        changed[i] = f64::from_bits(written);
        prop_assert!(d.verify(&[&changed], "x").is_err());
    }
}
