//! QUIC transport tests (feature `quic`).
