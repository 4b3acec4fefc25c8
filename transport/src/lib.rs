//! Volley
#![allow(missing_docs)]
pub mod protocol;
pub mod status;
pub mod wire;
pub use status::{Code, Status};
pub use wire::{Metadata, MethodId};
