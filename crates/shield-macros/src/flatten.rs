//! Control-flow flattening for `#[protect]`.
//!
//! Every block of the function body (and, recursively, the blocks nested
//! in its expressions: `if`/`else` branches, loop bodies, match arms,
//! closure bodies) is cut into *runs*: maximal sequences of expression
//! statements that the macro can place inside a dispatcher loop. A run
//! becomes
//!
//! ```text
//! let mut __ts_sN: u64 = E0;
//! '__ts_dN: loop {
//!     match ((__ts_sN ^ __ts_k).wrapping_mul(M)).rotate_left(R) {
//!         L0 => { __ts_sN = E1; statement 1 }
//!         ...
//!         Lk => break '__ts_dN,
//!         _ => ::std::process::abort(),
//!     }
//! }
//! ```
//!
//! with `__ts_k` read once per call through `black_box`, so the optimiser
//! sees neither which arm follows which nor when the loop ends. Labels,
//! multiplier, rotation and arm order are drawn from the build seed.
//!
//! What ends a run (and stays in straight-line code after the dispatcher,
//! in its original order and lexical scope): `let` statements (their
//! bindings must stay visible to the rest of the block), items (hoisted to
//! the start of the block), statement macros, the last statement of a
//! block that is not a loop body (it may be the diverging statement that
//! gives the block its type), and any statement that:
//! - mentions a binding declared with deferred initialisation (`let x;`),
//! - may move a binding declared outside it that is not known to be
//!   `Copy` (see [`Ctx`]: only places, comparison operands, references and
//!   receivers of well-known non-consuming methods count as non-moving),
//! - contains a macro whose tokens hold `break` or `continue` (they cannot
//!   be re-targeted),
//! - names a binding that may borrow from another binding the run names
//!   (the borrow would stay alive over the dispatcher's back edge): such a
//!   statement starts a dispatcher of its own, or stays out if it names
//!   both itself.
//!
//! Unlabelled `break`/`continue` that target a loop of the function are
//! given that loop's label (a fresh `'__ts_lN` when it has none) before the
//! blocks are flattened, so that they keep their target inside a
//! dispatcher.
//!
//! Soundness: the transformation preserves evaluation order, the scope and
//! drop order of every binding and temporary, and the target of every
//! `break`, `continue`, `return` and `?`. What the name analysis cannot
//! know (types) only decides what is flattened; if it misjudges, rustc's
//! borrow checker rejects the expansion at compile time (a moved value in a
//! loop, a borrow kept alive over the dispatcher's back edge): it never
//! changes behaviour.

use std::collections::{HashMap, HashSet};

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote};
use syn::punctuated::Punctuated;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{BinOp, Block, Expr, FnArg, Ident, Lifetime, Pat, Stmt, Token, Type, parse_quote};

/// Smallest run turned into a dispatcher: a lone statement has no order to
/// hide, and in a hot function (the VM's eval) or a loop body its
/// dispatcher would cost every call or iteration for nothing.
pub(crate) const MIN_RUN: usize = 2;

/// Reserved prefix of the identifiers and labels the macro generates.
pub(crate) const RESERVED: &str = "__ts";

/// What a binding is known to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    /// A primitive (integer, float, `bool`, `char`): holds no borrow.
    Prim,
    /// `Copy` (primitives, shared references, values read by indexing,
    /// casts, literals): moving it is copying it.
    Copy,
    /// A mutable reference: used through projections and reborrows.
    Ref,
    /// Anything else: moving it twice is an error.
    Owned,
}

/// Primitive type names.
fn primitive(name: &str) -> bool {
    matches!(
        name,
        "u8" | "u16"
            | "u32"
            | "u64"
            | "u128"
            | "usize"
            | "i8"
            | "i16"
            | "i32"
            | "i64"
            | "i128"
            | "isize"
            | "f32"
            | "f64"
            | "bool"
            | "char"
    )
}

/// The class of a value of type `ty`.
fn type_class(ty: &Type) -> Class {
    match ty {
        Type::Reference(r) if r.mutability.is_some() => Class::Ref,
        Type::Reference(_) | Type::Ptr(_) => Class::Copy,
        Type::Path(p)
            if p.qself.is_none()
                && p.path
                    .get_ident()
                    .is_some_and(|i| primitive(&i.to_string())) =>
        {
            Class::Prim
        }
        Type::Paren(p) => type_class(&p.elem),
        Type::Group(g) => type_class(&g.elem),
        Type::Array(a) => type_class(&a.elem),
        _ => Class::Owned,
    }
}

