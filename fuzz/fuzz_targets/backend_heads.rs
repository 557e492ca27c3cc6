//! Signed history heads as hostile input drives them: a heads list as a
//! backend or an operator's file hands it to `history verify`, and one
//! head as a summary carries it to the receiver. Never a panic; a head
//! that decodes keeps its seq, and a list verifies whole or not at all.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinshield_backend::{HeadList, SignedHead};

/// A valid Ed25519 public key (the base point), so verification runs to
/// the signature check.
const PUBLIC: [u8; 32] = {
    let mut k = [0x66; 32];
    k[0] = 0x58;
    k
};

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = serde_json::from_slice::<HeadList>(data) {
        if let Ok(heads) = list.verify(&list.device, &PUBLIC) {
            assert_eq!(heads.len(), list.heads.len());
        }
        for h in &list.heads {
            if let Ok(head) = h.head() {
                assert_eq!(head.seq, h.seq);
                assert!(head.time.is_finite());
            }
        }
    }
    if let Ok(h) = serde_json::from_slice::<SignedHead>(data) {
        let _ = h.verify(&PUBLIC);
    }
});
