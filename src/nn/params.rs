//! A model's parameters in one ordered list: the order they were registered
//! in is their [`ParamId`], the order every loop over them follows (the
//! optimizer, gradient clipping, saving), so no sum over parameters ever
//! depends on a hash map's order (candle's `VarMap` iterates a `HashMap`).
//!
//! **Initialisation** draws from a named Philox stream: parameter `k` of a
//! model built with seed `s` takes its element `j` from word `j % 4` of
//! `philox4x32_10(key = s, counter = (j / 4, Init[0], k))`, as
//! [`crate::ops::philox::uniform_floats`] turns words into
//! floats (the top 24 bits, exactly). So a parameter's values depend on the
//! seed, its index and its size alone, on every device (they are drawn on the
//! host and copied).

use crate::autograd::ParamId;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::ops::philox::uniform_floats;
use crate::rng::{PhiloxCounter, PhiloxKey, Stream, StreamFamily};
use crate::tensor::{DType, Tensor};

/// One parameter: its name (`encoder.lstm.0.weight_ih_l0`, ...), its f32 value and
/// its layer group (for discriminative learning rates and freezing).
#[derive(Debug, Clone)]
pub struct Param {
    /// A dotted name, unique in its model.
    pub name: String,
    /// The f32 master value.
    pub value: Tensor,
    /// The layer group: 0 the embedding, then one per LSTM layer, then the head.
    pub group: usize,
}

/// A named f32 tensor on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// The parameter's name.
    pub name: String,
    /// Its dimensions.
    pub dims: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f32>,
}

/// A model's parameters, in registration order.
#[derive(Debug, Default, Clone)]
pub struct Params {
    list: Vec<Param>,
}

/// How a new parameter's values are set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Uniform in `[-bound, bound)` from the model's seed (module docs).
    Uniform {
        /// The model's seed (the Philox key).
        seed: u64,
        /// Half the interval's width.
        bound: f32,
    },
    /// Every element this value.
    Constant(f32),
}

impl Params {
    /// No parameters.
    pub fn new() -> Params {
        Params::default()
    }

    /// Registers a parameter of `dims` on `device`, initialised by `init`,
    /// and returns its id (the next index). Names must be unique.
    pub fn add(
        &mut self,
        device: &Device,
        name: &str,
        dims: &[usize],
        group: usize,
        init: Init,
    ) -> Result<ParamId> {
        if self.list.iter().any(|p| p.name == name) {
            return Err(Error::invalid(
                "Params::add",
                format!("duplicate parameter name `{name}`"),
            ));
        }
        let id = ParamId(self.list.len());
        let n: usize = dims.iter().product();
        let host = match init {
            Init::Uniform { seed, bound } => uniform_floats(
                PhiloxKey::from_seed(seed),
                PhiloxCounter::new(0, Stream::new(StreamFamily::Init, 0).id(), id.0 as u32),
                n,
                bound,
            )?,
            Init::Constant(c) => vec![c; n],
        };
        self.list.push(Param {
            name: name.to_string(),
            value: Tensor::from_f32(device, dims, &host)?,
            group,
        });
        Ok(id)
    }

    /// Parameter `id`.
    ///
    /// # Panics
    /// When `id` does not belong to this list (ids come from [`add`](Self::add)).
    pub fn get(&self, id: ParamId) -> &Param {
        &self.list[id.0]
    }

    /// Parameter `id`, mutable.
    ///
    /// # Panics
    /// When `id` does not belong to this list.
    pub fn get_mut(&mut self, id: ParamId) -> &mut Param {
        &mut self.list[id.0]
    }

