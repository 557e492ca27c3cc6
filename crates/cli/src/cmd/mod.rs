//! One module per command group.

pub mod eval;
pub mod model;
pub mod plant;
