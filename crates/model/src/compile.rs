//! From syntax trees to bytecode: name resolution, type checking, constant
//! folding and common-subexpression elimination over a hash-consed graph,
//! then register allocation and emission.

use crate::bytecode::{Instr, Op, Program, Reg};
use crate::diag::{Diagnostic, Span};
use crate::expr::{BinOp, Expr, ExprKind, UnOp};
use std::collections::HashMap;
use twinshield_shield_macros::diversify;

/// What a name in an expression refers to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Binding {
    Param(f64),
    Input(u16),
    State(u16),
}

/// The value type of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    Num,
    Bool,
}

#[diversify]
impl Type {
    fn describe(self) -> &'static str {
        match self {
            Type::Num => "a number",
            Type::Bool => "a condition (true/false)",
        }
    }
}

/// A node of the expression graph. Constants are keyed by their bits so that
/// equal constants share one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Node {
    Const(u64),
    Input(u16),
    State(u16),
    Op(Op, [u32; 3]),
}

/// Identifies a node.
pub(crate) type NodeId = u32;

/// A hash-consed expression graph: building the same operation on the same
/// operands twice yields the same node, which is common-subexpression
/// elimination for free.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    nodes: Vec<Node>,
    index: HashMap<Node, NodeId>,
}

/// The largest number of nodes one graph may hold (register indices are 16 bits).
const MAX_NODES: usize = 60_000;

#[diversify]
impl Graph {
    fn intern(&mut self, n: Node) -> Option<NodeId> {
        if let Some(&id) = self.index.get(&n) {
            return Some(id);
        }
        if self.nodes.len() >= MAX_NODES {
            return None;
        }
        let id = NodeId::try_from(self.nodes.len()).ok()?;
        self.nodes.push(n);
        self.index.insert(n, id);
        Some(id)
    }

    fn node(&self, id: NodeId) -> Option<Node> {
        self.nodes.get(id as usize).copied()
    }

    fn constant(&self, id: NodeId) -> Option<f64> {
        match self.node(id)? {
            Node::Const(bits) => Some(f64::from_bits(bits)),
            _ => None,
        }
    }

    fn konst(&mut self, v: f64) -> Option<NodeId> {
        self.intern(Node::Const(v.to_bits()))
    }

    /// Builds `op(args)`, folding it when every operand is constant and
    /// applying the algebraic identities that hold bit for bit for every
    /// float (`x + 0` is not one of them: it turns -0 into +0).
    fn op(&mut self, op: Op, args: &[NodeId]) -> Option<NodeId> {
        let mut a = [0u32; 3];
        for (slot, x) in a.iter_mut().zip(args) {
            *slot = *x;
        }
        let consts: Vec<Option<f64>> = args.iter().map(|&x| self.constant(x)).collect();
        if consts.iter().all(Option::is_some) {
            let v: Vec<f64> = consts.iter().map(|c| c.unwrap_or(0.0)).collect();
            let get = |i: usize| v.get(i).copied().unwrap_or(0.0);
            return self.konst(op.apply(get(0), get(1), get(2)));
        }
        let c = |i: usize| consts.get(i).copied().flatten();
        match op {
            // Only +0: x - (-0) is x + 0, which is not x for x = -0.
            Op::Sub if c(1).map(f64::to_bits) == Some(0f64.to_bits()) => return Some(a[0]),
            Op::Mul | Op::Div if c(1) == Some(1.0) => return Some(a[0]),
            Op::Mul if c(0) == Some(1.0) => return Some(a[1]),
            Op::Select => {
                if let Some(cond) = c(0) {
                    return Some(if cond != 0.0 { a[1] } else { a[2] });
                }
            }
            _ => {}
        }
        // Commutative operations get a canonical operand order so that
        // `a*b` and `b*a` share a node.
        if matches!(
            op,
            Op::Add | Op::Mul | Op::Min | Op::Max | Op::Eq | Op::Ne | Op::And | Op::Or
        ) && a[0] > a[1]
        {
            a.swap(0, 1);
        }
        self.intern(Node::Op(op, a))
    }
}

/// Lowers expressions into a [`Graph`], reporting every problem it finds.
pub(crate) struct Lowerer<'a> {
    pub graph: Graph,
    scope: &'a HashMap<String, Binding>,
    pub diags: Vec<Diagnostic>,
}