// Long: a table, one method name per line; cut in two it would only be
// harder to search.
/// Methods known to take `&self` or `&mut self`: their receiver is not
/// moved.
fn borrowing_method(name: &str) -> bool {
    matches!(
        name,
        "len"
            | "is_empty"
            | "push"
            | "push_str"
            | "pop"
            | "extend"
            | "extend_from_slice"
            | "insert"
            | "remove"
            | "get"
            | "get_mut"
            | "iter"
            | "iter_mut"
            | "contains"
            | "contains_key"
            | "starts_with"
            | "ends_with"
            | "as_str"
            | "as_bytes"
            | "as_slice"
            | "as_mut_slice"
            | "as_ref"
            | "as_mut"
            | "as_ptr"
            | "clone"
            | "to_vec"
            | "to_owned"
            | "to_string"
            | "clear"
            | "truncate"
            | "first"
            | "last"
            | "first_mut"
            | "last_mut"
            | "split_at"
            | "split_at_mut"
            | "copy_from_slice"
            | "clone_from_slice"
            | "fill"
            | "sort"
            | "sort_unstable"
            | "dedup"
            | "reverse"
            | "retain"
            | "lines"
            | "split"
            | "split_whitespace"
            | "trim"
            | "chars"
            | "bytes"
            | "windows"
            | "chunks"
            | "chunks_exact"
            | "update"
            | "write"
            | "write_all"
            | "write_str"
            | "read"
            | "read_exact"
            | "next"
            | "peek"
            | "swap"
            | "resize"
            | "reserve"
            | "cmp"
            | "partial_cmp"
            | "eq"
            | "ne"
            | "fmt"
            | "borrow"
            | "borrow_mut"
            | "keys"
            | "values"
            | "values_mut"
            | "entry"
            | "drain"
            | "display"
    )
}

/// Methods whose result is a primitive (`usize`, `bool`): a binding
/// initialised with one is `Copy`.
fn primitive_method(name: &str) -> bool {
    matches!(
        name,
        "len"
            | "is_empty"
            | "is_some"
            | "is_none"
            | "is_ok"
            | "is_err"
            | "count_ones"
            | "count_zeros"
            | "leading_zeros"
            | "trailing_zeros"
            | "contains"
            | "starts_with"
            | "ends_with"
            | "remaining"
    )
}

/// Macros whose arguments are taken by reference (formatting, assertions).
fn referencing_macro(name: &str) -> bool {
    matches!(
        name,
        "format"
            | "format_args"
            | "print"
            | "println"
            | "eprint"
            | "eprintln"
            | "write"
            | "writeln"
            | "panic"
            | "assert"
            | "assert_eq"
            | "assert_ne"
            | "debug_assert"
            | "debug_assert_eq"
            | "debug_assert_ne"
            | "unreachable"
            | "trace"
            | "debug"
            | "info"
            | "warn"
            | "error"
    )
}

/// Whether `name` is one of the macro's own identifiers.
fn reserved(name: &str) -> bool {
    name.starts_with(RESERVED)
}

/// Names a binding could have: lower-case (upper-case identifiers in
/// patterns and paths are constants, unit structs and variants).
fn binding_name(ident: &Ident) -> Option<String> {
    let s = ident.to_string();
    let s = s.strip_prefix("r#").map(str::to_owned).unwrap_or(s);
    let first = s.chars().next()?;
    (first.is_lowercase() || first == '_' || s == "self")
        .then_some(s)
        .filter(|s| !reserved(s) && s != "_")
}

/// Every binding name a pattern introduces.
fn pattern_names(pat: &Pat, out: &mut Vec<String>) {
    struct Names<'a>(&'a mut Vec<String>);
    impl<'ast> Visit<'ast> for Names<'_> {
        fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
            if let Some(n) = binding_name(&p.ident) {
                self.0.push(n);
            }
            if let Some((_, sub)) = &p.subpat {
                self.visit_pat(sub);
            }
        }
        // Paths in patterns (constants, variants) bind nothing.
        fn visit_expr(&mut self, _: &'ast Expr) {}
    }
    Names(out).visit_pat(pat);
}

/// Methods of primitives that return a primitive again (the result is
/// `Copy` when the receiver is).
fn arithmetic_method(name: &str) -> bool {
    [
        "wrapping_",
        "checked_",
        "saturating_",
        "overflowing_",
        "rotate_",
        "to_le",
        "to_be",
    ]
    .iter()
    .any(|p| name.starts_with(p))
        || matches!(
            name,
            "pow" | "abs" | "min" | "max" | "signum" | "swap_bytes" | "reverse_bits"
        )
}

