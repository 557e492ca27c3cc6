//! `#[diversify]`: a per-build variation of every function it reaches.
//!
//! Where `#[protect]` hides the logic of the few functions an attacker
//! reads first, `#[diversify]` is for all the others: it makes two builds
//! (another seed, or the same seed after any change to the sources) differ
//! in the control-flow graph of every function, so that diffing two
//! releases no longer points at the function a fix touched.
//!
//! Each function body (and each closure and async block in it, but for
//! closures inside loops or run once per element of an iterator or a
//! sort) gets one or two *guards*: a value read through `black_box`, a
//! number-theoretic invariant over it that never holds, and a bogus path
//! behind it. The
//! invariant's family, its constants, the bogus path and where in the body
//! each guard stands are drawn from the site's key; nothing else changes,
//! and no guard can ever fire, so behaviour is the same. The cost is a
//! load, a few integer operations and a branch predicted not taken, per
//! call.
//!
//! Applies to a free function, or to every method with a body of an
//! `impl` block or of a trait's default methods. Left as written: `const
//! fn` (a guard cannot run at compile time), functions marked `#[inline]`
//! or `#[inline(always)]` (they are meant to vanish into their callers,
//! whose own guards cover them), `#[protect]` functions (transformed
//! already), `#[test]` functions, and nested items.

use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::visit_mut::VisitMut;
use syn::{Attribute, Block, Expr, Item, Stmt, parse_quote};