#[diversify]
fn function(name: &str) -> Option<(Op, usize)> {
    Some(match name {
        "sqrt" => (Op::Sqrt, 1),
        "exp" => (Op::Exp, 1),
        "ln" => (Op::Ln, 1),
        "log10" => (Op::Log10, 1),
        "sin" => (Op::Sin, 1),
        "cos" => (Op::Cos, 1),
        "tan" => (Op::Tan, 1),
        "abs" => (Op::Abs, 1),
        "sign" => (Op::Sign, 1),
        "min" => (Op::Min, 2),
        "max" => (Op::Max, 2),
        "pow" => (Op::Pow, 2),
        // clamp(x, lo, hi) is lowered to max(lo, min(x, hi)).
        "clamp" => (Op::Min, 3),
        "if" => (Op::Select, 3),
        _ => return None,
    })
}

/// Names of the built-in functions, for error messages and reserved words.
pub(crate) const FUNCTIONS: [&str; 14] = [
    "sqrt", "exp", "ln", "log10", "sin", "cos", "tan", "abs", "sign", "min", "max", "pow", "clamp",
    "if",
];

#[diversify]
impl<'a> Lowerer<'a> {
    pub fn new(scope: &'a HashMap<String, Binding>) -> Self {
        Lowerer {
            graph: Graph::default(),
            scope,
            diags: Vec::new(),
        }
    }

    fn error(&mut self, span: Span, msg: impl Into<String>) -> Option<(NodeId, Type)> {
        self.diags.push(Diagnostic::new(span, msg));
        None
    }

    fn too_large(&mut self, span: Span) -> Diagnostic {
        Diagnostic::new(
            span,
            format!("model is too large (more than {MAX_NODES} distinct operations)"),
        )
    }

    fn built(&mut self, id: Option<NodeId>, ty: Type, span: Span) -> Option<(NodeId, Type)> {
        match id {
            Some(id) => Some((id, ty)),
            None => {
                let d = self.too_large(span);
                self.diags.push(d);
                None
            }
        }
    }

    /// Lowers `e`, which must have type `want`; reports and returns `None`
    /// on any error inside it.
    pub fn lower_as(&mut self, e: &Expr, want: Type) -> Option<NodeId> {
        let (id, ty) = self.lower(e)?;
        if ty != want {
            self.error(
                e.span,
                format!("expected {}, found {}", want.describe(), ty.describe()),
            );
            return None;
        }
        Some(id)
    }

    /// Lowers `e` and reports a constant result that is not finite (the
    /// model would produce NaN or infinity whatever the plant does).
    pub fn lower_root(&mut self, e: &Expr) -> Option<NodeId> {
        let id = self.lower_as(e, Type::Num)?;
        if let Some(v) = self.graph.constant(id)
            && !v.is_finite()
        {
            self.error(
                e.span,
                format!("this expression is constant and evaluates to {v}"),
            );
            return None;
        }
        Some(id)
    }

    fn lower(&mut self, e: &Expr) -> Option<(NodeId, Type)> {
        match &e.kind {
            ExprKind::Num(v) => {
                let id = self.graph.konst(*v);
                self.built(id, Type::Num, e.span)
            }
            ExprKind::Name(n) => {
                let id = match self.scope.get(n) {
                    Some(Binding::Param(v)) => self.graph.konst(*v),
                    Some(Binding::Input(i)) => self.graph.intern(Node::Input(*i)),
                    Some(Binding::State(i)) => self.graph.intern(Node::State(*i)),
                    None if function(n).is_some() => {
                        return self.error(
                            e.span,
                            format!("`{n}` is a function; call it as `{n}(...)`"),
                        );
                    }
                    None => {
                        return self.error(
                            e.span,
                            format!("unknown name `{n}`: not a parameter, input or state"),
                        );
                    }
                };
                self.built(id, Type::Num, e.span)
            }
            ExprKind::Unary(op, a) => {
                let (want, op, ty) = match op {
                    UnOp::Neg => (Type::Num, Op::Neg, Type::Num),
                    UnOp::Not => (Type::Bool, Op::Not, Type::Bool),
                };
                let a = self.lower_as(a, want)?;
                let id = self.graph.op(op, &[a]);
                self.built(id, ty, e.span)
            }
            ExprKind::Binary(op, a, b) => self.binary(*op, a, b, e.span),
            ExprKind::Call(name, name_span, args) => self.call(name, *name_span, args, e.span),
        }
    }

