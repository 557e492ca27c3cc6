//! `#[protect]` keeps what a function computes: every function here exists
//! twice, protected (MBA literals, opaque predicate, flattened control
//! flow) and plain, from the same tokens, and the tests compare them on
//! fixed and random inputs. The bodies have the shapes the flattening
//! must handle, some of which clippy would write otherwise.

#![allow(
    clippy::single_char_add_str,
    clippy::redundant_closure_call,
    clippy::needless_late_init,
    clippy::needless_return
)]

use proptest::prelude::*;
use twinshield_shield_macros::protect;

/// Defines `$protected` with `#[protect]` and `$plain` without, from the
/// same signature and body.
macro_rules! twins {
    ($(fn $protected:ident / $plain:ident ($($args:tt)*) -> $ret:ty { $($body:tt)* })*) => {
        $(
            #[protect]
            fn $protected($($args)*) -> $ret { $($body)* }
            fn $plain($($args)*) -> $ret { $($body)* }
        )*
    };
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Add(u32),
    Mul(u32),
    Skip,
    Stop,
}

struct Acc {
    total: u64,
    log: Vec<u64>,
}

impl Acc {
    #[protect]
    fn feed(&mut self, xs: &[u64]) -> u64 {
        let mut n = 0u64;
        self.total = self.total.wrapping_mul(3);
        self.log.push(self.total);
        for &x in xs {
            if x % 7 == 0 {
                continue;
            }
            self.total = self.total.wrapping_add(x);
            self.log.push(x);
            n += 1;
            if n > 40 {
                break;
            }
        }
        self.log.truncate(60);
        n
    }

    fn feed_plain(&mut self, xs: &[u64]) -> u64 {
        let mut n = 0u64;
        self.total = self.total.wrapping_mul(3);
        self.log.push(self.total);
        for &x in xs {
            if x % 7 == 0 {
                continue;
            }
            self.total = self.total.wrapping_add(x);
            self.log.push(x);
            n += 1;
            if n > 40 {
                break;
            }
        }
        self.log.truncate(60);
        n
    }
}

twins! {
    fn loops / loops_plain(xs: &[u32], limit: u32) -> (u64, u32, Vec<u32>) {
        let mut sum = 0u64;
        let mut count = 0u32;
        let mut kept = Vec::new();
        'outer: for (i, &x) in xs.iter().enumerate() {
            if x == limit {
                break;
            }
            if x % 3 == 0 {
                continue;
            }
            let mut y = x;
            while y > 10 {
                y /= 2;
                count += 1;
                if y == 13 {
                    continue 'outer;
                }
            }
            sum += u64::from(y) * (i as u64 + 1);
            kept.push(y);
            count += 1;
        }
        let mut k = 0u32;
        loop {
            k += 1;
            count = count.wrapping_add(k);
            if k >= 3 {
                break;
            }
        }
        (sum, count, kept)
    }

    fn early / early_plain(a: i64, b: i64) -> i64 {
        let mut acc = a;
        acc = acc.wrapping_sub(17);
        acc = acc.wrapping_mul(3);
        if acc > 1000 {
            return acc;
        }
        acc = acc.wrapping_add(b);
        acc ^= 0x55;
        if b < 0 {
            return acc.wrapping_neg();
        }
        acc = acc.wrapping_mul(b);
        acc
    }

    fn tries / tries_plain(text: &str) -> Result<u32, String> {
        let mut total = 0u32;
        total += 1;
        for part in text.split(',') {
            let v: u32 = part.trim().parse().map_err(|e| format!("{part}: {e}"))?;
            total = total.checked_add(v).ok_or("overflow")?;
            if v == 99 {
                return Err("ninety-nine".to_owned());
            }
            total = total.wrapping_add(1);
        }
        total = total.wrapping_mul(2);
        Ok(total)
    }

    fn matching / matching_plain(ops: &[Op], start: u32) -> (u32, usize) {
        let mut v = start;
        let mut steps = 0usize;
        v = v.wrapping_add(1);
        for op in ops {
            steps += 1;
            match op {
                Op::Add(k) => v = v.wrapping_add(*k),
                Op::Mul(k) => {
                    v = v.wrapping_mul(*k);
                    v ^= 0xa5a5;
                }
                Op::Skip => continue,
                Op::Stop => break,
            }
            v = v.rotate_left(3);
        }
        steps += 1;
        (v, steps)
    }

    fn shadowing / shadowing_plain(x: u64) -> (u64, String) {
        let y = x;
        let y = y.wrapping_mul(31);
        let mut s = String::new();
        s.push_str("a");
        s.push('b');
        let s2 = s.clone();
        s.push_str(&s2);
        let y = {
            let y = y ^ 0xff;
            y.rotate_right(5)
        };
        s.push_str(&format!("{y}"));
        (y, s)
    }

    fn moves / moves_plain(v: Vec<u8>, extra: String) -> (usize, String) {
        let mut out = extra;
        out.push('!');
        let n = v.len();
        drop(v);
        out.push_str(&n.to_string());
        let taken = out;
        let mut again = taken;
        again.push('?');
        (n, again)
    }

    fn closures / closures_plain(xs: &[i32]) -> i32 {
        let mut best = i32::MIN;
        let scale = 3;
        let f = |x: i32| x.wrapping_mul(scale) - 1;
        best = best.max(0);
        for &x in xs {
            best = best.max(f(x));
            if best > 500 {
                best -= 100;
            }
        }
        let g = move |x: i32| x + best;
        best = g(1);
        best
    }

    fn deferred / deferred_plain(c: bool, n: u32) -> u32 {
        let x;
        let mut m = n;
        m += 1;
        if c {
            x = m * 2;
        } else {
            x = m + 7;
        }
        m += x;
        m
    }

    fn loop_value / loop_value_plain(n: u32) -> u32 {
        let mut i = 0u32;
        let found = loop {
            i += 1;
            if i * i > n {
                break i;
            }
            if i > 1000 {
                break 0;
            }
        };
        i += found;
        i
    }

    fn labelled_block / labelled_block_plain(n: u32) -> u32 {
        let mut r = 1u32;
        'b: {
            r += 1;
            if n > 5 {
                break 'b;
            }
            r += n;
        }
        r *= 2;
        r
    }

    fn diverging_tail / diverging_tail_plain(n: u32) -> u32 {
        let mut a = n;
        a += 1;
        a *= 3;
        return a;
    }
}

