//! kws-hostnet turns the host into a router from a declared `HostNetState`: bridges and
//! addresses over rtnetlink, forwarding sysctls, and every netfilter rule in kws's own nftables
//! table, changed in one atomic batch; a plan backend renders the same as a script.
//!
//! How the pieces fit:
//! - [`HostNetState`] is the whole desired state, validated as a whole when it is built
//!   ([`StateError`] names the bad value), saved and loaded as a TOML or JSON state file.
//! - [`HostNetwork`] converges a host to it: [`LinuxHostNetwork`] (feature `linux`) and
//!   [`PlanHostNetwork`] (always on; renders `ip`/`sysctl`/`nft`/`iptables` commands).
//! - Netfilter lives in `table inet kws` only, replaced by one `nft -f` transaction. Port
//!   forwards are elements of maps (one DNAT rule and one accept rule per address family and
//!   incoming interface), so 1,000 forwards cost one hash lookup per packet. Every flow kws
//!   accepts gets the conntrack bit [`CONNMARK`]; when Docker's `DOCKER-USER` chain exists,
//!   one rule there ([`DOCKER_USER_RULE`]) lets exactly those flows past Docker's drop policy.
//! - Owners' bridges listed in [`HostNetSpec::isolated_bridges`] cannot forward to each other:
//!   one drop rule over two named sets, first in kws's forward chain (before any accept, so no
//!   established or port-forwarded flow crosses), final whatever Docker's own isolation chains
//!   are doing at that moment.
//! - [`reconcile::reconcile_loop`] re-applies on a timer; an unchanged re-apply reads only the
//!   nftables ruleset generation, so the table comes back quickly after `nft flush ruleset`.
//!
//! ```
//! use kws_hostnet::{HostNetState, HostNetwork, PlanHostNetwork};
//!
//! let state = HostNetState::from_toml(r#"
//!     forwarding = { ipv4 = true, ipv6 = false }
//!     [[bridges]]
//!     name = "vmbr1"
//!     addresses = ["192.168.69.1/29"]
//!     [[masquerade]]
//!     source = "192.168.69.0/29"
//!     out_interface = "eth0"
//!     [[port_forwards]]
//!     protocol = "tcp"
//!     external_port = 443
//!     destination = "192.168.69.2"
//!     destination_port = 443
//! "#)?;
//! let script = kws_hostnet::plan::render_apply(&state);
//! assert!(script.contains("ip address replace 192.168.69.1/29 dev vmbr1"));
//! assert!(script.contains("elements = { tcp . 443 : 192.168.69.2 . 443 }"));
//! # Ok::<(), kws_hostnet::StateError>(())
//! ```

mod error;
#[cfg(feature = "linux")]
mod linux;
pub mod plan;
mod port;
pub mod reconcile;
mod render;
mod state;
mod state_file;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::fmt::Debug;

use async_trait::async_trait;

pub use error::{Error, StateError, TeardownErrors};
#[cfg(feature = "linux")]
pub use linux::LinuxHostNetwork;
pub use plan::PlanHostNetwork;
pub use port::Port;
pub use render::{
    nft::{CONNMARK, TABLE},
    script::{DOCKER_USER_RULE, LINK_ALIAS},
};
pub use state::{
    Bridge, Forwarding, HostNetSpec, HostNetState, Masquerade, PeerIsolation, PeerRule,
    PortForward, Protocol,
};

/// What one `apply` changed. All zero (and `netfilter_replaced == false`) when the host was
/// already in the desired state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApplyReport {
    /// Links created, brought up, adopted or deleted.
    pub links_changed: usize,
    /// Addresses added or removed on managed bridges.
    pub addresses_changed: usize,
    /// Forwarding sysctls written (only those that differed).
    pub sysctls_written: usize,
    /// Whether kws's nftables table was replaced.
    pub netfilter_replaced: bool,
    /// Rules inserted into other tools' chains (Docker's `DOCKER-USER`).
    pub foreign_chain_rules_added: usize,
}

impl ApplyReport {
    /// True when nothing on the host changed.
    pub fn changed_nothing(&self) -> bool {
        *self == Self::default()
    }
}

/// A host router that converges to a declared state.
///
/// # Contract
/// - `apply` takes an already validated [`HostNetState`] (validation happens when the state is
///   built, before anything changes). It creates missing bridges and corrects their addresses,
///   writes forwarding sysctls only when they differ, and replaces kws's nftables table
///   ([`TABLE`]) in one atomic batch; links kws does not own and tables other than kws's are
///   never changed (the one exception is a single tagged accept in Docker's `DOCKER-USER` chain,
///   when that chain exists, so Docker's drop policy does not block what kws allows).
/// - `apply` is idempotent: applying the same state twice changes nothing the second time
///   (the report says so and the ruleset is byte-identical).
/// - `current` reads the managed state back from the host (bridges kws owns, forwarding
///   switches, the items of kws's table).
/// - `teardown` removes everything kws created, keeps going after an error and returns every
///   error it met. Forwarding switches are left as they are.
#[async_trait]
pub trait HostNetwork: Send + Sync + Debug + 'static {
    /// Converges the host to `desired`.
    async fn apply(&self, desired: &HostNetState) -> Result<ApplyReport, Error>;
    /// Reads the managed state back.
    async fn current(&self) -> Result<HostNetState, Error>;
    /// Removes everything kws created.
    async fn teardown(&self) -> Result<(), TeardownErrors>;
}
