// A parser of outside input: no indexing that can panic, no arithmetic
// that can overflow.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
use crate::diag::{Diagnostic, Span};
use std::iter::Peekable;
use std::str::CharIndices;
use twinshield_shield_macros::diversify;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Num(f64),
    Ident(String),
    Plus,
    Minus,
    Star,
    Slash,
    Caret,
    LParen,
    RParen,
    Comma,
    Lt,
    Le,
    Gt,
    Ge,
    EqEq,
    Ne,
    Eof,
}

/// The characters still to lex, with their byte offsets.
type Chars<'a> = Peekable<CharIndices<'a>>;

/// Splits an expression into tokens, each with its byte span.
#[diversify]
pub(crate) fn lex(src: &str) -> Result<Vec<(Tok, Span)>, Diagnostic> {
    let mut out = Vec::new();
    let mut it = src.char_indices().peekable();
    while let Some((start, c)) = it.next() {
        let single = |tok| Ok::<_, Diagnostic>((tok, Span::new(start, start.saturating_add(1))));
        let item = match c {
            c if c.is_whitespace() => continue,
            '+' => single(Tok::Plus),
            '-' => single(Tok::Minus),
            '*' => single(Tok::Star),
            '/' => single(Tok::Slash),
            '^' => single(Tok::Caret),
            '(' => single(Tok::LParen),
            ')' => single(Tok::RParen),
            ',' => single(Tok::Comma),
            '<' | '>' | '=' | '!' => comparison(c, start, &mut it),
            c if c.is_ascii_digit() || c == '.' => number(src, c, start, &mut it),
            c if c.is_ascii_alphabetic() || c == '_' => Ok(identifier(src, start, &mut it)),
            other => Err(Diagnostic::new(
                Span::new(start, start.saturating_add(other.len_utf8())),
                format!("unexpected character `{}`", other.escape_default()),
            )),
        }?;
        out.push(item);
    }
    out.push((Tok::Eof, Span::new(src.len(), src.len())));
    Ok(out)
}

/// A comparison operator starting with `c` at `start`, taking a following
/// `=` from `it`; a lone `=` or `!` is refused with the operator meant.
#[diversify]
fn comparison(c: char, start: usize, it: &mut Chars<'_>) -> Result<(Tok, Span), Diagnostic> {
    let followed_by_eq = it.next_if(|&(_, n)| n == '=').is_some();
    let end = start.saturating_add(if followed_by_eq { 2 } else { 1 });
    let tok = match (c, followed_by_eq) {
        ('<', false) => Tok::Lt,
        ('<', true) => Tok::Le,
        ('>', false) => Tok::Gt,
        ('>', true) => Tok::Ge,
        ('=', true) => Tok::EqEq,
        ('!', true) => Tok::Ne,
        ('=', false) => {
            return Err(Diagnostic::new(
                Span::new(start, end),
                "`=` is not an operator here; write `==` to compare",
            ));
        }
        _ => {
            return Err(Diagnostic::new(
                Span::new(start, end),
                "`!` is not an operator; write `not` or `!=`",
            ));
        }
    };
    Ok((tok, Span::new(start, end)))
}

/// A number starting with `c` at `start`: everything that can continue a
/// number is taken from `it` (so `1.2.3` and `1x` are one malformed number,
/// not two tokens), then it must parse as a finite `f64` written in digits.
#[diversify]
fn number(src: &str, c: char, start: usize, it: &mut Chars<'_>) -> Result<(Tok, Span), Diagnostic> {
    let mut end = start.saturating_add(1);
    let mut prev = c;
    while let Some(&(i, n)) = it.peek() {
        let exp_sign = (n == '+' || n == '-') && (prev == 'e' || prev == 'E');
        if n.is_ascii_alphanumeric() || n == '.' || n == '_' || exp_sign {
            it.next();
            end = i.saturating_add(n.len_utf8());
            prev = n;
        } else {
            break;
        }
    }
    let span = Span::new(start, end);
    let text = src.get(start..end).unwrap_or("");
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && !text.contains(['i', 'n', 'I', 'N']) => Ok((Tok::Num(v), span)),
        Ok(_) => Err(Diagnostic::new(
            span,
            format!("number `{text}` is out of range"),
        )),
        Err(_) => Err(Diagnostic::new(span, format!("malformed number `{text}`"))),
    }
}

/// An identifier starting at `start`, its rest taken from `it`.
#[diversify]
fn identifier(src: &str, start: usize, it: &mut Chars<'_>) -> (Tok, Span) {
    let mut end = start.saturating_add(1);
    while let Some(&(i, n)) = it.peek() {
        if n.is_ascii_alphanumeric() || n == '_' {
            it.next();
            end = i.saturating_add(1);
        } else {
            break;
        }
    }
    let text = src.get(start..end).unwrap_or("").to_owned();
    (Tok::Ident(text), Span::new(start, end))
}
