//! What the shield finds, and of which class: the policy decides the
//! response per class.

use std::fmt;
use twinshield_shield_macros::diversify;

/// The class of a finding; the response policy has one action per class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingClass {
    /// The binary's code or read-only data differs from what `harden`
    /// sealed.
    Tamper,
    /// A tracer or debugger is attached (TracerPid, the ptrace self-check).
    Debugger,
    /// Code is hooked or instrumented: LD_PRELOAD or LD_AUDIT, unexpected
    /// shared objects, writable-and-executable memory, valgrind or
    /// qemu-user underneath.
    Hook,
    /// The sync loop stalled between two checkpoints for longer than any
    /// normal pause explains (single-stepping, a stopped process).
    Timing,
    /// The environment weakens the defences: running as root, core dumps or
    /// dump protection unavailable, an unhardened development build.
    Environment,
}

#[diversify]
impl FindingClass {
    /// Every class, in the policy's order.
    pub const ALL: [FindingClass; 5] = [
        FindingClass::Tamper,
        FindingClass::Debugger,
        FindingClass::Hook,
        FindingClass::Timing,
        FindingClass::Environment,
    ];

    /// The class's name in policies and reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            FindingClass::Tamper => "tamper",
            FindingClass::Debugger => "debugger",
            FindingClass::Hook => "hook",
            FindingClass::Timing => "timing",
            FindingClass::Environment => "environment",
        }
    }
}

#[diversify]
impl fmt::Display for FindingClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One finding: its class and its evidence (what was seen, never a
/// secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The class.
    pub class: FindingClass,
    /// What was seen, one line.
    pub evidence: String,
}

#[diversify]
impl Finding {
    /// A finding of `class` with `evidence`.
    #[must_use]
    pub fn new(class: FindingClass, evidence: impl Into<String>) -> Self {
        let evidence: String = evidence.into();
        Self {
            class,
            evidence: evidence.replace(['\n', '\r'], " "),
        }
    }
}

#[diversify]
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.evidence)
    }
}
