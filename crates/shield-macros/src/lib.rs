//! twinshield's obfuscation macros.
//!
//! - `obf!("text")`: the literal is stored encrypted with a key of its own
//!   (derived from the build seed, the literal and the site) and decrypted
//!   at use into a buffer that zeroizes on drop; the plain text is nowhere
//!   in the binary. The expansion calls `twinshield_shield::obf::reveal`, so
//!   a crate that uses it depends on `twinshield-shield` too.
//! - `obf_bytes!(b"bytes")`: the same for byte strings (labels, markers).
//! - `build_seed!()`: the seed these macros were keyed with, as a `u64`.
//!
//! The seed is `TWINSHIELD_SEED` at build time, or a random one; the same
//! seed gives the same expansion (reproducible builds), another seed other
//! bytes at every site.

use std::sync::atomic::{AtomicU64, Ordering};

use proc_macro::TokenStream;
use quote::quote;
use syn::{LitByteStr, LitStr, parse_macro_input};

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
