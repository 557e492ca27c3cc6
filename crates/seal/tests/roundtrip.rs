//! Seal and open round-trip, and what opening refuses, at library level.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use proptest::prelude::*;
use twinshield_model::Model;
use twinshield_seal::{
    DeviceFp, DeviceIdentity, EmbeddedSecret, PublisherKey, SealError, SealRequest, inspect, open,
    seal,
};
use zeroize::Zeroizing;

fn model() -> Model {
    Model::parse("q", include_str!("../../../models/quadtank.twin")).unwrap()
}

fn identity(name: &str) -> DeviceIdentity {
    let dir = std::env::temp_dir().join(format!("twinshield-seal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    DeviceIdentity::open_or_create(&dir, &EmbeddedSecret)
        .unwrap()
        .0
}

#[test]
fn sealed_models_open_identically_with_their_secrets() {
    let m = model();
    let id = identity("rt");
    let publisher = PublisherKey::generate().unwrap();
    let secrets = vec![("historian".to_owned(), Zeroizing::new(b"s3cret".to_vec()))];
    let bundle = seal(&SealRequest {
        model: &m,
        devices: &[id.fingerprint().clone()],
        publisher: &publisher,
        release: 3,
        secrets: &secrets,
        shield_policy: None,
        backend: None,
        backend_ca: None,
    })
    .unwrap();
    let opened = open(&bundle, &publisher.public(), &id).unwrap();
    // The bundle's own encoding reorders independent instructions.
    assert!(
        opened
            .model
            .derivative_program()
            .same_up_to_order(m.derivative_program())
    );
    assert!(
        opened
            .model
            .output_program()
            .same_up_to_order(m.output_program())
    );
    assert_eq!(opened.model.states, m.states);
    assert_eq!(opened.model.outputs, m.outputs);
    assert_eq!(opened.model.modbus, m.modbus);
    assert_eq!(opened.model.detect, m.detect);
    assert_eq!(opened.model.estimator, m.estimator);
    assert!(
        opened.model.params.is_empty(),
        "parameter names do not travel"
    );
    assert_eq!(opened.secrets.len(), 1);
    assert_eq!(opened.secrets[0].1.as_slice(), b"s3cret");
    let h = inspect(&bundle).unwrap();
    assert_eq!((h.model_name.as_str(), h.release), ("quadtank", 3));
    // Two seals of the same model differ throughout (fresh keys, nonces and
    // bytecode encoding).
    let again = seal(&SealRequest {
        model: &m,
        devices: &[id.fingerprint().clone()],
        publisher: &publisher,
        release: 3,
        secrets: &secrets,
        shield_policy: None,
        backend: None,
        backend_ca: None,
    })
    .unwrap();
    assert_ne!(bundle, again);
}

#[test]
fn device_fp_round_trips_and_refuses_tampering() {
    let id = identity("fp");
    let bytes = id.device_fp_bytes();
    assert_eq!(&DeviceFp::decode(&bytes).unwrap(), id.fingerprint());
    let mut bad = bytes.clone();
    bad[10] ^= 1;
    assert!(DeviceFp::decode(&bad).is_err());
    assert!(DeviceFp::decode(&bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn a_bundle_for_another_device_is_not_licensed_here() {
    let m = model();
    let a = identity("a");
    let b = identity("b");
    let publisher = PublisherKey::generate().unwrap();
    let bundle = seal(&SealRequest {
        model: &m,
        devices: &[b.fingerprint().clone()],
        publisher: &publisher,
        release: 1,
        secrets: &[],
        shield_policy: None,
        backend: None,
        backend_ca: None,
    })
    .unwrap();
    assert!(matches!(
        open(&bundle, &publisher.public(), &a),
        Err(SealError::NotLicensed)
    ));
}

#[test]
fn the_backend_url_and_policy_are_optional_trailing_fields() {
    let m = model();
    let id = identity("backend");
    let publisher = PublisherKey::generate().unwrap();
    let sealed = |policy: Option<&str>, backend: Option<&str>| {
        let bundle = seal(&SealRequest {
            model: &m,
            devices: &[id.fingerprint().clone()],
            publisher: &publisher,
            release: 1,
            secrets: &[],
            shield_policy: policy,
            backend,
            backend_ca: None,
        })
        .unwrap();
        let o = open(&bundle, &publisher.public(), &id).unwrap();
        (o.shield_policy, o.backend)
    };
    let url = "http://127.0.0.1:8088";
    assert_eq!(sealed(None, None), (None, None));
    assert_eq!(sealed(None, Some(url)), (None, Some(url.to_owned())));
    assert_eq!(
        sealed(Some("hook=degrade"), Some(url)),
        (Some("hook=degrade".to_owned()), Some(url.to_owned()))
    );
    assert_eq!(
        sealed(Some("hook=degrade"), None),
        (Some("hook=degrade".to_owned()), None)
    );
}

/// The backend's pinned trust anchors follow its URL, and need one.
#[test]
fn the_backend_trust_anchors_are_sealed_after_the_url() {
    let m = model();
    let id = identity("backend-ca");
    let publisher = PublisherKey::generate().unwrap();
    let request = |backend, backend_ca| SealRequest {
        model: &m,
        devices: std::slice::from_ref(id.fingerprint()),
        publisher: &publisher,
        release: 1,
        secrets: &[],
        shield_policy: None,
        backend,
        backend_ca,
    };
    let pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let url = "https://historian.example:8443";
    let bundle = seal(&request(Some(url), Some(pem))).unwrap();
    let o = open(&bundle, &publisher.public(), &id).unwrap();
    assert_eq!(o.backend.as_deref(), Some(url));
    assert_eq!(o.backend_ca.as_deref(), Some(&pem[..]));
    let bundle = seal(&request(Some(url), None)).unwrap();
    assert_eq!(
        open(&bundle, &publisher.public(), &id).unwrap().backend_ca,
        None
    );
    assert!(seal(&request(None, Some(pem))).is_err());
}

/// The device signs with the key its device.fp publishes.
#[test]
fn the_device_signature_verifies_with_the_published_key() {
    let id = identity("sign");
    let sig = id.sign(b"POST /v1/messages");
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&id.fingerprint().signing_public()).unwrap();
    let sig = ed25519_dalek::Signature::from_bytes(&sig);
    assert!(vk.verify_strict(b"POST /v1/messages", &sig).is_ok());
    assert!(vk.verify_strict(b"POST /v1/other", &sig).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Any single-byte change anywhere is refused.
    #[test]
    fn any_changed_byte_is_refused(pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let m = model();
        let id = identity("prop");
        let publisher = PublisherKey::generate().unwrap();
        let bundle = seal(&SealRequest {
            model: &m,
            devices: &[id.fingerprint().clone()],
            publisher: &publisher,
            release: 1,
            secrets: &[],
            shield_policy: None,
            backend: None,
            backend_ca: None,
        }).unwrap();
        let mut bad = bundle.clone();
        let i = pos.index(bad.len());
        bad[i] ^= flip;
        prop_assert!(open(&bad, &publisher.public(), &id).is_err());
    }

    /// Arbitrary bytes never panic the parsers, which refuse them: neither
    /// starts with the format's magic by chance, let alone carries a valid
    /// signature.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        prop_assert!(inspect(&bytes).is_err());
        prop_assert!(DeviceFp::decode(&bytes).is_err());
    }
}

#[test]
fn release_counters_that_cannot_be_read_are_an_error_not_a_reset() {
    let id = identity("releases");
    let state =
        std::env::temp_dir().join(format!("twinshield-seal-releases-{}", std::process::id()));
    id.check_and_record_release("plant", 5).unwrap();
    assert!(matches!(
        id.check_and_record_release("plant", 4),
        Err(SealError::Rollback {
            release: 4,
            highest: 5
        })
    ));
    // A directory where the counters file should be: unreadable, not absent.
    let counters = state.join("releases.bin");
    std::fs::remove_file(&counters).unwrap();
    std::fs::create_dir(&counters).unwrap();
    let e = id.check_and_record_release("plant", 1).unwrap_err();
    assert!(matches!(e, SealError::Io { .. }), "{e:?}");
    assert!(std::error::Error::source(&e).is_some());
    // Without the file, the counters start afresh.
    std::fs::remove_dir(&counters).unwrap();
    id.check_and_record_release("plant", 1).unwrap();
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn a_state_directory_without_identity_says_so() {
    let dir = std::env::temp_dir().join(format!("twinshield-seal-none-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let e = DeviceIdentity::open(&dir, &EmbeddedSecret).unwrap_err();
    assert!(matches!(&e, SealError::NoIdentity(p) if *p == dir), "{e:?}");
    assert!(e.to_string().starts_with("no device identity in "));
}