impl Bindings {
    /// The class of the value of `e`, as far as the names bound so far
    /// tell.
    fn expr_class(&self, e: &Expr) -> Class {
        match e {
            Expr::Lit(_) | Expr::Cast(_) => Class::Prim,
            Expr::Index(_) => Class::Copy,
            Expr::Path(p) => match p.path.get_ident().and_then(binding_name) {
                Some(n) => self.class.get(&n).copied().unwrap_or(Class::Copy),
                // Constants, functions, unit values: a fresh value per use.
                None => Class::Prim,
            },
            Expr::Unary(u) if !matches!(u.op, syn::UnOp::Deref(_)) => self.expr_class(&u.expr),
            Expr::Binary(b) => match b.op {
                BinOp::Eq(_)
                | BinOp::Ne(_)
                | BinOp::Lt(_)
                | BinOp::Le(_)
                | BinOp::Gt(_)
                | BinOp::Ge(_)
                | BinOp::And(_)
                | BinOp::Or(_) => Class::Prim,
                _ => self.expr_class(&b.left).max(self.expr_class(&b.right)),
            },
            Expr::Reference(r) if r.mutability.is_some() => Class::Ref,
            Expr::Reference(_) => Class::Copy,
            Expr::MethodCall(m) if primitive_method(&m.method.to_string()) => Class::Prim,
            Expr::MethodCall(m) if arithmetic_method(&m.method.to_string()) => {
                m.args.iter().fold(self.expr_class(&m.receiver), |c, a| {
                    c.max(self.expr_class(a))
                })
            }
            Expr::Call(c) => match &*c.func {
                // `u64::from(..)`, `usize::from_le_bytes(..)`...
                Expr::Path(p)
                    if p.path.segments.len() == 2
                        && primitive(&p.path.segments[0].ident.to_string())
                        && (p.path.segments[1].ident == "from"
                            || p.path.segments[1].ident.to_string().ends_with("_bytes")) =>
                {
                    Class::Prim
                }
                _ => Class::Owned,
            },
            Expr::Paren(p) => self.expr_class(&p.expr),
            Expr::Group(g) => self.expr_class(&g.expr),
            _ => Class::Owned,
        }
    }

    /// The class of the items of `for` over `iter`.
    fn for_class(&self, iter: &Expr) -> Class {
        match iter {
            Expr::Reference(r) if r.mutability.is_none() => Class::Copy,
            Expr::Reference(_) => Class::Ref,
            Expr::MethodCall(m) => match m.method.to_string().as_str() {
                "iter" | "chars" | "bytes" | "char_indices" => Class::Copy,
                "iter_mut" => Class::Ref,
                "enumerate" | "rev" | "skip" | "take" | "step_by" | "copied" => {
                    self.for_class(&m.receiver)
                }
                "zip" => m
                    .args
                    .iter()
                    .fold(self.for_class(&m.receiver), |c, a| c.max(self.for_class(a))),
                _ => Class::Owned,
            },
            Expr::Range(r) => {
                let start = r
                    .start
                    .as_deref()
                    .map_or(Class::Prim, |e| self.expr_class(e));
                let end = r.end.as_deref().map_or(Class::Prim, |e| self.expr_class(e));
                start.max(end)
            }
            Expr::Paren(p) => self.for_class(&p.expr),
            Expr::Path(_) => match self.expr_class(iter) {
                // A slice or array reference iterates shared references.
                Class::Prim | Class::Copy => Class::Copy,
                _ => Class::Owned,
            },
            _ => Class::Owned,
        }
    }
}

/// What the function's bindings are, by name (all bindings of a name
/// together: shadowing makes the analysis conservative, never wrong).
#[derive(Default)]
pub(crate) struct Bindings {
    /// Binding sites per name in the whole body.
    sites: HashMap<String, usize>,
    /// The worst class per name (parameters and every binding site).
    class: HashMap<String, Class>,
    /// Names parameters bind.
    params: HashSet<String>,
    /// Names bound by a `let` without initialiser.
    deferred: HashSet<String>,
    /// The bindings named where each binding got its value (what it may
    /// borrow from).
    roots: HashMap<String, HashSet<String>>,
}

impl Bindings {
    fn record(&mut self, name: String, class: Class, site: bool) {
        let c = self.class.entry(name.clone()).or_insert(class);
        *c = (*c).max(class);
        if site {
            *self.sites.entry(name).or_insert(0) += 1;
        }
    }

