//! Shamir secret sharing over GF(2⁸), byte by byte: any `k` of `n` shares
//! rebuild a 32-byte secret, fewer reveal nothing about it. This is what
//! lets a device open its keys when a few of its components change.

#[cfg(test)]
use crate::SealError;
use twinshield_shield_macros::diversify;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// One share: the polynomial's value at `x` (1..=255) for each secret byte.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Share {
    pub x: u8,
    pub y: [u8; 32],
}

/// Multiplication in GF(2⁸) with the AES polynomial, without branches on
/// secret data.
#[diversify]
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    for _ in 0..8 {
        p ^= a & 0u8.wrapping_sub(b & 1);
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    p
}

/// Multiplicative inverse (a²⁵⁴); 0 maps to 0.
#[diversify]
fn inv(a: u8) -> u8 {
    let mut r = 1u8;
    let mut base = a;
    let mut e = 254u8;
    while e > 0 {
        if e & 1 == 1 {
            r = mul(r, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    r
}

/// Splits `secret` into `n` shares, any `k` of which rebuild it.
/// `random` fills buffers with cryptographically secure random bytes. Only
/// format-1 identities were split; tests write such files to check the
/// upgrade.
#[cfg(test)]
pub(crate) fn split(
    secret: &[u8; 32],
    n: u8,
    k: u8,
    random: &mut dyn FnMut(&mut [u8]) -> Result<(), SealError>,
) -> Result<Vec<Share>, SealError> {
    if k < 2 || n < k {
        return Err(SealError::Identity(format!(
            "cannot split into {n} shares with threshold {k}"
        )));
    }
    // coefficients[j][i]: coefficient of x^(j+1) for secret byte i.
    let mut coefficients = Zeroizing::new(vec![[0u8; 32]; usize::from(k - 1)]);
    for c in coefficients.iter_mut() {
        random(c)?;
    }
    let mut shares = Vec::with_capacity(usize::from(n));
    for x in 1..=n {
        let mut y = [0u8; 32];
        for (i, out) in y.iter_mut().enumerate() {
            // Horner's rule from the highest coefficient down to the secret.
            let mut acc = 0u8;
            for c in coefficients.iter().rev() {
                acc = mul(acc, x) ^ c.get(i).copied().unwrap_or(0);
            }
            *out = mul(acc, x) ^ secret.get(i).copied().unwrap_or(0);
        }
        shares.push(Share { x, y });
    }
    Ok(shares)
}

/// Rebuilds the secret from shares with distinct, non-zero `x` (Lagrange
/// interpolation at 0). With fewer than the threshold it returns a wrong
/// value, which the caller's authenticated decryption then rejects.
#[diversify]
pub(crate) fn combine(shares: &[Share]) -> Zeroizing<[u8; 32]> {
    let mut secret = Zeroizing::new([0u8; 32]);
    for (j, sj) in shares.iter().enumerate() {
        // Lagrange basis at 0: Π_{m≠j} x_m / (x_m − x_j), in GF(2⁸) − is ^.
        let mut basis = 1u8;
        for (m, sm) in shares.iter().enumerate() {
            if m != j {
                basis = mul(basis, mul(sm.x, inv(sm.x ^ sj.x)));
            }
        }
        for (out, y) in secret.iter_mut().zip(sj.y.iter()) {
            *out ^= mul(*y, basis);
        }
    }
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter_rng() -> impl FnMut(&mut [u8]) -> Result<(), SealError> {
        let mut state = 7u8;
        move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                state = state.wrapping_mul(31).wrapping_add(17);
                *b = state;
            }
            Ok(())
        }
    }

    #[test]
    fn field_arithmetic_is_right() {
        assert_eq!(mul(0x57, 0x83), 0xc1); // FIPS-197 example
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "inverse of {a}");
        }
    }

    #[test]
    fn any_k_shares_rebuild_and_fewer_do_not() {
        let secret = [0x42u8; 32];
        let shares = split(&secret, 6, 4, &mut counter_rng()).expect("split");
        for skip in 0..6 {
            for skip2 in 0..6 {
                if skip == skip2 {
                    continue;
                }
                let subset: Vec<Share> = shares
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != skip && *i != skip2)
                    .map(|(_, s)| s.clone())
                    .collect();
                assert_eq!(*combine(&subset), secret);
            }
        }
        let three: Vec<Share> = shares.iter().take(3).cloned().collect();
        assert_ne!(*combine(&three), secret);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(split(&[0; 32], 3, 4, &mut counter_rng()).is_err());
        assert!(split(&[0; 32], 3, 1, &mut counter_rng()).is_err());
    }
}
