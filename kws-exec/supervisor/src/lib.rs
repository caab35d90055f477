//! The resident supervisor of kws-exec's sandboxes and the protocol the engine speaks with it.
//!
//! The binary (`kws-exec-supervisor`, built static by `scripts/test` and copied into the
//! language images by `scripts/images`) is process 1 of every sandbox. It reads requests on its
//! standard input and writes reports on its standard output, both attached by the engine
//! through Docker and reachable by no job (a job gets pipes of its own, and the supervisor is
//! not dumpable and runs under another uid, so `/proc/1/fd` stays closed to it). See
//! [`protocol`] for the frames and the binary's `main.rs` for what it guarantees.

pub mod protocol;
