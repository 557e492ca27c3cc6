//! Differential fault analysis (Piret and Quisquater, "A Differential Fault
//! Attack Technique against SPN Structures, with Application to the AES and
//! KHAZAD", CHES 2003) on the last round key.
//!
//! A byte fault in the state at the start of round 9 changes one column of
//! round 9's MixColumns output by `(MIX[0][r], .., MIX[3][r]) * e` for the
//! faulted row `r` and an unknown nonzero `e`; after round 10 that shows in
//! exactly four ciphertext bytes. For a correct and faulty ciphertext pair
//! `(c, c*)` and those four positions, a guess `k` of the four last-round
//! key bytes is consistent when `INV_SBOX[c ^ k] ^ INV_SBOX[c* ^ k]` has
//! that pattern for some `r` and `e`: about 2^10 of the 2^32 guesses are,
//! and the right one always is. Every usable pair votes for its consistent
//! guesses; per column, the guess with the most votes wins when it has at
//! least two and no other guess has as many (the textbook attack
//! intersects the candidate sets; voting is the same attack, tolerant of
//! pairs that are not what it assumes).

use std::collections::{HashMap, HashSet};

use twinshield_whitebox::aes_ref::{INV_SBOX, MIX, SBOX, SHIFT_ROWS_SRC, gmul};

/// Output positions of round 9's MixColumns column `j`, by row.
pub fn column_positions(j: usize) -> [usize; 4] {
    std::array::from_fn(|m| {
        SHIFT_ROWS_SRC
            .iter()
            .position(|&src| src == 4 * j + m)
            .unwrap()
    })
}

/// The outcome of the attack.
#[derive(Debug, Clone, Default)]
pub struct DfaResult {
    /// Pairs whose difference is exactly one column's four bytes.
    pub usable_pairs: usize,
    /// Per column: the winning guess of its four key bytes (by row) and its
    /// votes, if one won.
    pub columns: [Option<([u8; 4], usize)>; 4],
    /// Per column: all votes.
    votes: Vec<HashMap<[u8; 4], usize>>,
}

impl DfaResult {
    /// Last-round key bytes recovered correctly.
    pub fn recovered_bytes(&self, k10: &[u8; 16]) -> usize {
        (0..4)
            .filter_map(|j| self.columns[j].map(|(guess, _)| (j, guess)))
            .map(|(j, guess)| {
                let pos = column_positions(j);
                (0..4).filter(|&m| guess[m] == k10[pos[m]]).count()
            })
            .sum()
    }

    /// The votes the true key bytes got, per column: how many faulty
    /// outputs were consistent with the real key.
    pub fn true_key_votes(&self, k10: &[u8; 16]) -> [usize; 4] {
        std::array::from_fn(|j| {
            let pos = column_positions(j);
            let truth: [u8; 4] = std::array::from_fn(|m| k10[pos[m]]);
            self.votes[j].get(&truth).copied().unwrap_or(0)
        })
    }

    /// The whole last-round key, if every column was recovered.
    pub fn k10(&self) -> Option<[u8; 16]> {
        let mut k = [0u8; 16];
        for j in 0..4 {
            let (guess, _) = self.columns[j]?;
            for (m, &p) in column_positions(j).iter().enumerate() {
                k[p] = guess[m];
            }
        }
        Some(k)
    }
}

/// Runs the attack on `(correct, faulty)` ciphertext pairs.
pub fn dfa(pairs: &[([u8; 16], [u8; 16])]) -> DfaResult {
    let mut result = DfaResult {
        votes: vec![HashMap::new(); 4],
        ..DfaResult::default()
    };
    for (c, f) in pairs {
        let diff: Vec<usize> = (0..16).filter(|&i| c[i] != f[i]).collect();
        let Some(j) = (0..4).find(|&j| {
            let mut pos = column_positions(j).to_vec();
            pos.sort_unstable();
            pos == diff
        }) else {
            continue;
        };
        result.usable_pairs += 1;
        let pos = column_positions(j);
        // buckets[m][d]: the guesses of key byte m giving difference d.
        let buckets: Vec<Vec<Vec<u8>>> = pos
            .iter()
            .map(|&p| {
                let mut b = vec![Vec::new(); 256];
                for k in 0..=255u8 {
                    let d = INV_SBOX[usize::from(c[p] ^ k)] ^ INV_SBOX[usize::from(f[p] ^ k)];
                    b[usize::from(d)].push(k);
                }
                b
            })
            .collect();
        let mut candidates = HashSet::new();
        // The difference patterns: column r of MixColumns, for faulted row r.
        let patterns: [[u8; 4]; 4] = std::array::from_fn(|r| std::array::from_fn(|m| MIX[m][r]));
        for pattern in &patterns {
            for e in 1..=255u8 {
                let d: [usize; 4] = pattern.map(|coefficient| usize::from(gmul(coefficient, e)));
                for &k0 in &buckets[0][d[0]] {
                    for &k1 in &buckets[1][d[1]] {
                        for &k2 in &buckets[2][d[2]] {
                            for &k3 in &buckets[3][d[3]] {
                                candidates.insert([k0, k1, k2, k3]);
                            }
                        }
                    }
                }
            }
        }
        for candidate in candidates {
            *result.votes[j].entry(candidate).or_insert(0) += 1;
        }
    }
    for j in 0..4 {
        let mut ranked: Vec<([u8; 4], usize)> =
            result.votes[j].iter().map(|(g, v)| (*g, *v)).collect();
        ranked.sort_unstable_by_key(|&(_, votes)| std::cmp::Reverse(votes));
        result.columns[j] = match ranked.as_slice() {
            [(guess, votes), rest @ ..]
                if *votes >= 2 && rest.first().is_none_or(|(_, next)| next < votes) =>
            {
                Some((*guess, *votes))
            }
            _ => None,
        };
    }
    result
}

/// The AES-128 key from its last round key (the key schedule run
/// backwards).
pub fn master_key_from_k10(k10: &[u8; 16]) -> [u8; 16] {
    const RCON: [u8; 10] = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36];
    let mut w = [[0u8; 4]; 44];
    for i in 0..4 {
        w[40 + i].copy_from_slice(&k10[4 * i..4 * i + 4]);
    }
    for i in (4..44).rev() {
        let mut temp = w[i - 1];
        if i % 4 == 0 {
            temp = [
                SBOX[usize::from(temp[1])] ^ RCON[i / 4 - 1],
                SBOX[usize::from(temp[2])],
                SBOX[usize::from(temp[3])],
                SBOX[usize::from(temp[0])],
            ];
        }
        w[i - 4] = std::array::from_fn(|b| w[i][b] ^ temp[b]);
    }
    std::array::from_fn(|i| w[i / 4][i % 4])
}
