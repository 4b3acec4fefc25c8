//! Pre-trade risk checks and the matching engine (being written).
