//! Dropout on explicit Philox masks: standard (elementwise), variational
//! (locked: one mask per (batch, feature), shared along time), embedding
//! dropout (whole rows of the embedding matrix) and DropConnect on a weight
//! matrix (AWD-LSTM weight-drop). Forward writes only its output; backward
//! regenerates the mask from `(key, stream, step)`, so nothing is stored.
//!
//! # Numerics
//! Integer mask, one f32 multiply per element; bit-identical on every device
//! (DESIGN.md rule 5, `docs/numerics/dropout.md`).
//! - Mask entry `m` keeps iff word `m % 4` of `philox4x32_10((m / 4, 0, stream,
//!   step), key)` is `>= threshold`, compared as 64-bit integers. The block index
//!   starts at 0 for every mask; the stream id separates call sites.
//! - `threshold = round(p * 2^32)` ([`DropoutMask::threshold`]); `p = 0` gives 0
//!   (keep all), `p = 1` gives `2^32` (drop all).
//! - `scale = 1.0f32 / (1.0f32 - p)` in f32 ([`DropoutMask::scale`]); `p = 0`
//!   gives exactly 1, so the output equals the input bit for bit (up to NaN
//!   payloads, which devices need not preserve); `p = 1` gives 0, unused.
//! - `out = keep ? x * scale : +0.0` (one rounding). Backward is the same map on
//!   the gradient: `dx = keep ? dy * scale : +0.0`.
//! - Which mask entry an element uses: elementwise and weight-drop `m = e`;
//!   variational `x[t][b][f]` uses `m = b*F + f`; embedding `W[v][e]` uses `m = v`.
//!   Masks depend on these indices alone, never on the launch shape or thread count.

pub mod cpu;
pub mod cuda;

use crate::device::abi::{
    ss_dropout_embedding_params, ss_dropout_mask_params, ss_dropout_params,
    ss_dropout_variational_params,
};
use crate::device::{Device, DeviceBuffer, View, ViewMut};
use crate::error::{Error, Result};
use crate::ops::philox::{self, PhiloxCounter, PhiloxKey};
use crate::rng::{RngState, Stream};

/// The mask of one dropout call: the probability of dropping and the Philox
/// address `(key, stream, step)` it is drawn from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropoutMask {
    /// Probability of dropping an entry, in `[0, 1]`.
    pub p: f32,
    /// The Philox key (the run's seed).
    pub key: PhiloxKey,
    /// Counter word 2: the call site's stream id ([`Stream::id`]).
    pub stream: u32,
    /// Counter word 3: the optimizer step.
    pub step: u32,
}

/// Refuses `p` outside `[0, 1]`, NaN included.
fn check_p(op: &'static str, p: f32) -> Result<()> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::invalid(
            op,
            format!("dropout probability p = {p} is not in [0, 1]"),
        ))
    }
}

impl DropoutMask {
    /// The mask of `stream` at `rng`'s current step.
    pub fn new(p: f32, rng: &RngState, stream: Stream) -> Result<Self> {
        Self::from_parts(p, rng.key(), stream.id(), rng.step)
    }

    /// A mask from a raw Philox address (a stream id not from [`Stream`], say).
    pub fn from_parts(p: f32, key: PhiloxKey, stream: u32, step: u32) -> Result<Self> {
        check_p("DropoutMask", p)?;
        Ok(DropoutMask {
            p,
            key,
            stream,
            step,
        })
    }

    /// `round(p * 2^32)` (f64, exact product, halves away from zero): entry kept
    /// iff its word `>= threshold`. `p = 1` gives `2^32`, which no word reaches.
    pub fn threshold(&self) -> u64 {
        (f64::from(self.p) * 4_294_967_296.0).round() as u64
    }

    /// `1.0f32 / (1.0f32 - p)`, one f32 division; `0.0` for `p = 1`, where no
    /// entry is kept and the scale is never used (0 rather than +inf).
    pub fn scale(&self) -> f32 {
        if self.p == 1.0 {
            0.0
        } else {
            1.0f32 / (1.0f32 - self.p)
        }
    }

