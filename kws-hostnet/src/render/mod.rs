//! Pure rendering: the nftables batch, the rule tags read back by `current()`, and the shell
//! script of the plan backend. No I/O here.

pub(crate) mod bridge_isolation;
pub(crate) mod nft;
pub(crate) mod script;
pub(crate) mod tag;
