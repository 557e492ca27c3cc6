//! One module per command group.

pub mod model;
pub mod plant;
