//! What a running session shows on standard error: a spinner line with
//! the twin's state on a terminal (a line every 30 s of sample time otherwise), and one
//! line per alarm and per storage change.

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
    /// Wall time since the twin started (`run`: its samples carry Unix
    /// time, which says nothing at a glance).
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
                format!("running {:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
            }
        };
        format!(
            "{when}  samples {}  max |plant - twin| {:.3}  active alarms {}  data-quality events {}",
            p.samples, p.worst_residual, p.active_alarms, p.quality_events
        )
    }
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
        let line = self.line(p);
        if self.bar.is_hidden() {
            // Without a terminal: a line every 30 s of sample time.
            if p.time - self.last_report >= 30.0 {
                eprintln!("{line}");
                self.last_report = p.time;
            }
            return;
        }
        self.bar.set_message(line);
        self.bar.tick();
    }

    fn notice(&mut self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    fn finished(&mut self) {
        self.bar.finish_and_clear();
    }
}
