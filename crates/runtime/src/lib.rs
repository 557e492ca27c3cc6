//! The application layer of twinshield: a [`Session`] wires a plant
//! source, a model, a [`Twin`](twinshield_twin::Twin) and, where a host
//! asks for them, a history [`Recorder`], a [`BackendLink`], an API feed
//! and the shield's verdict. `run`, `demo` and `eval` build sessions (or,
//! for `eval`, the same wiring in one process) and differ only in their
//! sources and clocks.
//!
//! The shield reaches a session as one [`ShieldHandle`]; one [`Gate`] over
//! its verdict refuses writes and key use while the twin is degraded, and
//! the recorder, the backend link and the API services ask it.
//!
//! ```
//! use twinshield_runtime::{Gate, wiring};
//!
//! let model = wiring::quadtank().unwrap();
//! let map = wiring::modbus_map(&model).unwrap();
//! assert_eq!(map.points().len(), model.inputs.len() + model.outputs.len());
//! assert!(Gate::unshielded().allows_writes());
//! ```
#![forbid(unsafe_code)]

pub mod api;
pub mod backend_host;
pub mod backend_link;
pub mod demo;
pub mod device;
mod error_line;
pub mod eval;
pub mod executor;
pub mod export;
pub mod gate;
pub mod history_verify;
pub mod host;
pub mod plant_host;
pub mod recorder;
pub mod run;
pub mod session;
pub mod simulate;
pub mod summary;
pub mod wiring;

pub use backend_link::BackendLink;
pub use error_line::error_line;
pub use gate::{Gate, Refused, ShieldHandle, Verdict};
pub use recorder::Recorder;
pub use session::{
    Progress, ProgressClock, SampleTime, Session, SessionObserver, SessionOutcome, SteppedSession,
};
pub use wiring::{Wiring, WiringError};
