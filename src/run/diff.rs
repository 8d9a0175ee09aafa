//! `shoestring diff RUN_A RUN_B`: why two runs differ. Three comparisons,
//! from coarse to fine:
//! 1. the manifests, field by field (seed, device, tier, config, data...),
//!    skipping when and how a run was started ([`Manifest::VOLATILE`]);
//! 2. `steps.jsonl`, line by line: the first step whose loss bits, scale,
//!    flags, learning rate, batch or fingerprints differ;
//! 3. the models, tensor by tensor: at the first checkpoint both runs have
//!    at or after that step (else their final models), which tensors
//!    differ, in how many elements, and by how much at most.
//!
//! Two runs are identical when their logs and the models compared are
//! identical bit for bit; manifests may still differ (a CPU run and a GPU
//! run of the exact tier are identical and say so).

use super::log::{self, StepRecord};
use super::{Manifest, RunDir};
use crate::checkpoint;
use crate::error::Result;
use crate::nn::save::load_tensors;
use crate::nn::HostTensor;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A manifest field that differs.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDifference {
    /// Dotted path (`config.seed`, `device.kind`).
    pub field: String,
    /// Run A's value (JSON), or `(absent)`.
    pub a: String,
    /// Run B's value.
    pub b: String,
}

/// The first step whose log lines differ.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDifference {
    /// The step.
    pub step: u64,
    /// What differs there (`loss_bits`, `params`, `only in run A`, ...).
    pub fields: Vec<String>,
    /// Run A's line, if it has one.
    pub a: Option<StepRecord>,
    /// Run B's line.
    pub b: Option<StepRecord>,
}

/// One tensor that differs between the two models compared.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDifference {
    /// Its name.
    pub name: String,
    /// Elements whose bits differ (all of them when the dims differ or the
    /// tensor is in one model only).
    pub differing: usize,
    /// Its elements (in run A, or B when only there).
    pub total: usize,
    /// The largest `|a - b|` over its elements (infinite when a NaN or an
    /// infinity is involved, or the dims differ).
    pub max_abs: f64,
    /// A note: `dims differ`, `only in run A`, ...
    pub note: Option<String>,
}

/// What was compared tensor by tensor, and what differs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelComparison {
    /// `checkpoint step N` or `final models`.
    pub source: String,
    /// The files compared.
    pub files: (PathBuf, PathBuf),
    /// Tensors compared.
    pub tensors: usize,
    /// Those that differ, by name.
    pub differing: Vec<TensorDifference>,
}

/// The result of [`diff`].
#[derive(Debug, Clone, PartialEq)]
pub struct DiffReport {
    /// Manifest fields that differ.
    pub manifest: Vec<FieldDifference>,
    /// Steps logged by each run.
    pub steps: (usize, usize),
    /// The first step that differs.
    pub first_step: Option<StepDifference>,
    /// The model comparison, when both runs had a model to compare.
    pub models: Option<ModelComparison>,
}

impl DiffReport {
    /// Logs and compared models identical bit for bit.
    pub fn identical(&self) -> bool {
        self.first_step.is_none() && self.models.as_ref().is_none_or(|m| m.differing.is_empty())
    }
}

