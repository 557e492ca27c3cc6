//! A checked, compiled twin model: declarations plus the two programs the VM
//! runs (all state derivatives, all sensor outputs).

use crate::bytecode::Program;
use crate::compile::{self, Binding, Lowerer, NodeId};
use crate::diag::{Diagnostic, Report, Span};
use crate::doc::{self, Name, Num, PerName, TwinDoc};
use crate::spec::{
    Channel, DetectConfig, EstimatorConfig, Input, ModbusMap, ModbusPoint, ModbusTable, Output,
    OutputDetect, Param, State,
};
use std::collections::HashMap;
use twinshield_shield_macros::diversify;

/// Largest `.twin` file accepted, in bytes.
pub const MAX_SOURCE_LEN: usize = 1024 * 1024;

/// Most states, inputs or outputs one model may declare.
pub const MAX_CHANNELS: usize = 256;

/// A twin model that passed every check, ready to simulate or estimate.
#[derive(Debug, Clone)]
pub struct Model {
    /// The twin's name.
    pub name: String,
    /// The model's version string.
    pub version: String,
    /// Integration step in seconds.
    pub step: f64,
    /// Named constants (already folded into the programs).
    pub params: Vec<Param>,
    /// Actuator values read from the plant.
    pub inputs: Vec<Input>,
    /// Integrated states.
    pub states: Vec<State>,
    /// Sensor values.
    pub outputs: Vec<Output>,
    /// Kalman filter tuning.
    pub estimator: EstimatorConfig,
    /// Detector settings.
    pub detect: DetectConfig,
    /// Where inputs and outputs live in the plant's Modbus map, if bound.
    pub modbus: Option<ModbusMap>,
    pub(crate) derivatives: Program,
    pub(crate) sensors: Program,
}

#[diversify]
impl Model {
    /// Parses and checks a `.twin` source. `file` names it in error reports.
    /// On failure the [`Report`] lists every problem found, in source order.
    pub fn parse(file: &str, src: &str) -> Result<Model, Report> {
        if src.len() > MAX_SOURCE_LEN {
            let d = Diagnostic::new(
                Span::new(0, 0),
                format!("file is larger than {MAX_SOURCE_LEN} bytes"),
            );
            return Err(Report::new(file, "", vec![d]));
        }
        let mut diags = Vec::new();
        let model = doc::read(src, &mut diags).and_then(|doc| build(src, &doc, &mut diags));
        match model {
            Some(m) if diags.is_empty() => Ok(m),
            _ => {
                if diags.is_empty() {
                    diags.push(Diagnostic::new(
                        Span::new(0, 0),
                        "model could not be compiled",
                    ));
                }
                Err(Report::new(file, src, diags))
            }
        }
    }

    /// The program computing every state's derivative from inputs and states.
    pub fn derivative_program(&self) -> &Program {
        &self.derivatives
    }

    /// The program computing every output from inputs and states.
    pub fn output_program(&self) -> &Program {
        &self.sensors
    }

    /// Initial values of the states, in declaration order.
    pub fn initial_state(&self) -> Vec<f64> {
        self.states.iter().map(|s| s.init).collect()
    }

    /// Index of the input called `name`.
    pub fn input_index(&self, name: &str) -> Option<usize> {
        self.inputs.iter().position(|i| i.name == name)
    }

    /// Each input's nominal value (the middle of its range unless declared).
    pub fn nominal_inputs(&self) -> Vec<f64> {
        self.inputs.iter().map(|i| i.nominal).collect()
    }
}

#[diversify]
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct Declared {
    kind: &'static str,
    span: Span,
}

