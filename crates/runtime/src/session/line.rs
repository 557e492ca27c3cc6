//! The one-line progress of a running session, as an operator reads it.

use super::Progress;
use std::time::Duration;
use twinshield_shield_macros::diversify;

/// Which clock a progress line shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressClock {
    /// The plant's own time (the demo's simulated plant).
    Plant,
    /// Wall time since the twin started and the local wall clock (`run`:
    /// its samples carry Unix time, which says nothing at a glance).
    Elapsed,
}

#[diversify]
impl Progress {
    /// `t 61.3 s  samples …` (plant clock) or `running 00:01:02 (14:05:33
    /// CEST)  samples …` after `running` of wall time (elapsed clock).
    pub fn line(&self, clock: ProgressClock, running: Duration) -> String {
        let when = match clock {
            ProgressClock::Plant => format!("t {:6.1} s", self.time),
            ProgressClock::Elapsed => {
                let s = running.as_secs();
                let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
                format!("running {h:02}:{m:02}:{s:02} ({})", local_clock())
            }
        };
        format!(
            "{when}  samples {}  max |plant - twin| {:.3}  active alarms {}  data-quality events {}",
            self.samples, self.worst_residual, self.active_alarms, self.quality_events
        )
    }
}

/// The local wall clock, `14:05:33 CEST`: the system's time zone (`TZ`,
/// else `/etc/localtime`) as jiff finds it, which works in a
/// multi-threaded process (the `time` crate refuses local offsets there);
/// without one jiff uses UTC, and the zone's abbreviation then says so.
#[diversify]
fn local_clock() -> String {
    // The fallible conversion: `ZonedDateTime::now` panics on a system
    // clock outside jiff's range.
    jiff::ZonedDateTime::try_from(std::time::SystemTime::now()).map_or_else(
        |_| "clock unset".to_owned(),
        |now| now.strftime("%H:%M:%S %Z").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress() -> Progress {
        Progress {
            time: 1.7e9,
            samples: 12,
            worst_residual: 0.25,
            active_alarms: 1,
            quality_events: 0,
        }
    }

    #[test]
    fn run_shows_elapsed_time_and_the_local_clock_not_unix_seconds() {
        let line = progress().line(ProgressClock::Elapsed, Duration::from_secs(3723));
        let when = line
            .strip_prefix("running 01:02:03 (")
            .and_then(|r| r.split_once(')'))
            .map(|(w, _)| w)
            .unwrap_or_else(|| panic!("{line}"));
        let (hms, zone) = when.split_once(' ').unwrap_or_else(|| panic!("{line}"));
        let digits: Vec<&str> = hms.split(':').collect();
        assert_eq!(digits.len(), 3, "{line}");
        assert!(
            digits
                .iter()
                .all(|d| d.len() == 2 && d.bytes().all(|b| b.is_ascii_digit())),
            "{line}"
        );
        assert!(!zone.is_empty(), "{line}");
        assert!(!line.contains("1700000000"), "{line}");
        assert!(line.contains("samples 12  max |plant - twin| 0.250  active alarms 1"));
    }

    #[test]
    fn the_demo_keeps_plant_time() {
        let mut p = progress();
        p.time = 61.3;
        let line = p.line(ProgressClock::Plant, Duration::ZERO);
        assert!(line.starts_with("t   61.3 s  samples 12"), "{line}");
    }
}
