//! `Linear`: `y = x W^T + b`, `W` `[out, in]`, `b` `[out]`. Initialised as
//! PyTorch's `nn.Linear`: both uniform in `[-1/sqrt(in), 1/sqrt(in))`.

use super::params::{Init, Params};
use crate::autograd::{Graph, ParamId, Var};
use crate::device::Device;
use crate::error::Result;

/// A fully connected layer.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[out, in]`.
    pub weight: ParamId,
    /// `[out]`.
    pub bias: ParamId,
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub outputs: usize,
}

impl Linear {
    /// `{name}.weight` and `{name}.bias` in `group`.
    pub fn new(
        params: &mut Params,
        device: &Device,
        name: &str,
        (inputs, outputs): (usize, usize),
        group: usize,
        seed: u64,
    ) -> Result<Linear> {
        let bound = 1.0 / (inputs.max(1) as f32).sqrt();
        let init = Init::Uniform { seed, bound };
        let weight = params.add(
            device,
            &format!("{name}.weight"),
            &[outputs, inputs],
            group,
            init,
        )?;
        let bias = params.add(device, &format!("{name}.bias"), &[outputs], group, init)?;
        Ok(Linear {
            weight,
            bias,
            inputs,
            outputs,
        })
    }

    /// `x W^T + b` for `x` `[n, in]`.
    pub fn forward(&self, g: &mut Graph, params: &Params, x: Var) -> Result<Var> {
        let w = g.param(self.weight, &params.get(self.weight).value)?;
        let b = g.param(self.bias, &params.get(self.bias).value)?;
        g.linear(x, w, Some(b))
    }
}