    /// The bindings of the function `sig`/`body` (read before the body is
    /// rewritten).
    pub(crate) fn of(sig: &syn::Signature, body: &Block) -> Self {
        let mut b = Bindings::default();
        for arg in &sig.inputs {
            match arg {
                FnArg::Receiver(r) => {
                    let class = match &r.kind {
                        syn::ReceiverKind::Reference(_, _, Some(_)) => Class::Ref,
                        syn::ReceiverKind::Reference(_, _, None) => Class::Copy,
                        syn::ReceiverKind::Typed(_, ty) => type_class(ty),
                        _ => Class::Owned,
                    };
                    b.params.insert("self".into());
                    b.record("self".into(), class, false);
                }
                FnArg::Typed(t) => {
                    let mut names = Vec::new();
                    pattern_names(&t.pat, &mut names);
                    let class = match &*t.pat {
                        Pat::Ident(_) => type_class(&t.ty),
                        _ => Class::Owned,
                    };
                    for n in names {
                        b.params.insert(n.clone());
                        b.record(n, class, false);
                    }
                }
            }
        }
        b.visit_block(body);
        b
    }

    fn bind(&mut self, pat: &Pat, class: Class, from: Option<&Expr>) {
        let roots = match from {
            Some(e) if class != Class::Prim => locals_in(e),
            _ => HashSet::new(),
        };
        let mut names = Vec::new();
        pattern_names(pat, &mut names);
        // A plain identifier gets the class of its value, and so does
        // every part of a `Copy` or mutably borrowed value; the parts of
        // an owned value are not known.
        let class = match pat {
            Pat::Ident(p) if p.subpat.is_none() => class,
            Pat::Type(t) if matches!(&*t.pat, Pat::Ident(_)) => class,
            _ if class != Class::Owned => class,
            _ => Class::Owned,
        };
        for n in names {
            self.roots
                .entry(n.clone())
                .or_default()
                .extend(roots.iter().cloned());
            self.record(n, class, true);
        }
    }

    /// What `names` may borrow from, transitively.
    fn borrowed(&self, names: &HashSet<String>) -> HashSet<String> {
        let mut out = HashSet::new();
        let mut todo: Vec<&String> = names.iter().collect();
        while let Some(n) = todo.pop() {
            for r in self.roots.get(n).into_iter().flatten() {
                if out.insert(r.clone()) {
                    todo.push(r);
                }
            }
        }
        out
    }
}

impl<'ast> Visit<'ast> for Bindings {
    fn visit_local(&mut self, l: &'ast syn::Local) {
        let class = match (&l.pat, &l.init) {
            (Pat::Type(t), _) => type_class(&t.ty),
            (_, Some(init)) if init.diverge.is_none() => self.expr_class(&init.expr),
            _ => Class::Owned,
        };
        if l.init.is_none() {
            let mut names = Vec::new();
            pattern_names(&l.pat, &mut names);
            self.deferred.extend(names);
        }
        let from = l.init.as_ref().map(|i| &*i.expr);
        self.bind(&l.pat, class, from);
        if let Some(init) = &l.init {
            self.visit_expr(&init.expr);
            if let Some((_, e)) = &init.diverge {
                self.visit_expr(e);
            }
        }
    }

    fn visit_expr_for_loop(&mut self, f: &'ast syn::ExprForLoop) {
        let class = self.for_class(&f.expr);
        self.bind(&f.pat, class, Some(&f.expr));
        self.visit_expr(&f.expr);
        self.visit_block(&f.body);
    }

    fn visit_pat(&mut self, p: &'ast Pat) {
        // Closure parameters: unknown values.
        self.bind(p, Class::Owned, None);
    }

    fn visit_expr_match(&mut self, m: &'ast syn::ExprMatch) {
        self.visit_expr(&m.expr);
        for arm in &m.arms {
            self.bind(&arm.pat, Class::Owned, Some(&m.expr));
            self.visit_expr(&arm.body);
        }
    }

    fn visit_expr_let(&mut self, l: &'ast syn::ExprLet) {
        self.visit_expr(&l.expr);
        self.bind(&l.pat, Class::Owned, Some(&l.expr));
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

/// The binding names an expression mentions (paths and macro tokens).
fn locals_in(e: &Expr) -> HashSet<String> {
    struct Locals(HashSet<String>);
    impl<'ast> Visit<'ast> for Locals {
        fn visit_expr_path(&mut self, p: &'ast syn::ExprPath) {
            if let Some(n) = p.path.get_ident().and_then(binding_name) {
                self.0.insert(n);
            }
        }
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            fn idents(t: &TokenStream, out: &mut HashSet<String>) {
                for t in t.clone() {
                    match t {
                        TokenTree::Ident(i) => out.extend(binding_name(&i)),
                        TokenTree::Group(g) => idents(&g.stream(), out),
                        _ => {}
                    }
                }
            }
            idents(&m.tokens, &mut self.0);
        }
    }
    let mut l = Locals(HashSet::new());
    l.visit_expr(e);
    l.0
}

/// Where an expression is: whether a binding named there is moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// Its value is used (moved, unless `Copy`).
    Value,
    /// It is a place only borrowed or assigned (`&x`, `x[i]`, `x.len()`,
    /// `x == y`, `x = ..`, format arguments).
    Place,
}

