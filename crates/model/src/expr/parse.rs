// A parser of outside input: no indexing that can panic, no arithmetic
// that can overflow.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
use super::ast::{BinOp, Expr, ExprKind, UnOp};
use super::lex::{Tok, lex};
use crate::diag::{Diagnostic, Span};
use twinshield_shield_macros::diversify;

/// Deepest syntax tree accepted (nesting of operators, calls and
/// parentheses, long chains like `a+b+c+...` included); deeper input is
/// rejected so that no recursive pass over the tree can exhaust the stack.
pub const MAX_DEPTH: usize = 200;

/// Deepest nesting of parentheses, calls and prefix operators accepted while
/// parsing; bounds the parser's own recursion.
pub const MAX_NESTING: usize = 64;

/// Longest expression text accepted, in bytes.
pub const MAX_LEN: usize = 16 * 1024;

/// Parses one expression. Spans in the result are relative to `src`.
#[diversify]
pub fn parse(src: &str) -> Result<Expr, Diagnostic> {
    if src.len() > MAX_LEN {
        return Err(Diagnostic::new(
            Span::new(0, src.len()),
            format!("expression is longer than {MAX_LEN} bytes"),
        ));
    }
    let toks = lex(src)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let e = p.expr()?;
    if *p.peek() != Tok::Eof {
        return Err(p.unexpected("an operator or the end of the expression"));
    }
    if e.depth() > MAX_DEPTH {
        return Err(Diagnostic::new(
            e.span,
            format!("expression is nested more than {MAX_DEPTH} levels deep"),
        ));
    }
    Ok(e)
}

struct Parser {
    toks: Vec<(Tok, Span)>,
    pos: usize,
    depth: usize,
}

