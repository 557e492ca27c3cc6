//! The receiver's header parsers as a hostile client drives them:
//! `Signature-Input`, `Signature` and `Content-Digest` (RFC 8941
//! structured fields, RFC 9421, RFC 9530). Never a panic; what parses
//! re-serializes to a field that parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinshield_backend::httpsig::{parse_content_digest, parse_signature_headers};
use twinshield_backend::sf::{Member, parse_dictionary, serialize_inner_list};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (first, second) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(dict) = parse_dictionary(first) {
        assert!(dict.len() <= twinshield_backend::sf::MAX_MEMBERS);
        for (_, member) in &dict {
            if let Member::InnerList(items, params) = member {
                let inner = serialize_inner_list(items, params).expect("a parsed inner list serializes");
                let again = format!("k={inner}");
                let parsed = parse_dictionary(&again).expect("a serialized inner list parses");
                assert_eq!(parsed.first().map(|(_, m)| m), Some(member));
            }
        }
    }
    let _ = parse_content_digest(first);
    if let Ok(p) = parse_signature_headers(first, second) {
        assert_eq!(p.params.keyid.len(), 16);
        assert_eq!(p.components.len(), 3);
    }
});
