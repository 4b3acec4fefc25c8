//! The busy-poll receive mode: latency by spinning instead of sleeping.
//!
//! By default a connection's socket is read by a tokio task that the reactor wakes when bytes
//! arrive. On an idle core that wake-up is the largest part of a small call's latency (on a
//! 2-vCPU virtual machine, about 20 µs per hop when the woken thread's vCPU has halted). With
//! [`BusyPoll`] on a client ([`ClientBuilder::busy_poll`](crate::client::ClientBuilder::busy_poll),
//! [`ChannelBuilder::busy_poll`](crate::client::ChannelBuilder::busy_poll)) or a server
//! ([`ServerBuilder::busy_poll`](crate::server::ServerBuilder::busy_poll)), each connection
//! gets a dedicated OS thread, its *poller*, which reads the non-blocking socket in a loop and
//! runs the same read pass as the reader task: it decodes, hands outcomes to calls, runs inline
//! handlers ([`ServerBuilder::unary_inline`](crate::server::ServerBuilder::unary_inline)) and
//! writes their answers itself. When a poll finds nothing it waits as its [`IdleStrategy`]
//! says. The thread ends when the connection ends.
//!
//! Volley owns no runtime: the poller is a plain `std::thread` that enters the tokio runtime
//! the connection was opened on (so spawned handlers and timers still go there), and it stops
//! when that runtime shuts down. A caller that wants no wake-up on its side either awaits on
//! a runtime thread (woken by the poller through the kernel, but on a core that is not halted
//! if the poller shares it) or runs its call in [`spin_on`], which polls it on the calling
//! thread and sees the poller's outcome through one atomic flag.
//!
//! Spinning spends a core: [`pin_current_thread`] and [`BusyPoll::pin_to_cpu`] place threads
//! so that spinners do not share a core with each other or with the runtime. See
//! `docs/latency.md` for the measured effect of each choice.

mod config;
pub(crate) mod idle;
mod placement;
mod socket;
pub(crate) mod spin;

pub use config::{
    BusyPoll, DEFAULT_MAX_PARK, DEFAULT_MIN_PARK, DEFAULT_SPINS, DEFAULT_YIELDS, IdleStrategy, KernelBusyPoll, POLLER_THREAD_NAME,
};
pub use placement::{PlacementError, allowed_cpus, pin_current_thread};
pub use socket::{AppliedKernelBusyPoll, apply_kernel_busy_poll};
pub use spin::spin_on;
