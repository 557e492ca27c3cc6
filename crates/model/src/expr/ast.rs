use crate::diag::Span;
use twinshield_shield_macros::diversify;

/// A parsed expression with the span of its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What the expression is.
    pub kind: ExprKind,
    /// Where its text is (relative to the start of the expression string
    /// until the document layer shifts it into file offsets).
    pub span: Span,
}

/// The shapes an expression can take.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A numeric literal.
    Num(f64),
    /// A reference to a parameter, input or state.
    Name(String),
    /// A prefix operator.
    Unary(UnOp, Box<Expr>),
    /// An infix operator.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// A built-in function call (`if` included); the span is the name's.
    Call(String, Span, Vec<Expr>),
}

/// Prefix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    /// Arithmetic negation, `-x`.
    Neg,
    /// Logical negation, `not c`.
    Not,
}

/// Infix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `^`, right-associative power.
    Pow,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `and`
    And,
    /// `or`
    Or,
}

#[diversify]
impl Expr {
    /// Height of the tree (a leaf is 1), computed without recursion so that
    /// it is safe on any input.
    pub fn depth(&self) -> usize {
        let mut max = 0;
        let mut stack = vec![(self, 1usize)];
        while let Some((e, d)) = stack.pop() {
            max = max.max(d);
            let next = d.saturating_add(1);
            match &e.kind {
                ExprKind::Num(_) | ExprKind::Name(_) => {}
                ExprKind::Unary(_, a) => stack.push((a, next)),
                ExprKind::Binary(_, a, b) => {
                    stack.push((a, next));
                    stack.push((b, next));
                }
                ExprKind::Call(_, _, args) => stack.extend(args.iter().map(|a| (a, next))),
            }
        }
        max
    }

    /// Moves every span in the tree right by `offset` bytes.
    pub fn shift(&mut self, offset: usize) {
        self.span = self.span.shifted(offset);
        match &mut self.kind {
            ExprKind::Num(_) | ExprKind::Name(_) => {}
            ExprKind::Unary(_, e) => e.shift(offset),
            ExprKind::Binary(_, a, b) => {
                a.shift(offset);
                b.shift(offset);
            }
            ExprKind::Call(_, name, args) => {
                *name = name.shifted(offset);
                for a in args {
                    a.shift(offset);
                }
            }
        }
    }
}
