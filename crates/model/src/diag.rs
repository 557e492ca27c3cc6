//! Source positions and diagnostics: every error the checker finds points at
//! the offending text with `file:line:column` and a caret, like a compiler.

// A parser of outside input: no indexing that can panic, no arithmetic
// that can overflow.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::fmt;
use std::ops::Range;
use twinshield_shield_macros::diversify;

/// A byte range in the model's source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte of the range.
    pub start: usize,
    /// One past the last byte of the range.
    pub end: usize,
}

#[diversify]
impl Span {
    /// A span from `start` to `end` (swapped if given backwards).
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start: start.min(end),
            end: start.max(end),
        }
    }

    /// The same span moved right by `offset` bytes.
    pub(crate) fn shifted(self, offset: usize) -> Span {
        Span::new(
            self.start.saturating_add(offset),
            self.end.saturating_add(offset),
        )
    }

    /// The smallest span covering both.
    pub(crate) fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

#[diversify]
impl From<Range<usize>> for Span {
    fn from(r: Range<usize>) -> Self {
        Span::new(r.start, r.end)
    }
}

/// One problem found in a model, located in its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Where the problem is.
    pub span: Span,
    /// What is wrong, in one sentence without a trailing period.
    pub message: String,
}

#[diversify]
impl Diagnostic {
    pub(crate) fn new(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            span,
            message: message.into(),
        }
    }
}

/// All problems found in one model file, with the source needed to show them.
#[derive(Debug, Clone)]
pub struct Report {
    file: String,
    source: String,
    diagnostics: Vec<Diagnostic>,
}

#[diversify]
impl Report {
    pub(crate) fn new(file: &str, source: &str, mut diagnostics: Vec<Diagnostic>) -> Self {
        diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
        diagnostics.dedup();
        Report {
            file: file.to_owned(),
            source: source.to_owned(),
            diagnostics,
        }
    }

    /// The problems, in source order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// One-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.source, offset)
    }
}

/// One-based line and column (in characters) of `offset` in `source`; offsets
/// past the end or inside a character clamp to the nearest valid position.
#[diversify]
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(source, offset);
    let before = source.get(..offset).unwrap_or("");
    let line = before.matches('\n').count().saturating_add(1);
    let line_start = before.rfind('\n').map_or(0, |i| i.saturating_add(1));
    let col = before
        .get(line_start..)
        .unwrap_or("")
        .chars()
        .count()
        .saturating_add(1);
    (line, col)
}

#[diversify]
fn floor_char_boundary(s: &str, offset: usize) -> usize {
    let mut o = offset.min(s.len());
    while o > 0 && !s.is_char_boundary(o) {
        o = o.saturating_sub(1);
    }
    o
}

#[diversify]
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let (line, col) = self.line_col(d.span.start);
            writeln!(f, "{}:{}:{}: error: {}", self.file, line, col, d.message)?;
            let text = self
                .source
                .lines()
                .nth(line.saturating_sub(1))
                .unwrap_or("");
            let text: String = text
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            let start = floor_char_boundary(&self.source, d.span.start);
            let end = floor_char_boundary(&self.source, d.span.end).max(start);
            let width = self
                .source
                .get(start..end)
                .unwrap_or("")
                .split('\n')
                .next()
                .unwrap_or("")
                .chars()
                .count()
                .max(1);
            writeln!(f, "  {text}")?;
            write!(
                f,
                "  {}{}",
                " ".repeat(col.saturating_sub(1)),
                "^".repeat(width)
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Report {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let s = "ab\ncd\n";
        assert_eq!(line_col(s, 0), (1, 1));
        assert_eq!(line_col(s, 4), (2, 2));
        assert_eq!(line_col(s, 999), (3, 1));
    }

    #[test]
    fn report_shows_file_line_column_text_and_caret() {
        let src = "x = 1\ny = \"a + bogus\"\n";
        let start = src.find("bogus").unwrap_or(0);
        let r = Report::new(
            "m.twin",
            src,
            vec![Diagnostic::new(
                Span::new(start, start + 5),
                "unknown name `bogus`",
            )],
        );
        let shown = r.to_string();
        assert_eq!(
            shown,
            "m.twin:2:10: error: unknown name `bogus`\n  y = \"a + bogus\"\n           ^^^^^"
        );
    }
}