    /// Whether mask entry `index` is kept: one Philox block, computed here on
    /// the host (the kernels' `ss_dropout_keep`).
    pub fn keeps(&self, index: u64) -> bool {
        let c = PhiloxCounter::new(index / 4, self.stream, self.step);
        let word = philox::cpu::philox_block(self.key, c)[(index % 4) as usize];
        cpu::word_keeps(word, self.threshold())
    }

    /// The kernels' parameters, after checking `p` (the fields are public).
    pub fn params(&self, op: &'static str) -> Result<ss_dropout_mask_params> {
        check_p(op, self.p)?;
        Ok(ss_dropout_mask_params {
            key: self.key,
            stream: self.stream,
            step: self.step,
            threshold: self.threshold(),
            scale: self.scale(),
            pad: 0,
        })
    }
}

/// The mask entries `0..n` on the CPU (`true` = kept), for tests and
/// introspection: `n` = N elements, B*F for variational, V for embedding dropout.
pub fn mask(m: &DropoutMask, n: usize) -> Result<Vec<bool>> {
    let params = m.params("dropout_mask")?;
    Ok(cpu::mask_words(&params, n)
        .into_iter()
        .map(|w| cpu::word_keeps(w, params.threshold))
        .collect())
}

/// Which dropout, with its dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Every element on its own (also DropConnect on a flattened weight matrix);
    /// N is the buffers' length.
    Elementwise,
    /// `x[t][b][f]`, time-major: mask entry `b*F + f`, shared along `t`.
    Variational {
        /// T: time steps.
        t: usize,
        /// B: batch rows.
        b: usize,
        /// F: features.
        f: usize,
    },
    /// `W[v][e]`, `v` rows of width `e`: mask entry `v` drops a whole row.
    Embedding {
        /// V: rows.
        v: usize,
        /// E: row width.
        e: usize,
    },
}

/// Forward (`out` from `x`) or backward (`dx` from `dy`): the same map, with
/// the mask regenerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The forward map.
    Fwd,
    /// The backward map.
    Bwd,
}

fn kernel_name(variant: Variant, pass: Pass) -> &'static str {
    match (variant, pass) {
        (Variant::Elementwise, Pass::Fwd) => "dropout_fwd_f32",
        (Variant::Elementwise, Pass::Bwd) => "dropout_bwd_f32",
        (Variant::Variational { .. }, Pass::Fwd) => "dropout_variational_fwd_f32",
        (Variant::Variational { .. }, Pass::Bwd) => "dropout_variational_bwd_f32",
        (Variant::Embedding { .. }, Pass::Fwd) => "dropout_embedding_fwd_f32",
        (Variant::Embedding { .. }, Pass::Bwd) => "dropout_embedding_bwd_f32",
    }
}

fn product(op: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::invalid(op, format!("dimensions {dims:?} overflow usize")))
}

