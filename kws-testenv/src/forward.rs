//! A TCP forwarder between network namespaces.

use std::net::SocketAddr;

/// Forwards every connection `listener` accepts to `target`, reached from the namespace named
/// `target_ns` (the machine's own when `None`). A socket keeps the namespace it was made in, so
/// the listener may live in one namespace and the connections go out from another.
pub fn forward(
    listener: std::net::TcpListener,
    target: SocketAddr,
    target_ns: Option<String>,
) -> tokio::task::JoinHandle<()> {
    listener.set_nonblocking(true).expect("nonblocking");
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target_ns = target_ns.clone();
            tokio::spawn(async move {
                let connect = move || std::net::TcpStream::connect(target);
                let outbound = match target_ns {
                    Some(ns) => {
                        tokio::task::spawn_blocking(move || crate::Netns::enter_named(&ns, connect))
                            .await
                    }
                    None => tokio::task::spawn_blocking(connect).await,
                };
                let Ok(Ok(outbound)) = outbound else { return };
                if outbound.set_nonblocking(true).is_err() {
                    return;
                }
                if let Ok(mut outbound) = tokio::net::TcpStream::from_std(outbound) {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}
