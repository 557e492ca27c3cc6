//! What a running session shows on standard error: a spinner line with the twin's state on a
//! terminal (a line every 30 s of sample time otherwise), and one line per alarm and per storage
//! change.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;
use twinshield_runtime::summary::AlarmSummary;
use twinshield_runtime::{Progress, ProgressClock as Clock, SessionObserver};
use twinshield_shield_macros::diversify;

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
            match ProgressStyle::with_template("{spinner} {msg}") {
                Ok(style) => bar.with_style(style),
                Err(_) => bar,
            }
        } else {
            ProgressBar::hidden()
        };
        let (started, last_report) = (Instant::now(), f64::NEG_INFINITY);
        Console {
            bar,
            clock,
            started,
            last_report,
        }
    }
}

#[diversify]
impl SessionObserver for Console {
    fn alarm_raised(&mut self, a: &AlarmSummary) {
        let (id, det, ch, at) = (a.id, &a.detector, &a.channel, a.raised_at_s);
        self.bar
            .suspend(|| eprintln!("alarm {id}: {det} on {ch} at {at:.1} s"));
    }

    fn progress(&mut self, p: &Progress) {
        let line = || p.line(self.clock, self.started.elapsed());
        if !self.bar.is_hidden() {
            self.bar.set_message(line());
            self.bar.tick();
        } else if p.time - self.last_report >= 30.0 {
            // Without a terminal: a line every 30 s of sample time.
            eprintln!("{}", line());
            self.last_report = p.time;
        }
    }

    fn notice(&mut self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    fn finished(&mut self) {
        self.bar.finish_and_clear();
    }
}
