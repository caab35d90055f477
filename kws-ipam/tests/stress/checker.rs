//! Checks a near-exhaustion log against the `IpAllocator` contract: no `Exhausted` while an
//! address was free and past its quarantine for the whole call, no FIFO inversion between
//! calls that do not overlap in time, no address granted while another lease held it, and an
//! allocation for an owner holding a lease answers that lease.
//!
//! Log lines, each one `write` (many processes append to the same file):
//! - `B id t kind owner [addr]`: operation `id` (`worker-task-n`) starts at `t` (ns since the
//!   Unix epoch). Kinds: `A` allocate for a new owner; `H` allocate for an owner holding `addr`;
//!   `S` allocate_specific of `addr`; `R` release of `addr`, held by `owner`.
//! - `E id t result [addr]`: it returned at `t`: `G` granted `addr`, `X` Exhausted, `T` taken by
//!   another owner, `F` released.
//! - `K worker t`: the worker was killed with SIGKILL at `t`.
//! - `L t`: the fast queue (PostgreSQL+Redis) was deleted at `t`, as a Redis restart without
//!   its data does.
//!
//! A killed worker leaves operations without an end. The final leases (from an audit) tell
//! what they did: an allocation whose owner holds a lease at the end got that address (at some
//! moment after its start); a release whose owner still holds the address did nothing, any
//! other released it at an unknown moment, so that address counts as free for no check until
//! its next grant.
//!
//! The batch window. FIFO is checked between calls that do not overlap: address Y, released
//! after address X's release returned (or fresh), overtakes X when an allocation of Y starts
//! after X was ready and ends before any grant of X starts. Allocations in flight at once, in
//! one batch or in concurrent ones, may come out in either order, and are not counted.
//! `excuse_in_flight_pops` (PostgreSQL+Redis) also lets X be overtaken by Y while another
//! allocation, in flight before Y's ended, may hold X's fast-path copy: it popped the copy and
//! has not claimed it yet, so X is out of the fast queue though free in PostgreSQL. Either that
//! allocation was still in flight when X was granted to another call (its claim then finds X
//! gone, the PostgreSQL path of an allocation having taken it), or its worker was killed after
//! X's release began (the copy is lost, and X waits in PostgreSQL until the fast path runs
//! dry). Such an allocation got another address, or none. It also lets X be overtaken when the
//! fast queue was deleted after X's release began and before Y's allocation ended: X's copy
//! may be gone, and X waits in PostgreSQL alone until the fast path runs dry or is reconciled.

use std::{collections::HashMap, net::IpAddr};

/// Never (an end not seen).
const NEVER: u128 = u128::MAX;

/// What the checker knows beside the log.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    /// The pool's quarantine.
    pub(crate) quarantine_ns: u128,
    /// Slack for the clocks of processes and of PostgreSQL (one host, one clock).
    pub(crate) margin_ns: u128,
    /// When the pool was created (every usable address free and fresh from then on).
    pub(crate) start_ns: u128,
    /// Every usable address of the pool.
    pub(crate) usable: Vec<IpAddr>,
    /// The leases at the end, owner -> address.
    pub(crate) final_leases: HashMap<String, IpAddr>,
    /// See the module doc (PostgreSQL+Redis).
    pub(crate) excuse_in_flight_pops: bool,
}

/// What the checker found.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) operations: usize,
    pub(crate) grants: usize,
    pub(crate) exhausted: usize,
    pub(crate) killed_in_flight: usize,
    /// `Exhausted` answers while an address was free and ready for the whole call.
    pub(crate) false_exhausted: Vec<String>,
    /// FIFO inversions outside the batch window.
    pub(crate) inversions: Vec<String>,
    /// Inversions excused by a pop in flight or a lost fast queue (`excuse_in_flight_pops`).
    pub(crate) excused_inversions: usize,
    /// The most addresses that overtook one free address.
    pub(crate) deepest_inversion: usize,
    /// Anything else wrong: duplicate grants, broken idempotency, unexpected answers.
    pub(crate) problems: Vec<String>,
}

