//! `whitebox-trace`: writes software traces of a white-box for outside
//! side-channel toolkits. Built only with the `trace` feature (attack
//! harness; never shipped).
//!
//! ```text
//! whitebox-trace --key HEX32 --traces N --seed S --out DIR [--textbook [--no-mixing]]
//! ```
//!
//! Writes `DIR/traces.npy` (N × samples, uint8: every table value read, one
//! byte per read), `DIR/plaintexts.npy` and `DIR/ciphertexts.npy` (N × 16,
//! uint8: the cipher's real input and output). The plaintexts are random,
//! drawn from `S` (ChaCha8), which also seeds the table generation.
//!
//! Without `--textbook` it traces twinshield's white-box generated for the
//! key (its external output encoding keyed from `S`; the ciphertexts are
//! decoded). `--textbook` traces the deliberately weak Chow fixture
//! (`--no-mixing` drops its mixing bijections).
#![allow(clippy::print_stderr)]

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use twinshield_shield_macros::diversify;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinshield_whitebox::Trace;
use twinshield_whitebox::generate::generate;
use twinshield_whitebox::npy::{NpyError, write_u8_matrix};
use twinshield_whitebox::textbook::{self, Options, TextbookWhiteBox};
use twinshield_whitebox::{OutputEncoding, WhiteBox, cipher};

const USAGE: &str =
    "usage: whitebox-trace --key HEX32 --traces N --seed S --out DIR [--textbook [--no-mixing]]";

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{0} ({USAGE})")]
    Usage(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Npy { path: PathBuf, source: NpyError },
}

struct Args {
    key: [u8; 16],
    traces: usize,
    seed: u64,
    out: PathBuf,
    textbook: bool,
    mixing_bijections: bool,
}

#[diversify]
fn parse_key(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut key = [0u8; 16];
    for (k, pair) in key.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *k = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(key)
}

#[diversify]
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, Error> {
    let usage = |m: &str| Error::Usage(m.to_owned());
    let (mut key, mut traces, mut seed, mut out) = (None, None, None, None);
    let (mut textbook, mut mixing_bijections) = (false, true);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--key" => {
                key = Some(parse_key(&value()?).ok_or_else(|| usage("--key takes 32 hex digits"))?)
            }
            "--traces" => {
                traces = Some(
                    value()?
                        .parse()
                        .map_err(|_| usage("--traces takes a count"))?,
                );
            }
            "--seed" => {
                seed = Some(
                    value()?
                        .parse()
                        .map_err(|_| usage("--seed takes an integer"))?,
                )
            }
            "--out" => out = Some(PathBuf::from(value()?)),
            "--textbook" => textbook = true,
            "--no-mixing" => mixing_bijections = false,
            other => return Err(usage(&format!("unknown argument {other}"))),
        }
    }
    Ok(Args {
        key: key.ok_or_else(|| usage("--key is required"))?,
        traces: traces.ok_or_else(|| usage("--traces is required"))?,
        seed: seed.ok_or_else(|| usage("--seed is required"))?,
        out: out.ok_or_else(|| usage("--out is required"))?,
        textbook,
        mixing_bijections,
    })
}

#[diversify]
fn write_npy(path: PathBuf, rows: usize, cols: usize, data: &[u8]) -> Result<(), Error> {
    let file = File::create(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let mut out = BufWriter::new(file);
    let written = write_u8_matrix(&mut out, rows, cols, data)
        .and_then(|()| out.flush().map_err(NpyError::from));
    written.map_err(|source| Error::Npy { path, source })
}

/// The white-box being traced: encrypts a block into the trace, returning
/// the real (decoded) ciphertext.
type Tracer<'a> = Box<dyn FnMut(&[u8; 16], &mut Trace) -> [u8; 16] + 'a>;

#[diversify]
fn run(args: Args) -> Result<(), Error> {
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let image;
    let hardened;
    let (mut encrypt, trace_len): (Tracer, usize) = if args.textbook {
        let options = Options {
            mixing_bijections: args.mixing_bijections,
        };
        let wb = TextbookWhiteBox::generate_with(&args.key, rng.random(), options);
        (
            Box::new(move |p, t| wb.encrypt_traced(p, t)),
            textbook::TRACE_LEN,
        )
    } else {
        let encoding_key: [u8; 16] = rng.random();
        image = generate(&args.key, &encoding_key, rng.random());
        hardened = WhiteBox::new(&image).map_err(|e| Error::Usage(e.to_string()))?;
        let decoding = OutputEncoding::from_key(&encoding_key);
        let wb = &hardened;
        (
            Box::new(move |p, t| decoding.decode(&wb.encrypt_traced(p, t))),
            cipher::TRACE_LEN,
        )
    };
    let n = args.traces;
    let mut traces = Vec::with_capacity(n.saturating_mul(trace_len));
    let mut plaintexts = Vec::with_capacity(n.saturating_mul(16));
    let mut ciphertexts = Vec::with_capacity(n.saturating_mul(16));
    let mut trace = Trace::new();
    for _ in 0..n {
        let p: [u8; 16] = rng.random();
        let c = encrypt(&p, &mut trace);
        traces.extend_from_slice(trace.as_slice());
        trace.clear();
        plaintexts.extend_from_slice(&p);
        ciphertexts.extend_from_slice(&c);
    }
    fs::create_dir_all(&args.out).map_err(|source| Error::Io {
        path: args.out.clone(),
        source,
    })?;
    write_npy(args.out.join("traces.npy"), n, trace_len, &traces)?;
    write_npy(args.out.join("plaintexts.npy"), n, 16, &plaintexts)?;
    write_npy(args.out.join("ciphertexts.npy"), n, 16, &ciphertexts)?;
    Ok(())
}

#[diversify]
fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)).and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
