//! kws-wg is the memory that WireGuard lacks: it knows every peer (keys, owner, name, address)
//! in a `PeerStore` and keeps a real interface in step with it through the `WgDevice` trait.
//! `VpnService` composes both with an IP allocator to add, revoke and render client devices.