#[derive(Debug, Clone)]
struct Op {
    worker: String,
    kind: char,
    owner: String,
    addr: Option<IpAddr>,
    start: u128,
    end: Option<u128>,
    result: Option<char>,
    got: Option<IpAddr>,
}

/// A grant of an address: the call's start and end (`NEVER` when it did not return).
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u128,
    end: u128,
}

/// A stretch in which an address was certainly free (and, from `from`, ready).
#[derive(Debug, Clone, Copy)]
struct Free {
    from: u128,
    to: u128,
    /// The release that freed it; `None` for a fresh address.
    released: Option<Span>,
}

/// The operations by id, the kill time of each killed worker, and when the fast queue was lost.
type Parsed = (HashMap<String, Op>, HashMap<String, u128>, Vec<u128>);

fn parse(log: &str, report: &mut Report) -> Parsed {
    let mut ops: HashMap<String, Op> = HashMap::new();
    let mut kills = HashMap::new();
    let mut losses = Vec::new();
    for line in log.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let t = |i: usize| f.get(i).and_then(|v| v.parse::<u128>().ok());
        let addr = |i: usize| f.get(i).and_then(|v| v.parse::<IpAddr>().ok());
        match f.first().copied() {
            Some("B") if f.len() >= 5 => {
                let (Some(id), Some(start)) = (f.get(1), t(2)) else { continue };
                let worker = id.split('-').next().unwrap_or_default().to_string();
                let kind = f[3].chars().next().unwrap_or('?');
                let op = Op {
                    worker,
                    kind,
                    owner: f[4].to_string(),
                    addr: addr(5),
                    start,
                    end: None,
                    result: None,
                    got: None,
                };
                ops.insert((*id).to_string(), op);
            }
            Some("E") if f.len() >= 4 => {
                let (Some(id), Some(end)) = (f.get(1), t(2)) else { continue };
                match ops.get_mut(*id) {
                    Some(op) => {
                        op.end = Some(end);
                        op.result = f[3].chars().next();
                        op.got = addr(4);
                    }
                    None => report.problems.push(format!("end without a start: {line}")),
                }
            }
            Some("K") => {
                if let (Some(w), Some(at)) = (f.get(1), t(2)) {
                    kills.insert((*w).to_string(), at);
                }
            }
            Some("L") => losses.extend(t(1)),
            // A worker killed mid-write leaves at most a torn last line of its own.
            _ => {}
        }
    }
    (ops, kills, losses)
}

