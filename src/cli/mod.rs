//! The subcommands of the `shoestring` binary that run training and use
//! its results; each is a thin shell over the library.

pub mod bench;
pub mod diff;
pub mod eval;
pub mod lm;
pub mod progress;
pub mod train;
