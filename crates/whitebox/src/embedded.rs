//! This build's white-box: the tables build.rs generated for the runtime's
//! embedded secret and the build seed.

use std::sync::LazyLock;

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

/// The table image; its type checks its length at compile time.
static TABLES: &[u8; layout::TOTAL] = include_bytes!(concat!(env!("OUT_DIR"), "/whitebox.tables"));

static EMBEDDED: LazyLock<WhiteBox<'static>> = LazyLock::new(|| WhiteBox::from_image(TABLES));

/// The white-box of this build.
#[must_use]
pub fn white_box() -> &'static WhiteBox<'static> {
    &EMBEDDED
}

/// The table image of this build (for the size and diversity checks).
#[must_use]
pub fn table_image() -> &'static [u8] {
    TABLES
}