#[test]
fn fixed_inputs() {
    let xs = [1u32, 2, 30, 27, 14, 1000, 26, 5, 9, 7, 8];
    for limit in [0, 7, 26, 1000] {
        assert_eq!(loops(&xs, limit), loops_plain(&xs, limit));
    }
    for (a, b) in [(0, 0), (1000, 3), (400, -2), (-5, 7)] {
        assert_eq!(early(a, b), early_plain(a, b));
    }
    for t in ["1,2,3", "4, x", "99,1", "4294967295,1", ""] {
        assert_eq!(tries(t), tries_plain(t));
    }
    let ops = [
        Op::Add(3),
        Op::Skip,
        Op::Mul(7),
        Op::Add(1),
        Op::Stop,
        Op::Add(9),
    ];
    assert_eq!(matching(&ops, 5), matching_plain(&ops, 5));
    assert_eq!(shadowing(12345), shadowing_plain(12345));
    assert_eq!(
        moves(vec![1, 2, 3], "x".into()),
        moves_plain(vec![1, 2, 3], "x".into())
    );
    assert_eq!(closures(&[1, 300, -4]), closures_plain(&[1, 300, -4]));
    for c in [false, true] {
        assert_eq!(deferred(c, 9), deferred_plain(c, 9));
    }
    for n in [0, 10, 99] {
        assert_eq!(loop_value(n), loop_value_plain(n));
        assert_eq!(labelled_block(n), labelled_block_plain(n));
        assert_eq!(diverging_tail(n), diverging_tail_plain(n));
    }
    let mut a = Acc {
        total: 5,
        log: Vec::new(),
    };
    let mut b = Acc {
        total: 5,
        log: Vec::new(),
    };
    let xs: Vec<u64> = (0..100).collect();
    assert_eq!(a.feed(&xs), b.feed_plain(&xs));
    assert_eq!((a.total, a.log), (b.total, b.log));
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u32>().prop_map(Op::Add),
        any::<u32>().prop_map(Op::Mul),
        Just(Op::Skip),
        Just(Op::Stop),
    ]
}

proptest! {
    #[test]
    fn random_inputs(
        xs in proptest::collection::vec(0u32..2000, 0..40),
        limit in 0u32..2000,
        a in any::<i64>(),
        b in any::<i64>(),
        text in "[0-9, ]{0,12}",
        ops in proptest::collection::vec(op(), 0..20),
        x in any::<u64>(),
        c in any::<bool>(),
        n in 0u32..100_000,
        ys in proptest::collection::vec(any::<u64>(), 0..80),
    ) {
        prop_assert_eq!(loops(&xs, limit), loops_plain(&xs, limit));
        prop_assert_eq!(early(a, b), early_plain(a, b));
        prop_assert_eq!(tries(&text), tries_plain(&text));
        prop_assert_eq!(matching(&ops, n), matching_plain(&ops, n));
        prop_assert_eq!(shadowing(x), shadowing_plain(x));
        let signed: Vec<i32> = xs.iter().map(|&v| v as i32 - 1000).collect();
        prop_assert_eq!(closures(&signed), closures_plain(&signed));
        prop_assert_eq!(deferred(c, n), deferred_plain(c, n));
        prop_assert_eq!(loop_value(n), loop_value_plain(n));
        prop_assert_eq!(labelled_block(n), labelled_block_plain(n));
        let mut p = Acc { total: x, log: Vec::new() };
        let mut q = Acc { total: x, log: Vec::new() };
        prop_assert_eq!(p.feed(&ys), q.feed_plain(&ys));
        prop_assert_eq!((p.total, p.log), (q.total, q.log));
    }
}
