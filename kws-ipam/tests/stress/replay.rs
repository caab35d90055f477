//! Replays the grant log: every `G addr owner` must find `addr` unheld (its last holder's
//! `R addr`, written before that release started, comes earlier in the log).

use std::{collections::HashMap, net::IpAddr};

/// The holders the log ends with, or the first duplicate it shows.
pub(crate) fn replay(log: &str) -> Result<HashMap<IpAddr, String>, String> {
    let mut holders: HashMap<IpAddr, String> = HashMap::new();
    let mut grants = 0usize;
    for (n, line) in log.lines().enumerate() {
        let mut parts = line.split(' ');
        let (kind, addr) = (parts.next(), parts.next().and_then(|a| a.parse::<IpAddr>().ok()));
        match (kind, addr, parts.next()) {
            (Some("G"), Some(addr), Some(owner)) => {
                grants += 1;
                if let Some(prev) = holders.insert(addr, owner.to_owned()) {
                    return Err(format!(
                        "line {n}: {addr} granted to {owner} while {prev} held it"
                    ));
                }
            }
            (Some("R"), Some(addr), None) => {
                holders.remove(&addr);
            }
            // A worker killed mid-write leaves at most a torn last line of its own.
            _ => {}
        }
    }
    if grants == 0 {
        return Err("the log holds no grant".into());
    }
    Ok(holders)
}

#[test]
fn replay_catches_a_duplicate() {
    assert!(replay("G 10.0.0.2 a\nR 10.0.0.2\nG 10.0.0.2 b\n").is_ok());
    let dup = replay("G 10.0.0.2 a\nG 10.0.0.3 c\nG 10.0.0.2 b\n");
    assert!(dup.is_err_and(|e| e.contains("while a held it")));
}
