//! The messages and Volley stubs generated from `proto/gateway.proto` and `proto/journal.proto`.

#![allow(missing_docs)]

volley::include_proto!("gateway");

/// The journal's record format.
pub mod journal {
    #![allow(missing_docs)]
    volley::include_proto!("gateway.journal");
}
