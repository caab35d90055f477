//! The Platform on real parts (in `scripts/test`): fault injection after every step of every
//! flow, crashes in the middle of flows, drift, concurrency and hostile input, and the whole
//! story end to end in namespaces.

mod crash;
mod drift;
mod e2e;
mod faults;
mod footprint;
mod input;
mod lab;
mod lifecycle;
