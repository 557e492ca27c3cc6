//! The watchdog's heartbeats: challenges only a working checker can answer.
//!
//! The watchdog thread names, every [`WATCH_PERIOD`], a fresh random
//! challenge and a guard region; the monitor thread answers with a keyed
//! mix of the challenge and the checksum of that region as it reads it from
//! the running code. The watchdog, which reads no code itself, compares the
//! answer with what the table says the checksum must be. A checker patched
//! to skip its work, stopped, or stuck cannot answer; a region changed in
//! memory answers wrongly; either way no good answer arrives and the
//! watchdog locks down. The monitor in turn watches the watchdog's own
//! beat, so stopping either thread is a lockdown by the other.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::guard::Table;

/// How often the watchdog checks the last answer and issues a challenge.
pub const WATCH_PERIOD: Duration = Duration::from_millis(250);

/// How long a checker may go without a good answer, or a thread without a
/// beat, before the shield locks down: generous, so a loaded machine that
/// starves a thread for a while is not mistaken for an attack.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(4);

/// The challenge board the watchdog and the checkers share.
pub(crate) struct Heartbeat {
    /// The watchdog's own copy of the table (not the guards' one, which a
    /// heap write could change together with a region).
    table: Option<Table>,
    /// The current challenge: random high bits, the region's index in the
    /// low 16.
    challenge: AtomicU64,
    /// The checker's answer to it.
    answer: AtomicU64,
    /// When (milliseconds since the shield started) the watchdog last saw
    /// a good answer, and last ran.
    answered_at: AtomicU64,
    watchdog_at: AtomicU64,
    /// When the monitor last finished a round.
    monitor_at: AtomicU64,
}

/// A fresh random word from the operating system (through the standard
/// library's hash keys: no extra dependency, no libc call to hook).
fn random_word() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x7477_696e_7368_6c64);
    h.finish()
}

/// The answer to `challenge` for a region whose checksum is `digest`.
#[inline(always)]
pub(crate) fn answer_for(key: u64, challenge: u64, digest: u64) -> u64 {
    let mut z = challenge ^ digest.rotate_left(17) ^ key;
    z = (z ^ (z >> 31)).wrapping_mul(0x7fb5_d329_728e_a185);
    z = (z ^ (z >> 27)).wrapping_mul(0x81da_def4_bc2d_d44d);
    z ^ (z >> 33)
}

impl Heartbeat {
    /// A board for `table` (none in an unguarded build: beats only).
    pub(crate) fn new(table: Option<Table>) -> Self {
        let board = Self {
            table,
            challenge: AtomicU64::new(0),
            answer: AtomicU64::new(0),
            answered_at: AtomicU64::new(0),
            watchdog_at: AtomicU64::new(0),
            monitor_at: AtomicU64::new(0),
        };
        board.issue();
        board
    }

    /// A fresh challenge over a random region.
    fn issue(&self) {
        let regions = self.table.as_ref().map_or(1, |t| t.regions.len().max(1)) as u64;
        let word = random_word();
        let region = (word >> 16) % regions.min(1 << 16);
        self.challenge
            .store((word & !0xffff) | region, Ordering::SeqCst);
    }

    /// The current challenge and the region it names.
    #[inline(always)]
    pub(crate) fn challenge(&self) -> (u64, usize) {
        let c = self.challenge.load(Ordering::SeqCst);
        (c, (c & 0xffff) as usize)
    }

    /// The checker's answer.
    #[inline(always)]
    pub(crate) fn answer(&self, answer: u64) {
        self.answer.store(answer, Ordering::SeqCst);
    }

    /// The monitor's beat at `now_ms`.
    #[inline(always)]
    pub(crate) fn monitor_beat(&self, now_ms: u64) {
        self.monitor_at.store(now_ms, Ordering::SeqCst);
    }

    /// One watchdog round at `now_ms`: checks the answer (a good one earns
    /// a new challenge) and the monitor's beat. What is wrong, if anything.
    #[inline(always)]
    pub(crate) fn watch(&self, now_ms: u64) -> Option<&'static str> {
        self.watchdog_at.store(now_ms, Ordering::SeqCst);
        let limit = SILENCE_LIMIT.as_millis() as u64;
        if let Some(table) = &self.table {
            let (challenge, region) = self.challenge();
            let expected = table
                .regions
                .get(region)
                .map(|r| answer_for(table.key, challenge, r.hash));
            if expected == Some(self.answer.load(Ordering::SeqCst)) {
                self.answered_at.store(now_ms, Ordering::SeqCst);
                self.issue();
            } else if now_ms.saturating_sub(self.answered_at.load(Ordering::SeqCst)) > limit {
                return Some("the shield's checks stopped answering the watchdog's challenges");
            }
        }
        if now_ms.saturating_sub(self.monitor_at.load(Ordering::SeqCst)) > limit {
            return Some("the shield's monitor stopped");
        }
        None
    }

    /// Whether the watchdog has run within the limit, at `now_ms`.
    #[inline(always)]
    pub(crate) fn watchdog_alive(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.watchdog_at.load(Ordering::SeqCst))
            <= SILENCE_LIMIT.as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::Region;

    fn table() -> Table {
        Table {
            key: 7,
            regions: vec![
                Region {
                    offset: 0,
                    len: 8,
                    hash: 11,
                },
                Region {
                    offset: 8,
                    len: 8,
                    hash: 13,
                },
            ],
            data: crate::loader::DataSeal::default(),
        }
    }

    #[test]
    fn a_good_answer_earns_a_new_challenge_and_silence_locks_down() {
        let board = Heartbeat::new(Some(table()));
        board.monitor_beat(0);
        let (c, region) = board.challenge();
        board.answer(answer_for(7, c, [11, 13][region]));
        assert_eq!(board.watch(100), None);
        assert_ne!(
            board.challenge().0,
            c,
            "a new challenge after a good answer"
        );
        board.monitor_beat(4_000);
        assert_eq!(board.watch(4_000), None, "within the limit");
        assert!(board.watch(4_200).is_some(), "no good answer for 4.1 s");
    }

    #[test]
    fn a_wrong_answer_is_no_answer() {
        let board = Heartbeat::new(Some(table()));
        let (c, region) = board.challenge();
        board.answer(answer_for(7, c, [11, 13][region] ^ 1));
        board.monitor_beat(5_000);
        assert!(board.watch(5_000).is_some());
    }

    #[test]
    fn a_stopped_monitor_locks_down_even_unguarded() {
        let board = Heartbeat::new(None);
        board.monitor_beat(1_000);
        assert_eq!(board.watch(2_000), None);
        assert_eq!(board.watch(5_500), Some("the shield's monitor stopped"));
        assert!(board.watchdog_alive(5_600));
        assert!(!board.watchdog_alive(9_600));
    }
}
