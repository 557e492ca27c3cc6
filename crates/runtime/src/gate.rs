//! The shield's verdict as the session sees it: one [`ShieldHandle`] for
//! the checks the session runs, and one [`Gate`] that the recorder, the
//! backend publisher and the API ask before they write or use a key.
//! "Degraded means no key use and no writes" is this type, not a
//! convention spread over the callers.

use crate::summary::ShieldStatus;
use std::sync::Arc;
use twinshield_shield::{Checkpoint, Finding, FindingClass, Shield};
use twinshield_shield_macros::diversify;

/// Whether the shield has degraded the twin. [`Shield`] is the one real
/// verdict; tests put their own behind a [`Gate`].
pub trait Verdict: Send + Sync {
    /// True once a finding degraded the twin: it keeps monitoring, but
    /// writes nothing but its audit log and uses no key.
    fn degraded(&self) -> bool;
}

impl Verdict for Shield {
    fn degraded(&self) -> bool {
        Shield::degraded(self)
    }
}

/// The session's one gate on writes and key use.
#[derive(Clone)]
pub struct Gate {
    verdict: Option<Arc<dyn Verdict>>,
}

/// A write or a key use the gate refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the shield degraded the twin: writes and key use are refused")]
pub struct Refused;

#[diversify]
impl Gate {
    /// A gate over `verdict`.
    pub fn over(verdict: Arc<dyn Verdict>) -> Self {
        Gate {
            verdict: Some(verdict),
        }
    }

    /// A gate with no shield behind it, which allows everything: for
    /// `eval`, which runs no device key and writes nothing.
    pub fn unshielded() -> Self {
        Gate { verdict: None }
    }

    /// Whether history, outbox and token writes may go ahead.
    pub fn allows_writes(&self) -> bool {
        !self.verdict.as_ref().is_some_and(|v| v.degraded())
    }

    /// Whether a device key may be used (to sign, to acknowledge).
    pub fn allows_key_use(&self) -> bool {
        self.allows_writes()
    }

    /// [`Gate::allows_key_use`] as a result, for `?`.
    pub fn check_key_use(&self) -> Result<(), Refused> {
        if self.allows_key_use() {
            Ok(())
        } else {
            Err(Refused)
        }
    }
}

/// The running shield, if there is one, as one handle the session holds.
#[derive(Clone)]
pub struct ShieldHandle {
    shield: Option<Arc<Shield>>,
    gate: Gate,
}

#[diversify]
impl ShieldHandle {
    /// A handle on `shield` (`None`: no shield, as for a vendor-side
    /// command in a build never hardened).
    pub fn new(shield: Option<Arc<Shield>>) -> Self {
        let gate = match &shield {
            Some(s) => Gate::over(Arc::clone(s) as Arc<dyn Verdict>),
            None => Gate::unshielded(),
        };
        ShieldHandle { shield, gate }
    }

    /// A handle with no shield whose gate follows `verdict`: for hosts and
    /// tests that decide degradation themselves.
    pub fn with_verdict(verdict: Arc<dyn Verdict>) -> Self {
        ShieldHandle {
            shield: None,
            gate: Gate::over(verdict),
        }
    }

    /// The shield itself.
    pub fn shield(&self) -> Option<&Arc<Shield>> {
        self.shield.as_ref()
    }

    /// The gate over this shield's verdict.
    pub fn gate(&self) -> Gate {
        self.gate.clone()
    }

    /// Starts a stretch of work nothing should stall (reading to
    /// decision): a stall is someone stepping through the process.
    pub fn checkpoint(&self) -> Option<Checkpoint<'_>> {
        self.shield.as_ref().map(|s| s.checkpoint())
    }

    /// The sync loop's periodic check.
    pub fn tick(&self) {
        if let Some(s) = &self.shield {
            s.tick();
        }
    }

    /// The shield's state for the summaries (`None` without a shield).
    pub fn status(&self) -> Option<ShieldStatus> {
        let s = self.shield.as_ref()?;
        Some(ShieldStatus {
            degraded: s.degraded(),
            findings: s
                .findings()
                .iter()
                .map(|(f, a)| format!("{f} ({a})"))
                .collect(),
            guard_regions: s.guard_regions(),
            guarded: s.guarded(),
            policy: s.policy().to_string(),
        })
    }

    /// A tamper finding from outside the shield's own checks: the twin
    /// found its sealed parameters or state changed in memory. The shield
    /// responds per its policy (lockdown by default); without a shield,
    /// nothing happens here (the twin refuses its samples either way).
    pub fn report_tamper(&self, what: &dyn std::fmt::Display) {
        if let Some(s) = &self.shield {
            s.respond(Finding::new(
                FindingClass::Tamper,
                format!("the twin: {what}"),
            ));
        }
    }

    /// A full guard check on the path that opens a bundle: another copy of
    /// the check than the start-up's, so patching one out is not enough.
    #[inline(always)]
    pub fn check_before_key_use(&self) {
        match &self.shield {
            Some(s) => {
                if let Some(f) = s.verify_all() {
                    s.respond(f);
                }
            }
            // A hardened binary whose shield never started (its start
            // patched out) opens no key.
            None => twinshield_shield::monitor::refuse_unshielded(),
        }
    }
}