/// Any dropout kernel with an explicit launch shape `(threads per block, most
/// blocks)` for Cuda and Sim (ignored on Cpu). `input` (x or dy) and `output`
/// (out or dx) live on `device` and hold the variant's element count. Tests vary
/// the shape to show that it never changes the bits.
pub fn dropout_with_shape<'a>(
    device: &Device,
    mask: &DropoutMask,
    variant: Variant,
    pass: Pass,
    input: impl Into<View<'a, f32>>,
    output: impl Into<ViewMut<'a, f32>>,
    shape: (u32, u32),
) -> Result<()> {
    let input = input.into();
    let mut output = output.into();
    let op = kernel_name(variant, pass);
    let m = mask.params(op)?;
    let n = match variant {
        Variant::Elementwise => input.len(),
        // b * f on its own: the kernels index the mask by it even when t = 0,
        // where a product over all three would hide its overflow.
        Variant::Variational { t, b, f } => product(op, &[t, product(op, &[b, f])?])?,
        Variant::Embedding { v, e } => product(op, &[v, e])?,
    };
    input.check(op, "input", device, n)?;
    output.check(op, "output", device, n)?;
    match device {
        Device::Cpu => {
            let x = input.host(op)?;
            // `output` is a distinct `&mut`, so it cannot alias `input`.
            let out = output.host_mut(op)?;
            match (variant, pass) {
                (Variant::Elementwise, Pass::Fwd) => cpu::dropout_fwd_f32(&m, x, out),
                (Variant::Elementwise, Pass::Bwd) => cpu::dropout_bwd_f32(&m, x, out),
                (Variant::Variational { b, f, .. }, Pass::Fwd) => {
                    cpu::dropout_variational_fwd_f32(&m, b * f, x, out)
                }
                (Variant::Variational { b, f, .. }, Pass::Bwd) => {
                    cpu::dropout_variational_bwd_f32(&m, b * f, x, out)
                }
                (Variant::Embedding { v, e }, Pass::Fwd) => {
                    cpu::dropout_embedding_fwd_f32(&m, (v, e), x, out)
                }
                (Variant::Embedding { v, e }, Pass::Bwd) => {
                    cpu::dropout_embedding_bwd_f32(&m, (v, e), x, out)
                }
            }
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => match variant {
            Variant::Elementwise => {
                let p = ss_dropout_params {
                    mask: m,
                    n: n as u64,
                };
                match pass {
                    Pass::Fwd => cuda::dropout_fwd_f32(device, &p, input, output, shape),
                    Pass::Bwd => cuda::dropout_bwd_f32(device, &p, input, output, shape),
                }
            }
            Variant::Variational { t, b, f } => {
                let p = ss_dropout_variational_params {
                    mask: m,
                    t: t as u64,
                    b: b as u64,
                    f: f as u64,
                };
                match pass {
                    Pass::Fwd => {
                        cuda::dropout_variational_fwd_f32(device, &p, input, output, shape)
                    }
                    Pass::Bwd => {
                        cuda::dropout_variational_bwd_f32(device, &p, input, output, shape)
                    }
                }
            }
            Variant::Embedding { v, e } => {
                let p = ss_dropout_embedding_params {
                    mask: m,
                    v: v as u64,
                    e: e as u64,
                };
                match pass {
                    Pass::Fwd => cuda::dropout_embedding_fwd_f32(device, &p, input, output, shape),
                    Pass::Bwd => cuda::dropout_embedding_bwd_f32(device, &p, input, output, shape),
                }
            }
        },
    }
}

fn run(
    device: &Device,
    mask: &DropoutMask,
    variant: Variant,
    pass: Pass,
    input: View<'_, f32>,
    output: ViewMut<'_, f32>,
) -> Result<()> {
    dropout_with_shape(
        device,
        mask,
        variant,
        pass,
        input,
        output,
        cuda::DEFAULT_SHAPE,
    )
}

/// Standard dropout: `out[e] = keep(e) ? x[e] * scale : 0`.
/// Overwrites `out`.
pub fn dropout_fwd<'a>(
    device: &Device,
    mask: &DropoutMask,
    x: impl Into<View<'a, f32>>,
    out: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    run(
        device,
        mask,
        Variant::Elementwise,
        Pass::Fwd,
        x.into(),
        out.into(),
    )
}

/// Backward of [`dropout_fwd`]: `dx[e] = keep(e) ? dy[e] * scale : 0`, the
/// mask regenerated (pass the forward's `mask`).
/// Overwrites `dx` (add it into a gradient with [`crate::ops::elementwise::add_assign`]).
pub fn dropout_bwd<'a>(
    device: &Device,
    mask: &DropoutMask,
    dy: impl Into<View<'a, f32>>,
    dx: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    run(
        device,
        mask,
        Variant::Elementwise,
        Pass::Bwd,
        dy.into(),
        dx.into(),
    )
}

