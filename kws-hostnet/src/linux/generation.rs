//! The nftables ruleset generation of the worker's namespace (`NFT_MSG_GETGEN`): a counter the
//! kernel bumps on every committed ruleset change, by any tool. While it is unchanged since
//! kws's last write, kws's table is unchanged too, and a re-apply needs no listing.

use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use crate::Error;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETGEN: u16 = 16;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NFTA_GEN_ID: u16 = 1;
const HEADER: usize = 16;
const NFGENMSG: usize = 4;

fn fail(message: impl Into<String>) -> Error {
    Error::Netlink { operation: "nftables generation".into(), message: message.into() }
}

/// The current ruleset generation.
pub(super) fn current() -> Result<u32, Error> {
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(|e| fail(e.to_string()))?;
    socket.bind_auto().map_err(|e| fail(e.to_string()))?;
    socket.connect(&SocketAddr::new(0, 0)).map_err(|e| fail(e.to_string()))?;
    let mut request = Vec::with_capacity(HEADER + NFGENMSG);
    request.extend_from_slice(&((HEADER + NFGENMSG) as u32).to_ne_bytes());
    request.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN).to_ne_bytes());
    request.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    request.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    request.extend_from_slice(&[0, 0, 0, 0]); // nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id 0
    socket.send(&request, 0).map_err(|e| fail(e.to_string()))?;
    let (reply, _) = socket.recv_from_full().map_err(|e| fail(e.to_string()))?;
    parse(&reply)
}

fn parse(reply: &[u8]) -> Result<u32, Error> {
    let u16_at = |at: usize| reply.get(at..at + 2).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let kind = u16_at(4).ok_or_else(|| fail("short reply"))?;
    if kind == NLMSG_ERROR {
        let code =
            reply.get(HEADER..HEADER + 4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        return Err(fail(format!("kernel error {code:?}")));
    }
    let mut at = HEADER + NFGENMSG;
    while let (Some(len), Some(attr)) = (u16_at(at), u16_at(at + 2)) {
        let len = usize::from(len);
        if len < 4 {
            break;
        }
        if attr & 0x3fff == NFTA_GEN_ID {
            if let Some(b) = reply.get(at + 4..at + 8) {
                return Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            }
        }
        at += (len + 3) & !3;
    }
    Err(fail("no NFTA_GEN_ID in the reply"))
}
