//! twinshield's obfuscation macros.
//!
//! - `obf!("text")`: the literal is stored encrypted with a key of its own
//!   (derived from the build seed, the literal and the site) and decrypted
//!   at use into a buffer that zeroizes on drop; the plain text is nowhere
//!   in the binary. The expansion calls `twinshield_shield::obf::reveal`, so
//!   a crate that uses it depends on `twinshield-shield` too. Its example
//!   runs on the re-export `twinshield_shield::obf` (a proc-macro crate
//!   cannot run doctests of its own macros).
//! - `obf_bytes!(b"bytes")`: the same for byte strings (labels, markers).
//! - `build_seed!()`: the seed these macros were keyed with, as a `u64`.
//! - `#[protect]` on a function:
//!   - every integer literal in its body becomes a mixed boolean-arithmetic
//!     expression over a value the optimiser cannot see through
//!     (`(a ^ b) + ((a & b) << 1)` with `a` behind `black_box`, `a + b` the
//!     literal);
//!   - the body starts with an opaque predicate (a number-theoretic
//!     invariant, `x * x + x` is even, over a black-boxed seed-drawn `x`)
//!     guarding a bogus path;
//!   - its control flow is flattened: in every block, runs of statements
//!     become the arms of a dispatcher, `loop { match decode(state) { .. } }`,
//!     whose state is encoded under a key read through `black_box` once per
//!     call (`decode(s) = ((s ^ key) * m).rotate_left(r)`), so the
//!     optimiser sees neither the order of the arms nor the exit. Labels,
//!     multipliers, rotations and the order of the arms come from the seed.
//!
//!   Different seeds give different splits, predicates and encodings at
//!   every site.
//!
//!   The subset it handles: any non-`async`, non-`const` function with a
//!   body (free function or method). Literals in patterns, array lengths,
//!   const blocks, types, nested items and macro arguments are left as they
//!   are (they must stay constants, or the macro cannot see them).
//!   Flattening keeps in straight-line code, in their order and scope,
//!   what a dispatcher loop cannot hold soundly: `let` statements (their
//!   bindings must stay visible to the rest of the block), items, statement
//!   macros, the last statement of a block that is not a loop body, and
//!   statements that may move a binding from outside them that is not
//!   known to be `Copy`, that name a binding declared without initialiser
//!   (`let x;`), that contain a macro with `break` or `continue` in it, or
//!   that would keep a borrow alive over the dispatcher's back edge that
//!   another statement of the run conflicts with (a name-based
//!   over-approximation). Unlabelled `break` and `continue` get their
//!   loop's label (a fresh `'__ts_l<n>` when it has none), so they keep
//!   their target; `return` and `?` need nothing. Const contexts, async
//!   blocks and nested items are not flattened.
//!
//!   Why it cannot change behaviour: evaluation order, the scope and drop
//!   order of every binding and temporary, and the target of every jump are
//!   kept; the name analysis (no types in a macro) decides only what is
//!   flattened, and where it misjudges, rustc's borrow checker rejects the
//!   expansion: a compile error, never a different program.
//!
//!   Refused with a compile error naming the construct: `async fn`, `const
//!   fn`, arguments to the attribute, a declaration without body, and
//!   identifiers or labels starting with `__ts` (reserved for the
//!   expansion). The feature `passthrough` (for cost measurements only)
//!   turns the attribute into a no-op after the same checks.
//! - `#[diversify]` on a function, an `impl` block or a trait: one or two
//!   seed-drawn guards (an invariant that never holds over a black-boxed
//!   value, and a bogus path) in every function body, closure and async
//!   block it reaches, so that every function's control flow differs
//!   between builds; see the `diversify` module. `passthrough` turns it
//!   into a no-op too.
//!
//! The seed is `TWINSHIELD_SEED` at build time, or a random one; the same
//! seed gives the same expansion (reproducible builds), another seed other
//! bytes at every site. Release builds key every site with the seed and a
//! digest of the whole project's sources (see `build.rs`), so any change
//! re-keys every site: two releases differ in every function, not only in
//! the ones a fix touched.

use std::sync::atomic::{AtomicU64, Ordering};

mod diversify;
mod flatten;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::visit_mut::VisitMut;
use syn::{Expr, ExprLit, ItemFn, Lit, LitByteStr, LitStr, parse_macro_input, parse_quote};

/// The seed the build script resolved.
const SEED: &str = env!("TWINSHIELD_MACRO_SEED");

/// The digest of the project's sources (release builds; 0 otherwise).
const SOURCE: &str = env!("TWINSHIELD_MACRO_SOURCE");

