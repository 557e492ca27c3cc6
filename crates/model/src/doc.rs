//! Reads the TOML structure of a `.twin` file into spanned declarations.
//!
//! This layer knows the file's shape (sections, keys, value types) but not
//! what names mean; it reports every misplaced, missing or mistyped key with
//! its location and carries on, so that one run of the checker shows all
//! problems at once.

// A parser of outside input: no indexing that can panic, no arithmetic
// that can overflow.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use crate::diag::{Diagnostic, Span};
use crate::expr::{self, Expr, ExprKind};
use toml::Spanned;
use toml::de::{DeTable, DeValue};
use twinshield_shield_macros::diversify;

/// A declaration's name with its location.
#[derive(Debug, Clone)]
pub(crate) struct Name {
    pub text: String,
    pub span: Span,
}

/// A number with its location.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Num {
    pub value: f64,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub(crate) struct RangeDecl {
    pub lo: f64,
    pub hi: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct InputDecl {
    pub name: Name,
    pub unit: String,
    pub range: Option<RangeDecl>,
    pub nominal: Option<Num>,
}

#[derive(Debug, Clone)]
pub(crate) struct StateDecl {
    pub name: Name,
    pub unit: String,
    pub init: Option<Num>,
    pub range: Option<RangeDecl>,
    pub der: Option<Expr>,
}

#[derive(Debug, Clone)]
pub(crate) struct OutputDecl {
    pub name: Name,
    pub unit: String,
    pub expr: Option<Expr>,
    pub noise: Option<Num>,
    pub range: Option<RangeDecl>,
}

/// A number given either once for all, or per name.
#[derive(Debug, Clone)]
pub(crate) enum PerName {
    All(Num),
    Each(Vec<(Name, Num)>),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct EstimatorDecl {
    pub process_noise: Option<PerName>,
    pub measurement_noise: Option<PerName>,
    pub initial_std: Option<PerName>,
}

#[derive(Debug, Clone)]
pub(crate) struct OutputDetectDecl {
    pub name: Name,
    pub cusum_drift: Option<Num>,
    pub cusum_threshold: Option<Num>,
    pub frozen_after: Option<Num>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct DetectDecl {
    pub outputs: Vec<OutputDetectDecl>,
    pub chi2_window: Option<Num>,
    pub chi2_false_alarm: Option<Num>,
}

#[derive(Debug, Clone)]
pub(crate) struct PointDecl {
    pub name: Name,
    pub table: Option<(String, Span)>,
    pub address: Option<Num>,
    pub words: Option<Num>,
    pub scale: Option<Num>,
    pub offset: Option<Num>,
    pub signed: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct ModbusDecl {
    pub unit_id: Option<Num>,
    pub points: Vec<PointDecl>,
}

/// Everything a `.twin` file declares, before names are resolved.
#[derive(Debug, Clone, Default)]
pub(crate) struct TwinDoc {
    pub name: Option<(String, Span)>,
    pub version: Option<(String, Span)>,
    pub step: Option<Num>,
    pub params: Vec<(Name, Num)>,
    pub inputs: Vec<InputDecl>,
    pub states: Vec<StateDecl>,
    pub outputs: Vec<OutputDecl>,
    pub estimator: EstimatorDecl,
    pub detect: DetectDecl,
    pub modbus: Option<ModbusDecl>,
    /// Where the whole document is, for errors about missing sections.
    pub top: Span,
}

/// Parses `src` into a [`TwinDoc`], appending every problem to `diags`.
/// Returns `None` when the text is not TOML at all: then the single syntax
/// error is the only useful report.
#[diversify]
pub(crate) fn read(src: &str, diags: &mut Vec<Diagnostic>) -> Option<TwinDoc> {
    let mut doc = TwinDoc {
        top: Span::new(0, src.find('\n').unwrap_or(src.len())),
        ..TwinDoc::default()
    };
    let root = match DeTable::parse(src) {
        Ok(t) => t,
        Err(e) => {
            let span = e.span().map(Span::from).unwrap_or(doc.top);
            let msg = e.message().trim().trim_end_matches('.').replace('\n', "; ");
            diags.push(Diagnostic::new(span, format!("invalid TOML: {msg}")));
            return None;
        }
    };
    let mut r = Reader { src, diags };
    let mut top = Fields::new(root.get_ref(), "the file");
    if let Some(t) = top.table(&mut r, "twin", true) {
        let mut f = Fields::new(t, "[twin]");
        doc.name = f.string(&mut r, "name", true);
        doc.version = f.string(&mut r, "version", true);
        doc.step = f.number(&mut r, "step", true);
        f.finish(&mut r);
    }
    if let Some(t) = top.table(&mut r, "params", false) {
        for (name, v) in entries(t) {
            if let Some(n) = r.number(v, &format!("parameter `{}`", name.text)) {
                doc.params.push((name, n));
            }
        }
    }
    if let Some(t) = top.table(&mut r, "inputs", true) {
        doc.inputs = read_inputs(&mut r, t);
    }
    if let Some(t) = top.table(&mut r, "states", true) {
        doc.states = read_states(&mut r, t);
    }
    if let Some(t) = top.table(&mut r, "outputs", true) {
        doc.outputs = read_outputs(&mut r, t);
    }
    if let Some(t) = top.table(&mut r, "estimator", false) {
        let mut f = Fields::new(t, "[estimator]");
        doc.estimator.process_noise = f.per_name(&mut r, "process_noise");
        doc.estimator.measurement_noise = f.per_name(&mut r, "measurement_noise");
        doc.estimator.initial_std = f.per_name(&mut r, "initial_std");
        f.finish(&mut r);
    }
    if let Some(t) = top.table(&mut r, "detect", false) {
        read_detect(&mut r, t, &mut doc.detect);
    }
    if let Some(t) = top.table(&mut r, "bind", false) {
        let mut f = Fields::new(t, "[bind]");
        if let Some(t) = f.table(&mut r, "modbus", false) {
            doc.modbus = Some(read_modbus(&mut r, t));
        }
        f.finish(&mut r);
    }
    top.finish(&mut r);
    Some(doc)
}

/// The `[inputs.NAME]` tables, in source order.
#[diversify]
fn read_inputs(r: &mut Reader<'_>, t: &DeTable<'_>) -> Vec<InputDecl> {
    let mut inputs = Vec::new();
    for (name, v) in entries(t) {
        let section = format!("[inputs.{}]", name.text);
        let Some(t) = r.table(v, &section) else {
            continue;
        };
        let mut f = Fields::new(t, &section);
        let unit = f.string(r, "unit", false).map(|u| u.0).unwrap_or_default();
        let range = f.range(r, "range", true);
        let nominal = f.number(r, "nominal", false);
        f.finish(r);
        inputs.push(InputDecl {
            name,
            unit,
            range,
            nominal,
        });
    }
    inputs
}

/// The `[states.NAME]` tables, in source order.
#[diversify]
fn read_states(r: &mut Reader<'_>, t: &DeTable<'_>) -> Vec<StateDecl> {
    let mut states = Vec::new();
    for (name, v) in entries(t) {
        let section = format!("[states.{}]", name.text);
        let Some(t) = r.table(v, &section) else {
            continue;
        };
        let mut f = Fields::new(t, &section);
        let unit = f.string(r, "unit", false).map(|u| u.0).unwrap_or_default();
        let init = f.number(r, "init", true);
        let range = f.range(r, "range", true);
        let der = f.expr(r, "der", true);
        f.finish(r);
        states.push(StateDecl {
            name,
            unit,
            init,
            range,
            der,
        });
    }
    states
}

/// The `[outputs.NAME]` tables, in source order.
#[diversify]
fn read_outputs(r: &mut Reader<'_>, t: &DeTable<'_>) -> Vec<OutputDecl> {
    let mut outputs = Vec::new();
    for (name, v) in entries(t) {
        let section = format!("[outputs.{}]", name.text);
        let Some(t) = r.table(v, &section) else {
            continue;
        };
        let mut f = Fields::new(t, &section);
        let unit = f.string(r, "unit", false).map(|u| u.0).unwrap_or_default();
        let expr = f.expr(r, "expr", true);
        let noise = f.number(r, "noise", true);
        let range = f.range(r, "range", false);
        f.finish(r);
        outputs.push(OutputDecl {
            name,
            unit,
            expr,
            noise,
            range,
        });
    }
    outputs
}

#[diversify]
fn read_detect(r: &mut Reader<'_>, t: &DeTable<'_>, out: &mut DetectDecl) {
    for (name, v) in entries(t) {
        let section = format!("[detect.{}]", name.text);
        let Some(t) = r.table(v, &section) else {
            continue;
        };
        let mut f = Fields::new(t, &section);
        if name.text == "chi2" {
            out.chi2_window = f.number(r, "window", false);
            out.chi2_false_alarm = f.number(r, "false_alarm", false);
        } else {
            out.outputs.push(OutputDetectDecl {
                cusum_drift: f.number(r, "cusum_drift", false),
                cusum_threshold: f.number(r, "cusum_threshold", false),
                frozen_after: f.number(r, "frozen_after", false),
                name,
            });
        }
        f.finish(r);
    }
}

#[diversify]
fn read_modbus(r: &mut Reader<'_>, t: &DeTable<'_>) -> ModbusDecl {
    let mut decl = ModbusDecl {
        unit_id: None,
        points: Vec::new(),
    };
    for (name, v) in entries(t) {
        if name.text == "unit_id" {
            decl.unit_id = r.number(v, "`unit_id`");
            continue;
        }
        let section = format!("[bind.modbus.{}]", name.text);
        let Some(t) = r.table(v, &section) else {
            continue;
        };
        let mut f = Fields::new(t, &section);
        let table = f.string(r, "table", true);
        let address = f.number(r, "address", true);
        let words = f.number(r, "words", false);
        let scale = f.number(r, "scale", false);
        let offset = f.number(r, "offset", false);
        let signed = f.boolean(r, "signed").unwrap_or(false);
        f.finish(r);
        decl.points.push(PointDecl {
            name,
            table,
            address,
            words,
            scale,
            offset,
            signed,
        });
    }
    decl
}

/// The entries of a table in source order (the TOML map sorts by key).
#[diversify]
fn entries<'a, 'i>(t: &'a DeTable<'i>) -> Vec<(Name, &'a Spanned<DeValue<'i>>)> {
    let mut v: Vec<_> = t
        .iter()
        .map(|(k, v)| {
            (
                Name {
                    text: k.get_ref().to_string(),
                    span: Span::from(k.span()),
                },
                v,
            )
        })
        .collect();
    v.sort_by_key(|(n, _)| n.span.start);
    v
}

struct Reader<'a> {
    src: &'a str,
    diags: &'a mut Vec<Diagnostic>,
}

#[diversify]
fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a number",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

#[diversify]
impl Reader<'_> {
    fn error(&mut self, span: Span, msg: impl Into<String>) {
        self.diags.push(Diagnostic::new(span, msg));
    }

    fn wrong_type(&mut self, v: &Spanned<DeValue<'_>>, what: &str, wanted: &str) {
        let found = type_name(v.get_ref());
        self.error(
            Span::from(v.span()),
            format!("{what} must be {wanted}, found {found}"),
        );
    }

    fn table<'a, 'i>(
        &mut self,
        v: &'a Spanned<DeValue<'i>>,
        what: &str,
    ) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(v, what, "a table");
                None
            }
        }
    }

    fn number(&mut self, v: &Spanned<DeValue<'_>>, what: &str) -> Option<Num> {
        let span = Span::from(v.span());
        let value = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|x| x as f64),
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            _ => {
                self.wrong_type(v, what, "a number");
                return None;
            }
        };
        match value {
            Some(x) if x.is_finite() => Some(Num { value: x, span }),
            _ => {
                self.error(span, format!("{what} must be a finite number"));
                None
            }
        }
    }

    fn expr(&mut self, v: &Spanned<DeValue<'_>>, what: &str) -> Option<Expr> {
        let span = Span::from(v.span());
        let text = match v.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Integer(_) | DeValue::Float(_) => {
                let n = self.number(v, what)?;
                return Some(Expr {
                    kind: ExprKind::Num(n.value),
                    span,
                });
            }
            _ => {
                self.wrong_type(v, what, "an expression string");
                return None;
            }
        };
        // Map positions inside the string to the file when the string is
        // written literally; with escapes or line continuations the mapping
        // is not exact, so every position falls back to the whole string.
        let raw = self.src.get(span.start..span.end).unwrap_or("");
        let literal = raw.len() == text.len().saturating_add(2)
            && raw.get(1..raw.len().saturating_sub(1)) == Some(text.as_str());
        let fix = |s: Span| {
            if literal {
                s.shifted(span.start.saturating_add(1))
            } else {
                span
            }
        };
        match expr::parse(&text) {
            Ok(mut e) => {
                if literal {
                    e.shift(span.start.saturating_add(1));
                } else {
                    respan(&mut e, span);
                }
                Some(e)
            }
            Err(d) => {
                self.error(fix(d.span), d.message);
                None
            }
        }
    }
}

