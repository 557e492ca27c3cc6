//! The expression parser on arbitrary text: it returns a tree or a located
//! error, never panics, and any tree it returns is within the depth limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinshield_model::expr;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match expr::parse(text) {
        Ok(e) => assert!(e.depth() <= expr::MAX_DEPTH),
        Err(d) => assert!(d.span.start <= d.span.end && d.span.end <= text.len()),
    }
});