#[diversify]
fn build(src: &str, doc: &TwinDoc, diags: &mut Vec<Diagnostic>) -> Option<Model> {
    declare_names(src, doc, diags);
    check_shape(doc, diags)?;
    let scope = scope_of(doc)?;
    let states = states_of(doc, diags);
    let inputs = inputs_of(doc, diags);
    let outputs = outputs_of(doc, diags);

    let mut lower = Lowerer::new(&scope);
    let der_roots: Vec<Option<NodeId>> = doc
        .states
        .iter()
        .map(|s| s.der.as_ref().and_then(|e| lower.lower_root(e)))
        .collect();
    let out_roots: Vec<Option<NodeId>> = doc
        .outputs
        .iter()
        .map(|o| o.expr.as_ref().and_then(|e| lower.lower_root(e)))
        .collect();
    diags.append(&mut lower.diags);

    let estimator = estimator_config(doc, &outputs, diags);
    let detect = detect_config(doc, diags);
    let modbus = doc.modbus.as_ref().map(|m| modbus_map(m, doc, diags));

    let der_roots: Option<Vec<NodeId>> = der_roots.into_iter().collect();
    let out_roots: Option<Vec<NodeId>> = out_roots.into_iter().collect();
    let n_in = u16::try_from(inputs.len()).ok()?;
    let n_st = u16::try_from(states.len()).ok()?;
    let (der_roots, out_roots) = (der_roots?, out_roots?);
    let too_large = || {
        Diagnostic::new(
            doc.top,
            "model is too large to compile (register file over 65535)",
        )
    };
    let Some(derivatives) = compile::emit(&lower.graph, &der_roots, n_in, n_st) else {
        diags.push(too_large());
        return None;
    };
    let Some(sensors) = compile::emit(&lower.graph, &out_roots, n_in, n_st) else {
        diags.push(too_large());
        return None;
    };
    Some(Model {
        name: doc.name.as_ref()?.0.clone(),
        version: doc.version.as_ref()?.0.clone(),
        step: doc.step?.value,
        params: doc
            .params
            .iter()
            .map(|(n, v)| Param {
                name: n.text.clone(),
                value: v.value,
            })
            .collect(),
        inputs,
        states,
        outputs,
        estimator,
        detect,
        modbus: modbus.flatten(),
        derivatives,
        sensors,
    })
}

/// Checks every declared name (parameters, inputs, states, outputs, in that
/// order): a valid identifier, no reserved word, declared once.
#[diversify]
fn declare_names(src: &str, doc: &TwinDoc, diags: &mut Vec<Diagnostic>) {
    let mut names: HashMap<String, Declared> = HashMap::new();
    let mut declare = |name: &Name, kind: &'static str, diags: &mut Vec<Diagnostic>| {
        if !is_identifier(&name.text) {
            diags.push(Diagnostic::new(
                name.span,
                format!(
                    "`{}` is not a valid name (letters, digits and `_`, not starting with a digit)",
                    name.text
                ),
            ));
        } else if matches!(name.text.as_str(), "and" | "or" | "not")
            || compile::FUNCTIONS.contains(&name.text.as_str())
        {
            diags.push(Diagnostic::new(
                name.span,
                format!(
                    "`{}` is a reserved word and cannot name a {kind}",
                    name.text
                ),
            ));
        } else if let Some(prev) = names.get(&name.text) {
            diags.push(Diagnostic::new(
                name.span,
                format!(
                    "duplicate name `{}`: already declared as a {} on line {}",
                    name.text,
                    prev.kind,
                    crate::diag::line_col(src, prev.span.start).0
                ),
            ));
        } else {
            names.insert(
                name.text.clone(),
                Declared {
                    kind,
                    span: name.span,
                },
            );
        }
    };
    for (n, _) in &doc.params {
        declare(n, "parameter", diags);
    }
    for i in &doc.inputs {
        declare(&i.name, "input", diags);
    }
    for s in &doc.states {
        declare(&s.name, "state", diags);
    }
    for o in &doc.outputs {
        declare(&o.name, "output", diags);
    }
}

/// Checks the model's size and shape: channel counts within
/// [`MAX_CHANNELS`] (`None` past it: nothing more is worth checking), at
/// least one state and one output, a positive step.
#[diversify]
fn check_shape(doc: &TwinDoc, diags: &mut Vec<Diagnostic>) -> Option<()> {
    for (what, count) in [
        ("inputs", doc.inputs.len()),
        ("states", doc.states.len()),
        ("outputs", doc.outputs.len()),
    ] {
        if count > MAX_CHANNELS {
            diags.push(Diagnostic::new(
                doc.top,
                format!("too many {what}: {count} (at most {MAX_CHANNELS})"),
            ));
            return None;
        }
    }
    if doc.states.is_empty() {
        diags.push(Diagnostic::new(doc.top, "the model declares no states"));
    }
    if doc.outputs.is_empty() {
        diags.push(Diagnostic::new(doc.top, "the model declares no outputs"));
    }
    if let Some(step) = doc.step
        && step.value <= 0.0
    {
        diags.push(Diagnostic::new(
            step.span,
            "`step` must be greater than 0 seconds",
        ));
    }
    Some(())
}