/// Checks `log` (see the module doc).
pub(crate) fn check(log: &str, p: &Params) -> Report {
    let mut report = Report::default();
    let (ops, kills, losses) = parse(log, &mut report);
    report.operations = ops.len();
    // Per address: its grants (span, owner, FIFO take or not) and its releases by owner.
    let mut grants: HashMap<IpAddr, Vec<(Span, String, bool)>> = HashMap::new();
    let mut releases: HashMap<(IpAddr, String), (Span, bool)> = HashMap::new();
    // Every allocation for a new owner, as a possible holder of a popped copy: its call (to
    // the kill for a killed worker's), whether it was killed, and what it got.
    let mut pops: Vec<(Span, bool, Option<IpAddr>)> = Vec::new();
    for (id, op) in &ops {
        let done = op.end.is_some();
        if !done {
            report.killed_in_flight += 1;
            if !kills.contains_key(&op.worker) {
                report.problems.push(format!("{id} never returned, and its worker was not killed"));
            }
        }
        let span = Span { start: op.start, end: op.end.unwrap_or(NEVER) };
        let kept = p.final_leases.get(&op.owner).copied();
        if op.kind == 'A' {
            let killed = kills.get(&op.worker).copied().unwrap_or(NEVER);
            let (end, got) = if done { (span.end, op.got) } else { (killed, kept) };
            pops.push((Span { start: op.start, end }, !done, got));
        }
        match (op.kind, op.result) {
            ('A' | 'S', Some('G')) => match op.got {
                Some(a) if op.kind == 'A' || Some(a) == op.addr => {
                    grants.entry(a).or_default().push((span, op.owner.clone(), op.kind == 'A'));
                }
                other => report.problems.push(format!("{id}: granted {other:?} for {op:?}")),
            },
            ('A', Some('X')) => report.exhausted += 1,
            ('S', Some('T')) => {}
            ('H', Some('G')) if op.got == op.addr => {}
            ('R', Some('F')) => {
                if let Some(a) = op.addr {
                    releases.insert((a, op.owner.clone()), (span, false));
                }
            }
            ('A' | 'S', None) => {
                if let Some(a) = kept {
                    grants.entry(a).or_default().push((span, op.owner.clone(), false));
                }
            }
            ('H', None) => {}
            ('R', None) => {
                if let Some(a) = op.addr.filter(|a| kept != Some(*a)) {
                    releases.insert((a, op.owner.clone()), (span, true));
                }
            }
            _ => report.problems.push(format!("{id}: unexpected {op:?}")),
        }
    }
    report.grants = grants.values().map(Vec::len).sum();

    // Each address's free stretches, from its grants in order and the releases that ended them.
    let mut free: HashMap<IpAddr, Vec<Free>> = HashMap::new();
    // For each grant (address, call start): the release its address came from (None: fresh).
    let mut source: HashMap<(IpAddr, u128), Option<Span>> = HashMap::new();
    for &a in &p.usable {
        let mut list = grants.remove(&a).unwrap_or_default();
        // A grant ends after the release before it started, which started after the grant
        // before it ended: sorting by end orders them.
        list.sort_by_key(|(s, _, _)| (s.end, s.start));
        let mut stretches = Vec::new();
        // Since when the address is certainly free and ready, and the release it came from.
        let mut from = Some(p.start_ns);
        let mut released: Option<Span> = None;
        for (i, (span, owner, _)) in list.iter().enumerate() {
            source.insert((a, span.start), released);
            if let Some(f) = from.filter(|f| span.start > *f) {
                stretches.push(Free { from: f, to: span.start, released });
            }
            let next = list.get(i + 1).map(|(n, _, _)| n);
            match releases.get(&(a, owner.clone())) {
                Some((r, ambiguous)) => {
                    released = Some(*r);
                    // Released at a moment unknown: certainly free nowhere until the next grant.
                    from =
                        (!ambiguous).then(|| r.end.saturating_add(p.quarantine_ns + p.margin_ns));
                    if let Some(n) = next.filter(|n| n.end < r.start) {
                        report.problems.push(format!(
                            "{a} granted at {}..{} before {owner} released it at {}",
                            n.start, n.end, r.start
                        ));
                    }
                }
                None => {
                    from = None;
                    if let Some(n) = next {
                        report.problems.push(format!(
                            "{a} granted at {} while {owner} held it since {}",
                            n.start, span.start
                        ));
                    }
                }
            }
        }
        if let Some(f) = from {
            stretches.push(Free { from: f, to: NEVER, released });
        }
        free.insert(a, stretches);
    }
    for (a, list) in &grants {
        report
            .problems
            .push(format!("{a} granted {} times but is not a usable address", list.len()));
    }
    // The stretch of `a` that covers [s, e] whole, if any.
    let covering = |a: &IpAddr, s: u128, e: u128| -> Option<Free> {
        let list = free.get(a)?;
        let i = list.partition_point(|f| f.from <= s);
        let f = *list.get(i.checked_sub(1)?)?;
        (f.to > e).then_some(f)
    };

    for (id, op) in &ops {
        let (Some('X'), Some(end)) = (op.result, op.end) else { continue };
        for a in &p.usable {
            if let Some(f) = covering(a, op.start, end) {
                report.false_exhausted.push(format!(
                    "{id} answered Exhausted over {}..{end} while {a} was free and ready from {} \
                     (released by {:?})",
                    op.start, f.from, f.released
                ));
                break;
            }
        }
    }

    // FIFO: each allocation that took Y, against every X it may have overtaken.
    let mut depth: HashMap<(IpAddr, u128), usize> = HashMap::new();
    for (id, op) in &ops {
        let (Some('G'), Some(y), Some(end), 'A') = (op.result, op.got, op.end, op.kind) else {
            continue;
        };
        let y_source = source.get(&(y, op.start)).copied().flatten();
        for x in p.usable.iter().filter(|x| **x != y) {
            let Some(f) = covering(x, op.start, end) else { continue };
            let Some(x_release) = f.released else { continue };
            let older = match y_source {
                Some(y_release) => x_release.end < y_release.start,
                None => true,
            };
            if !older {
                continue;
            }
            let popped = pops.iter().any(|(call, killed, got)| {
                let holds = if *killed { call.end > x_release.start } else { call.end > f.to };
                call.start < end && *got != Some(*x) && holds
            });
            let lost = losses.iter().any(|l| *l > x_release.start && *l < end);
            let excused = p.excuse_in_flight_pops && (popped || lost);
            if excused {
                report.excused_inversions += 1;
                continue;
            }
            let d = depth.entry((*x, f.from)).or_default();
            *d += 1;
            report.inversions.push(format!(
                "{id} took {y} (released {y_source:?}) over {}..{end} while {x}, released \
                 {x_release:?}, was free and ready from {} to {}",
                op.start, f.from, f.to
            ));
        }
    }
    report.deepest_inversion = depth.values().copied().max().unwrap_or(0);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u128 = 1_000_000;

    fn params(quarantine_ms: u128) -> Params {
        Params {
            quarantine_ns: quarantine_ms * MS,
            margin_ns: MS,
            start_ns: 0,
            usable: vec!["10.0.0.2".parse().expect("ip"), "10.0.0.3".parse().expect("ip")],
            final_leases: HashMap::new(),
            excuse_in_flight_pops: false,
        }
    }

    /// Both addresses granted at 10-20 ms; `.2` released at 30-40 ms.
    const BASE: &str = "B 0-0-0 10000000 A a\nE 0-0-0 20000000 G 10.0.0.2\n\
                        B 0-0-1 10000000 A b\nE 0-0-1 20000000 G 10.0.0.3\n\
                        B 0-0-2 30000000 R a 10.0.0.2\nE 0-0-2 40000000 F\n";

    #[test]
    fn an_exhausted_answer_while_an_address_was_free_and_ready_is_found() {
        let log = format!("{BASE}B 1-0-0 100000000 A c\nE 1-0-0 110000000 X\n");
        let r = check(&log, &params(10));
        assert_eq!(r.false_exhausted.len(), 1, "{r:?}");
        assert!(r.problems.is_empty(), "{r:?}");
        // Started before the quarantine ended: the pool may well have been exhausted.
        let log = format!("{BASE}B 1-0-0 45000000 A c\nE 1-0-0 110000000 X\n");
        assert!(check(&log, &params(10)).false_exhausted.is_empty());
        // The address was granted by a call that started during this one.
        let log = format!(
            "{BASE}B 1-0-0 100000000 A c\nE 1-0-0 110000000 X\n\
             B 1-0-1 105000000 A d\nE 1-0-1 120000000 G 10.0.0.2\n"
        );
        let r = check(&log, &params(10));
        assert!(r.false_exhausted.is_empty() && r.problems.is_empty(), "{r:?}");
    }

    #[test]
    fn an_inversion_between_calls_that_do_not_overlap_is_found() {
        // .3 released after .2 was, then allocated while .2 stayed free.
        let log = format!(
            "{BASE}B 0-0-3 50000000 R b 10.0.0.3\nE 0-0-3 60000000 F\n\
             B 1-0-0 100000000 A c\nE 1-0-0 110000000 G 10.0.0.3\n\
             B 1-0-1 120000000 A d\nE 1-0-1 130000000 G 10.0.0.2\n"
        );
        let r = check(&log, &params(0));
        assert_eq!(r.inversions.len(), 1, "{r:?}");
        assert_eq!(r.deepest_inversion, 1);
        // The same two allocations in flight at once: either order is FIFO.
        let log = format!(
            "{BASE}B 0-0-3 50000000 R b 10.0.0.3\nE 0-0-3 60000000 F\n\
             B 1-0-0 100000000 A c\nE 1-0-0 110000000 G 10.0.0.3\n\
             B 1-0-1 105000000 A d\nE 1-0-1 130000000 G 10.0.0.2\n"
        );
        let r = check(&log, &params(0));
        assert!(r.inversions.is_empty() && r.problems.is_empty(), "{r:?}");
    }

    #[test]
    fn an_inversion_is_excused_only_by_a_pop_that_may_hold_the_address() {
        // As in the inversion above, with a third allocation in flight from 90 to 140 ms: it
        // may have popped .2's fast-path copy and lost it to the call that took .2 at 120 ms.
        let inversion = format!(
            "{BASE}B 0-0-3 50000000 R b 10.0.0.3\nE 0-0-3 60000000 F\n\
             B 1-0-0 100000000 A c\nE 1-0-0 110000000 G 10.0.0.3\n\
             B 1-0-1 120000000 A d\nE 1-0-1 130000000 G 10.0.0.2\n"
        );
        let mut p = params(0);
        p.excuse_in_flight_pops = true;
        let popper = "B 2-0-0 90000000 A e\nE 2-0-0 140000000 X\n";
        let r = check(&format!("{inversion}{popper}"), &p);
        assert!(r.inversions.is_empty(), "{r:?}");
        assert_eq!(r.excused_inversions, 1);
        // It returned before .2 was granted elsewhere: it held no copy, nothing is excused.
        let done_early = "B 2-0-0 90000000 A e\nE 2-0-0 115000000 X\n";
        let r = check(&format!("{inversion}{done_early}"), &p);
        assert_eq!((r.inversions.len(), r.excused_inversions), (1, 0), "{r:?}");
        // Nor on PostgreSQL, which has no fast path.
        let r = check(&format!("{inversion}{popper}"), &params(0));
        assert_eq!(r.inversions.len(), 1, "{r:?}");
    }

    #[test]
    fn a_grant_while_another_lease_holds_the_address_is_found() {
        let log = format!("{BASE}B 1-0-0 100000000 A c\nE 1-0-0 110000000 G 10.0.0.3\n");
        let r = check(&log, &params(0));
        assert_eq!(r.problems.len(), 1, "{r:?}");
    }

    #[test]
    fn a_killed_workers_operations_are_read_from_the_final_leases() {
        // Worker 1 was killed with an allocation in flight; at the end its owner holds .2.
        let log = format!("{BASE}B 1-0-0 100000000 A c\nK 1 105000000\n");
        let mut p = params(0);
        p.final_leases.insert("c".into(), "10.0.0.2".parse().expect("ip"));
        let r = check(&format!("{log}B 2-0-0 200000000 A d\nE 2-0-0 210000000 X\n"), &p);
        assert!(r.false_exhausted.is_empty() && r.problems.is_empty(), "{r:?}");
        assert_eq!(r.killed_in_flight, 1);
        // Without that lease, .2 stayed free: the Exhausted at 200 ms was false.
        let r = check(&format!("{log}B 2-0-0 200000000 A d\nE 2-0-0 210000000 X\n"), &params(0));
        assert_eq!(r.false_exhausted.len(), 1, "{r:?}");
    }
}
