//! Forwarding switches under `/proc/sys/net`. Opened from the worker thread, these files belong
//! to the worker's network namespace.

use crate::{
    Error, Forwarding,
    plan::{SYSCTL_IPV4_FORWARD, SYSCTL_IPV6_FORWARD},
};

fn path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

fn get(key: &'static str) -> Result<bool, Error> {
    let text =
        std::fs::read_to_string(path(key)).map_err(|source| Error::Sysctl { key, source })?;
    Ok(text.trim() != "0")
}

/// Writes each switch only when it differs; returns how many were written.
pub(super) fn converge(desired: Forwarding) -> Result<usize, Error> {
    let mut written = 0;
    for (key, want) in [(SYSCTL_IPV4_FORWARD, desired.ipv4), (SYSCTL_IPV6_FORWARD, desired.ipv6)] {
        if get(key)? != want {
            std::fs::write(path(key), if want { "1\n" } else { "0\n" })
                .map_err(|source| Error::Sysctl { key, source })?;
            written += 1;
        }
    }
    Ok(written)
}

/// The current switches.
pub(super) fn read() -> Result<Forwarding, Error> {
    Ok(Forwarding { ipv4: get(SYSCTL_IPV4_FORWARD)?, ipv6: get(SYSCTL_IPV6_FORWARD)? })
}