/// What each name means in expressions; the first declaration of a name
/// wins (duplicates were reported by [`declare_names`]).
#[diversify]
fn scope_of(doc: &TwinDoc) -> Option<HashMap<String, Binding>> {
    let mut scope = HashMap::new();
    for (n, v) in &doc.params {
        scope
            .entry(n.text.clone())
            .or_insert(Binding::Param(v.value));
    }
    for (i, d) in doc.inputs.iter().enumerate() {
        scope
            .entry(d.name.text.clone())
            .or_insert(Binding::Input(u16::try_from(i).ok()?));
    }
    for (i, d) in doc.states.iter().enumerate() {
        scope
            .entry(d.name.text.clone())
            .or_insert(Binding::State(u16::try_from(i).ok()?));
    }
    Some(scope)
}

/// The declared states, reporting an `init` outside its range.
#[diversify]
fn states_of(doc: &TwinDoc, diags: &mut Vec<Diagnostic>) -> Vec<State> {
    let mut states = Vec::new();
    for s in &doc.states {
        if let (Some(init), Some(range)) = (s.init, &s.range)
            && (init.value < range.lo || init.value > range.hi)
        {
            diags.push(Diagnostic::new(
                init.span,
                format!(
                    "`init` of state `{}` is {}, outside its range [{}, {}]",
                    s.name.text, init.value, range.lo, range.hi
                ),
            ));
        }
        states.push(State {
            name: s.name.text.clone(),
            unit: s.unit.clone(),
            init: s.init.map_or(0.0, |n| n.value),
            range: s
                .range
                .as_ref()
                .map_or((f64::MIN, f64::MAX), |r| (r.lo, r.hi)),
        });
    }
    states
}

/// The declared inputs, reporting a `nominal` outside its range.
#[diversify]
fn inputs_of(doc: &TwinDoc, diags: &mut Vec<Diagnostic>) -> Vec<Input> {
    let mut inputs = Vec::new();
    for i in &doc.inputs {
        let range = i
            .range
            .as_ref()
            .map_or((f64::MIN, f64::MAX), |r| (r.lo, r.hi));
        let nominal = match i.nominal {
            Some(n) if n.value < range.0 || n.value > range.1 => {
                diags.push(Diagnostic::new(
                    n.span,
                    format!(
                        "`nominal` of input `{}` is {}, outside its range [{}, {}]",
                        i.name.text, n.value, range.0, range.1
                    ),
                ));
                n.value
            }
            Some(n) => n.value,
            None => 0.5 * (range.0 + range.1),
        };
        inputs.push(Input {
            name: i.name.text.clone(),
            unit: i.unit.clone(),
            range,
            nominal,
        });
    }
    inputs
}

/// The declared outputs, reporting a `noise` that is not positive.
#[diversify]
fn outputs_of(doc: &TwinDoc, diags: &mut Vec<Diagnostic>) -> Vec<Output> {
    let mut outputs = Vec::new();
    for o in &doc.outputs {
        if let Some(n) = o.noise
            && n.value <= 0.0
        {
            diags.push(Diagnostic::new(
                n.span,
                "`noise` must be greater than 0 (the estimator weighs each sensor by it)",
            ));
        }
        outputs.push(Output {
            name: o.name.text.clone(),
            unit: o.unit.clone(),
            noise: o.noise.map_or(1.0, |n| n.value),
            range: o
                .range
                .as_ref()
                .map_or((f64::MIN, f64::MAX), |r| (r.lo, r.hi)),
        });
    }
    outputs
}

/// Resolves a per-name setting against the declared names, reporting
/// unknown names and non-positive values.
#[diversify]
fn per_name(
    setting: &Option<PerName>,
    key: &str,
    names: &[&str],
    default: &dyn Fn(usize) -> f64,
    diags: &mut Vec<Diagnostic>,
) -> Vec<f64> {
    let mut values: Vec<f64> = (0..names.len()).map(default).collect();
    let check = |n: &Num, diags: &mut Vec<Diagnostic>| {
        if n.value <= 0.0 {
            diags.push(Diagnostic::new(
                n.span,
                format!("`{key}` must be greater than 0"),
            ));
        }
    };
    match setting {
        None => {}
        Some(PerName::All(n)) => {
            check(n, diags);
            values.iter_mut().for_each(|v| *v = n.value);
        }
        Some(PerName::Each(each)) => {
            for (name, n) in each {
                check(n, diags);
                match names.iter().position(|x| *x == name.text) {
                    Some(i) => {
                        if let Some(v) = values.get_mut(i) {
                            *v = n.value;
                        }
                    }
                    None => diags.push(Diagnostic::new(
                        name.span,
                        format!("`{key}` names `{}`, which is not declared there", name.text),
                    )),
                }
            }
        }
    }
    values
}

