//! Linear algebra over GF(2): square bit matrices of size up to 32, and
//! random bijections on nibbles. The mixing bijections and encodings of the
//! white-box tables are built from these.

use rand::{Rng, RngExt};
use twinshield_shield_macros::diversify;

/// A square `n × n` matrix over GF(2), `1 <= n <= 32`. Row `i` is a `u32`
/// whose bit `j` is the entry `(i, j)`; a vector is a `u32` whose bit `j` is
/// coordinate `j`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitMatrix {
    n: usize,
    rows: [u32; 32],
}

#[diversify]
impl BitMatrix {
    fn mask(n: usize) -> u32 {
        if n >= 32 { u32::MAX } else { (1u32 << n) - 1 }
    }

    /// The `n × n` identity (`n` is clamped to `1..=32`).
    #[must_use]
    pub fn identity(n: usize) -> Self {
        let n = n.clamp(1, 32);
        let mut rows = [0u32; 32];
        for (i, row) in rows.iter_mut().take(n).enumerate() {
            *row = 1 << i;
        }
        Self { n, rows }
    }

    /// The size `n`.
    #[must_use]
    pub fn size(&self) -> usize {
        self.n
    }

    /// Matrix times vector (bits of `x` above `n` are ignored).
    #[must_use]
    pub fn apply(&self, x: u32) -> u32 {
        let x = x & Self::mask(self.n);
        self.rows
            .iter()
            .take(self.n)
            .enumerate()
            .fold(0, |acc, (i, row)| acc | (((row & x).count_ones() & 1) << i))
    }

    /// The inverse, or `None` if the matrix is singular (Gauss-Jordan).
    #[must_use]
    pub fn inverse(&self) -> Option<Self> {
        let n = self.n;
        let mut a = self.rows;
        let mut inv = Self::identity(n).rows;
        for col in 0..n {
            let pivot = (col..n).find(|&r| a[r] >> col & 1 == 1)?;
            a.swap(col, pivot);
            inv.swap(col, pivot);
            for r in 0..n {
                if r != col && a[r] >> col & 1 == 1 {
                    a[r] ^= a[col];
                    inv[r] ^= inv[col];
                }
            }
        }
        Some(Self { n, rows: inv })
    }

    /// A uniformly random invertible `n × n` matrix (rejection sampling: a
    /// random matrix is invertible with probability above 0.28).
    pub fn random_invertible<R: Rng + ?Sized>(n: usize, rng: &mut R) -> (Self, Self) {
        let n = n.clamp(1, 32);
        let mask = Self::mask(n);
        loop {
            let mut rows = [0u32; 32];
            for row in rows.iter_mut().take(n) {
                *row = rng.random::<u32>() & mask;
            }
            let m = Self { n, rows };
            if let Some(inv) = m.inverse() {
                return (m, inv);
            }
        }
    }
}

/// A bijection on 4-bit values, with its inverse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nibble {
    enc: [u8; 16],
    dec: [u8; 16],
}

#[diversify]
impl Nibble {
    /// The identity.
    #[must_use]
    pub fn identity() -> Self {
        let mut enc = [0u8; 16];
        for (i, e) in (0u8..).zip(enc.iter_mut()) {
            *e = i;
        }
        Self { enc, dec: enc }
    }

    /// A uniformly random bijection (Fisher-Yates).
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut enc = Self::identity().enc;
        for i in (1..16).rev() {
            let j = rng.random_range(0..=i);
            enc.swap(i, j);
        }
        let mut dec = [0u8; 16];
        for (i, &e) in (0u8..).zip(enc.iter()) {
            dec[usize::from(e & 0x0f)] = i;
        }
        Self { enc, dec }
    }

    /// Encodes the low nibble of `x`.
    #[must_use]
    pub fn enc(&self, x: u8) -> u8 {
        self.enc[usize::from(x & 0x0f)]
    }

    /// Decodes the low nibble of `x`.
    #[must_use]
    pub fn dec(&self, x: u8) -> u8 {
        self.dec[usize::from(x & 0x0f)]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn random_matrices_invert() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for n in [1, 4, 8, 17, 32] {
            for _ in 0..20 {
                let (m, inv) = BitMatrix::random_invertible(n, &mut rng);
                assert_eq!(m.size(), n);
                for _ in 0..50 {
                    let x = rng.random::<u32>() & BitMatrix::mask(n);
                    assert_eq!(inv.apply(m.apply(x)), x);
                    assert_eq!(m.apply(inv.apply(x)), x);
                }
            }
        }
    }

    #[test]
    fn singular_matrix_has_no_inverse() {
        let mut m = BitMatrix::identity(8);
        m.rows[3] = m.rows[2];
        assert!(m.inverse().is_none());
    }

    #[test]
    fn matrix_is_linear() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (m, _) = BitMatrix::random_invertible(32, &mut rng);
        for _ in 0..100 {
            let (x, y) = (rng.random::<u32>(), rng.random::<u32>());
            assert_eq!(m.apply(x ^ y), m.apply(x) ^ m.apply(y));
        }
    }

    #[test]
    fn nibble_bijection_round_trips() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let e = Nibble::random(&mut rng);
        let mut seen = [false; 16];
        for x in 0..16u8 {
            assert_eq!(e.dec(e.enc(x)), x);
            seen[usize::from(e.enc(x))] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