/// Variational (locked) dropout on `x[t][b][f]` (T*B*F floats, time-major):
/// one mask entry per `(b, f)`, the same at every time step.
/// Overwrites `out`.
pub fn variational_fwd<'a>(
    device: &Device,
    mask: &DropoutMask,
    (t, b, f): (usize, usize, usize),
    x: impl Into<View<'a, f32>>,
    out: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    let x = x.into();
    let out = out.into();
    run(
        device,
        mask,
        Variant::Variational { t, b, f },
        Pass::Fwd,
        x,
        out,
    )
}

/// Backward of [`variational_fwd`].
/// Overwrites `dx`.
pub fn variational_bwd<'a>(
    device: &Device,
    mask: &DropoutMask,
    (t, b, f): (usize, usize, usize),
    dy: impl Into<View<'a, f32>>,
    dx: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    let dy = dy.into();
    let dx = dx.into();
    run(
        device,
        mask,
        Variant::Variational { t, b, f },
        Pass::Bwd,
        dy,
        dx,
    )
}

/// Embedding dropout on `w[v][e]` (V rows of width E): whole rows are dropped
/// (mask entry `v`), kept rows scaled.
/// Overwrites `out`.
pub fn embedding_fwd<'a>(
    device: &Device,
    mask: &DropoutMask,
    (v, e): (usize, usize),
    w: impl Into<View<'a, f32>>,
    out: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    let w = w.into();
    let out = out.into();
    run(device, mask, Variant::Embedding { v, e }, Pass::Fwd, w, out)
}

/// Backward of [`embedding_fwd`] for the embedding weights: the same row mask
/// and scale applied to the gradient of the dropped matrix.
/// Overwrites `dw`.
pub fn embedding_bwd<'a>(
    device: &Device,
    mask: &DropoutMask,
    (v, e): (usize, usize),
    dout: impl Into<View<'a, f32>>,
    dw: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    let dout = dout.into();
    let dw = dw.into();
    run(
        device,
        mask,
        Variant::Embedding { v, e },
        Pass::Bwd,
        dout,
        dw,
    )
}

/// DropConnect (AWD-LSTM weight-drop) on a weight matrix, flattened: the
/// elementwise kernel ([`dropout_fwd`]) applied to the weights, usually with a
/// `StreamFamily::WeightDrop` stream.
/// Overwrites `out`.
pub fn weight_drop_fwd<'a>(
    device: &Device,
    mask: &DropoutMask,
    w: impl Into<View<'a, f32>>,
    out: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    dropout_fwd(device, mask, w, out)
}

/// Backward of [`weight_drop_fwd`]: the gradient of the dropped weights
/// through the same mask ([`dropout_bwd`]).
/// Overwrites `dw`.
pub fn weight_drop_bwd<'a>(
    device: &Device,
    mask: &DropoutMask,
    d_dropped: impl Into<View<'a, f32>>,
    dw: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    dropout_bwd(device, mask, d_dropped, dw)
}

/// Inputs for `verify`: finite floats of many magnitudes from Philox, with
/// specials (±0, ±inf, subnormals, ±max) at the start. No NaN: devices agree on
/// which values are NaN, not on their payload bits.
fn verify_inputs(n: usize, stream: u32) -> Result<Vec<f32>> {
    let blocks = n.div_ceil(4) as u64;
    let words = philox::philox_blocks(
        &Device::Cpu,
        PhiloxKey::from_seed(0xd20_9001),
        PhiloxCounter::new(0, stream, 0),
        blocks,
    )?
    .copy_dtoh()?;
    let specials = [
        0.0f32,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(1),
        -f32::from_bits(0x007f_ffff),
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
    ];
    Ok((0..n)
        .map(|i| match specials.get(i) {
            Some(&s) => s,
            // Biased exponent 64..=191 (magnitudes 2^-63 .. 2^65): finite after scaling.
            None => {
                let w = words[i];
                f32::from_bits((w & 0x807f_ffff) | ((64 + (w >> 23 & 0x7f)) << 23))
            }
        })
        .collect())
}