#[diversify]
fn estimator_config(
    doc: &TwinDoc,
    outputs: &[Output],
    diags: &mut Vec<Diagnostic>,
) -> EstimatorConfig {
    let state_names: Vec<&str> = doc.states.iter().map(|s| s.name.text.as_str()).collect();
    let output_names: Vec<&str> = doc.outputs.iter().map(|o| o.name.text.as_str()).collect();
    let e = &doc.estimator;
    EstimatorConfig {
        process_noise: per_name(
            &e.process_noise,
            "process_noise",
            &state_names,
            &|_| 0.01,
            diags,
        ),
        measurement_noise: per_name(
            &e.measurement_noise,
            "measurement_noise",
            &output_names,
            &|i| outputs.get(i).map_or(1.0, |o| o.noise),
            diags,
        ),
        initial_std: per_name(&e.initial_std, "initial_std", &state_names, &|_| 1.0, diags),
    }
}

#[diversify]
fn positive(n: Option<Num>, key: &str, diags: &mut Vec<Diagnostic>) -> Option<f64> {
    let n = n?;
    if n.value <= 0.0 {
        diags.push(Diagnostic::new(
            n.span,
            format!("`{key}` must be greater than 0"),
        ));
    }
    Some(n.value)
}

#[diversify]
fn detect_config(doc: &TwinDoc, diags: &mut Vec<Diagnostic>) -> DetectConfig {
    let mut cfg = DetectConfig {
        outputs: vec![OutputDetect::default(); doc.outputs.len()],
        chi2_window: None,
        chi2_false_alarm: None,
    };
    for d in &doc.detect.outputs {
        let Some(i) = doc.outputs.iter().position(|o| o.name.text == d.name.text) else {
            diags.push(Diagnostic::new(
                d.name.span,
                format!("`[detect.{}]` names no declared output", d.name.text),
            ));
            continue;
        };
        if let Some(slot) = cfg.outputs.get_mut(i) {
            *slot = OutputDetect {
                cusum_drift: positive(d.cusum_drift, "cusum_drift", diags),
                cusum_threshold: positive(d.cusum_threshold, "cusum_threshold", diags),
                frozen_after: positive(d.frozen_after, "frozen_after", diags),
            };
        }
    }
    if let Some(w) = doc.detect.chi2_window {
        if w.value < 1.0 || w.value > 100_000.0 || w.value.fract() != 0.0 {
            diags.push(Diagnostic::new(
                w.span,
                "`window` must be a whole number of samples from 1 to 100000",
            ));
        } else {
            cfg.chi2_window = Some(w.value as u32);
        }
    }
    if let Some(p) = doc.detect.chi2_false_alarm {
        if p.value <= 0.0 || p.value >= 1.0 {
            diags.push(Diagnostic::new(
                p.span,
                "`false_alarm` must be a probability between 0 and 1",
            ));
        } else {
            cfg.chi2_false_alarm = Some(p.value);
        }
    }
    cfg
}

#[diversify]
fn modbus_map(
    m: &doc::ModbusDecl,
    doc: &TwinDoc,
    diags: &mut Vec<Diagnostic>,
) -> Option<ModbusMap> {
    let errors_before = diags.len();
    let unit_id = match m.unit_id {
        None => 1,
        Some(n) if n.value >= 0.0 && n.value <= 247.0 && n.value.fract() == 0.0 => n.value as u8,
        Some(n) => {
            diags.push(Diagnostic::new(
                n.span,
                "`unit_id` must be a whole number from 0 to 247",
            ));
            1
        }
    };
    let mut points: Vec<ModbusPoint> = Vec::new();
    for p in &m.points {
        if let Some(point) = modbus_point(p, doc, &points, diags) {
            points.push(point);
        }
    }
    if diags.len() > errors_before {
        return None;
    }
    Some(ModbusMap { unit_id, points })
}

