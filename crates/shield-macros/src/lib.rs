//! twinshield's obfuscation macros.
//!
//! - `obf!("text")`: the literal is stored encrypted with a key of its own
//!   (derived from the build seed, the literal and the site) and decrypted
//!   at use into a buffer that zeroizes on drop; the plain text is nowhere
//!   in the binary. The expansion calls `twinshield_shield::obf::reveal`, so
//!   a crate that uses it depends on `twinshield-shield` too.
//! - `obf_bytes!(b"bytes")`: the same for byte strings (labels, markers).
//! - `build_seed!()`: the seed these macros were keyed with, as a `u64`.
//! - `#[protect]` on a function: every integer literal in its body becomes
//!   a mixed boolean-arithmetic expression over a value the optimiser cannot
//!   see through (`(a ^ b) + ((a & b) << 1)` with `a` behind `black_box`,
//!   `a + b` the literal), and the body starts with an opaque predicate (a
//!   number-theoretic invariant, `x * x + x` is even, over a black-boxed
//!   seed-drawn `x`) guarding a bogus path. Different seeds give different
//!   splits and predicates at every site.
//!
//!   The subset it handles: any non-`async`, non-`const` function; literals
//!   in patterns, array lengths, nested items and macro arguments are left
//!   as they are (they must stay constants, or the macro cannot see them).
//!   `async fn` and `const fn` get a compile error. Control-flow flattening
//!   is not done yet.
//!
//! The seed is `TWINSHIELD_SEED` at build time, or a random one; the same
//! seed gives the same expansion (reproducible builds), another seed other
//! bytes at every site.

use std::sync::atomic::{AtomicU64, Ordering};

use proc_macro::TokenStream;
use quote::quote;
use syn::visit_mut::VisitMut;
use syn::{Expr, ExprLit, ItemFn, Lit, LitByteStr, LitStr, parse_macro_input, parse_quote};

/// The seed the build script resolved.
const SEED: &str = env!("TWINSHIELD_MACRO_SEED");

/// Sites expanded so far in this compilation: two sites with the same
/// literal still get different keys.
static SITES: AtomicU64 = AtomicU64::new(0);

fn seed() -> u64 {
    SEED.parse().unwrap_or(0)
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The key of one site: the seed, the literal, the site's number.
fn site_key(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    let site = SITES.fetch_add(1, Ordering::Relaxed);
    mix(seed() ^ mix(h) ^ site.rotate_left(32)) | 1
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
    let seed = seed();
    quote!(#seed).into()
}

/// Rewrites the integer literals of a body (see the crate documentation).
struct Literals {
    state: u64,
}

impl Literals {
    fn next(&mut self) -> u64 {
        self.state = mix(self.state);
        self.state
    }
}

impl VisitMut for Literals {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        if let Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) = e
            && let Ok(c) = int.base10_parse::<u64>()
        {
            // a + b = c with no overflow in any step for c's own type.
            let a = if c == 0 { 0 } else { self.next() % (c + 1) };
            let b = c - a;
            let suffix = int.suffix().to_owned();
            let lit =
                |v: u64| -> syn::LitInt { syn::LitInt::new(&format!("{v}{suffix}"), int.span()) };
            let (la, lb) = (lit(a), lit(b));
            *e = parse_quote! {
                {
                    let __a = ::core::hint::black_box(#la);
                    (__a ^ #lb) + ((__a & #lb) << 1)
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

    // Nested items (consts, statics, fns) are not this function's body.
    fn visit_item_mut(&mut self, _item: &mut syn::Item) {}
}

/// `#[protect]`: MBA literals and an opaque predicate (see the crate
/// documentation for what it handles).
#[proc_macro_attribute]
pub fn protect(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[protect] takes no arguments",
        )
        .to_compile_error()
        .into();
    }
    if cfg!(feature = "passthrough") {
        return item;
    }
    let mut f = parse_macro_input!(item as ItemFn);
    if f.sig.asyncness.is_some() || f.sig.constness.is_some() {
        return syn::Error::new_spanned(
            &f.sig.ident,
            "#[protect] handles neither async fn nor const fn",
        )
        .to_compile_error()
        .into();
    }
    let mut name = f.sig.ident.to_string().into_bytes();
    name.extend_from_slice(b"#protect");
    let mut literals = Literals {
        state: site_key(&name),
    };
    literals.visit_block_mut(&mut f.block);
    let x = literals.next();
    let body = &f.block;
    *f.block = parse_quote! {
        {
            // Opaque predicate: x * x + x is even for every integer x.
            let __x = ::core::hint::black_box(#x);
            if __x.wrapping_mul(__x).wrapping_add(__x) & 1 == 1 {
                ::std::process::abort();
            }
            #body
        }
    };
    quote!(#f).into()
}