#[diversify]
fn respan(e: &mut Expr, span: Span) {
    e.span = span;
    match &mut e.kind {
        ExprKind::Num(_) | ExprKind::Name(_) => {}
        ExprKind::Unary(_, a) => respan(a, span),
        ExprKind::Binary(_, a, b) => {
            respan(a, span);
            respan(b, span);
        }
        ExprKind::Call(_, name, args) => {
            *name = span;
            for a in args {
                respan(a, span);
            }
        }
    }
}

/// The keys of one table, tracking which were read so that the rest can be
/// reported as unknown.
struct Fields<'a, 'i> {
    table: &'a DeTable<'i>,
    section: String,
    used: Vec<String>,
}

#[diversify]
impl<'a, 'i> Fields<'a, 'i> {
    fn new(table: &'a DeTable<'i>, section: &str) -> Self {
        Fields {
            table,
            section: section.to_owned(),
            used: Vec::new(),
        }
    }

    fn get(
        &mut self,
        r: &mut Reader<'_>,
        key: &str,
        required: bool,
    ) -> Option<&'a Spanned<DeValue<'i>>> {
        self.used.push(key.to_owned());
        let v = self.table.get(key);
        if v.is_none() && required {
            let span = self.span();
            r.error(span, format!("{} is missing `{key}`", self.section));
        }
        v
    }

