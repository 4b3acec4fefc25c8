//! Tests of the generator: the output for small protos, errors, and hard inputs.

mod common;
mod errors;
mod hazards;
mod no_protoc;
mod snapshot;
mod upstream;
