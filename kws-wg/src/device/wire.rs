//! The UAPI text protocol (<https://www.wireguard.com/xplatform/>), only the subset both
//! wireguard-go and boringtun accept: rendering `set` requests and parsing `get` answers.

use std::{
    fmt::Write,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::{
    PresharedKey, PrivateKey, PublicKey,
    device::{DeviceState, InterfaceConfig, PeerChange, PeerConfig, PeerStatus},
};

/// A `set` request: the interface part (if any), then the peers; ends with the blank line.
pub(crate) fn set_request(
    interface: Option<&InterfaceConfig>,
    replace_peers: bool,
    changes: &[PeerChange],
) -> String {
    let mut out = String::with_capacity(64 + changes.len() * 256);
    out.push_str("set=1\n");
    if let Some(cfg) = interface {
        let _ = writeln!(out, "private_key={}", cfg.private_key.to_hex());
        let _ = writeln!(out, "listen_port={}", cfg.listen_port);
    }
    if replace_peers {
        out.push_str("replace_peers=true\n");
    }
    for change in changes {
        match change {
            PeerChange::Upsert(peer) => push_peer(&mut out, peer),
            PeerChange::Remove(key) => {
                let _ = writeln!(out, "public_key={}\nremove=true", key.to_hex());
            }
        }
    }
    out.push('\n');
    out
}

fn push_peer(out: &mut String, peer: &PeerConfig) {
    let _ = writeln!(out, "public_key={}", peer.public_key.to_hex());
    let psk = peer.preshared_key.as_ref().map_or_else(PresharedKey::none_hex, |k| k.to_hex());
    let _ = writeln!(out, "preshared_key={psk}");
    if let Some(endpoint) = peer.endpoint {
        let _ = writeln!(out, "endpoint={endpoint}");
    }
    let _ = writeln!(out, "persistent_keepalive_interval={}", peer.keepalive.unwrap_or(0));
    out.push_str("replace_allowed_ips=true\n");
    for ip in &peer.allowed_ips {
        let _ = writeln!(out, "allowed_ip={ip}");
    }
}

/// Splits an answer (up to and without its final empty line) into its body and the errno of
/// its last line, `errno=N` (signed: wireguard-go sends negative values).
pub(crate) fn split_answer(answer: Vec<u8>) -> Result<(String, i64), String> {
    let mut body = String::from_utf8(answer).map_err(|_| "the answer is not UTF-8".to_owned())?;
    let without_newline = body.strip_suffix('\n').unwrap_or(&body);
    let last_start = without_newline.rfind('\n').map_or(0, |i| i + 1);
    let last = &without_newline[last_start..];
    let value =
        last.strip_prefix("errno=").ok_or_else(|| format!("the answer ends with {last:?}"))?;
    let errno = value.parse::<i64>().map_err(|_| format!("errno {value:?} is not a number"))?;
    body.truncate(last_start);
    Ok((body, errno))
}

/// Parses the body of a `get` answer (every line before `errno=`).
pub(crate) fn parse_get(body: &str) -> Result<DeviceState, String> {
    let mut state = DeviceState { public_key: None, listen_port: 0, peers: Vec::new() };
    let mut peer: Option<PeerBuilder> = None;
    // boringtun names its key `own_public_key` and reports handshake times as ages.
    let mut handshake_is_age = false;
    for line in body.lines() {
        let (key, value) =
            line.split_once('=').ok_or_else(|| format!("line {line:?} is not key=value"))?;
        let bad = |what: &str| format!("{key}={value}: {what}");
        if key == "public_key" {
            if let Some(done) = peer.take() {
                state.peers.push(done.finish(handshake_is_age));
            }
            let pk = PublicKey::from_hex(value).map_err(|e| bad(&e.to_string()))?;
            peer = Some(PeerBuilder::new(pk));
            continue;
        }
        let Some(p) = peer.as_mut() else {
            match key {
                "private_key" => {
                    let k = PrivateKey::from_hex(value).map_err(|e| bad(&e.to_string()))?;
                    // An all-zero private key means "none set". Only the public half is kept.
                    state.public_key = value.bytes().any(|b| b != b'0').then(|| k.public_key());
                }
                "own_public_key" => {
                    let k = PublicKey::from_hex(value).map_err(|e| bad(&e.to_string()))?;
                    state.public_key = Some(k);
                    handshake_is_age = true;
                }
                "listen_port" => state.listen_port = value.parse().map_err(|_| bad("a port"))?,
                _ => {} // fwmark and fields a later protocol version adds.
            }
            continue;
        };
        let number = || value.parse::<u64>().map_err(|_| bad("a number"));
        match key {
            "preshared_key" => {
                p.status.config.preshared_key =
                    PresharedKey::from_hex(value).map_err(|e| bad(&e.to_string()))?;
            }
            "endpoint" => {
                p.status.config.endpoint = Some(value.parse().map_err(|_| bad("an endpoint"))?);
            }
            "allowed_ip" => {
                p.status.config.allowed_ips.push(value.parse().map_err(|_| bad("a prefix"))?);
            }
            "persistent_keepalive_interval" => {
                let secs = u16::try_from(number()?).map_err(|_| bad("a keepalive"))?;
                p.status.config.keepalive = (secs != 0).then_some(secs);
            }
            "last_handshake_time_sec" => {
                p.handshake_sec = number()?;
                p.seen_handshake = true;
            }
            "last_handshake_time_nsec" => p.handshake_nsec = number()?,
            "rx_bytes" => p.status.rx_bytes = number()?,
            "tx_bytes" => p.status.tx_bytes = number()?,
            _ => {} // protocol_version and fields a later protocol version adds.
        }
    }
    if let Some(done) = peer.take() {
        state.peers.push(done.finish(handshake_is_age));
    }
    Ok(state)
}

struct PeerBuilder {
    status: PeerStatus,
    handshake_sec: u64,
    handshake_nsec: u64,
    seen_handshake: bool,
}

impl PeerBuilder {
    fn new(public_key: PublicKey) -> Self {
        Self {
            status: PeerStatus {
                config: PeerConfig {
                    public_key,
                    preshared_key: None,
                    allowed_ips: Vec::new(),
                    keepalive: None,
                    endpoint: None,
                },
                last_handshake: None,
                rx_bytes: 0,
                tx_bytes: 0,
            },
            handshake_sec: 0,
            handshake_nsec: 0,
            seen_handshake: false,
        }
    }

    /// `handshake_is_age`: the time is how long ago (boringtun), not since the epoch.
    fn finish(mut self, handshake_is_age: bool) -> PeerStatus {
        let time = Duration::new(self.handshake_sec, 0)
            + Duration::from_nanos(self.handshake_nsec.min(999_999_999));
        self.status.last_handshake = if handshake_is_age {
            // boringtun leaves the fields out when there was no handshake.
            self.seen_handshake.then(|| SystemTime::now().checked_sub(time)).flatten()
        } else if time.is_zero() {
            None // A handshake time of zero means "never".
        } else {
            UNIX_EPOCH.checked_add(time)
        };
        self.status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_wireguard_go_answer() {
        let peer = PrivateKey::generate().expect("rng").public_key();
        let text = format!(
            "private_key={}\nlisten_port=51820\nfwmark=0\npublic_key={}\npreshared_key={}\n\
             protocol_version=1\nendpoint=[::1]:4000\nlast_handshake_time_sec=0\n\
             last_handshake_time_nsec=0\ntx_bytes=7\nrx_bytes=9\npersistent_keepalive_interval=0\n\
             allowed_ip=10.8.0.2/32\nallowed_ip=fd00::2/128\n",
            PrivateKey::generate().expect("rng").to_hex(),
            peer.to_hex(),
            PresharedKey::none_hex(),
        );
        let state = parse_get(&text).expect("parses");
        assert!(parse_get("no equals sign").is_err());
        assert_eq!(state.listen_port, 51820);
        assert!(state.public_key.is_some());
        let p = &state.peers[0];
        assert_eq!(p.config.public_key, peer);
        assert_eq!(p.config.preshared_key, None, "all-zero PSK means none");
        assert_eq!(p.last_handshake, None, "handshake 0 means never");
        assert_eq!(p.config.keepalive, None);
        assert_eq!((p.rx_bytes, p.tx_bytes), (9, 7));
        assert_eq!(p.config.allowed_ips.len(), 2);
        assert_eq!(p.config.endpoint, Some("[::1]:4000".parse().expect("addr")));
    }

    #[test]
    fn parses_a_boringtun_answer() {
        let own = PrivateKey::generate().expect("rng").public_key();
        let peer = PrivateKey::generate().expect("rng").public_key();
        let text = format!(
            "own_public_key={}\nlisten_port=4000\npublic_key={}\nallowed_ip=10.8.0.2/32\n\
             last_handshake_time_sec=5\nlast_handshake_time_nsec=0\nrx_bytes=1\ntx_bytes=2\n\
             public_key={}\nrx_bytes=0\ntx_bytes=0\n",
            own.to_hex(),
            peer.to_hex(),
            own.to_hex(),
        );
        let state = parse_get(&text).expect("parses");
        assert_eq!(state.public_key, Some(own));
        let age = state.peers[0].last_handshake.and_then(|t| t.elapsed().ok()).expect("a time");
        assert!(age >= Duration::from_secs(5) && age < Duration::from_secs(60), "{age:?}");
        assert_eq!(state.peers[1].last_handshake, None, "no handshake fields: never");
        assert_eq!(state.peers[1].config.preshared_key, None);
    }

    #[test]
    fn errno_is_signed_and_ends_the_answer() {
        let split = |s: &str| split_answer(s.as_bytes().to_vec());
        assert_eq!(split("errno=-22\n"), Ok((String::new(), -22)));
        assert_eq!(split("errno=0\n"), Ok((String::new(), 0)));
        assert_eq!(split("listen_port=1\nerrno=0\n"), Ok(("listen_port=1\n".to_owned(), 0)));
        assert!(split("errno=x\n").is_err());
        assert!(split("listen_port=1\n").is_err());
        assert!(split_answer(vec![0xff, b'\n']).is_err());
    }

    #[test]
    fn a_set_request_replaces_allowed_ips_and_clears_a_missing_psk() {
        let key = PrivateKey::generate().expect("rng").public_key();
        let req = set_request(
            None,
            false,
            &[PeerChange::Upsert(PeerConfig {
                public_key: key,
                preshared_key: None,
                allowed_ips: vec!["10.8.0.2/32".parse().expect("net")],
                keepalive: Some(25),
                endpoint: None,
            })],
        );
        assert!(req.starts_with("set=1\n") && req.ends_with("\n\n"));
        assert!(req.contains(&format!("preshared_key={}\n", PresharedKey::none_hex())));
        assert!(req.contains("replace_allowed_ips=true\nallowed_ip=10.8.0.2/32\n"));
        assert!(!req.contains("replace_peers"));
    }
}
