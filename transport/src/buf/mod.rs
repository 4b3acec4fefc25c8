//! Buffers: a bounded pool of recycled `BytesMut`, so connections reuse memory instead of
//! allocating it.

mod pool;

pub use pool::{BufferPool, BufferPoolConfig, DEFAULT_BUFFER_CAPACITY, DEFAULT_MAX_POOLED, DEFAULT_MAX_RETAINED_CAPACITY};