    /// `(id, parameter)` in registration order.
    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &Param)> {
        self.list.iter().enumerate().map(|(i, p)| (ParamId(i), p))
    }

    /// `(id, parameter)` in registration order, mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (ParamId, &mut Param)> {
        self.list
            .iter_mut()
            .enumerate()
            .map(|(i, p)| (ParamId(i), p))
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The number of f32 values in all parameters.
    pub fn numel(&self) -> usize {
        self.list.iter().map(|p| p.value.len()).sum()
    }

    /// The id of the parameter called `name`.
    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.list.iter().position(|p| p.name == name).map(ParamId)
    }

    /// The number of layer groups (one more than the largest group).
    pub fn groups(&self) -> usize {
        self.list.iter().map(|p| p.group + 1).max().unwrap_or(0)
    }

    /// A copy of every parameter on `device`.
    pub fn to(&self, device: &Device) -> Result<Params> {
        let list = self
            .list
            .iter()
            .map(|p| {
                Ok(Param {
                    name: p.name.clone(),
                    value: p.value.to(device)?,
                    group: p.group,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Params { list })
    }

    /// Every parameter's values on the host, in order (for saving, tests and
    /// fingerprints).
    pub fn to_host(&self) -> Result<Vec<HostTensor>> {
        self.list
            .iter()
            .map(|p| {
                Ok(HostTensor {
                    name: p.name.clone(),
                    dims: p.value.dims().to_vec(),
                    values: p.value.to_vec_f32()?,
                })
            })
            .collect()
    }

    /// Replaces the values of every parameter from host tensors matched by
    /// name; every parameter must be given once, with its dims. Values are
    /// copied to each parameter's device.
    pub fn load_host(&mut self, values: &[HostTensor]) -> Result<()> {
        const OP: &str = "Params::load";
        if values.len() != self.list.len() {
            return Err(Error::invalid(
                OP,
                format!(
                    "{} tensors given, the model has {} parameters",
                    values.len(),
                    self.list.len()
                ),
            ));
        }
        for p in self.list.iter_mut() {
            let HostTensor {
                dims, values: v, ..
            } = values.iter().find(|t| t.name == p.name).ok_or_else(|| {
                Error::invalid(OP, format!("no tensor for parameter `{}`", p.name))
            })?;
            if dims[..] != *p.value.dims() {
                return Err(Error::Dims {
                    op: OP,
                    name: "tensor",
                    got: dims.clone(),
                    expected: format!("{:?} for `{}`", p.value.dims(), p.name),
                });
            }
            let device = p.value.device().clone();
            p.value = Tensor::from_f32(&device, dims, v)?;
        }
        Ok(())
    }

    /// Replaces the values of the parameters that `values` name (a
    /// pretrained encoder's): each tensor must name a parameter of this list
    /// and have its dims. Returns how many were replaced.
    pub fn load_some(&mut self, values: &[HostTensor]) -> Result<usize> {
        const OP: &str = "Params::load_some";
        for t in values {
            let p = self
                .list
                .iter_mut()
                .find(|p| p.name == t.name)
                .ok_or_else(|| {
                    Error::invalid(OP, format!("the model has no parameter `{}`", t.name))
                })?;
            if t.dims[..] != *p.value.dims() {
                return Err(Error::Dims {
                    op: OP,
                    name: "tensor",
                    got: t.dims.clone(),
                    expected: format!("{:?} for `{}`", p.value.dims(), p.name),
                });
            }
            let device = p.value.device().clone();
            p.value = Tensor::from_f32(&device, &t.dims, &t.values)?;
        }
        Ok(values.len())
    }
}

/// An f32 tensor of `dims` filled with `value` (running statistics).
pub(crate) fn constant(device: &Device, dims: &[usize], value: f32) -> Result<Tensor> {
    let n: usize = dims.iter().product();
    if value == 0.0 {
        return Tensor::zeros(device, dims, DType::F32);
    }
    Tensor::from_f32(device, dims, &vec![value; n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_registration_and_draws_depend_on_seed_index_and_size_only() {
        let cpu = Device::Cpu;
        let mut a = Params::new();
        let i0 = a
            .add(
                &cpu,
                "a",
                &[3],
                0,
                Init::Uniform {
                    seed: 9,
                    bound: 1.0,
                },
            )
            .unwrap();
        let i1 = a.add(&cpu, "b", &[2, 2], 1, Init::Constant(1.0)).unwrap();
        assert_eq!((i0, i1), (ParamId(0), ParamId(1)));
        assert!(a.add(&cpu, "a", &[1], 0, Init::Constant(0.0)).is_err());
        let mut b = Params::new();
        b.add(
            &cpu,
            "other name",
            &[3],
            0,
            Init::Uniform {
                seed: 9,
                bound: 1.0,
            },
        )
        .unwrap();
        assert_eq!(
            a.get(i0).value.to_vec_f32().unwrap(),
            b.get(ParamId(0)).value.to_vec_f32().unwrap()
        );
        assert_eq!(a.groups(), 2);
        assert_eq!(a.find("b"), Some(i1));
        assert_eq!(a.numel(), 7);
    }
}
