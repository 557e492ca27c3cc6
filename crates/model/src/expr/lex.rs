// A parser of outside input: no indexing that can panic, no arithmetic
// that can overflow.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
use crate::diag::{Diagnostic, Span};
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
            '<' | '>' | '=' | '!' => {
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
            c if c.is_ascii_digit() || c == '.' => {
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
                    Ok(v) if v.is_finite() && !text.contains(['i', 'n', 'I', 'N']) => {
                        Ok((Tok::Num(v), span))
                    }
                    Ok(_) => Err(Diagnostic::new(
                        span,
                        format!("number `{text}` is out of range"),
                    )),
                    Err(_) => Err(Diagnostic::new(span, format!("malformed number `{text}`"))),
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
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
                Ok((Tok::Ident(text), Span::new(start, end)))
            }
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
