//! The expression language inside a `.twin` file: syntax tree, lexer and parser.
//!
//! Expressions are small (one derivative, one sensor), so the parser is a
//! hand-written recursive descent with a nesting limit: hostile input cannot
//! overflow the stack, and every error carries the span of the offending text.

mod ast;
mod lex;
mod parse;

pub use ast::{BinOp, Expr, ExprKind, UnOp};
pub use parse::{MAX_DEPTH, MAX_LEN, MAX_NESTING, parse};