/// `shoestring verify`: every dropout kernel on `device` against the CPU twin,
/// about `elements` output elements in all, forward and backward, with p = 0.3
/// (elementwise), 0.5 (variational), 0.1 (embedding), and p = 0 and p = 1 on a
/// small elementwise case.
pub fn verify(device: &Device, elements: usize) -> Result<crate::verify::Outcome> {
    let n = (elements / 6).max(8);
    let key = PhiloxKey::from_seed(0x5eed_0123_4567_89ab);
    let f = 37; // B*F = 3*37: not a multiple of 4
    let (b, t) = (3, (n / (3 * f)).max(1));
    let v_e = (13usize, (n / 13).max(1));
    let cases = [
        (0.3f32, Variant::Elementwise, n, 0x0701),
        (0.0, Variant::Elementwise, 1001, 0x0702),
        (1.0, Variant::Elementwise, 1001, 0x0703),
        (0.5, Variant::Variational { t, b, f }, t * b * f, 0x0401),
        (
            0.1,
            Variant::Embedding { v: v_e.1, e: v_e.0 },
            v_e.0 * v_e.1,
            0x0301,
        ),
    ];
    let mut outcome: Option<crate::verify::Outcome> = None;
    for (p, variant, len, stream) in cases {
        let mask = DropoutMask::from_parts(p, key, stream, 9)?;
        let x = verify_inputs(len, stream)?;
        for pass in [Pass::Fwd, Pass::Bwd] {
            let compute = |dev: &Device| -> Result<Vec<u32>> {
                let input = DeviceBuffer::copy_htod(dev, &x)?;
                let mut out = DeviceBuffer::zeros(dev, len)?;
                run(dev, &mask, variant, pass, input.view(), out.view_mut())?;
                Ok(out.copy_dtoh()?.iter().map(|v| v.to_bits()).collect())
            };
            let want = compute(&Device::Cpu)?;
            let got = compute(device)?;
            let o = crate::verify::compare_bits("dropout", kernel_name(variant, pass), &want, &got);
            outcome = Some(match outcome {
                None => o,
                Some(acc) => acc.merge(o),
            });
        }
    }
    outcome.ok_or_else(|| Error::invalid("dropout verify", "no cases"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(p: f32) -> DropoutMask {
        DropoutMask::from_parts(p, PhiloxKey::from_seed(7), 0x0301, 2).unwrap()
    }

    #[test]
    fn threshold_and_scale_at_the_ends_are_exact() {
        assert_eq!((mask(0.0).threshold(), mask(0.0).scale()), (0, 1.0));
        assert_eq!((mask(1.0).threshold(), mask(1.0).scale()), (1 << 32, 0.0));
        // The largest f32 below 1 still keeps a sliver: threshold 2^32 - 2^8.
        assert_eq!(mask(1.0 - f32::EPSILON / 2.0).threshold(), (1 << 32) - 256);
    }

    #[test]
    fn invalid_p_is_refused_by_the_constructor_and_by_params() {
        for p in [-0.0001f32, 1.0001, f32::NAN, f32::NEG_INFINITY] {
            assert!(DropoutMask::from_parts(p, PhiloxKey::from_seed(7), 0, 0).is_err());
            let mut m = mask(0.5);
            m.p = p;
            assert!(m.params("test").is_err());
        }
        assert!(DropoutMask::from_parts(-0.0, PhiloxKey::from_seed(7), 0, 0).is_ok());
    }

    #[test]
    fn host_keeps_agrees_with_the_cpu_mask_words() {
        let m = mask(0.3);
        let all = super::mask(&m, 1001).unwrap();
        for (i, &k) in all.iter().enumerate() {
            assert_eq!(m.keeps(i as u64), k, "entry {i}");
        }
    }
}
