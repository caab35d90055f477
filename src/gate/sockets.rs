//! The IDE WebSockets a gate let through, so that ending someone's access also ends the
//! connections they already hold open.
//!
//! The proxy checks a WebSocket once, when it upgrades; after that it only carries frames. So
//! when the gate passes an upgrade it notes the connection's two ends as the proxy sees them
//! (the browser's address and the proxy's own, `X-Kws-Peer` and `X-Kws-Local`) with whose
//! access it was. Ending that access (a logout, a member removed) destroys those sockets in
//! the kernel (`ss -K`, Linux's `SOCK_DESTROY`), which closes the WebSocket at once; the
//! workbench reconnects, through the check, which refuses it.
//!
//! This needs the proxy in kwsd's network namespace (as on one server, nginx beside kwsd),
//! `CAP_NET_ADMIN` and a kernel with `CONFIG_INET_DIAG_DESTROY`. Without them a cut is
//! logged and the connection lasts until it closes; every new request is refused either way.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Mutex, PoisonError},
};

use kws_core::{DnsLabel, OwnerId};
use uuid::Uuid;

/// How many connections are remembered; the oldest are forgotten first (a connection that
/// closed long ago is not worth a cut).
const REMEMBERED: usize = 10_000;

/// One WebSocket let through.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Socket {
    user: DnsLabel,
    session: Uuid,
    tenant: OwnerId,
    /// The browser's end, as the proxy sees it.
    peer: SocketAddr,
    /// The proxy's end.
    local: SocketAddr,
}

/// The IDE WebSockets let through, newest last. Cheap to share (`Arc` it).
#[derive(Debug, Default)]
pub struct IdeSockets {
    open: Mutex<VecDeque<Socket>>,
}

impl IdeSockets {
    /// Notes a WebSocket of `user`'s `session` to an instance of `tenant`.
    pub fn opened(
        &self,
        user: &DnsLabel,
        session: Uuid,
        tenant: &OwnerId,
        peer: SocketAddr,
        local: SocketAddr,
    ) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|s| !(s.peer == peer && s.local == local));
        if open.len() >= REMEMBERED {
            open.pop_front();
        }
        let (user, tenant) = (user.clone(), tenant.clone());
        open.push_back(Socket { user, session, tenant, peer, local });
    }

    /// Closes the WebSockets of `session` (it ended); answers how many were cut.
    pub async fn cut_session(&self, session: Uuid) -> usize {
        self.cut(|s| s.session == session).await
    }

    /// Closes `user`'s WebSockets to instances of `tenant` (no longer a member).
    pub async fn cut_member(&self, user: &DnsLabel, tenant: &OwnerId) -> usize {
        self.cut(|s| &s.user == user && &s.tenant == tenant).await
    }

    async fn cut(&self, which: impl Fn(&Socket) -> bool) -> usize {
        let gone: Vec<Socket> = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            let all: Vec<Socket> = open.drain(..).collect();
            let (gone, kept): (Vec<Socket>, Vec<Socket>) = all.into_iter().partition(|s| which(s));
            *open = kept.into();
            gone
        };
        for s in &gone {
            destroy(s.local, s.peer).await;
        }
        gone.len()
    }
}

/// The `ss` filter of the TCP socket from `local` to `peer`; an unspecified local address
/// (a proxy that names only its port) matches any.
fn filter(local: SocketAddr, peer: SocketAddr) -> Vec<String> {
    let mut filter = Vec::new();
    if !local.ip().is_unspecified() {
        filter.extend(["src".to_owned(), local.ip().to_string()]);
    }
    filter.extend(["sport".to_owned(), "=".into(), format!(":{}", local.port())]);
    filter.extend(["dst".to_owned(), peer.ip().to_string()]);
    filter.extend(["dport".to_owned(), "=".into(), format!(":{}", peer.port())]);
    filter
}

/// Destroys the TCP socket from `local` to `peer` (`ss -K`); a failure is logged.
async fn destroy(local: SocketAddr, peer: SocketAddr) {
    let filter = filter(local, peer);
    let out =
        tokio::process::Command::new("ss").args(["-K", "-t", "-n"]).args(&filter).output().await;
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => tracing::warn!(
            %local, %peer, stderr = %String::from_utf8_lossy(&o.stderr).trim(),
            "cannot close an IDE WebSocket whose access ended"
        ),
        Err(e) => {
            tracing::warn!(%local, %peer, error = %e, "cannot run ss to close an IDE WebSocket")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(s: &str) -> DnsLabel {
        DnsLabel::parse(s).expect("label")
    }

    #[test]
    fn the_filter_names_both_ends_or_only_the_local_port() {
        let peer = SocketAddr::from(([192, 0, 2, 7], 50000));
        let both = filter(SocketAddr::from(([127, 0, 0, 1], 443)), peer).join(" ");
        assert_eq!(both, "src 127.0.0.1 sport = :443 dst 192.0.2.7 dport = :50000");
        let port = filter(SocketAddr::from(([0, 0, 0, 0], 443)), peer).join(" ");
        assert_eq!(port, "sport = :443 dst 192.0.2.7 dport = :50000");
    }

    #[tokio::test]
    async fn cuts_pick_the_session_or_the_member_and_forget_them() {
        let sockets = IdeSockets::default();
        let (a, b) = (OwnerId::parse("acme").expect("t"), OwnerId::parse("globex").expect("t"));
        let (s1, s2) = (Uuid::now_v7(), Uuid::now_v7());
        let addr = |p: u16| SocketAddr::from(([192, 0, 2, 1], p));
        sockets.opened(&label("alice"), s1, &a, addr(1), addr(443));
        sockets.opened(&label("alice"), s1, &b, addr(2), addr(443));
        sockets.opened(&label("bob"), s2, &a, addr(3), addr(443));
        // The same connection noted again is one.
        sockets.opened(&label("bob"), s2, &a, addr(3), addr(443));
        assert_eq!(sockets.cut_member(&label("alice"), &a).await, 1);
        assert_eq!(sockets.cut_session(s1).await, 1, "alice's other tenant");
        assert_eq!(sockets.cut_session(s1).await, 0, "forgotten once cut");
        assert_eq!(sockets.cut_member(&label("bob"), &a).await, 1);
    }
}
