//! The response policy: per finding class, report, degrade or lock down.
//! It comes from the bundle; before a bundle is open, and where the bundle
//! names none, the release default applies.

use std::fmt;
use std::str::FromStr;
use twinshield_shield_macros::diversify;

use crate::finding::FindingClass;

/// What the shield does about a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Record it (audit log, security status) and carry on.
    Report,
    /// Report, keep monitoring and raising alarms, refuse every write and
    /// every key use from now on.
    Degrade,
    /// Report, wipe keys from memory and stop with a clear message and
    /// [`crate::LOCKDOWN_EXIT_CODE`].
    Lockdown,
}

#[diversify]
impl Action {
    /// The action's name in policies.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Action::Report => "report",
            Action::Degrade => "degrade",
            Action::Lockdown => "lockdown",
        }
    }
}

#[diversify]
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a policy text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// An entry is not `class=action`.
    #[error("policy entry `{0}` is not CLASS=ACTION")]
    Syntax(String),
    /// An unknown finding class.
    #[error("unknown finding class `{0}` (tamper, debugger, hook, timing, environment)")]
    Class(String),
    /// An unknown action.
    #[error("unknown action `{0}` (report, degrade, lockdown)")]
    Action(String),
    /// A class named twice.
    #[error("finding class `{0}` named twice")]
    Duplicate(String),
}

/// One action per finding class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    actions: [Action; FindingClass::ALL.len()],
}

#[diversify]
impl Policy {
    /// The release default: lock down on tampering, debuggers and hooks;
    /// report timing anomalies and environment findings.
    #[must_use]
    pub const fn release_default() -> Self {
        Self {
            actions: [
                Action::Lockdown,
                Action::Lockdown,
                Action::Lockdown,
                Action::Report,
                Action::Report,
            ],
        }
    }

    /// The action for `class`.
    #[must_use]
    pub fn action(&self, class: FindingClass) -> Action {
        self.actions[class as usize]
    }

    /// Sets the action for `class`.
    pub fn set(&mut self, class: FindingClass, action: Action) {
        self.actions[class as usize] = action;
    }
}

#[diversify]
impl Default for Policy {
    fn default() -> Self {
        Self::release_default()
    }
}

/// `class=action[,class=action...]`; classes not named keep the release
/// default. The empty text is the release default.
#[diversify]
impl FromStr for Policy {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut policy = Self::release_default();
        let mut named = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (class, action) = entry
                .split_once('=')
                .ok_or_else(|| PolicyError::Syntax(entry.to_owned()))?;
            let (class, action) = (class.trim(), action.trim());
            let class = FindingClass::ALL
                .into_iter()
                .find(|c| c.name() == class)
                .ok_or_else(|| PolicyError::Class(class.to_owned()))?;
            let action = [Action::Report, Action::Degrade, Action::Lockdown]
                .into_iter()
                .find(|a| a.name() == action)
                .ok_or_else(|| PolicyError::Action(action.to_owned()))?;
            if named.contains(&class) {
                return Err(PolicyError::Duplicate(class.name().to_owned()));
            }
            named.push(class);
            policy.set(class, action);
        }
        Ok(policy)
    }
}

#[diversify]
impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> = FindingClass::ALL
            .iter()
            .map(|&c| format!("{}={}", c, self.action(c)))
            .collect();
        f.write_str(&entries.join(","))
    }
}

/// The policy in force, kept only encoded and twice: the packed actions
/// under a per-process mask, and a mix of them under the mask's other
/// half. A write that changes one copy without the other does not decode:
/// every finding then locks down, and the monitor reports the change. A
/// one-byte write turning "tamper=lockdown" into "report" does not do it.
pub(crate) struct SealedPolicy {
    word: std::sync::atomic::AtomicU64,
    mask: u64,
}

/// A bijection of 32-bit words (the redundant copy).
#[inline(always)]
fn mix32(x: u32) -> u32 {
    let mut z = x.wrapping_mul(0x9e37_79b9) ^ 0x5bd1_e995;
    z ^= z >> 15;
    z = z.wrapping_mul(0x2c1b_3c6d);
    z ^ (z >> 12)
}