/// Checks whether one statement may go into a dispatcher arm.
struct Check<'a> {
    bindings: &'a Bindings,
    /// Binding sites inside the statement, per name.
    inner: HashMap<String, usize>,
    ctx: Ctx,
    /// Inside `return`: what it moves is never used again.
    returning: usize,
    ok: bool,
    /// Bindings from outside the statement that it names.
    mentioned: HashSet<String>,
}

impl Check<'_> {
    fn name(&mut self, name: &str) {
        if reserved(name) {
            return;
        }
        if self.bindings.deferred.contains(name) {
            self.ok = false;
            return;
        }
        let Some(class) = self.bindings.class.get(name) else {
            return; // not a binding: a function, constant, static
        };
        let declared_inside = !self.bindings.params.contains(name)
            && self.inner.get(name) == self.bindings.sites.get(name);
        if declared_inside {
            return;
        }
        self.mentioned.insert(name.to_owned());
        if self.returning > 0 {
            return;
        }
        if *class == Class::Owned && self.ctx == Ctx::Value {
            self.ok = false;
        }
    }

    fn with(&mut self, ctx: Ctx, e: &Expr) {
        let saved = self.ctx;
        self.ctx = ctx;
        self.visit_expr(e);
        self.ctx = saved;
    }

    /// Macro tokens: `break`/`continue` refuse the statement; arguments of
    /// formatting macros are places; other macros' bindings are values.
    fn tokens(&mut self, path: &syn::Path, tokens: &TokenStream) {
        if mentions_jump(tokens) {
            self.ok = false;
            return;
        }
        let name = path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        let parsed = syn::parse::Parser::parse2(
            Punctuated::<Expr, Token![,]>::parse_terminated,
            tokens.clone(),
        );
        let ctx = if referencing_macro(&name) {
            Ctx::Place
        } else {
            Ctx::Value
        };
        match parsed {
            Ok(args) => {
                for a in &args {
                    self.with(ctx, a);
                }
            }
            Err(_) => {
                let saved = self.ctx;
                self.ctx = Ctx::Value;
                self.raw_tokens(tokens);
                self.ctx = saved;
            }
        }
        // Inline format captures, `{name}` in a string literal.
        let saved = self.ctx;
        self.ctx = if referencing_macro(&name) {
            Ctx::Place
        } else {
            Ctx::Value
        };
        for n in captures(tokens) {
            self.name(&n);
        }
        self.ctx = saved;
    }

    fn raw_tokens(&mut self, tokens: &TokenStream) {
        for t in tokens.clone() {
            match t {
                TokenTree::Ident(i) => {
                    if let Some(n) = binding_name(&i) {
                        self.name(&n);
                    }
                }
                TokenTree::Group(g) => self.raw_tokens(&g.stream()),
                _ => {}
            }
        }
    }
}

/// Identifiers captured by format strings in `tokens` (`{name}`,
/// `{name:?}`).
fn captures(tokens: &TokenStream) -> Vec<String> {
    let mut out = Vec::new();
    for t in tokens.clone() {
        match t {
            TokenTree::Literal(l) => {
                let text = l.to_string();
                let mut rest = text.as_str();
                while let Some(i) = rest.find('{') {
                    rest = &rest[i + 1..];
                    if rest.starts_with('{') {
                        rest = &rest[1..];
                        continue;
                    }
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if name
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_lowercase() || c == '_')
                    {
                        out.push(name);
                    }
                }
            }
            TokenTree::Group(g) => out.extend(captures(&g.stream())),
            _ => {}
        }
    }
    out
}

/// Whether `tokens` hold `break` or `continue`.
fn mentions_jump(tokens: &TokenStream) -> bool {
    tokens.clone().into_iter().any(|t| match t {
        TokenTree::Ident(i) => i == "break" || i == "continue",
        TokenTree::Group(g) => mentions_jump(&g.stream()),
        _ => false,
    })
}