/// Compares the runs in `a` and `b`.
pub fn diff(a: &Path, b: &Path) -> Result<DiffReport> {
    let (ra, rb) = (RunDir::new(a), RunDir::new(b));
    let (ma, mb) = (
        Manifest::read(&ra.manifest())?,
        Manifest::read(&rb.manifest())?,
    );
    let manifest = manifest_differences(&ma, &mb);
    let (la, lb) = (log::read(&ra.steps())?, log::read(&rb.steps())?);
    let first_step = first_step_difference(&la, &lb);
    let models = compare_models(&ra, &rb, first_step.as_ref().map(|d| d.step))?;
    Ok(DiffReport {
        manifest,
        steps: (la.len(), lb.len()),
        first_step,
        models,
    })
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

fn manifest_differences(a: &Manifest, b: &Manifest) -> Vec<FieldDifference> {
    let (mut fa, mut fb) = (BTreeMap::new(), BTreeMap::new());
    for (m, f) in [(a, &mut fa), (b, &mut fb)] {
        if let Ok(serde_json::Value::Object(mut map)) = serde_json::to_value(m) {
            for k in Manifest::VOLATILE {
                map.remove(k);
            }
            flatten("", &serde_json::Value::Object(map), f);
        }
    }
    let keys: std::collections::BTreeSet<&String> = fa.keys().chain(fb.keys()).collect();
    let absent = || "(absent)".to_string();
    keys.into_iter()
        .filter(|k| fa.get(*k) != fb.get(*k))
        .map(|k| FieldDifference {
            field: k.clone(),
            a: fa.get(k).cloned().unwrap_or_else(absent),
            b: fb.get(k).cloned().unwrap_or_else(absent),
        })
        .collect()
}

fn record_differences(a: &StepRecord, b: &StepRecord) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, same: bool| {
        if !same {
            out.push(name.to_string());
        }
    };
    check("loss_bits", a.loss_bits == b.loss_bits);
    check(
        "scale",
        a.scale.map(f32::to_bits) == b.scale.map(f32::to_bits),
    );
    check("overflow", a.overflow == b.overflow);
    check("skipped", a.skipped == b.skipped);
    check("lr", a.lr.map(f32::to_bits) == b.lr.map(f32::to_bits));
    check("epoch", a.epoch == b.epoch);
    check("batch", a.batch == b.batch);
    check("rows", a.rows == b.rows);
    check("tokens", a.tokens == b.tokens);
    // A fingerprint logged by one run only (another --fingerprint-every)
    // is not a difference; two that disagree are.
    if let (Some(x), Some(y)) = (&a.params, &b.params) {
        check("params fingerprint", x == y);
    }
    if let (Some(x), Some(y)) = (&a.optimizer, &b.optimizer) {
        check("optimizer fingerprint", x == y);
    }
    out
}

fn first_step_difference(a: &[StepRecord], b: &[StepRecord]) -> Option<StepDifference> {
    let ma: BTreeMap<u64, &StepRecord> = a.iter().map(|r| (r.step, r)).collect();
    let mb: BTreeMap<u64, &StepRecord> = b.iter().map(|r| (r.step, r)).collect();
    let steps: std::collections::BTreeSet<u64> = ma.keys().chain(mb.keys()).copied().collect();
    for step in steps {
        let (ra, rb) = (ma.get(&step).copied(), mb.get(&step).copied());
        let fields = match (ra, rb) {
            (Some(x), Some(y)) => record_differences(x, y),
            (Some(_), None) => vec!["only in run A".to_string()],
            (None, Some(_)) => vec!["only in run B".to_string()],
            (None, None) => Vec::new(),
        };
        if !fields.is_empty() {
            return Some(StepDifference {
                step,
                fields,
                a: ra.cloned(),
                b: rb.cloned(),
            });
        }
    }
    None
}

fn compare_models(
    a: &RunDir,
    b: &RunDir,
    from_step: Option<u64>,
) -> Result<Option<ModelComparison>> {
    let ca: BTreeMap<u64, PathBuf> = checkpoint::list(&a.checkpoints())?.into_iter().collect();
    let cb: BTreeMap<u64, PathBuf> = checkpoint::list(&b.checkpoints())?.into_iter().collect();
    let common: Vec<u64> = ca.keys().filter(|s| cb.contains_key(s)).copied().collect();
    let finals = a.model().is_file() && b.model().is_file();
    let pick = match from_step {
        Some(s) => common.iter().copied().find(|&c| c >= s),
        None => None,
    };
    let (source, fa, fb) = match (pick, finals) {
        (Some(step), _) => (
            format!("checkpoint step {step}"),
            ca[&step].join(checkpoint::FILES[0]),
            cb[&step].join(checkpoint::FILES[0]),
        ),
        (None, true) => ("final models".to_string(), a.model(), b.model()),
        (None, false) => match common.last() {
            Some(&step) => (
                match from_step {
                    Some(s) if step < s => format!(
                        "checkpoint step {step}, before the first differing step {s}: \
                         the latest both runs have"
                    ),
                    _ => format!("checkpoint step {step}"),
                },
                ca[&step].join(checkpoint::FILES[0]),
                cb[&step].join(checkpoint::FILES[0]),
            ),
            None => return Ok(None),
        },
    };
    let (ta, _) = load_tensors(&fa)?;
    let (tb, _) = load_tensors(&fb)?;
    Ok(Some(ModelComparison {
        source,
        tensors: ta.len().max(tb.len()),
        differing: tensor_differences(&ta, &tb),
        files: (fa, fb),
    }))
}

