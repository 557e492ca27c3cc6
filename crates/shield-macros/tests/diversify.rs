//! `#[diversify]` keeps what a function computes: every function here
//! exists twice, diversified and plain, from the same tokens, and the tests
//! compare them on fixed and random inputs. The bodies have the shapes the
//! guards must fit around: early returns, `?`, loops with `break` values,
//! closures with expression bodies, a value chosen by `#[cfg]` at the end,
//! trait default methods.

#![allow(
    clippy::needless_return,
    clippy::redundant_closure_call,
    clippy::let_and_return,
    clippy::manual_is_multiple_of,
    clippy::unused_unit
)]

use proptest::prelude::*;
use twinshield_shield_macros::diversify;

/// Defines `$diversified` with `#[diversify]` and `$plain` without, from
/// the same signature and body.
macro_rules! twins {
    ($(fn $diversified:ident / $plain:ident ($($args:tt)*) -> $ret:ty { $($body:tt)* })*) => {
        $(
            #[diversify]
            fn $diversified($($args)*) -> $ret { $($body)* }
            fn $plain($($args)*) -> $ret { $($body)* }
        )*
    };
}

twins! {
    fn sum_odd / sum_odd_plain(xs: &[u64]) -> u64 {
        let mut s = 0u64;
        for &x in xs {
            if x % 2 == 0 {
                continue;
            }
            s = s.wrapping_add(x);
        }
        s
    }

    fn first_big / first_big_plain(xs: &[u64], limit: u64) -> Option<usize> {
        for (i, &x) in xs.iter().enumerate() {
            if x > limit {
                return Some(i);
            }
        }
        None
    }

    fn parse_sum / parse_sum_plain(text: &str) -> Result<u64, std::num::ParseIntError> {
        let mut total = 0u64;
        for part in text.split(',') {
            total = total.wrapping_add(part.trim().parse::<u64>()?);
        }
        Ok(total)
    }

    fn loop_value / loop_value_plain(start: u64) -> u64 {
        let mut x = start | 1;
        let steps = loop {
            if x == 1 {
                break 0u64;
            }
            x = if x % 2 == 0 { x / 2 } else { x.wrapping_mul(3).wrapping_add(1) };
            if x < start / 3 {
                break x;
            }
        };
        steps
    }

    fn closures / closures_plain(xs: &[u64]) -> Vec<u64> {
        let double = |x: u64| x.wrapping_mul(2);
        let keep = |x: &u64| -> bool { x % 3 != 0 };
        xs.iter().copied().map(double).filter(keep).collect()
    }

    fn cfg_tail / cfg_tail_plain(x: u64) -> u64 {
        let y = x.rotate_left(7);
        #[cfg(target_pointer_width = "64")]
        {
            y ^ 0x5555
        }
        #[cfg(not(target_pointer_width = "64"))]
        {
            y ^ 0xaaaa
        }
    }

    fn empty / empty_plain(_untouched: &mut Vec<u8>) -> () {}
}

/// A trait whose default methods get guards, and an impl block whose
/// methods do (all but the `#[inline]` one).
#[diversify]
trait Scaled {
    fn factor(&self) -> u64;
    fn scale(&self, x: u64) -> u64 {
        x.wrapping_mul(self.factor())
    }
}

struct Three;

#[diversify]
impl Scaled for Three {
    fn factor(&self) -> u64 {
        3
    }
}

struct Counter {
    n: u64,
}

#[diversify]
impl Counter {
    fn bump(&mut self, by: u64) -> u64 {
        self.n = self.n.wrapping_add(by);
        self.n
    }

    #[inline]
    fn get(&self) -> u64 {
        self.n
    }

    const fn zero() -> Counter {
        Counter { n: 0 }
    }
}

#[test]
fn fixed_inputs_give_the_plain_results() {
    let xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 99];
    assert_eq!(sum_odd(&xs), sum_odd_plain(&xs));
    assert_eq!(sum_odd(&xs), 124);
    assert_eq!(first_big(&xs, 8), Some(8));
    assert_eq!(first_big(&xs, 8), first_big_plain(&xs, 8));
    assert_eq!(first_big(&xs, 1000), None);
    assert_eq!(parse_sum("1, 2,3"), Ok(6));
    assert_eq!(parse_sum("1,x").is_err(), parse_sum_plain("1,x").is_err());
    assert_eq!(loop_value(27), loop_value_plain(27));
    assert_eq!(closures(&xs), closures_plain(&xs));
    assert_eq!(cfg_tail(12345), cfg_tail_plain(12345));
    let (mut a, mut b) = (vec![1u8], vec![1u8]);
    empty(&mut a);
    empty_plain(&mut b);
    assert_eq!(a, b);
    assert_eq!(Three.scale(14), 42);
    let mut c = Counter::zero();
    assert_eq!(c.bump(5), 5);
    assert_eq!(c.bump(6), 11);
    assert_eq!(c.get(), 11);
}

proptest! {
    #[test]
    fn random_inputs_give_the_plain_results(
        xs in proptest::collection::vec(any::<u64>(), 0..40),
        limit in any::<u64>(),
        start in 1u64..1_000_000,
    ) {
        prop_assert_eq!(sum_odd(&xs), sum_odd_plain(&xs));
        prop_assert_eq!(first_big(&xs, limit), first_big_plain(&xs, limit));
        let text = xs.iter().map(|x| (x % 1000).to_string()).collect::<Vec<_>>().join(",");
        prop_assert_eq!(parse_sum(&text), parse_sum_plain(&text));
        prop_assert_eq!(loop_value(start), loop_value_plain(start));
        prop_assert_eq!(closures(&xs), closures_plain(&xs));
        prop_assert_eq!(cfg_tail(limit), cfg_tail_plain(limit));
    }
}
