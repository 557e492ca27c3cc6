//! The `whitebox-trace` binary: writes NPY files an outside toolkit can read,
//! whose ciphertexts are AES of the plaintexts under the key.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::process::Command;

use twinshield_whitebox::{aes_ref, cipher, textbook};

/// Parses a 2-D uint8 NPY v1.0 file: (rows, cols, data).
fn read_npy(path: &std::path::Path) -> (usize, usize, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    assert!(header.contains("'descr': '|u1'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape = header.split("'shape': (").nth(1).unwrap();
    let shape = &shape[..shape.find(')').unwrap()];
    let dims: Vec<usize> = shape
        .split(',')
        .map(|d| d.trim().parse().unwrap())
        .collect();
    let data = bytes[10 + len..].to_vec();
    assert_eq!(data.len(), dims[0] * dims[1]);
    (dims[0], dims[1], data)
}

#[test]
fn writes_traces_plaintexts_and_ciphertexts_of_the_textbook_fixture() {
    writes_traces_plaintexts_and_ciphertexts(&["--textbook"], textbook::TRACE_LEN);
}

#[test]
fn writes_traces_plaintexts_and_ciphertexts_of_the_hardened_white_box() {
    writes_traces_plaintexts_and_ciphertexts(&[], cipher::TRACE_LEN);
}

fn writes_traces_plaintexts_and_ciphertexts(extra: &[&str], trace_len: usize) {
    let dir = std::env::temp_dir().join(format!(
        "whitebox-trace-test-{}-{}",
        std::process::id(),
        extra.len()
    ));
    let key_hex = "2b7e151628aed2a6abf7158809cf4f3c";
    let status = Command::new(env!("CARGO_BIN_EXE_whitebox-trace"))
        .args(["--key", key_hex, "--traces", "20", "--seed", "7"])
        .args(extra)
        .arg("--out")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let (n, samples, traces) = read_npy(&dir.join("traces.npy"));
    assert_eq!((n, samples), (20, trace_len));
    assert!(traces.iter().any(|&x| x != 0));
    let (_, _, pts) = read_npy(&dir.join("plaintexts.npy"));
    let (rows, cols, cts) = read_npy(&dir.join("ciphertexts.npy"));
    assert_eq!((rows, cols), (20, 16));
    let key: [u8; 16] =
        std::array::from_fn(|i| u8::from_str_radix(&key_hex[2 * i..2 * i + 2], 16).unwrap());
    for (p, c) in pts.chunks_exact(16).zip(cts.chunks_exact(16)) {
        assert_eq!(aes_ref::encrypt(&key, p.try_into().unwrap()).as_slice(), c);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn refuses_bad_arguments() {
    let bin = env!("CARGO_BIN_EXE_whitebox-trace");
    let dir = std::env::temp_dir().join("whitebox-trace-never-written");
    for args in [
        vec![
            "--key",
            "00",
            "--traces",
            "1",
            "--seed",
            "1",
            "--textbook",
            "--out",
        ],
        vec!["--traces", "1", "--seed", "1", "--textbook", "--out"],
        vec![
            "--key",
            "000102030405060708090a0b0c0d0e0f",
            "--traces",
            "1",
            "--seed",
            "x",
            "--out",
        ],
    ] {
        let output = Command::new(bin).args(&args).arg(&dir).output().unwrap();
        assert!(!output.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).starts_with("error: "));
    }
    assert!(!dir.exists());
}
