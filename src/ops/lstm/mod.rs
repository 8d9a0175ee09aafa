//! The pointwise LSTM cell: given one step's gate pre-activations, the new
//! cell and hidden state (forward) and the gradients into the gates and the
//! previous cell state (backward). The GEMMs that produce the pre-activations
//! live in the gemm family; this family is everything between them.
//!
//! Shapes: B rows (batch) of H hidden units ([`LstmShape`]). Row-major f32:
//! `gates`, `act`, `dgates` are B x 4H with gate `k` of unit `j` of row `b` at
//! `b*4H + k*H + j`, blocks in the order **`[i | f | g | o]`** (input, forget,
//! cell candidate, output); `c_prev`, `c`, `h`, `dh`, `dc`, `dc_prev` are B x H.
//!
//! # Numerics
//! Exact tier: bit-identical on Cpu, Sim and Cuda, for any thread count and
//! launch shape. Per unit, with detmath's `sigmoid` and `tanh`:
//!
//! ```text
//! forward:  i = sigmoid(Gi)  f = sigmoid(Gf)  g = tanh(Gg)  o = sigmoid(Go)
//!           c = fma(f, c_prev, i*g)            h = o * tanh(c)
//!           act = [i | f | g | o]
//! backward: tc = tanh(c)   dO = dh*tc   dct = fma(dh*o, fma(-tc, tc, 1), dc)
//!           dc_prev = dct*f
//!           dGi = (dct*g) * fma(-i, i, i)        dGf = (dct*c_prev) * fma(-f, f, f)
//!           dGg = (dct*i) * fma(-g, g, 1)        dGo = dO * fma(-o, o, o)
//! ```
//!
//! Every `*` and the products inside `fma` are as written: products are rounded
//! once each, `fma` rounds once. Every NaN output is written as the project's
//! one NaN `0x7fc00000` ([`crate::numerics::canonical_nan`]), so even NaN
//! outputs are bit-identical. Backward recomputes `tanh(c)` rather than
//! storing it (the same function on the same input, so the same bits as in
//! forward). Accuracy against f64 and special values: `docs/numerics/lstm.md`.

pub mod cpu;
pub mod cuda;

use crate::device::{Device, DeviceBuffer, View, ViewMut};
use crate::error::{Error, Result};

/// B rows (batch) of H hidden units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LstmShape {
    /// B: rows.
    pub batch: usize,
    /// H: hidden units.
    pub hidden: usize,
}

impl LstmShape {
    /// B rows of H units.
    pub fn new(batch: usize, hidden: usize) -> Self {
        LstmShape { batch, hidden }
    }

    /// `(B*H, B*4H)`, or an error when they overflow.
    fn units(&self, op: &'static str) -> Result<(usize, usize)> {
        self.batch
            .checked_mul(self.hidden)
            .and_then(|n| n.checked_mul(4).map(|n4| (n, n4)))
            .ok_or_else(|| {
                Error::invalid(
                    op,
                    format!("{} x 4*{} does not fit in memory", self.batch, self.hidden),
                )
            })
    }
}

/// The backward pass's read-only inputs, in the kernel's argument order.
pub(crate) struct LstmBwdInputs<'a> {
    pub dh: View<'a, f32>,
    pub dc: View<'a, f32>,
    pub act: View<'a, f32>,
    pub c_prev: View<'a, f32>,
    pub c: View<'a, f32>,
}

/// Forward: writes `c`, `h` (B x H) and `act` (B x 4H, `[i | f | g | o]`)
/// from `gates` (B x 4H pre-activations) and `c_prev` (B x H). All buffers
/// on `device`. See the module's Numerics section.
/// Overwrites `c`, `h` and `act`.
pub fn lstm_cell_fwd<'a>(
    device: &Device,
    shape: LstmShape,
    gates: impl Into<View<'a, f32>>,
    c_prev: impl Into<View<'a, f32>>,
    c: impl Into<ViewMut<'a, f32>>,
    h: impl Into<ViewMut<'a, f32>>,
    act: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    lstm_cell_fwd_with_shape(device, shape, gates, c_prev, c, h, act, cuda::DEFAULT_SHAPE)
}