/// Sites expanded so far in this compilation: two sites with the same
/// literal still get different keys.
static SITES: AtomicU64 = AtomicU64::new(0);

/// The build seed as given (what `build_seed!()` reports).
fn given_seed() -> u64 {
    SEED.parse().unwrap_or(0)
}

/// What every site is keyed with: the build seed, and in release builds
/// the sources it was built from, so a change anywhere re-keys everything.
fn seed() -> u64 {
    given_seed() ^ mix(SOURCE.parse().unwrap_or(0))
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The key of one site: the seed, the literal, the site's number.
fn site_key(bytes: &[u8]) -> u64 {
    site_key_with(seed(), bytes)
}

/// [`site_key`] under `seed`.
fn site_key_with(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    let site = SITES.fetch_add(1, Ordering::Relaxed);
    mix(seed ^ mix(h) ^ site.rotate_left(32)) | 1
}

/// Encrypts `plain` under `key` (the keystream of `twinshield_shield::obf`:
/// SplitMix64 over the key, one word per eight bytes).
fn encrypt(plain: &[u8], key: u64) -> Vec<u8> {
    let mut state = key;
    let mut out = Vec::with_capacity(plain.len());
    for chunk in plain.chunks(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let word = mix(state).to_le_bytes();
        out.extend(chunk.iter().zip(word).map(|(p, k)| p ^ k));
    }
    out
}

/// The expansion of one site: its bytes encrypted under its own key, and
/// the call that reveals them at run time.
fn site(plain: &[u8]) -> TokenStream {
    let key = site_key(plain);
    let enc = encrypt(plain, key);
    quote! {
        ::twinshield_shield::obf::reveal(&[#(#enc),*], #key)
    }
    .into()
}

/// `obf!("text")`: a string literal stored encrypted; evaluates to a
/// `twinshield_shield::obf::Revealed` (derefs to `&str`, zeroizes on drop).
#[proc_macro]
pub fn obf(input: TokenStream) -> TokenStream {
    let lit = parse_macro_input!(input as LitStr);
    site(lit.value().as_bytes())
}

/// `obf_bytes!(b"bytes")`: a byte-string literal stored encrypted;
/// evaluates to a `twinshield_shield::obf::Revealed` (its `bytes()`,
/// zeroized on drop).
#[proc_macro]
pub fn obf_bytes(input: TokenStream) -> TokenStream {
    let lit = parse_macro_input!(input as LitByteStr);
    site(&lit.value())
}

/// `build_seed!()`: the seed the macros were keyed with.
#[proc_macro]
pub fn build_seed(_input: TokenStream) -> TokenStream {
    let seed = given_seed();
    quote!(#seed).into()
}

/// Rewrites the integer literals of a body (see the crate documentation).
struct Literals<'a> {
    next: &'a mut dyn FnMut() -> u64,
}

impl VisitMut for Literals<'_> {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        if let Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) = e
            && let Ok(c) = int.base10_parse::<u64>()
        {
            // a + b = c with no overflow in any step for c's own type.
            let a = if c == 0 { 0 } else { (self.next)() % (c + 1) };
            let b = c - a;
            let suffix = int.suffix().to_owned();
            let lit =
                |v: u64| -> syn::LitInt { syn::LitInt::new(&format!("{v}{suffix}"), int.span()) };
            let (la, lb) = (lit(a), lit(b));
            *e = parse_quote! {
                {
                    let __ts_a = ::core::hint::black_box(#la);
                    (__ts_a ^ #lb) + ((__ts_a & #lb) << 1)
                }
            };
            return;
        }
        syn::visit_mut::visit_expr_mut(self, e);
    }

    // Array lengths must stay constant.
    fn visit_expr_repeat_mut(&mut self, e: &mut syn::ExprRepeat) {
        self.visit_expr_mut(&mut e.expr);
    }

    // Nor const blocks, nor types (array lengths), nor generic arguments
    // (const generics).
    fn visit_expr_const_mut(&mut self, _: &mut syn::ExprConst) {}
    fn visit_type_mut(&mut self, _: &mut syn::Type) {}
    fn visit_generic_argument_mut(&mut self, _: &mut syn::GenericArgument) {}

    // Nested items (consts, statics, fns) are not this function's body.
    fn visit_item_mut(&mut self, _item: &mut syn::Item) {}
}

/// `#[diversify]` on a function, an `impl` block or a trait: per-build
/// guards in every function body it reaches, so that two builds differ in
/// every function's control flow (see the `diversify` module for what it
/// does and leaves alone).
#[proc_macro_attribute]
pub fn diversify(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut state = site_key(b"#diversify");
    let mut next = move || {
        state = mix(state);
        state
    };
    diversify::expand(
        attr.into(),
        item.into(),
        &mut next,
        cfg!(feature = "passthrough"),
    )
    .into()
}

/// `#[protect]`: MBA literals, an opaque predicate and control-flow
/// flattening (see the crate documentation for what it handles).
#[proc_macro_attribute]
pub fn protect(attr: TokenStream, item: TokenStream) -> TokenStream {
    protect_impl(
        attr.into(),
        item.into(),
        seed(),
        cfg!(feature = "passthrough"),
    )
    .into()
}

/// Why `#[protect]` refuses `item`, if it does (checked in passthrough
/// builds too, so that both accept the same programs).
fn refusal(attr: &TokenStream2, item: &TokenStream2) -> Result<ItemFn, syn::Error> {
    if !attr.is_empty() {
        return Err(syn::Error::new_spanned(
            attr,
            "#[protect] takes no arguments",
        ));
    }
    let f: ItemFn = syn::parse2(item.clone()).map_err(|e| {
        syn::Error::new(
            e.span(),
            "#[protect] applies to a function with a body (a free function or a method)",
        )
    })?;
    if let Some(a) = &f.sig.asyncness {
        return Err(syn::Error::new_spanned(
            a,
            "#[protect] does not handle `async fn` (its body is a state machine already: protect the functions it calls)",
        ));
    }
    if let Some(c) = &f.sig.constness {
        return Err(syn::Error::new_spanned(
            c,
            "#[protect] does not handle `const fn` (an obfuscated body cannot run at compile time)",
        ));
    }
    if let Some(span) = flatten::reserved_use(item) {
        return Err(syn::Error::new(
            span,
            "#[protect] reserves identifiers and labels starting with `__ts` for its expansion",
        ));
    }
    Ok(f)
}

/// `#[protect]` on tokens, keyed by `seed`.
fn protect_impl(
    attr: TokenStream2,
    item: TokenStream2,
    seed: u64,
    passthrough: bool,
) -> TokenStream2 {
    let mut f = match refusal(&attr, &item) {
        Ok(f) => f,
        Err(e) => return e.to_compile_error(),
    };
    if passthrough {
        return item;
    }
    let mut name = f.sig.ident.to_string().into_bytes();
    name.extend_from_slice(b"#protect");
    let mut state = site_key_with(seed, &name);
    let mut next = move || {
        state = mix(state);
        state
    };
    let bindings = flatten::Bindings::of(&f.sig, &f.block);
    Literals { next: &mut next }.visit_block_mut(&mut f.block);
    let mut flattener = flatten::Flattener::new(bindings, &mut next);
    let key = flattener.run(&mut f.block);
    drop(flattener);
    // The predicate's value comes from the dispatchers' key: one
    // `black_box` read per call is opaque enough for both and is all the
    // fixed cost a hot function (the VM's eval) should pay.
    let x = next() ^ key;
    let body = &f.block;
    *f.block = parse_quote! {
        {
            let __ts_k: u64 = ::core::hint::black_box(#key);
            // Opaque predicate: x * x + x is even for every integer x.
            let __ts_x = __ts_k ^ #x;
            if __ts_x.wrapping_mul(__ts_x).wrapping_add(__ts_x) & 1 == 1 {
                ::std::process::abort();
            }
            #body
        }
    };
    quote!(#f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Expands `item` under `seed`.
    fn expand(item: TokenStream2, seed: u64) -> String {
        protect_impl(TokenStream2::new(), item, seed, false).to_string()
    }

    /// Dispatchers in an expansion.
    fn dispatchers(out: &str) -> usize {
        // Each has exactly one exit arm.
        out.matches("=> break '__ts_d").count()
    }

    /// Statements placed in dispatcher arms.
    fn arms(out: &str) -> usize {
        (0..64)
            .map(|d| out.matches(&format!("__ts_s{d} = ")).count())
            .sum()
    }

    fn sample() -> TokenStream2 {
        quote! {
            fn sample(xs: &[u32], limit: u32, out: &mut Vec<u32>) -> u64 {
                let mut sum = 0u64;
                let mut count = 0u32;
                for (i, &x) in xs.iter().enumerate() {
                    if x == limit {
                        break;
                    }
                    let mut y = x;
                    while y > 10 {
                        y /= 2;
                        count += 1;
                    }
                    sum += u64::from(y) * (i as u64 + 1);
                    out.push(y);
                    count += 1;
                }
                sum + u64::from(count)
            }
        }
    }

    #[test]
    fn flattens_runs_of_statements() {
        let out = expand(sample(), 1);
        assert!(syn::parse_str::<ItemFn>(&out).is_ok());
        assert_eq!(dispatchers(&out), 2, "{out}");
        // The `while`, its two statements, the `sum`, `push` and `count`
        // statements. The `for` (alone between `let`s and the tail) and the
        // `if` (alone before a `let`) stay straight: a dispatcher over one
        // statement hides no order and would cost every call or iteration.
        assert_eq!(arms(&out), 6, "{out}");
        assert!(out.contains("'__ts_l0 : for"), "{out}");
        assert!(out.contains("break '__ts_l0"), "{out}");
    }

    #[test]
    fn constants_stay_constant() {
        let out = expand(
            quote! {
                fn f(r: R) -> [u8; 4] {
                    r.array::<64>();
                    g::<{ 3 }>();
                    let _: [u8; 2] = [0; 2];
                    [1; 4]
                }
            },
            1,
        );
        for kept in [
            "array :: < 64 >",
            "g :: < { 3 } >",
            "[u8 ; 2]",
            "; 2]",
            "; 4]",
        ] {
            assert!(out.contains(kept), "{kept} in {out}");
        }
    }

    #[test]
    fn seeds_give_other_encodings_of_the_same_structure() {
        let (a, b) = (expand(sample(), 1), expand(sample(), 2));
        assert_ne!(a, b);
        assert_eq!(dispatchers(&a), dispatchers(&b));
        assert_eq!(arms(&a), arms(&b));
    }

    #[test]
    fn moves_and_lets_stay_in_straight_line_code() {
        let out = expand(
            quote! {
                fn f(v: Vec<u8>, s: String) -> usize {
                    consume(v);
                    let t = s;
                    consume(t);
                    0
                }
            },
            1,
        );
        assert_eq!(dispatchers(&out), 0, "{out}");
        let out = expand(
            quote! {
                fn g(v: &mut Vec<u8>) -> usize {
                    v.push(1);
                    v.push(2);
                    v.len()
                }
            },
            1,
        );
        assert_eq!((dispatchers(&out), arms(&out)), (1, 2), "{out}");
    }

    #[test]
    fn borrows_kept_over_the_back_edge_split_the_run() {
        let out = expand(
            quote! {
                fn h(regs: &mut [f64], inputs: &[f64]) {
                    let (ri, _) = regs.split_at_mut(inputs.len());
                    ri.fill(0.5);
                    ri.reverse();
                    regs[0] = 1.0;
                    regs[1] = 2.0;
                    regs[2] = 3.0;
                }
            },
            1,
        );
        // `ri` borrows `regs`: its statements get a dispatcher of their own
        // (the last statement of the body stays out).
        assert_eq!((dispatchers(&out), arms(&out)), (2, 4), "{out}");
    }

    #[test]
    fn refusals_name_the_construct() {
        let refusal =
            |item: TokenStream2| protect_impl(TokenStream2::new(), item, 1, false).to_string();
        assert!(
            refusal(quote!(
                async fn a() {}
            ))
            .contains("does not handle `async fn`")
        );
        assert!(
            refusal(quote!(
                const fn b() {}
            ))
            .contains("does not handle `const fn`")
        );
        assert!(
            refusal(quote!(
                fn c();
            ))
            .contains("applies to a function with a body")
        );
        assert!(
            refusal(quote!(
                fn d() {
                    let __ts_k = 1;
                }
            ))
            .contains("reserves identifiers")
        );
        // The passthrough build refuses the same.
        let out = protect_impl(
            TokenStream2::new(),
            quote!(
                async fn a() {}
            ),
            1,
            true,
        );
        assert!(out.to_string().contains("compile_error"));
    }

    /// `#[diversify]` on `item` under `seed`.
    fn diversified(item: TokenStream2, seed: u64) -> String {
        let mut state = seed;
        let mut next = move || {
            state = mix(state);
            state
        };
        diversify::expand(TokenStream2::new(), item, &mut next, false).to_string()
    }

    /// Guards in an expansion.
    fn guards(out: &str) -> usize {
        out.matches("let __ts_g : u64").count()
    }

    #[test]
    fn diversify_guards_bodies_closures_and_async_blocks() {
        for seed in 0..32 {
            let plain = diversified(
                quote!(
                    fn a(x: u32) -> u32 {
                        x + 1
                    }
                ),
                seed,
            );
            assert!((1..=2).contains(&guards(&plain)), "{plain}");
            let nested = diversified(
                quote!(
                    async fn b(xs: Vec<u32>) -> u32 {
                        let f = |x: u32| x + 1;
                        let g = async move { xs.len() };
                        f(g.await as u32)
                    }
                ),
                seed,
            );
            assert!((3..=6).contains(&guards(&nested)), "{nested}");
            assert!(syn::parse_str::<ItemFn>(&nested).is_ok());
        }
    }

    #[test]
    fn diversify_leaves_per_element_closures_alone() {
        for seed in 0..16 {
            let out = diversified(
                quote!(
                    fn f(xs: &[u32]) -> Vec<u32> {
                        xs.iter().map(|x| x + 1).filter(|x| x % 2 == 0).collect()
                    }
                ),
                seed,
            );
            assert!((1..=2).contains(&guards(&out)), "{out}");
            assert!(out.contains("map (| x | x + 1)"), "{out}");
            let out = diversified(
                quote!(
                    fn g(xs: &[Option<u32>]) -> u32 {
                        let mut s = 0;
                        for x in xs {
                            s += x.map_or(0, |v| v + 1);
                        }
                        s
                    }
                ),
                seed,
            );
            assert!((1..=2).contains(&guards(&out)), "{out}");
            assert!(out.contains("map_or (0 , | v | v + 1)"), "{out}");
        }
    }

    #[test]
    fn diversify_leaves_what_it_must_alone() {
        let out = diversified(
            quote!(
                impl T {
                    fn kept(&self) -> u32 { 1 }
                    #[inline]
                    fn inlined(&self) -> u32 { 2 }
                    #[protect]
                    fn protected(&self) -> u32 { 3 }
                    const fn constant() -> u32 { 4 }
                    #[test]
                    fn test() {}
                    #[inline(never)]
                    fn outlined(&self) -> u32 { 5 }
                }
            ),
            7,
        );
        let item: syn::ItemImpl = syn::parse_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        let counts: Vec<usize> = item
            .items
            .iter()
            .map(|i| guards(&quote!(#i).to_string()))
            .collect();
        assert!((1..=2).contains(&counts[0]), "{out}");
        assert_eq!(&counts[1..5], &[0, 0, 0, 0], "{out}");
        assert!((1..=2).contains(&counts[5]), "{out}");
    }

    #[test]
    fn diversify_differs_across_seeds_and_repeats_for_one() {
        let f = || {
            quote!(
                fn f(x: u64) -> u64 {
                    let y = x * 3;
                    let z = y ^ x;
                    z + 1
                }
            )
        };
        assert_eq!(diversified(f(), 1), diversified(f(), 1));
        let outs: HashSet<String> = (0..16).map(|s| diversified(f(), s)).collect();
        assert_eq!(outs.len(), 16);
    }

    #[test]
    fn diversify_refuses_arguments_and_other_items() {
        let mut next = || 1;
        let out = diversify::expand(
            quote!(x),
            quote!(
                fn f() {}
            ),
            &mut next,
            false,
        );
        assert!(out.to_string().contains("takes no arguments"));
        let out = diversify::expand(
            TokenStream2::new(),
            quote!(
                struct S;
            ),
            &mut next,
            false,
        );
        assert!(out.to_string().contains("applies to a function"));
        // The passthrough build changes nothing it accepts.
        let item = quote!(
            fn f(x: u32) -> u32 {
                x
            }
        );
        let out = diversify::expand(TokenStream2::new(), item.clone(), &mut next, true);
        assert_eq!(out.to_string(), item.to_string());
    }

    /// The guards' invariants, as the expansion computes them (wrapping
    /// arithmetic), hold for every value: checked on many.
    #[test]
    fn diversify_invariants_never_hold() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..200_000 {
            x = mix(x);
            let g = x;
            assert!(g.wrapping_mul(g).wrapping_add(g) & 1 != 1);
            let o = g | 1;
            assert!(o.wrapping_mul(o) & 7 == 1);
            let a = g & 0xffff;
            assert!(
                a.wrapping_mul(a)
                    .wrapping_mul(a)
                    .wrapping_sub(a)
                    .wrapping_rem(3)
                    == 0
            );
            let (y, z) = (g >> 44, g & 0xf_ffff);
            assert!(y.wrapping_mul(y).wrapping_mul(7) != z.wrapping_mul(z).wrapping_add(1));
            let m = mix(g);
            let (p, q) = (g & 0xffff_ffff, (g >> 32) ^ (m & 0xffff_ffff));
            assert!(p.wrapping_mul(p).wrapping_add(q.wrapping_mul(q)) & 3 != 3);
        }
    }
}