impl<'ast> Visit<'ast> for Check<'_> {
    fn visit_expr(&mut self, e: &'ast Expr) {
        if !self.ok {
            return;
        }
        match e {
            Expr::Path(p) if p.qself.is_none() => {
                if let Some(n) = p.path.get_ident().and_then(binding_name) {
                    self.name(&n);
                }
            }
            Expr::Reference(r) => self.with(Ctx::Place, &r.expr),
            Expr::RawAddr(r) => self.with(Ctx::Place, &r.expr),
            Expr::Field(f) => self.with(self.ctx, &f.base),
            Expr::Paren(p) => self.with(self.ctx, &p.expr),
            Expr::Group(g) => self.with(self.ctx, &g.expr),
            Expr::Unary(u) if matches!(u.op, syn::UnOp::Deref(_)) => self.with(self.ctx, &u.expr),
            Expr::Index(i) => {
                self.with(Ctx::Place, &i.expr);
                self.with(Ctx::Value, &i.index);
            }
            Expr::MethodCall(m) => {
                let ctx = if borrowing_method(&m.method.to_string()) {
                    Ctx::Place
                } else {
                    Ctx::Value
                };
                self.with(ctx, &m.receiver);
                for a in &m.args {
                    self.with(Ctx::Value, a);
                }
            }
            Expr::Binary(b) => {
                let (l, r) = match b.op {
                    BinOp::Eq(_)
                    | BinOp::Ne(_)
                    | BinOp::Lt(_)
                    | BinOp::Le(_)
                    | BinOp::Gt(_)
                    | BinOp::Ge(_) => (Ctx::Place, Ctx::Place),
                    BinOp::AddAssign(_)
                    | BinOp::SubAssign(_)
                    | BinOp::MulAssign(_)
                    | BinOp::DivAssign(_)
                    | BinOp::RemAssign(_)
                    | BinOp::BitXorAssign(_)
                    | BinOp::BitAndAssign(_)
                    | BinOp::BitOrAssign(_)
                    | BinOp::ShlAssign(_)
                    | BinOp::ShrAssign(_) => (Ctx::Place, Ctx::Value),
                    _ => (Ctx::Value, Ctx::Value),
                };
                self.with(l, &b.left);
                self.with(r, &b.right);
            }
            Expr::Assign(a) => {
                self.with(Ctx::Place, &a.left);
                self.with(Ctx::Value, &a.right);
            }
            Expr::Return(r) => {
                self.returning += 1;
                if let Some(e) = &r.expr {
                    self.with(Ctx::Value, e);
                }
                self.returning -= 1;
            }
            Expr::Closure(c) if c.capture.is_some() => {
                // A `move` closure moves everything it names.
                self.with(Ctx::Value, &c.body);
            }
            Expr::Macro(m) => self.tokens(&m.mac.path, &m.mac.tokens),
            _ => {
                let saved = self.ctx;
                self.ctx = Ctx::Value;
                syn::visit::visit_expr(self, e);
                self.ctx = saved;
            }
        }
    }

    fn visit_stmt_macro(&mut self, m: &'ast syn::StmtMacro) {
        self.tokens(&m.mac.path, &m.mac.tokens);
    }

    fn visit_local(&mut self, l: &'ast syn::Local) {
        if let Some(init) = &l.init {
            self.with(Ctx::Value, &init.expr);
            if let Some((_, e)) = &init.diverge {
                self.with(Ctx::Value, e);
            }
        }
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

/// Counts the binding sites inside a statement.
fn inner_sites(stmt: &Stmt) -> HashMap<String, usize> {
    let mut b = Bindings::default();
    b.visit_stmt(stmt);
    b.sites
}

/// The seed-drawn choices of one function.
pub(crate) struct Flattener<'a> {
    bindings: Bindings,
    rng: &'a mut dyn FnMut() -> u64,
    /// Dispatchers built so far (also numbers them).
    dispatchers: usize,
    /// Labels given to loops so far.
    labels: usize,
    /// The key all dispatchers decode their state with.
    key: u64,
}

/// The inverse of an odd `m` modulo 2^64 (Newton's iteration).
fn inverse(m: u64) -> u64 {
    let mut x = m;
    for _ in 0..6 {
        x = x.wrapping_mul(2u64.wrapping_sub(m.wrapping_mul(x)));
    }
    x
}

impl<'a> Flattener<'a> {
    /// A flattener for a function whose bindings are `bindings`, drawing
    /// from `rng`.
    pub(crate) fn new(bindings: Bindings, rng: &'a mut dyn FnMut() -> u64) -> Self {
        let key = rng();
        Flattener {
            bindings,
            rng,
            dispatchers: 0,
            labels: 0,
            key,
        }
    }

    /// Flattens `body` in place; returns the key that the function must
    /// bind to `__ts_k: u64` through `black_box` before the body.
    pub(crate) fn run(&mut self, body: &mut Block) -> u64 {
        Labels {
            next: &mut self.labels,
        }
        .visit_block_mut(body);
        self.block(body, false);
        self.key
    }