/// `#[diversify]` on tokens: `next` draws the site's key stream.
pub(crate) fn expand(
    attr: TokenStream2,
    item: TokenStream2,
    next: &mut dyn FnMut() -> u64,
    passthrough: bool,
) -> TokenStream2 {
    if !attr.is_empty() {
        return syn::Error::new_spanned(attr, "#[diversify] takes no arguments").to_compile_error();
    }
    let mut item: Item = match syn::parse2(item) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    // One function: guarded unless the build is a passthrough one or the
    // function is of a kind left alone.
    let mut function = |attrs: &[Attribute], sig: &syn::Signature, block: &mut Block| {
        if !passthrough && wanted(attrs) && sig.constness.is_none() {
            body(block, next);
        }
    };
    match &mut item {
        Item::Fn(f) => function(&f.attrs, &f.sig, &mut f.block),
        Item::Impl(i) => {
            for it in &mut i.items {
                if let syn::ImplItem::Fn(f) = it {
                    function(&f.attrs, &f.sig, &mut f.block);
                }
            }
        }
        Item::Trait(t) => {
            for it in &mut t.items {
                if let syn::TraitItem::Fn(f) = it
                    && let Some(b) = &mut f.default
                {
                    function(&f.attrs, &f.sig, b);
                }
            }
        }
        other => {
            return syn::Error::new_spanned(
                other,
                "#[diversify] applies to a function, an `impl` block or a trait",
            )
            .to_compile_error();
        }
    }
    quote!(#item)
}

/// Whether a function with these attributes gets guards: not one meant to
/// be inlined (`#[inline]`, `#[inline(always)]`; `#[inline(never)]` is
/// guarded), protected or a test.
fn wanted(attrs: &[Attribute]) -> bool {
    !attrs.iter().any(|a| {
        let Some(last) = a.path().segments.last() else {
            return false;
        };
        match last.ident.to_string().as_str() {
            "protect" | "test" => true,
            "inline" => !a.parse_args::<syn::Ident>().is_ok_and(|arg| arg == "never"),
            _ => false,
        }
    })
}

/// Guards a function body, then the closures and async blocks in it.
fn body(block: &mut Block, next: &mut dyn FnMut() -> u64) {
    Inner { next, repeated: 0 }.visit_block_mut(block);
    guard_block(block, next);
}

/// Puts one or two guards into `block`, each before a statement drawn from
/// the key: never after the last statement, nor after a statement with
/// attributes among the last ones (a `#[cfg]` may remove the last, and the
/// one before becomes the block's value).
fn guard_block(block: &mut Block, next: &mut dyn FnMut() -> u64) {
    let count = if next() & 1 == 0 { 1 } else { 2 };
    for _ in 0..count {
        let mut last = block.stmts.len().saturating_sub(1);
        while last > 0 && block.stmts.get(last - 1).is_some_and(has_attrs) {
            last -= 1;
        }
        let slots = last + 1;
        let at = usize::try_from(next() % slots as u64).unwrap_or(0);
        let g = guard(next);
        block.stmts.insert(at, g);
    }
}

/// Whether a statement carries attributes (a `#[cfg]` may remove it).
fn has_attrs(s: &Stmt) -> bool {
    match s {
        Stmt::Local(l) => !l.attrs.is_empty(),
        Stmt::Macro(m) => !m.attrs.is_empty(),
        Stmt::Item(_) => false,
        Stmt::Expr(e, _) => match e {
            Expr::Block(b) => !b.attrs.is_empty(),
            Expr::Call(c) => !c.attrs.is_empty(),
            Expr::MethodCall(c) => !c.attrs.is_empty(),
            Expr::If(i) => !i.attrs.is_empty(),
            Expr::Match(m) => !m.attrs.is_empty(),
            Expr::Path(p) => !p.attrs.is_empty(),
            Expr::Macro(m) => !m.attrs.is_empty(),
            // Other kinds are taken to carry some: fewer places for a
            // guard, never a wrong one.
            _ => true,
        },
    }
}

/// One guard: an invariant that never holds over a black-boxed value, and
/// a bogus path. Every arithmetic step wraps, so no lint on checked
/// arithmetic fires in the crates that deny it.
fn guard(next: &mut dyn FnMut() -> u64) -> Stmt {
    let v = next();
    let m = next();
    let never: Expr = match next() % 5 {
        // x(x + 1) is even.
        0 => parse_quote! {
            __ts_g.wrapping_mul(__ts_g).wrapping_add(__ts_g) & 1 == 1
        },
        // An odd square is 1 modulo 8.
        1 => parse_quote! {{
            let __ts_o = __ts_g | 1;
            __ts_o.wrapping_mul(__ts_o) & 7 != 1
        }},
        // a^3 - a is a multiple of 3 (a < 2^16: no wrap).
        2 => parse_quote! {{
            let __ts_a = __ts_g & 0xffff;
            __ts_a.wrapping_mul(__ts_a).wrapping_mul(__ts_a).wrapping_sub(__ts_a).wrapping_rem(3) != 0
        }},
        // 7y^2 - 1 is never a square (squares modulo 7 are 0, 1, 2, 4;
        // y, z < 2^20: no wrap).
        3 => parse_quote! {{
            let (__ts_y, __ts_z) = (__ts_g >> 44, __ts_g & 0xf_ffff);
            __ts_y.wrapping_mul(__ts_y).wrapping_mul(7) == __ts_z.wrapping_mul(__ts_z).wrapping_add(1)
        }},
        // A sum of two squares is never 3 modulo 4.
        _ => parse_quote! {{
            let (__ts_p, __ts_q) = (__ts_g & 0xffff_ffff, (__ts_g >> 32) ^ (#m & 0xffff_ffff));
            __ts_p.wrapping_mul(__ts_p).wrapping_add(__ts_q.wrapping_mul(__ts_q)) & 3 == 3
        }},
    };
    let code = i32::try_from(m % 200).unwrap_or(1) + 3;
    let bogus: Block = match next() % 4 {
        0 => parse_quote!({ ::std::process::abort() }),
        1 => parse_quote!({
            ::core::hint::black_box(#m);
            ::std::process::abort()
        }),
        2 => parse_quote!({ ::std::process::exit(#code) }),
        _ => parse_quote!({
            loop {
                ::core::hint::spin_loop();
            }
        }),
    };
    parse_quote! {
        {
            let __ts_g: u64 = ::core::hint::black_box(#v);
            if #never #bogus
        }
    }
}

/// Guards the closures and async blocks of a body (not nested items: they
/// carry their own attribute if they want one). A closure inside a loop,
/// or one that runs once per element, stays as written: its guard would
/// cost every iteration.
struct Inner<'a> {
    next: &'a mut dyn FnMut() -> u64,
    /// Loops and per-element closures around the expression being visited.
    repeated: usize,
}

impl Inner<'_> {
    fn repeated(&mut self, visit: impl FnOnce(&mut Self)) {
        self.repeated += 1;
        visit(self);
        self.repeated -= 1;
    }
}

/// Methods whose closure argument runs once per element: a guard there
/// would cost every element, so such a closure stays as written (the
/// function around the loop carries the guard).
const PER_ELEMENT: &[&str] = &[
    "all",
    "any",
    "filter",
    "filter_map",
    "find",
    "find_map",
    "flat_map",
    "fold",
    "for_each",
    "inspect",
    "map",
    "map_while",
    "max_by",
    "max_by_key",
    "min_by",
    "min_by_key",
    "partition",
    "position",
    "retain",
    "rposition",
    "scan",
    "skip_while",
    "sort_by",
    "sort_by_key",
    "sort_unstable_by",
    "sort_unstable_by_key",
    "take_while",
    "try_fold",
    "try_for_each",
];

impl VisitMut for Inner<'_> {
    fn visit_expr_method_call_mut(&mut self, m: &mut syn::ExprMethodCall) {
        if !PER_ELEMENT.contains(&m.method.to_string().as_str()) {
            syn::visit_mut::visit_expr_method_call_mut(self, m);
            return;
        }
        self.visit_expr_mut(&mut m.receiver);
        for arg in &mut m.args {
            match arg {
                Expr::Closure(c) => {
                    self.repeated(|v| syn::visit_mut::visit_expr_closure_mut(v, c));
                }
                other => self.visit_expr_mut(other),
            }
        }
    }
    fn visit_expr_for_loop_mut(&mut self, e: &mut syn::ExprForLoop) {
        self.visit_expr_mut(&mut e.expr);
        self.repeated(|v| v.visit_block_mut(&mut e.body));
    }
    fn visit_expr_while_mut(&mut self, e: &mut syn::ExprWhile) {
        self.repeated(|v| {
            v.visit_expr_mut(&mut e.cond);
            v.visit_block_mut(&mut e.body);
        });
    }
    fn visit_expr_loop_mut(&mut self, e: &mut syn::ExprLoop) {
        self.repeated(|v| v.visit_block_mut(&mut e.body));
    }
    fn visit_expr_closure_mut(&mut self, c: &mut syn::ExprClosure) {
        syn::visit_mut::visit_expr_closure_mut(self, c);
        if c.constness.is_some() || self.repeated > 0 {
            return;
        }
        let mut block: Block = match &*c.body {
            Expr::Block(b) if b.label.is_none() && b.attrs.is_empty() => b.block.clone(),
            other => parse_quote!({ #other }),
        };
        guard_block(&mut block, self.next);
        *c.body = parse_quote!(#block);
    }
    fn visit_expr_async_mut(&mut self, a: &mut syn::ExprAsync) {
        syn::visit_mut::visit_expr_async_mut(self, a);
        guard_block(&mut a.block, self.next);
    }
    fn visit_expr_const_mut(&mut self, _: &mut syn::ExprConst) {}
    fn visit_item_mut(&mut self, _: &mut Item) {}
}
