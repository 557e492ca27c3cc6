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
//!
//! Silence is counted in the watcher's own rounds, not in wall time: a
//! twin paused as a whole (`SIGSTOP`, a suspended virtual machine) or
//! starved by a loaded machine slows both threads alike and is not taken
//! for an attack.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::guard::Table;

/// How often the watchdog checks the last answer and issues a challenge.
pub const WATCH_PERIOD: Duration = Duration::from_millis(250);

/// How many of its own rounds a watcher lets pass without a good answer,
/// or without the other thread's beat, before the shield locks down: 16
/// watchdog rounds are 4 s, 20 monitor rounds 4 s.
pub const SILENT_ROUNDS: u64 = 16;

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
    /// Rounds each thread has completed.
    watchdog_rounds: AtomicU64,
    monitor_rounds: AtomicU64,
}

/// What a watcher remembers between its rounds.
#[derive(Debug, Default)]
pub(crate) struct Watcher {
    /// The other thread's round count when last seen to change, and how
    /// many of this watcher's rounds ago that was.
    seen: u64,
    still: u64,
    /// This watcher's rounds since the last good answer (watchdog only).
    unanswered: u64,
}

impl Watcher {
    /// Whether `rounds` (the other thread's count) stood still for too
    /// many of this watcher's rounds.
    fn stalled(&mut self, rounds: u64, limit: u64) -> bool {
        if rounds == self.seen {
            self.still += 1;
        } else {
            self.seen = rounds;
            self.still = 0;
        }
        self.still > limit
    }
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
            watchdog_rounds: AtomicU64::new(0),
            monitor_rounds: AtomicU64::new(0),
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

    /// The monitor finished a round.
    #[inline(always)]
    pub(crate) fn monitor_beat(&self) {
        self.monitor_rounds.fetch_add(1, Ordering::SeqCst);
    }

    /// One watchdog round: checks the answer (a good one earns a new
    /// challenge) and the monitor's beat. What is wrong, if anything.
    #[inline(always)]
    pub(crate) fn watch(&self, me: &mut Watcher) -> Option<&'static str> {
        self.watchdog_rounds.fetch_add(1, Ordering::SeqCst);
        if let Some(table) = &self.table {
            let (challenge, region) = self.challenge();
            let expected = table
                .regions
                .get(region)
                .map(|r| answer_for(table.key, challenge, r.hash));
            if expected == Some(self.answer.load(Ordering::SeqCst)) {
                me.unanswered = 0;
                self.issue();
            } else {
                me.unanswered += 1;
                if me.unanswered > SILENT_ROUNDS {
                    return Some("the shield's checks stopped answering the watchdog's challenges");
                }
            }
        }
        let monitor = self.monitor_rounds.load(Ordering::SeqCst);
        me.stalled(monitor, SILENT_ROUNDS)
            .then_some("the shield's monitor stopped")
    }

    /// One monitor round's look at the watchdog: whether it stopped.
    #[inline(always)]
    pub(crate) fn watchdog_stopped(&self, me: &mut Watcher) -> bool {
        me.stalled(
            self.watchdog_rounds.load(Ordering::SeqCst),
            SILENT_ROUNDS + 4,
        )
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

    fn answer(board: &Heartbeat, wrong: u64) {
        let (c, region) = board.challenge();
        board.answer(answer_for(7, c, [11, 13][region] ^ wrong));
    }

    #[test]
    fn a_good_answer_earns_a_new_challenge_and_silence_locks_down() {
        let board = Heartbeat::new(Some(table()));
        let mut dog = Watcher::default();
        answer(&board, 0);
        let c = board.challenge().0;
        board.monitor_beat();
        assert_eq!(board.watch(&mut dog), None);
        assert_ne!(
            board.challenge().0,
            c,
            "a new challenge after a good answer"
        );
        for round in 1..=SILENT_ROUNDS {
            board.monitor_beat();
            assert_eq!(
                board.watch(&mut dog),
                None,
                "round {round}: within the limit"
            );
        }
        board.monitor_beat();
        assert!(
            board.watch(&mut dog).is_some(),
            "no good answer for 17 rounds"
        );
    }

    #[test]
    fn a_wrong_answer_is_no_answer() {
        let board = Heartbeat::new(Some(table()));
        let mut dog = Watcher::default();
        let found = (0..=SILENT_ROUNDS).find_map(|_| {
            answer(&board, 1);
            board.monitor_beat();
            board.watch(&mut dog)
        });
        assert_eq!(
            found,
            Some("the shield's checks stopped answering the watchdog's challenges")
        );
    }

    #[test]
    fn each_thread_notices_the_other_stopping_even_unguarded() {
        let board = Heartbeat::new(None);
        let (mut dog, mut monitor) = (Watcher::default(), Watcher::default());
        board.monitor_beat();
        assert_eq!(board.watch(&mut dog), None);
        let stopped = (0..=SILENT_ROUNDS).find_map(|_| board.watch(&mut dog));
        assert_eq!(stopped, Some("the shield's monitor stopped"));
        assert!(!board.watchdog_stopped(&mut monitor));
        let noticed = (0..=SILENT_ROUNDS + 4).any(|_| board.watchdog_stopped(&mut monitor));
        assert!(noticed, "the watchdog stood still for 21 monitor rounds");
    }
}
