//! volley-codegen's output for the test protos in `codegen/tests/protos`, compiled as a user's
//! crate compiles it: with the workspace's lints (`missing_docs`, `unreachable_pub`, clippy
//! with `-D warnings` in CI) and only `volley`, `prost`, `prost-types` and `bytes` as
//! dependencies. `tests/loopback.rs` calls the generated clients against the generated
//! servers over 127.0.0.1.

/// The hazard protos. prost-build leaves undocumented messages undocumented, hence the allow;
/// [`documented`] checks that the stubs themselves are fully documented.
#[allow(missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/_hazards.rs"));
}

/// Real-world protos, unmodified from the crates.io packages that ship them: gRPC health and
/// reflection, and etcd's v3 API (see `codegen/tests/upstream/Cargo.toml`).
#[allow(missing_docs, clippy::all)]
pub mod upstream {
    include!(concat!(env!("OUT_DIR"), "/upstream/_upstream.rs"));
}

/// A fully documented proto, held to `missing_docs`.
pub mod documented {
    /// The `documented.orders` package, included the way the volley docs show.
    pub mod orders {
        volley::include_proto!("documented.orders");
    }
}

/// Hand-written types that `hazards.common` maps to with `extern_path`.
pub mod common {
    /// An amount of money, standing in for a type from another crate.
    #[derive(Clone, PartialEq, Eq, prost::Message)]
    pub struct Money {
        /// ISO 4217 code.
        #[prost(string, tag = "1")]
        pub currency: String,
        /// Whole units.
        #[prost(int64, tag = "2")]
        pub units: i64,
    }
}