/// [`lstm_cell_fwd`] with an explicit launch shape `(threads per block, most
/// blocks)` for Cuda and Sim (ignored on Cpu). Tests vary it to show that the
/// shape never changes the bits.
#[allow(clippy::too_many_arguments)] // the kernel's buffers plus device, shape, launch
pub fn lstm_cell_fwd_with_shape<'a>(
    device: &Device,
    shape: LstmShape,
    gates: impl Into<View<'a, f32>>,
    c_prev: impl Into<View<'a, f32>>,
    c: impl Into<ViewMut<'a, f32>>,
    h: impl Into<ViewMut<'a, f32>>,
    act: impl Into<ViewMut<'a, f32>>,
    launch: (u32, u32),
) -> Result<()> {
    let gates = gates.into();
    let c_prev = c_prev.into();
    let mut c = c.into();
    let mut h = h.into();
    let mut act = act.into();
    const OP: &str = "lstm_cell_fwd";
    let (n, n4) = shape.units(OP)?;
    gates.check(OP, "gates", device, n4)?;
    c_prev.check(OP, "c_prev", device, n)?;
    c.check(OP, "c", device, n)?;
    h.check(OP, "h", device, n)?;
    act.check(OP, "act", device, n4)?;
    if n == 0 {
        return Ok(());
    }
    match device {
        Device::Cpu => {
            cpu::lstm_cell_fwd_f32(
                shape.hidden,
                gates.host(OP)?,
                c_prev.host(OP)?,
                c.host_mut(OP)?,
                h.host_mut(OP)?,
                act.host_mut(OP)?,
            );
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => {
            cuda::lstm_cell_fwd_f32(device, shape, gates, c_prev, (c, h, act), launch)
        }
    }
}

/// Backward: writes `dgates` (B x 4H, same layout as `gates`) and `dc_prev`
/// (B x H) from `dh`, `dc` (B x H gradients into `h` and `c`; `dc` is the
/// gradient arriving from the next step and may be all zeros), and forward's
/// `act`, `c_prev`, `c`. Both outputs are overwritten, not accumulated.
#[allow(clippy::too_many_arguments)] // the kernel's argument list, in its order
pub fn lstm_cell_bwd<'a>(
    device: &Device,
    shape: LstmShape,
    dh: impl Into<View<'a, f32>>,
    dc: impl Into<View<'a, f32>>,
    act: impl Into<View<'a, f32>>,
    c_prev: impl Into<View<'a, f32>>,
    c: impl Into<View<'a, f32>>,
    dgates: impl Into<ViewMut<'a, f32>>,
    dc_prev: impl Into<ViewMut<'a, f32>>,
) -> Result<()> {
    lstm_cell_bwd_with_shape(
        device,
        shape,
        dh,
        dc,
        act,
        c_prev,
        c,
        dgates,
        dc_prev,
        cuda::DEFAULT_SHAPE,
    )
}

/// [`lstm_cell_bwd`] with an explicit launch shape, as [`lstm_cell_fwd_with_shape`].
#[allow(clippy::too_many_arguments)] // the kernel's argument list plus the launch shape
pub fn lstm_cell_bwd_with_shape<'a>(
    device: &Device,
    shape: LstmShape,
    dh: impl Into<View<'a, f32>>,
    dc: impl Into<View<'a, f32>>,
    act: impl Into<View<'a, f32>>,
    c_prev: impl Into<View<'a, f32>>,
    c: impl Into<View<'a, f32>>,
    dgates: impl Into<ViewMut<'a, f32>>,
    dc_prev: impl Into<ViewMut<'a, f32>>,
    launch: (u32, u32),
) -> Result<()> {
    let dh = dh.into();
    let dc = dc.into();
    let act = act.into();
    let c_prev = c_prev.into();
    let c = c.into();
    let mut dgates = dgates.into();
    let mut dc_prev = dc_prev.into();
    const OP: &str = "lstm_cell_bwd";
    let (n, n4) = shape.units(OP)?;
    dh.check(OP, "dh", device, n)?;
    dc.check(OP, "dc", device, n)?;
    act.check(OP, "act", device, n4)?;
    c_prev.check(OP, "c_prev", device, n)?;
    c.check(OP, "c", device, n)?;
    dgates.check(OP, "dgates", device, n4)?;
    dc_prev.check(OP, "dc_prev", device, n)?;
    if n == 0 {
        return Ok(());
    }
    match device {
        Device::Cpu => {
            cpu::lstm_cell_bwd_f32(
                shape.hidden,
                dh.host(OP)?,
                dc.host(OP)?,
                act.host(OP)?,
                c_prev.host(OP)?,
                c.host(OP)?,
                dgates.host_mut(OP)?,
                dc_prev.host_mut(OP)?,
            );
            Ok(())
        }
        Device::Cuda(_) | Device::Sim(_) => {
            let x = LstmBwdInputs {
                dh,
                dc,
                act,
                c_prev,
                c,
            };
            cuda::lstm_cell_bwd_f32(device, shape, &x, dgates, dc_prev, launch)
        }
    }
}

