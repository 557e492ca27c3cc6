//! The twin model: the `.twin` language (parse, check, compile), the register
//! VM that runs compiled models, fixed-step RK4 integration, and the extended
//! Kalman filter that keeps the twin in step with the plant.
//!
//! This crate knows nothing of I/O or cryptography: it turns text into a
//! [`Model`] and numbers into numbers.
//!
//! ```
//! let src = r#"
//! [twin]
//! name = "decay"
//! version = "1"
//! step = 0.01
//! [inputs]
//! [states.x]
//! init = 1.0
//! range = [0.0, 2.0]
//! der = "-x"
//! [outputs.y]
//! expr = "x"
//! noise = 0.01
//! "#;
//! let model = twinshield_model::Model::parse("decay.twin", src).expect("valid model");
//! let mut sim = twinshield_model::Simulator::new(&model);
//! sim.advance(&[], 1.0).expect("finite");
//! assert!((sim.states()[0] - (-1.0f64).exp()).abs() < 1e-9);
//! ```
#![forbid(unsafe_code)]

pub mod bytecode;
mod compile;
mod constants;
mod diag;
mod doc;
pub mod ekf;
pub mod expr;
mod linalg;
mod model;
mod payload;
mod rk4;
pub mod spec;
pub mod vm;

pub use diag::{Diagnostic, Report, Span, line_col};
pub use ekf::{Ekf, EkfError, Innovation};
pub use model::{MAX_CHANNELS, MAX_SOURCE_LEN, Model};
pub use payload::PayloadError;
pub use rk4::{SimError, Simulator};
