//! Operations: each user-level flow runs as a recorded operation whose steps are saved as they
//! start and finish, so that a crash in the middle is finished or undone by the next process
//! (the reaper), a cancel really stops it, and a retry with the same idempotency key finds it.
//!
//! A step is saved as `started` before its effect and `done` after it. Every step's undo is
//! idempotent and works whether or not the effect happened (it finds what to take back by the
//! object's deterministic identity: its lease owner, its container name, its hostname), so the
//! reaper can undo `started` steps it knows nothing more about.

mod faults;
mod reaper;
pub(crate) mod run;

pub(crate) use faults::FaultPlan;
pub use faults::{Fault, FaultPoint};
pub(crate) use reaper::{Recovery, recovery_of};
pub(crate) use run::{Begin, Run, begin, request_of, to_chrono, wait_final};

use sha2::{Digest, Sha256};

use crate::platform::Error;

/// A digest of a request, to tell a retry from another request under the same key.
pub(crate) fn request_hash(request: &serde_json::Value) -> String {
    let bytes = serde_json::to_vec(request).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// An idempotency key as a client sends it: 1 to 255 visible ASCII characters.
pub(crate) fn check_idempotency_key(key: &str) -> Result<(), Error> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            "idempotency_key",
            format!("{:?} is not 1 to 255 visible ASCII characters", key),
        ));
    }
    Ok(())
}
