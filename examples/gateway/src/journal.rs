//! The append-only journal (being written).
