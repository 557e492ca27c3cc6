//! The dashboard's assets, embedded so the page works with no internet
//! and cannot be swapped on disk.

/// `index.html`.
pub const INDEX: &str = include_str!("../assets/index.html");
/// `app.js`.
pub const SCRIPT: &str = include_str!("../assets/app.js");
/// `app.css`.
pub const STYLE: &str = include_str!("../assets/app.css");