impl SealedPolicy {
    /// Seals `policy` under a fresh mask.
    pub(crate) fn new(policy: Policy) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x706f_6c69_6379);
        let sealed = Self {
            word: std::sync::atomic::AtomicU64::new(0),
            mask: h.finish(),
        };
        sealed.set(policy);
        sealed
    }

    #[inline(always)]
    fn pack(policy: Policy) -> u32 {
        policy
            .actions
            .iter()
            .enumerate()
            .fold(0, |w, (i, &a)| w | (a as u32) << (2 * i))
    }

    /// Replaces the policy.
    pub(crate) fn set(&self, policy: Policy) {
        let packed = Self::pack(policy);
        let lo = u64::from(packed ^ self.mask as u32);
        let hi = u64::from(mix32(packed) ^ (self.mask >> 32) as u32);
        self.word
            .store(hi << 32 | lo, std::sync::atomic::Ordering::SeqCst);
    }

    /// The policy, or `None` when its two copies disagree.
    #[inline(always)]
    pub(crate) fn try_get(&self) -> Option<Policy> {
        let word = self.word.load(std::sync::atomic::Ordering::SeqCst);
        let packed = word as u32 ^ self.mask as u32;
        if mix32(packed) != (word >> 32) as u32 ^ (self.mask >> 32) as u32 {
            return None;
        }
        let mut policy = Policy::release_default();
        for (i, class) in FindingClass::ALL.into_iter().enumerate() {
            let action = match (packed >> (2 * i)) & 3 {
                0 => Action::Report,
                1 => Action::Degrade,
                2 => Action::Lockdown,
                _ => return None,
            };
            policy.set(class, action);
        }
        Some(policy)
    }

    /// The policy (the release default when altered: see [`Self::altered`]).
    pub(crate) fn get(&self) -> Policy {
        self.try_get().unwrap_or_default()
    }

    /// The action for `class`: lockdown when the policy was altered.
    #[inline(always)]
    pub(crate) fn action(&self, class: FindingClass) -> Action {
        self.try_get().map_or(Action::Lockdown, |p| p.action(class))
    }

    /// A tamper finding when the policy in memory no longer decodes.
    pub(crate) fn altered(&self) -> Option<crate::Finding> {
        self.try_get().is_none().then(|| {
            crate::Finding::new(
                FindingClass::Tamper,
                "the response policy in memory was altered",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn release_default_locks_down_on_tampering_and_debuggers_and_reports_the_environment() {
        let p = Policy::release_default();
        assert_eq!(p.action(FindingClass::Tamper), Action::Lockdown);
        assert_eq!(p.action(FindingClass::Debugger), Action::Lockdown);
        assert_eq!(p.action(FindingClass::Environment), Action::Report);
    }

    #[test]
    fn parses_and_prints_round_trip() {
        let p: Policy = "hook=degrade, environment=report".parse().unwrap();
        assert_eq!(p.action(FindingClass::Hook), Action::Degrade);
        assert_eq!(p.action(FindingClass::Tamper), Action::Lockdown);
        assert_eq!(p.to_string().parse::<Policy>().unwrap(), p);
        assert_eq!("".parse::<Policy>().unwrap(), Policy::release_default());
    }

    #[test]
    fn a_sealed_policy_round_trips_and_any_single_bit_flip_locks_down() {
        let p: Policy = "hook=degrade, timing=lockdown".parse().unwrap();
        let sealed = SealedPolicy::new(p);
        assert_eq!(sealed.get(), p);
        assert!(sealed.altered().is_none());
        let word = sealed.word.load(std::sync::atomic::Ordering::SeqCst);
        for bit in 0..64 {
            sealed
                .word
                .store(word ^ (1 << bit), std::sync::atomic::Ordering::SeqCst);
            assert_eq!(sealed.action(FindingClass::Environment), Action::Lockdown);
            assert!(sealed.altered().is_some(), "bit {bit}");
        }
    }

    #[test]
    fn refuses_bad_entries() {
        assert!(matches!(
            "tamper".parse::<Policy>(),
            Err(PolicyError::Syntax(_))
        ));
        assert!(matches!(
            "x=report".parse::<Policy>(),
            Err(PolicyError::Class(_))
        ));
        assert!(matches!(
            "hook=ignore".parse::<Policy>(),
            Err(PolicyError::Action(_))
        ));
        assert!(matches!(
            "hook=report,hook=lockdown".parse::<Policy>(),
            Err(PolicyError::Duplicate(_))
        ));
    }
}