    fn block(&mut self, block: &mut Block, loop_body: bool) {
        // Inner blocks first.
        for stmt in &mut block.stmts {
            Nested { f: self }.visit_stmt_mut(stmt);
        }
        let has_macro_rules = block.stmts.iter().any(
            |s| matches!(s, Stmt::Item(syn::Item::Macro(m)) if m.mac.path.is_ident("macro_rules")),
        );
        if has_macro_rules {
            return;
        }
        let stmts = std::mem::take(&mut block.stmts);
        let n = stmts.len();
        let has_tail = matches!(stmts.last(), Some(Stmt::Expr(_, None)));
        let mut items = Vec::new();
        let mut out = Vec::new();
        let mut run = Vec::new();
        let mut run_names = HashSet::new();
        for (i, stmt) in stmts.into_iter().enumerate() {
            if matches!(stmt, Stmt::Item(_)) {
                items.push(stmt);
                continue;
            }
            let last = i + 1 == n;
            let tail = last && has_tail;
            let may_end_block = last && !loop_body;
            let names = if tail || may_end_block {
                None
            } else {
                self.flattenable(&stmt).filter(|n| !self.entangled(n))
            };
            match names {
                Some(names) => {
                    let mut all: HashSet<String> = run_names.union(&names).cloned().collect();
                    if self.entangled(&all) {
                        // A dispatcher of its own: no back edge from it
                        // to the statements before.
                        self.flush(&mut run, &mut out);
                        all = names;
                    }
                    run.push(stmt);
                    run_names = all;
                }
                None => {
                    self.flush(&mut run, &mut out);
                    run_names.clear();
                    out.push(stmt);
                }
            }
        }
        self.flush(&mut run, &mut out);
        items.extend(out);
        block.stmts = items;
    }

    /// The outer bindings `stmt` names, if it can go into a dispatcher.
    fn flattenable(&self, stmt: &Stmt) -> Option<HashSet<String>> {
        let Stmt::Expr(e, _) = stmt else {
            return None;
        };
        let mut check = Check {
            bindings: &self.bindings,
            inner: inner_sites(stmt),
            ctx: Ctx::Value,
            returning: 0,
            ok: true,
            mentioned: HashSet::new(),
        };
        check.visit_expr(e);
        check.ok.then_some(check.mentioned)
    }

    /// Whether statements naming `names` keep a borrow alive over the
    /// dispatcher's back edge that another of them conflicts with: some
    /// binding they name may borrow from another they name.
    fn entangled(&self, names: &HashSet<String>) -> bool {
        let borrowed = self.bindings.borrowed(names);
        names.iter().any(|n| borrowed.contains(n))
    }

    fn flush(&mut self, run: &mut Vec<Stmt>, out: &mut Vec<Stmt>) {
        if run.len() < MIN_RUN {
            out.append(run);
            return;
        }
        let stmts = std::mem::take(run);
        let d = self.dispatchers;
        self.dispatchers += 1;
        let state = format_ident!("__ts_s{}", d);
        let label = Lifetime::new(&format!("'__ts_d{d}"), Span::call_site());
        let m = (self.rng)() | 1;
        let r = u32::try_from((self.rng)() % 63 + 1).unwrap_or(1);
        let inv = inverse(m);
        let key = self.key;
        // Distinct labels: one per statement and one to leave.
        let mut labels: Vec<u64> = Vec::with_capacity(stmts.len() + 1);
        while labels.len() < stmts.len() + 1 {
            let l = (self.rng)();
            if !labels.contains(&l) {
                labels.push(l);
            }
        }
        let encode = |l: u64| l.rotate_right(r).wrapping_mul(inv) ^ key;
        let mut arms: Vec<TokenStream> = stmts
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let here = labels[i];
                let next = encode(labels[i + 1]);
                quote! { #here => { #state = #next; #s } }
            })
            .collect();
        let exit = labels[labels.len() - 1];
        arms.push(quote! { #exit => break #label, });
        // Arm order from the seed (Fisher-Yates).
        for i in (1..arms.len()).rev() {
            let j = usize::try_from((self.rng)() % (i as u64 + 1)).unwrap_or(0);
            arms.swap(i, j);
        }
        let start = encode(labels[0]);
        out.push(parse_quote! {
            let mut #state: u64 = #start;
        });
        out.push(parse_quote! {
            #[allow(unused_assignments)]
            #label: loop {
                match (#state ^ __ts_k).wrapping_mul(#m).rotate_left(#r) {
                    #(#arms)*
                    _ => ::std::process::abort(),
                }
            }
        });
    }
}

