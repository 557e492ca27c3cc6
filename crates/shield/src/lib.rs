//! twinshield's runtime shield.
//!
//! A twin that can be patched or run under a debugger hides the attack it
//! should report and hands over its keys. The shield makes the running
//! binary notice and respond:
//!
//! - [`mod@harden`] (the `twinshield harden` command) seals a built binary:
//!   keyed checksums over many overlapping regions of its code and
//!   read-only data, written encoded into a [`guard`] table reserved in the
//!   binary and signed with the [`release`] key, which stays on the build
//!   machine;
//! - [`guard`] checks the running code against that table, from many
//!   places (start-up, the bundle path, the sync loop, request handlers, a
//!   monitor thread), each its own inlined copy of the check;
//! - [`probe`] looks for tracers, hooks, instrumentation and a weak
//!   environment, and makes the process non-dumpable; [`raw`] holds the
//!   ptrace self-check;
//! - [`policy`] decides, per [`FindingClass`], whether to report, degrade
//!   or lock down; [`Shield`] carries it out.
//!
//! What it does not stop: a kernel-level attacker, or hardware-assisted
//! split instruction and data views (a tampered instruction stream that
//! reads back clean). See the README's honest limits.
//!
//! A response policy names the classes it changes; the others keep the
//! release default:
//!
//! ```
//! use twinshield_shield::{Action, FindingClass, Policy, PolicyError};
//!
//! let policy: Policy = "timing=degrade, environment=lockdown".parse()?;
//! assert_eq!(policy.action(FindingClass::Timing), Action::Degrade);
//! assert_eq!(policy.action(FindingClass::Environment), Action::Lockdown);
//! assert_eq!(policy.action(FindingClass::Debugger), Action::Lockdown);
//! assert_eq!(policy.to_string().parse::<Policy>()?, policy);
//! assert!(matches!("tamper=ignore".parse::<Policy>(), Err(PolicyError::Action(_))));
//! # Ok::<(), PolicyError>(())
//! ```

// `obf!` expands to `::twinshield_shield::...`: let that path work here too.
extern crate self as twinshield_shield;

pub mod elf;
pub mod finding;
pub mod guard;
pub mod guardian;
pub mod harden;
pub mod loader;
pub mod monitor;
pub mod obf;
pub mod policy;
pub mod probe;
pub mod raw;
pub mod release;
mod sys;
pub mod watchdog;

pub use finding::{Finding, FindingClass};
pub use harden::{HardenError, HardenReport, harden};
pub use monitor::{Checkpoint, LOCKDOWN_EXIT_CODE, Options, Responder, Shield, StartError};
pub use policy::{Action, Policy, PolicyError};
pub use release::{ReleaseKey, ReleaseKeyError};
pub use twinshield_shield_macros::{build_seed, obf_bytes, protect};

// `obf!`'s example lives on this re-export: a proc-macro crate cannot run
// doctests of its own macros, and the expansion needs this crate anyway.
/// A round trip: the literal is stored encrypted and comes back whole, in a
/// buffer that zeroizes on drop.
///
/// ```
/// let token = twinshield_shield::obf!("historian-token");
/// assert_eq!(&*token, "historian-token");
/// assert_eq!(token.bytes(), b"historian-token");
/// ```
pub use twinshield_shield_macros::obf;
