//! Volley
#![allow(missing_docs)]
pub mod buf;
pub mod client;
#[doc(hidden)]
pub mod codegen;
pub mod driver;
pub mod error;
#[doc(hidden)]
pub mod fuzz;
pub mod net;
pub mod protocol;
pub mod server;
pub mod stats;
pub mod status;
mod sync;
pub mod wire;

pub use client::{CallOptions, Caller, Channel, Client};
pub use error::Error;
pub use server::{Request, Server, ServerHandle};
pub use status::{Code, Status};
pub use wire::{Metadata, MethodId};