/// Recurses into the blocks nested in a statement.
struct Nested<'f, 'a> {
    f: &'f mut Flattener<'a>,
}

impl VisitMut for Nested<'_, '_> {
    fn visit_block_mut(&mut self, b: &mut Block) {
        self.f.block(b, false);
    }
    fn visit_expr_for_loop_mut(&mut self, e: &mut syn::ExprForLoop) {
        self.visit_expr_mut(&mut e.expr);
        self.f.block(&mut e.body, true);
    }
    fn visit_expr_while_mut(&mut self, e: &mut syn::ExprWhile) {
        self.visit_expr_mut(&mut e.cond);
        self.f.block(&mut e.body, true);
    }
    fn visit_expr_loop_mut(&mut self, e: &mut syn::ExprLoop) {
        self.f.block(&mut e.body, true);
    }
    // Neither const contexts nor async blocks nor items.
    fn visit_expr_const_mut(&mut self, _: &mut syn::ExprConst) {}
    fn visit_expr_async_mut(&mut self, _: &mut syn::ExprAsync) {}
    fn visit_type_mut(&mut self, _: &mut Type) {}
    fn visit_generic_argument_mut(&mut self, _: &mut syn::GenericArgument) {}
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

/// Gives every loop whose body has an unlabelled `break` or `continue`
/// for it a label, and those jumps the label.
struct Labels<'a> {
    next: &'a mut usize,
}

impl Labels<'_> {
    fn label(&mut self, label: &mut Option<syn::Label>, body: &mut Block) {
        let name = match label {
            Some(l) => l.name.clone(),
            None => Lifetime::new(&format!("'__ts_l{}", *self.next), Span::call_site()),
        };
        let mut jumps = Jumps {
            label: &name,
            found: false,
        };
        jumps.visit_block_mut(body);
        if jumps.found && label.is_none() {
            *self.next += 1;
            *label = Some(syn::Label {
                name,
                colon_token: Default::default(),
            });
        }
        self.visit_block_mut(body);
    }
}

impl VisitMut for Labels<'_> {
    fn visit_expr_for_loop_mut(&mut self, e: &mut syn::ExprForLoop) {
        self.visit_expr_mut(&mut e.expr);
        self.label(&mut e.label, &mut e.body);
    }
    fn visit_expr_while_mut(&mut self, e: &mut syn::ExprWhile) {
        self.visit_expr_mut(&mut e.cond);
        self.label(&mut e.label, &mut e.body);
    }
    fn visit_expr_loop_mut(&mut self, e: &mut syn::ExprLoop) {
        self.label(&mut e.label, &mut e.body);
    }
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

/// Labels the unlabelled jumps of one loop body (not those of nested
/// loops, closures, async blocks or items).
struct Jumps<'a> {
    label: &'a Lifetime,
    found: bool,
}

impl VisitMut for Jumps<'_> {
    fn visit_expr_break_mut(&mut self, e: &mut syn::ExprBreak) {
        if e.label.is_none() {
            e.label = Some(self.label.clone());
            self.found = true;
        }
        if let Some(v) = &mut e.expr {
            self.visit_expr_mut(v);
        }
    }
    fn visit_expr_continue_mut(&mut self, e: &mut syn::ExprContinue) {
        if e.label.is_none() {
            e.label = Some(self.label.clone());
            self.found = true;
        }
    }
    fn visit_expr_for_loop_mut(&mut self, e: &mut syn::ExprForLoop) {
        // The iterator is evaluated outside the inner loop.
        self.visit_expr_mut(&mut e.expr);
    }
    fn visit_expr_while_mut(&mut self, _: &mut syn::ExprWhile) {}
    fn visit_expr_loop_mut(&mut self, _: &mut syn::ExprLoop) {}
    fn visit_expr_closure_mut(&mut self, _: &mut syn::ExprClosure) {}
    fn visit_expr_async_mut(&mut self, _: &mut syn::ExprAsync) {}
    fn visit_expr_const_mut(&mut self, _: &mut syn::ExprConst) {}
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

/// The first identifier or label of `tokens` that uses the reserved
/// prefix, if any (a label's name is an identifier after a `'`).
pub(crate) fn reserved_use(tokens: &TokenStream) -> Option<Span> {
    for t in tokens.clone() {
        match t {
            TokenTree::Ident(i) if reserved(&i.to_string()) => return Some(i.span()),
            TokenTree::Group(g) => {
                if let Some(s) = reserved_use(&g.stream()) {
                    return Some(s);
                }
            }
            _ => {}
        }
    }
    None
}