/// One binding of `[bind.modbus]`, checked against the declared channels
/// and the points `bound` before it; `None` (reported, unless a key was
/// missing, which the reader reported) when it cannot be used.
#[diversify]
fn modbus_point(
    p: &doc::PointDecl,
    doc: &TwinDoc,
    bound: &[ModbusPoint],
    diags: &mut Vec<Diagnostic>,
) -> Option<ModbusPoint> {
    let channel = bound_channel(p, doc, bound, diags)?;
    let (table_name, table_span) = p.table.as_ref()?;
    let table = modbus_table(table_name, *table_span, diags)?;
    let address = p.address?;
    if address.value < 0.0 || address.value > 65535.0 || address.value.fract() != 0.0 {
        diags.push(Diagnostic::new(
            address.span,
            "`address` must be a whole number from 0 to 65535",
        ));
        return None;
    }
    let words = match p.words {
        None => 1u8,
        Some(w) if table.is_bit() && w.value != 1.0 => {
            diags.push(Diagnostic::new(
                w.span,
                "bit tables (coil, discrete) hold one bit per point: `words` must be 1",
            ));
            return None;
        }
        Some(w) if w.value == 1.0 || w.value == 2.0 => w.value as u8,
        Some(w) => {
            diags.push(Diagnostic::new(w.span, "`words` must be 1 or 2"));
            return None;
        }
    };
    let last = address.value + f64::from(words) - 1.0;
    if last > 65535.0 {
        diags.push(Diagnostic::new(
            address.span,
            "the point runs past address 65535",
        ));
        return None;
    }
    let scale = match p.scale {
        None => 1.0,
        Some(s) if s.value == 0.0 => {
            diags.push(Diagnostic::new(s.span, "`scale` must not be 0"));
            return None;
        }
        Some(s) => s.value,
    };
    let point = ModbusPoint {
        channel,
        table,
        address: address.value as u16,
        words,
        scale,
        offset: p.offset.map_or(0.0, |o| o.value),
        signed: p.signed,
    };
    if let Some(other) = overlapping(&point, bound) {
        let other_name = match other.channel {
            Channel::Input(i) => doc.inputs.get(i).map(|x| x.name.text.clone()),
            Channel::Output(i) => doc.outputs.get(i).map(|x| x.name.text.clone()),
        }
        .unwrap_or_default();
        diags.push(Diagnostic::new(
            address.span,
            format!(
                "`{}` overlaps `{other_name}` in the {} table at address {}",
                p.name.text,
                table.name(),
                point.address
            ),
        ));
        return None;
    }
    Some(point)
}

/// The declared input or output a binding names, if it names one that is
/// not bound already.
#[diversify]
fn bound_channel(
    p: &doc::PointDecl,
    doc: &TwinDoc,
    bound: &[ModbusPoint],
    diags: &mut Vec<Diagnostic>,
) -> Option<Channel> {
    let channel = if let Some(i) = doc.inputs.iter().position(|x| x.name.text == p.name.text) {
        Channel::Input(i)
    } else if let Some(i) = doc.outputs.iter().position(|x| x.name.text == p.name.text) {
        Channel::Output(i)
    } else {
        diags.push(Diagnostic::new(
            p.name.span,
            format!(
                "binding `{}` points at no declared input or output",
                p.name.text
            ),
        ));
        return None;
    };
    if bound.iter().any(|q| q.channel == channel) {
        diags.push(Diagnostic::new(
            p.name.span,
            format!("`{}` is bound twice", p.name.text),
        ));
        return None;
    }
    Some(channel)
}

/// The Modbus table a binding's `table` names.
#[diversify]
fn modbus_table(name: &str, span: Span, diags: &mut Vec<Diagnostic>) -> Option<ModbusTable> {
    match name {
        "coil" => Some(ModbusTable::Coil),
        "discrete" => Some(ModbusTable::Discrete),
        "input" => Some(ModbusTable::Input),
        "holding" => Some(ModbusTable::Holding),
        other => {
            diags.push(Diagnostic::new(
                span,
                format!(
                    "unknown Modbus table `{other}`; expected coil, discrete, input or holding"
                ),
            ));
            None
        }
    }
}

/// The first of `bound` that shares an address with `point` in its table.
#[diversify]
fn overlapping<'a>(point: &ModbusPoint, bound: &'a [ModbusPoint]) -> Option<&'a ModbusPoint> {
    let end = |q: &ModbusPoint| u32::from(q.address) + u32::from(q.words);
    bound.iter().find(|q| {
        q.table == point.table
            && u32::from(q.address) < end(point)
            && u32::from(point.address) < end(q)
    })
}
