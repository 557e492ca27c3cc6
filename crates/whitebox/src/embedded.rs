//! This build's white-box: the tables build.rs generated for the runtime's
//! embedded secret and the build seed.

use std::hint::black_box;
use std::sync::LazyLock;
use twinshield_shield_macros::diversify;

use crate::cipher::WhiteBox;
use crate::layout;

/// Where a build's white-box secret came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// `TWINSHIELD_WB_SECRET` at build time.
    Environment,
    /// The file named by `TWINSHIELD_WB_SECRET_FILE` at build time.
    File,
    /// The public development secret: fine for development and tests,
    /// refused for a release.
    Development,
}

include!(concat!(env!("OUT_DIR"), "/whitebox_build.rs"));

/// The development tag, XOR [`TAG_MASK`] (see [`development_tag`]).
const MASKED_TAG: [u8; 16] = [
    0x3c, 0x91, 0xe5, 0x07, 0x6a, 0xd8, 0x42, 0xbf, 0x19, 0x74, 0xc3, 0x2d, 0x88, 0x5e, 0xf0, 0x61,
];
const TAG_MASK: u8 = 0xa7;

const fn unmasked_tag() -> [u8; 16] {
    let mut t = MASKED_TAG;
    let mut i = 0;
    while i < t.len() {
        t[i] ^= TAG_MASK;
        i += 1;
    }
    t
}

/// In a build with the development secret, the development tag, so that
/// `harden` can tell such a build from its file; zeros otherwise.
static BUILD_TAG: [u8; 16] = if matches!(SECRET_SOURCE, SecretSource::Development) {
    unmasked_tag()
} else {
    [0; 16]
};

/// The tag a development-secret build carries (derived at run time, so the
/// tag itself is only in such builds).
#[must_use]
#[diversify]
pub fn development_tag() -> [u8; 16] {
    let mask = black_box(TAG_MASK);
    MASKED_TAG.map(|b| b ^ mask)
}

/// Whether the binary image `file` was built with the public development
/// secret (what `harden` refuses).
#[must_use]
#[diversify]
pub fn built_with_development_secret(file: &[u8]) -> bool {
    let tag = development_tag();
    file.windows(tag.len()).any(|w| w == tag)
}

/// Whether this running build embeds the development secret.
#[must_use]
#[diversify]
pub fn running_with_development_secret() -> bool {
    black_box(&BUILD_TAG) != &[0u8; 16]
}

/// The table image; its type checks its length at compile time.
static TABLES: &[u8; layout::TOTAL] = include_bytes!(concat!(env!("OUT_DIR"), "/whitebox.tables"));

static EMBEDDED: LazyLock<WhiteBox<'static>> = LazyLock::new(|| WhiteBox::from_image(TABLES));

/// The white-box of this build.
#[must_use]
#[diversify]
pub fn white_box() -> &'static WhiteBox<'static> {
    &EMBEDDED
}

/// The table image of this build (for the size and diversity checks).
#[must_use]
#[diversify]
pub fn table_image() -> &'static [u8] {
    TABLES
}
