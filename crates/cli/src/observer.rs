//! What a running session shows on standard error: a spinner line with
//! the twin's state on a terminal (a line every 30 s of sample time
//! otherwise), and one line per alarm and per storage change.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;
use twinshield_runtime::summary::AlarmSummary;
use twinshield_runtime::{Progress, SessionObserver};
use twinshield_shield_macros::diversify;

/// Which clock the progress line shows.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The plant's own time (the demo's simulated plant).
    Plant,
    /// Wall time since the twin started and the local wall clock (`run`:
    /// its samples carry Unix time, which says nothing at a glance).
    Elapsed,
}

/// The standard-error observer of `run` and `demo`.
pub struct Console {
    bar: ProgressBar,
    clock: Clock,
    started: Instant,
    last_report: f64,
}

#[diversify]
impl Console {
    /// A console showing `clock`.
    pub fn new(clock: Clock) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                bar.set_style(style);
            }
            bar
        } else {
            ProgressBar::hidden()
        };
        Console {
            bar,
            clock,
            started: Instant::now(),
            last_report: f64::NEG_INFINITY,
        }
    }

    fn line(&self, p: &Progress) -> String {
        let when = match self.clock {
            Clock::Plant => format!("t {:6.1} s", p.time),
            Clock::Elapsed => {
                let s = self.started.elapsed().as_secs();
                format!(
                    "running {:02}:{:02}:{:02} ({})",
                    s / 3600,
                    s / 60 % 60,
                    s % 60,
                    local_clock()
                )
            }
        };
        format!(
            "{when}  samples {}  max |plant - twin| {:.3}  active alarms {}  data-quality events {}",
            p.samples, p.worst_residual, p.active_alarms, p.quality_events
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

#[diversify]
impl SessionObserver for Console {
    fn alarm_raised(&mut self, a: &AlarmSummary) {
        self.bar.suspend(|| {
            eprintln!(
                "alarm {}: {} on {} at {:.1} s",
                a.id, a.detector, a.channel, a.raised_at_s
            );
        });
    }

    fn progress(&mut self, p: &Progress) {
        if self.bar.is_hidden() {
            // Without a terminal: a line every 30 s of sample time.
            if p.time - self.last_report >= 30.0 {
                eprintln!("{}", self.line(p));
                self.last_report = p.time;
            }
            return;
        }
        self.bar.set_message(self.line(p));
        self.bar.tick();
    }

    fn notice(&mut self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    fn finished(&mut self) {
        self.bar.finish_and_clear();
    }
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
        let line = Console::new(Clock::Elapsed).line(&progress());
        let when = line
            .strip_prefix("running 00:00:00 (")
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
        let line = Console::new(Clock::Plant).line(&p);
        assert!(line.starts_with("t   61.3 s  samples 12"), "{line}");
    }
}
