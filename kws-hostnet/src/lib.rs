//! kws-hostnet turns the host into a router from a declared `HostNetState`: bridges and
//! addresses over rtnetlink, forwarding sysctls, and every netfilter rule in kws's own nftables
//! table, changed in one atomic batch; a plan backend renders the same as a script.