    fn span(&self) -> Span {
        // Point at the first key of the section, or the file's start.
        self.table
            .iter()
            .map(|(k, _)| Span::from(k.span()))
            .min_by_key(|s| s.start)
            .unwrap_or_default()
    }

    fn table(&mut self, r: &mut Reader<'_>, key: &str, required: bool) -> Option<&'a DeTable<'i>> {
        let v = self.get(r, key, required)?;
        r.table(v, &format!("`{key}`"))
    }

    fn number(&mut self, r: &mut Reader<'_>, key: &str, required: bool) -> Option<Num> {
        let v = self.get(r, key, required)?;
        r.number(v, &format!("`{key}`"))
    }

    fn string(&mut self, r: &mut Reader<'_>, key: &str, required: bool) -> Option<(String, Span)> {
        let v = self.get(r, key, required)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), Span::from(v.span()))),
            _ => {
                r.wrong_type(v, &format!("`{key}`"), "a string");
                None
            }
        }
    }

    fn boolean(&mut self, r: &mut Reader<'_>, key: &str) -> Option<bool> {
        let v = self.get(r, key, false)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                r.wrong_type(v, &format!("`{key}`"), "true or false");
                None
            }
        }
    }

    fn expr(&mut self, r: &mut Reader<'_>, key: &str, required: bool) -> Option<Expr> {
        let v = self.get(r, key, required)?;
        r.expr(v, &format!("`{key}`"))
    }

    fn range(&mut self, r: &mut Reader<'_>, key: &str, required: bool) -> Option<RangeDecl> {
        let v = self.get(r, key, required)?;
        let span = Span::from(v.span());
        let DeValue::Array(items) = v.get_ref() else {
            r.wrong_type(v, &format!("`{key}`"), "an array `[low, high]`");
            return None;
        };
        let [lo, hi] = items.as_ref() else {
            r.error(
                span,
                format!("`{key}` must have exactly two numbers, `[low, high]`"),
            );
            return None;
        };
        let lo = r.number(lo, &format!("the low end of `{key}`"))?;
        let hi = r.number(hi, &format!("the high end of `{key}`"))?;
        if lo.value >= hi.value {
            r.error(
                span,
                format!("`{key}` must have its low end below its high end"),
            );
            return None;
        }
        Some(RangeDecl {
            lo: lo.value,
            hi: hi.value,
        })
    }

    fn per_name(&mut self, r: &mut Reader<'_>, key: &str) -> Option<PerName> {
        let v = self.get(r, key, false)?;
        match v.get_ref() {
            DeValue::Table(t) => {
                let mut each = Vec::new();
                for (name, v) in entries(t) {
                    if let Some(n) = r.number(v, &format!("`{key}.{}`", name.text)) {
                        each.push((name, n));
                    }
                }
                Some(PerName::Each(each))
            }
            _ => r.number(v, &format!("`{key}`")).map(PerName::All),
        }
    }

    fn finish(self, r: &mut Reader<'_>) {
        for (k, _) in entries(self.table) {
            if !self.used.contains(&k.text) {
                let known = self
                    .used
                    .iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                r.error(
                    k.span,
                    format!(
                        "unknown key `{}` in {}; expected one of {known}",
                        k.text, self.section
                    ),
                );
            }
        }
    }
}
