//! Layers with parameters, built on [`crate::autograd`], and the text
//! classifier. Each layer registers its parameters in a [`Params`] list (the
//! order every loop over parameters follows) and documents how they are
//! initialised (from named Philox streams: [`params`]) and which dropout
//! streams it draws from.
//!
//! Parameter-free pieces are [`Graph`](crate::autograd::Graph) ops: ReLU
//! ([`Graph::relu`](crate::autograd::Graph::relu)), masked concat pooling
//! ([`Graph::concat_pool`](crate::autograd::Graph::concat_pool)), dropout and
//! the loss ([`Graph::cross_entropy`](crate::autograd::Graph::cross_entropy)).

pub mod batchnorm;
pub mod classifier;
pub mod embedding;
pub mod language_model;
pub mod linear;
pub mod lstm;
pub mod params;
pub mod save;

pub use batchnorm::BatchNorm1d;
pub use classifier::{ClassifierConfig, HostBatch, TextBatch, TextClassifier};
pub use embedding::Embedding;
pub use language_model::{LanguageModel, LmBatch, LmConfig};
pub use linear::Linear;
pub use lstm::{Lstm, LstmConfig};
pub use params::{HostTensor, Init, Param, Params};