/// The tensors of `a` and `b` (matched by name, in name order) that differ.
pub fn tensor_differences(a: &[HostTensor], b: &[HostTensor]) -> Vec<TensorDifference> {
    let ma: BTreeMap<&str, &HostTensor> = a.iter().map(|t| (t.name.as_str(), t)).collect();
    let mb: BTreeMap<&str, &HostTensor> = b.iter().map(|t| (t.name.as_str(), t)).collect();
    let names: std::collections::BTreeSet<&str> = ma.keys().chain(mb.keys()).copied().collect();
    let mut out = Vec::new();
    for name in names {
        let whole = |t: &HostTensor, note: &str| TensorDifference {
            name: name.to_string(),
            differing: t.values.len(),
            total: t.values.len(),
            max_abs: f64::INFINITY,
            note: Some(note.to_string()),
        };
        match (ma.get(name), mb.get(name)) {
            (Some(x), None) => out.push(whole(x, "only in run A")),
            (None, Some(y)) => out.push(whole(y, "only in run B")),
            (Some(x), Some(y)) if x.dims != y.dims => {
                out.push(whole(x, &format!("dims {:?} vs {:?}", x.dims, y.dims)))
            }
            (Some(x), Some(y)) => {
                let mut differing = 0;
                let mut max_abs = 0.0f64;
                for (p, q) in x.values.iter().zip(&y.values) {
                    if p.to_bits() != q.to_bits() {
                        differing += 1;
                        let d = (f64::from(*p) - f64::from(*q)).abs();
                        max_abs = if d.is_nan() {
                            f64::INFINITY
                        } else {
                            max_abs.max(d)
                        };
                    }
                }
                if differing > 0 {
                    out.push(TensorDifference {
                        name: name.to_string(),
                        differing,
                        total: x.values.len(),
                        max_abs,
                        note: None,
                    });
                }
            }
            (None, None) => {}
        }
    }
    out
}

impl fmt::Display for DiffReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.manifest.is_empty() {
            writeln!(f, "manifests: same config, data, seed, tier and device")?;
        } else {
            writeln!(f, "manifests differ in {} fields:", self.manifest.len())?;
            for d in &self.manifest {
                writeln!(f, "  {:<32} {}  vs  {}", d.field, d.a, d.b)?;
            }
        }
        match &self.first_step {
            None => writeln!(
                f,
                "steps: all {} logged steps identical (loss bits, scale, flags, fingerprints)",
                self.steps.0
            )?,
            Some(d) => {
                writeln!(
                    f,
                    "steps: first difference at step {} ({}); run A logged {}, run B {}",
                    d.step,
                    d.fields.join(", "),
                    self.steps.0,
                    self.steps.1
                )?;
                for (name, r) in [("A", &d.a), ("B", &d.b)] {
                    if let Some(r) = r {
                        writeln!(
                            f,
                            "  run {name}: loss {} ({}){}",
                            r.loss.map_or("-".to_string(), |l| l.to_string()),
                            r.loss_bits.as_deref().unwrap_or("-"),
                            r.params
                                .as_ref()
                                .map_or(String::new(), |p| format!(", params {p}"))
                        )?;
                    }
                }
            }
        }
        match &self.models {
            None => writeln!(
                f,
                "models: no checkpoint or final model in common to compare"
            )?,
            Some(m) if m.differing.is_empty() => writeln!(
                f,
                "models ({}): all {} tensors bitwise identical",
                m.source, m.tensors
            )?,
            Some(m) => {
                writeln!(
                    f,
                    "models ({}): {} of {} tensors differ; first: {}",
                    m.source,
                    m.differing.len(),
                    m.tensors,
                    m.differing[0].name
                )?;
                for d in &m.differing {
                    writeln!(
                        f,
                        "  {:<36} {:>8} of {:>8} elements differ, max |a - b| {:.3e}{}",
                        d.name,
                        d.differing,
                        d.total,
                        d.max_abs,
                        d.note.as_ref().map_or(String::new(), |n| format!(" ({n})"))
                    )?;
                }
            }
        }
        write!(
            f,
            "verdict: {}",
            if self.identical() {
                "identical"
            } else {
                "different"
            }
        )
    }
}