    fn binary(&mut self, op: BinOp, a: &Expr, b: &Expr, span: Span) -> Option<(NodeId, Type)> {
        let (vm_op, operand, result) = match op {
            BinOp::Add => (Op::Add, Type::Num, Type::Num),
            BinOp::Sub => (Op::Sub, Type::Num, Type::Num),
            BinOp::Mul => (Op::Mul, Type::Num, Type::Num),
            BinOp::Div => (Op::Div, Type::Num, Type::Num),
            BinOp::Pow => (Op::Pow, Type::Num, Type::Num),
            BinOp::Lt => (Op::Lt, Type::Num, Type::Bool),
            BinOp::Le => (Op::Le, Type::Num, Type::Bool),
            BinOp::Gt => (Op::Gt, Type::Num, Type::Bool),
            BinOp::Ge => (Op::Ge, Type::Num, Type::Bool),
            BinOp::Eq => (Op::Eq, Type::Num, Type::Bool),
            BinOp::Ne => (Op::Ne, Type::Num, Type::Bool),
            BinOp::And => (Op::And, Type::Bool, Type::Bool),
            BinOp::Or => (Op::Or, Type::Bool, Type::Bool),
        };
        // Lower both sides before giving up, so both sides' errors show.
        let la = self.lower_as(a, operand);
        let lb = self.lower_as(b, operand);
        let (la, lb) = (la?, lb?);
        if vm_op == Op::Div && self.graph.constant(lb) == Some(0.0) {
            return self.error(b.span, "division by zero: the divisor is the constant 0");
        }
        let id = self.graph.op(vm_op, &[la, lb]);
        self.built(id, result, span)
    }

