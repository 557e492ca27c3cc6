//! The little dense linear algebra the Kalman filter needs, on row-major
//! slices it owns, so an update allocates nothing. Sizes are the model's
//! state and output counts (a handful), where a general-purpose matrix crate
//! buys nothing but compile time. The kernels are `#[inline]`: they are
//! the filter's innermost loops and belong inside its steps (whose
//! `#[diversify]` guards then cover them, once per step, not per call).

/// `out (r×c) = a (r×k) · b (k×c)`.
#[inline]
pub(crate) fn mul(a: &[f64], b: &[f64], out: &mut [f64], r: usize, k: usize, c: usize) {
    for i in 0..r {
        for j in 0..c {
            let mut s = 0.0;
            for l in 0..k {
                s += a[i * k + l] * b[l * c + j];
            }
            out[i * c + j] = s;
        }
    }
}

/// `out (r×c) = a (r×k) · bᵀ` where `b` is `c×k`.
#[inline]
pub(crate) fn mul_bt(a: &[f64], b: &[f64], out: &mut [f64], r: usize, k: usize, c: usize) {
    for i in 0..r {
        for j in 0..c {
            let mut s = 0.0;
            for l in 0..k {
                s += a[i * k + l] * b[j * k + l];
            }
            out[i * c + j] = s;
        }
    }
}

/// Makes a square matrix exactly symmetric, against rounding drift.
#[inline]
pub(crate) fn symmetrize(a: &mut [f64], n: usize) {
    for i in 0..n {
        for j in (i + 1)..n {
            let v = 0.5 * (a[i * n + j] + a[j * n + i]);
            a[i * n + j] = v;
            a[j * n + i] = v;
        }
    }
}

/// Cholesky factor `L` (lower triangle, row-major) of a symmetric positive
/// definite `a`; `false` if `a` is not positive definite.
#[inline]
pub(crate) fn cholesky(a: &[f64], l: &mut [f64], n: usize) -> bool {
    l.iter_mut().for_each(|x| *x = 0.0);
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if s.is_nan() || s <= 0.0 || s.is_infinite() {
                    return false;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    true
}

/// Solves `L y = b` in place (`b` becomes `y`).
#[inline]
pub(crate) fn forward(l: &[f64], b: &mut [f64], n: usize) {
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
}

/// Solves `Lᵀ x = y` in place (`y` becomes `x`).
#[inline]
pub(crate) fn backward(l: &[f64], y: &mut [f64], n: usize) {
    for i in (0..n).rev() {
        let mut s = y[i];
        for k in (i + 1)..n {
            s -= l[k * n + i] * y[k];
        }
        y[i] = s / l[i * n + i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_known_system() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let mut l = [0.0; 4];
        assert!(cholesky(&a, &mut l, 2));
        assert_eq!(l, [2.0, 0.0, 1.0, 2f64.sqrt()]);
        // a x = b with x = (1, 2): b = (8, 8)
        let mut b = [8.0, 8.0];
        forward(&l, &mut b, 2);
        backward(&l, &mut b, 2);
        assert!((b[0] - 1.0).abs() < 1e-12 && (b[1] - 2.0).abs() < 1e-12);
    }

    #[test]
    fn cholesky_refuses_indefinite() {
        let a = [1.0, 2.0, 2.0, 1.0];
        let mut l = [0.0; 4];
        assert!(!cholesky(&a, &mut l, 2));
    }

    #[test]
    fn products_match_by_hand() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2x3
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]; // 3x2
        let mut out = [0.0; 4];
        mul(&a, &b, &mut out, 2, 3, 2);
        assert_eq!(out, [4.0, 5.0, 10.0, 11.0]);
        let mut out2 = [0.0; 4];
        mul_bt(&a, &a, &mut out2, 2, 3, 2);
        assert_eq!(out2, [14.0, 32.0, 32.0, 77.0]);
    }
}
