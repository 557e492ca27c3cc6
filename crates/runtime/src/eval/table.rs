//! The evaluation as the table `eval` prints: one row per scenario against
//! its target, and the false-alarm rate of normal operation.

use super::{Report, ScenarioResult, target};
use std::fmt;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<9} {:>5} {:>8} {:>6} {:>11} {:>10}  target",
            "scenario", "seeds", "detected", "rate", "mean delay", "max delay"
        )?;
        for s in &self.scenarios {
            writeln!(f, "{}", row(s))?;
        }
        if self.normal_hours > 0.0 {
            writeln!(f, "{}", normal_line(self))?;
        }
        Ok(())
    }
}

/// One scenario against its target.
fn row(s: &ScenarioResult) -> String {
    let (rate, delay) = target(&s.name);
    let met = s.detection_rate >= rate && s.mean_delay_s.is_some_and(|d| d <= delay);
    let fmt = |d: Option<f64>| d.map_or("-".to_owned(), |d| format!("{d:.1} s"));
    let want = if delay.is_finite() {
        format!("≥{:.0}%, mean ≤{delay:.0} s", rate * 100.0)
    } else {
        format!("≥{:.0}%", rate * 100.0)
    };
    format!(
        "{:<9} {:>5} {:>8} {:>5.0}% {:>11} {:>10}  {want}: {}",
        s.name,
        s.seeds,
        s.detected,
        s.detection_rate * 100.0,
        fmt(s.mean_delay_s),
        fmt(s.max_delay_s),
        met_or_missed(met)
    )
}

/// False alarms in normal operation against the target of one a day.
fn normal_line(r: &Report) -> String {
    let by: Vec<String> = r
        .false_alarms_by_detector
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let by = if by.is_empty() {
        String::new()
    } else {
        format!(" ({})", by.join(", "))
    };
    format!(
        "normal operation: {:.1} h, {} false alarms{by} = {:.2} per 24 h (target ≤ 1): {}",
        r.normal_hours,
        r.false_alarms,
        r.false_alarms_per_24h,
        met_or_missed(r.false_alarms_per_24h <= 1.0)
    )
}

fn met_or_missed(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}