/// Forward outputs `(c, h, act)` in new buffers on `device`.
pub fn lstm_cell_fwd_new<'a>(
    device: &Device,
    shape: LstmShape,
    gates: impl Into<View<'a, f32>>,
    c_prev: impl Into<View<'a, f32>>,
) -> Result<(DeviceBuffer<f32>, DeviceBuffer<f32>, DeviceBuffer<f32>)> {
    let gates = gates.into();
    let c_prev = c_prev.into();
    let (n, n4) = shape.units("lstm_cell_fwd")?;
    let mut c = DeviceBuffer::zeros(device, n)?;
    let mut h = DeviceBuffer::zeros(device, n)?;
    let mut act = DeviceBuffer::zeros(device, n4)?;
    lstm_cell_fwd(device, shape, gates, c_prev, &mut c, &mut h, &mut act)?;
    Ok((c, h, act))
}

/// `n` floats from Philox stream `stream`, uniform in `[lo, hi)` (24-bit
/// grid), with every 61st element replaced by a special value from `specials`.
fn draw(n: usize, stream: u32, lo: f32, hi: f32, specials: &[f32]) -> Result<Vec<f32>> {
    use crate::ops::philox::{philox_blocks, PhiloxCounter, PhiloxKey};
    let key = PhiloxKey::from_seed(0x157_3ce1);
    let words = philox_blocks(
        &Device::Cpu,
        key,
        PhiloxCounter::new(0, stream, 0),
        n.div_ceil(4) as u64,
    )?
    .copy_dtoh()?;
    Ok(words[..n]
        .iter()
        .enumerate()
        .map(|(k, w)| {
            if k % 61 == 7 && !specials.is_empty() {
                specials[(k / 61) % specials.len()]
            } else {
                lo + (hi - lo) * ((w >> 8) as f32 * (1.0 / 16_777_216.0))
            }
        })
        .collect())
}

/// `shoestring verify`: forward and backward on `device` against the CPU twin,
/// H = 257 (ragged against every block size), B chosen so that about
/// `elements` output values are compared (11 per unit: c, h, 4 act, 4 dgates,
/// dc_prev), inputs drawn from Philox with saturating gates, subnormals and
/// signed zeros mixed in.
pub fn verify(device: &Device, elements: usize) -> Result<crate::verify::Outcome> {
    let hidden = 257;
    let shape = LstmShape::new((elements / (11 * hidden)).max(1), hidden);
    let (n, n4) = shape.units("lstm verify")?;
    let specials = [0.0, -0.0, 30.0, -30.0, 1e30, -1e30, 1e-40, -1e-40];
    let gates = draw(n4, 0x157_0001, -8.0, 8.0, &specials)?;
    let c_prev = draw(n, 0x157_0002, -4.0, 4.0, &specials[..2])?;
    let dh = draw(n, 0x157_0003, -1.0, 1.0, &specials[..2])?;
    let dc = draw(n, 0x157_0004, -1.0, 1.0, &specials[..2])?;

    let up = |v: &[f32], d: &Device| DeviceBuffer::copy_htod(d, v);
    let run = |d: &Device| -> Result<[Vec<f32>; 5]> {
        let (c, h, act) = lstm_cell_fwd_new(d, shape, &up(&gates, d)?, &up(&c_prev, d)?)?;
        let mut dgates = DeviceBuffer::zeros(d, n4)?;
        let mut dc_prev = DeviceBuffer::zeros(d, n)?;
        let (dh, dc, cp) = (up(&dh, d)?, up(&dc, d)?, up(&c_prev, d)?);
        lstm_cell_bwd(d, shape, &dh, &dc, &act, &cp, &c, &mut dgates, &mut dc_prev)?;
        Ok([
            c.copy_dtoh()?,
            h.copy_dtoh()?,
            act.copy_dtoh()?,
            dgates.copy_dtoh()?,
            dc_prev.copy_dtoh()?,
        ])
    };
    let want = run(&Device::Cpu)?;
    let got = run(device)?;
    let names = [
        "lstm_cell_fwd_f32 c",
        "lstm_cell_fwd_f32 h",
        "lstm_cell_fwd_f32 act",
        "lstm_cell_bwd_f32 dgates",
        "lstm_cell_bwd_f32 dc_prev",
    ];
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut outcome: Option<crate::verify::Outcome> = None;
    for (k, name) in names.iter().enumerate() {
        let o = crate::verify::compare_bits("lstm", name, &bits(&want[k]), &bits(&got[k]));
        outcome = Some(match outcome {
            None => o,
            Some(acc) => acc.merge(o),
        });
    }
    Ok(outcome.expect("five outputs compared"))
}