    fn call(
        &mut self,
        name: &str,
        name_span: Span,
        args: &[Expr],
        span: Span,
    ) -> Option<(NodeId, Type)> {
        let Some((op, arity)) = function(name) else {
            let msg = if self.scope.contains_key(name) {
                format!("`{name}` is not a function")
            } else {
                format!(
                    "unknown function `{name}`; the functions are {}",
                    FUNCTIONS.join(", ")
                )
            };
            return self.error(name_span, msg);
        };
        if args.len() != arity {
            let plural = if arity == 1 { "" } else { "s" };
            return self.error(
                span,
                format!(
                    "`{name}` takes {arity} argument{plural}, found {}",
                    args.len()
                ),
            );
        }
        if op == Op::Select {
            let c = self.lower_as(args.first()?, Type::Bool);
            let x = self.lower(args.get(1)?);
            let y = self.lower(args.get(2)?);
            let (c, (x, tx), (y, ty)) = (c?, x?, y?);
            if tx != ty {
                return self.error(
                    span,
                    format!(
                        "both branches of `if` must have one type; found {} and {}",
                        tx.describe(),
                        ty.describe()
                    ),
                );
            }
            let id = self.graph.op(Op::Select, &[c, x, y]);
            return self.built(id, tx, span);
        }
        let mut ids = Vec::with_capacity(args.len());
        let mut ok = true;
        for a in args {
            match self.lower_as(a, Type::Num) {
                Some(id) => ids.push(id),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let id = match (name, ids.as_slice()) {
            ("clamp", [x, lo, hi]) => {
                if let (Some(l), Some(h)) = (self.graph.constant(*lo), self.graph.constant(*hi))
                    && l > h
                {
                    return self.error(
                        span,
                        "`clamp` has a constant low bound above its constant high bound",
                    );
                }
                let inner = self.graph.op(Op::Min, &[*x, *hi]);
                inner.and_then(|m| self.graph.op(Op::Max, &[*lo, m]))
            }
            _ => self.graph.op(op, &ids),
        };
        self.built(id, Type::Num, span)
    }
}

/// Emits one program computing `roots` in order, over a register file laid
/// out as `[inputs | states | constants | temporaries]`. Multiplications used
/// once by an addition or subtraction are fused into one instruction.
#[diversify]
pub(crate) fn emit(
    graph: &Graph,
    roots: &[NodeId],
    n_inputs: u16,
    n_states: u16,
) -> Option<Program> {
    let (live, uses) = liveness(graph, roots)?;
    let (fused, absorbed) = plan_fusions(graph, roots, &live, &uses)?;
    let (consts, mut reg_of) = leaf_registers(graph, &live, n_inputs, n_states)?;
    let mut next = usize::from(n_inputs) + usize::from(n_states) + consts.len();
    let mut code = Vec::new();
    // Nodes were created operands-first, so index order is a topological order.
    for (id, node) in graph.nodes.iter().enumerate() {
        let Node::Op(op, args) = *node else { continue };
        if !*live.get(id)? || *absorbed.get(id)? {
            continue;
        }
        let id32 = NodeId::try_from(id).ok()?;
        let (op, args) = fused.get(&id32).copied().unwrap_or((op, args));
        let mut regs = [0 as Reg; 3];
        for (slot, &a) in regs.iter_mut().zip(args.get(..op.arity())?) {
            *slot = (*reg_of.get(a as usize)?)?;
        }
        let dst = Reg::try_from(next).ok()?;
        next += 1;
        *reg_of.get_mut(id)? = Some(dst);
        code.push(Instr {
            op,
            dst,
            a: regs[0],
            b: regs[1],
            c: regs[2],
        });
    }
    let results = roots
        .iter()
        .map(|&r| reg_of.get(r as usize).copied().flatten())
        .collect::<Option<Vec<_>>>()?;
    Some(Program {
        n_inputs,
        n_states,
        consts: crate::constants::Constants::new(&consts),
        n_regs: Reg::try_from(next).ok()?,
        code,
        results,
    })
}

/// The nodes reachable from `roots`, and how often each is used as an
/// operand, both indexed by node.
#[diversify]
fn liveness(graph: &Graph, roots: &[NodeId]) -> Option<(Vec<bool>, Vec<u32>)> {
    let n = graph.nodes.len();
    let mut live = vec![false; n];
    let mut uses = vec![0u32; n];
    let mut stack: Vec<NodeId> = roots.to_vec();
    while let Some(id) = stack.pop() {
        let slot = live.get_mut(id as usize)?;
        if *slot {
            continue;
        }
        *slot = true;
        if let Node::Op(op, args) = graph.node(id)? {
            for &x in args.get(..op.arity())? {
                *uses.get_mut(x as usize)? += 1;
                stack.push(x);
            }
        }
    }
    Some((live, uses))
}

/// A live add or sub with its fused replacement, by node.
type Fusions = HashMap<NodeId, (Op, [NodeId; 3])>;

/// Decides the fusions before anything is emitted: an add/sub whose operand
/// is a mul used only there (and not a root) absorbs it. Returns the fused
/// instructions and, by node, whether a mul was absorbed (then it is not
/// emitted on its own).
#[diversify]
fn plan_fusions(
    graph: &Graph,
    roots: &[NodeId],
    live: &[bool],
    uses: &[u32],
) -> Option<(Fusions, Vec<bool>)> {
    let n = graph.nodes.len();
    let is_root = |id: NodeId| roots.contains(&id);
    let fusable = |id: NodeId| {
        matches!(graph.node(id), Some(Node::Op(Op::Mul, _)))
            && uses.get(id as usize) == Some(&1)
            && !is_root(id)
    };
    let mut fused: Fusions = HashMap::new();
    let mut absorbed = vec![false; n];
    for id in 0..n {
        let id = NodeId::try_from(id).ok()?;
        if !*live.get(id as usize)? {
            continue;
        }
        let Some(Node::Op(op, [x, y, _])) = graph.node(id) else {
            continue;
        };
        let mul_args = |m: NodeId| match graph.node(m) {
            Some(Node::Op(Op::Mul, [p, q, _])) => Some((p, q)),
            _ => None,
        };
        let choice = match op {
            Op::Add if fusable(x) => mul_args(x).map(|(p, q)| (Op::MulAdd, [p, q, y], x)),
            Op::Add if fusable(y) => mul_args(y).map(|(p, q)| (Op::MulAdd, [p, q, x], y)),
            Op::Sub if fusable(x) => mul_args(x).map(|(p, q)| (Op::MulSub, [p, q, y], x)),
            Op::Sub if fusable(y) => mul_args(y).map(|(p, q)| (Op::NegMulAdd, [p, q, x], y)),
            _ => None,
        };
        if let Some((fop, args, mul)) = choice {
            fused.insert(id, (fop, args));
            *absorbed.get_mut(mul as usize)? = true;
        }
    }
    Some((fused, absorbed))
}

/// The registers of the live leaves: inputs and states where the layout
/// puts them, constants after them (in node order, returned as the
/// program's constant table). Operations get theirs as they are emitted.
#[diversify]
fn leaf_registers(
    graph: &Graph,
    live: &[bool],
    n_inputs: u16,
    n_states: u16,
) -> Option<(Vec<f64>, Vec<Option<Reg>>)> {
    let base = usize::from(n_inputs) + usize::from(n_states);
    let mut consts = Vec::new();
    let mut reg_of: Vec<Option<Reg>> = vec![None; graph.nodes.len()];
    for (id, node) in graph.nodes.iter().enumerate() {
        if !*live.get(id)? {
            continue;
        }
        let r = match *node {
            Node::Input(i) => i,
            Node::State(i) => n_inputs.checked_add(i)?,
            Node::Const(bits) => {
                consts.push(f64::from_bits(bits));
                Reg::try_from(base + consts.len() - 1).ok()?
            }
            Node::Op(..) => continue,
        };
        *reg_of.get_mut(id)? = Some(r);
    }
    Some((consts, reg_of))
}
