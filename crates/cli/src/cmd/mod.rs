//! One module per command group.

pub mod backend;
pub mod demo;
pub mod eval;
pub mod harden;
pub mod model;
pub mod plant;
pub mod sealing;
pub mod token;