#[diversify]
impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::Eof, |(t, _)| t)
    }

    fn span(&self) -> Span {
        self.toks
            .get(self.pos)
            .or_else(|| self.toks.last())
            .map_or(Span::default(), |(_, s)| *s)
    }

    fn bump(&mut self) -> (Tok, Span) {
        let item = self
            .toks
            .get(self.pos)
            .cloned()
            .unwrap_or((Tok::Eof, self.span()));
        if self.pos < self.toks.len() {
            self.pos = self.pos.saturating_add(1);
        }
        item
    }

    fn is_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == kw)
    }

    fn unexpected(&self, wanted: &str) -> Diagnostic {
        let found = match self.peek() {
            Tok::Eof => "the end of the expression".to_owned(),
            Tok::Num(_) => "a number".to_owned(),
            Tok::Ident(s) => format!("`{s}`"),
            _ => "this symbol".to_owned(),
        };
        Diagnostic::new(self.span(), format!("expected {wanted}, found {found}"))
    }

    fn enter(&mut self) -> Result<(), Diagnostic> {
        self.depth = self.depth.saturating_add(1);
        if self.depth > MAX_NESTING {
            Err(Diagnostic::new(
                self.span(),
                format!("expression is nested more than {MAX_NESTING} levels deep"),
            ))
        } else {
            Ok(())
        }
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn expr(&mut self) -> Result<Expr, Diagnostic> {
        self.enter()?;
        let r = self.or();
        self.leave();
        r
    }

    fn binary(op: BinOp, a: Expr, b: Expr) -> Expr {
        let span = a.span.to(b.span);
        Expr {
            kind: ExprKind::Binary(op, Box::new(a), Box::new(b)),
            span,
        }
    }

    fn or(&mut self) -> Result<Expr, Diagnostic> {
        let mut lhs = self.and()?;
        while self.is_keyword("or") {
            self.bump();
            let rhs = self.and()?;
            lhs = Self::binary(BinOp::Or, lhs, rhs);
        }
        Ok(lhs)
    }

    fn and(&mut self) -> Result<Expr, Diagnostic> {
        let mut lhs = self.not()?;
        while self.is_keyword("and") {
            self.bump();
            let rhs = self.not()?;
            lhs = Self::binary(BinOp::And, lhs, rhs);
        }
        Ok(lhs)
    }

    fn not(&mut self) -> Result<Expr, Diagnostic> {
        if self.is_keyword("not") {
            let (_, start) = self.bump();
            self.enter()?;
            let inner = self.not();
            self.leave();
            let inner = inner?;
            let span = start.to(inner.span);
            return Ok(Expr {
                kind: ExprKind::Unary(UnOp::Not, Box::new(inner)),
                span,
            });
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, Diagnostic> {
        let lhs = self.add()?;
        let op = match self.peek() {
            Tok::Lt => BinOp::Lt,
            Tok::Le => BinOp::Le,
            Tok::Gt => BinOp::Gt,
            Tok::Ge => BinOp::Ge,
            Tok::EqEq => BinOp::Eq,
            Tok::Ne => BinOp::Ne,
            _ => return Ok(lhs),
        };
        self.bump();
        let rhs = self.add()?;
        if matches!(
            self.peek(),
            Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge | Tok::EqEq | Tok::Ne
        ) {
            return Err(Diagnostic::new(
                self.span(),
                "comparisons do not chain; combine them with `and`",
            ));
        }
        Ok(Self::binary(op, lhs, rhs))
    }

    fn add(&mut self) -> Result<Expr, Diagnostic> {
        let mut lhs = self.mul()?;
        loop {
            let op = match self.peek() {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.mul()?;
            lhs = Self::binary(op, lhs, rhs);
        }
    }

    fn mul(&mut self) -> Result<Expr, Diagnostic> {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.unary()?;
            lhs = Self::binary(op, lhs, rhs);
        }
    }

    fn unary(&mut self) -> Result<Expr, Diagnostic> {
        if matches!(self.peek(), Tok::Minus | Tok::Plus) {
            let (tok, start) = self.bump();
            self.enter()?;
            let inner = self.unary();
            self.leave();
            let inner = inner?;
            if tok == Tok::Plus {
                return Ok(inner);
            }
            let span = start.to(inner.span);
            return Ok(Expr {
                kind: ExprKind::Unary(UnOp::Neg, Box::new(inner)),
                span,
            });
        }
        self.pow()
    }

    fn pow(&mut self) -> Result<Expr, Diagnostic> {
        let base = self.primary()?;
        if *self.peek() == Tok::Caret {
            self.bump();
            self.enter()?;
            let exp = self.unary();
            self.leave();
            return Ok(Self::binary(BinOp::Pow, base, exp?));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<Expr, Diagnostic> {
        match self.peek().clone() {
            Tok::Num(v) => {
                let (_, span) = self.bump();
                Ok(Expr {
                    kind: ExprKind::Num(v),
                    span,
                })
            }
            Tok::Ident(name) if matches!(name.as_str(), "and" | "or" | "not") => {
                Err(self.unexpected("a value"))
            }
            Tok::Ident(name) => {
                let (_, span) = self.bump();
                if *self.peek() != Tok::LParen {
                    return Ok(Expr {
                        kind: ExprKind::Name(name),
                        span,
                    });
                }
                self.bump();
                let mut args = Vec::new();
                if *self.peek() != Tok::RParen {
                    loop {
                        args.push(self.expr()?);
                        match self.peek() {
                            Tok::Comma => {
                                self.bump();
                            }
                            Tok::RParen => break,
                            _ => return Err(self.unexpected("`,` or `)`")),
                        }
                    }
                }
                let (_, close) = self.bump();
                Ok(Expr {
                    kind: ExprKind::Call(name, span, args),
                    span: span.to(close),
                })
            }
            Tok::LParen => {
                let (_, open) = self.bump();
                let mut inner = self.expr()?;
                if *self.peek() != Tok::RParen {
                    return Err(self.unexpected("`)`"));
                }
                let (_, close) = self.bump();
                inner.span = open.to(close);
                Ok(inner)
            }
            _ => Err(self.unexpected("a value")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Num(v) => format!("{v}"),
            ExprKind::Name(n) => n.clone(),
            ExprKind::Unary(UnOp::Neg, a) => format!("(-{})", show(a)),
            ExprKind::Unary(UnOp::Not, a) => format!("(not {})", show(a)),
            ExprKind::Binary(op, a, b) => format!("({} {:?} {})", show(a), op, show(b)),
            ExprKind::Call(n, _, args) => {
                let a: Vec<String> = args.iter().map(show).collect();
                format!("{n}({})", a.join(", "))
            }
        }
    }

    fn p(s: &str) -> String {
        match parse(s) {
            Ok(e) => show(&e),
            Err(d) => format!("error at {}..{}: {}", d.span.start, d.span.end, d.message),
        }
    }

    #[test]
    fn precedence_follows_arithmetic() {
        assert_eq!(p("1 + 2 * 3"), "(1 Add (2 Mul 3))");
        assert_eq!(p("-2^2"), "(-(2 Pow 2))");
        assert_eq!(p("2^3^2"), "(2 Pow (3 Pow 2))");
        assert_eq!(p("2^-1"), "(2 Pow (-1))");
        assert_eq!(p("a - b - c"), "((a Sub b) Sub c)");
        assert_eq!(
            p("not a < 1 and b >= 2 or c"),
            "(((not (a Lt 1)) And (b Ge 2)) Or c)"
        );
        assert_eq!(p("if(x > 0, sqrt(x), 0)"), "if((x Gt 0), sqrt(x), 0)");
        assert_eq!(p("1.5e-3 * (h1)"), "(0.0015 Mul h1)");
    }

    #[test]
    fn errors_point_at_the_offending_text() {
        assert_eq!(p("a + $"), "error at 4..5: unexpected character `$`");
        assert_eq!(
            p("a +"),
            "error at 3..3: expected a value, found the end of the expression"
        );
        assert_eq!(
            p("(a"),
            "error at 2..2: expected `)`, found the end of the expression"
        );
        assert_eq!(
            p("a b"),
            "error at 2..3: expected an operator or the end of the expression, found `b`"
        );
        assert_eq!(
            p("a < b < c"),
            "error at 6..7: comparisons do not chain; combine them with `and`"
        );
        assert_eq!(p("1e999"), "error at 0..5: number `1e999` is out of range");
        assert_eq!(p("1.2.3"), "error at 0..5: malformed number `1.2.3`");
        assert_eq!(
            p("a = b"),
            "error at 2..3: `=` is not an operator here; write `==` to compare"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}1{}", "(".repeat(1_000), ")".repeat(1_000));
        assert!(p(&deep).contains("nested more than"));
        let deep_neg = format!("{}1", "-".repeat(1_000));
        assert!(p(&deep_neg).contains("nested more than"));
        let deep_pow = "2^".repeat(1_000) + "2";
        assert!(p(&deep_pow).contains("nested more than"));
        let deep_not = "not ".repeat(1_000) + "a";
        assert!(p(&deep_not).contains("nested more than"));
        let long_chain = "a+".repeat(1_000) + "a";
        assert!(p(&long_chain).contains("nested more than"));
        let fine_chain = "a+".repeat(150) + "a";
        assert!(!p(&fine_chain).contains("error"));
    }
}
