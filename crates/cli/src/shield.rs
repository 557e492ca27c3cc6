//! This process's shield: started once in `main`, handed to sessions as a [`ShieldHandle`], and the
//! one place that turns findings into messages and exits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use twinshield_shield_macros::diversify;

use twinshield_runtime::ShieldHandle;
use twinshield_shield::{Action, Finding, FindingClass, LOCKDOWN_EXIT_CODE, Options, Shield};

static SHIELD: OnceLock<Arc<Shield>> = OnceLock::new();

/// Whether environment findings (running as root, no memory lock) are shown as warnings, not only
/// recorded: set by `run` once its bundle is open, so a running twin says so once, and short
/// commands (whose errors must stay one line) do not.
static SHOW_ENVIRONMENT: AtomicBool = AtomicBool::new(false);

/// Shows environment findings as warnings from now on.
#[diversify]
pub fn show_environment_findings() {
    SHOW_ENVIRONMENT.store(true, Ordering::SeqCst);
}

/// Starts the shield (see [`Shield::start`]).
#[diversify]
pub fn start(options: &Options) -> Result<(), twinshield_shield::StartError> {
    let shield = Shield::start(options, Box::new(respond))?;
    // For the start-up benchmark (scripts/bench-shield-startup).
    if std::env::var_os(&*twinshield_shield::obf!("TWINSHIELD_SHIELD_TIMING")).is_some() {
        eprintln!(
            "shield start-up: {:.2} ms ({} guard regions)",
            shield.startup_duration().as_secs_f64() * 1000.0,
            shield.guard_regions()
        );
    }
    let _ = SHIELD.set(shield);
    Ok(())
}

/// The running shield as a session holds it (no shield for `harden`, or for a vendor-side command
/// of a build never hardened).
#[diversify]
pub fn handle() -> ShieldHandle {
    ShieldHandle::new(SHIELD.get().cloned())
}

/// What a finding does to the process: a lockdown stops it with its own exit status (and should
/// this return, the finding's own site exits with that status); the rest are reported
/// (environment findings, outside a running twin, only in the audit log and the status).
#[diversify]
fn respond(f: &Finding, action: Action) {
    match action {
        Action::Lockdown => {
            eprintln!("error: lockdown: {f}; keys wiped, stopping");
            std::process::exit(i32::from(LOCKDOWN_EXIT_CODE));
        }
        Action::Degrade => {
            eprintln!("warning: shield: {f}; degraded: writes and key use refused");
        }
        Action::Report
            if f.class == FindingClass::Environment && !SHOW_ENVIRONMENT.load(Ordering::SeqCst) => {
        }
        Action::Report => eprintln!("warning: shield: {f}"),
    }
}
