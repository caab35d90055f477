//! kws's nftables table (replaced in one `nft -f` batch, read back from its rule tags) and the
//! one accept kws puts into Docker's `DOCKER-USER` chain when that chain exists.

use std::path::PathBuf;

use super::{
    command::{run, run_ok},
    generation,
};
use crate::{
    DOCKER_USER_RULE, Error, HostNetState, TABLE,
    render::nft::{NetfilterReadback, render_batch},
};

/// What this worker last wrote: the batch, the kernel's listing of the table right after it,
/// and the ruleset generation once the whole apply was done. With a file, the batch and the
/// listing also outlive the process, so a restarted process recognises its own table.
#[derive(Debug, Default)]
pub(super) struct TableCache {
    last: Option<Written>,
    file: Option<PathBuf>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Written {
    batch: String,
    listing: String,
    #[serde(skip)]
    generation: Option<u32>,
}

impl TableCache {
    /// A cache kept in `file` too (for example under `/run`, which is empty after a reboot
    /// exactly when the ruleset is).
    pub(super) fn with_file(file: PathBuf) -> Self {
        Self { last: None, file: Some(file) }
    }

    fn load(&mut self) {
        if self.last.is_some() {
            return;
        }
        let Some(file) = &self.file else { return };
        // A missing or unreadable file only means the next apply writes the table again.
        self.last = std::fs::read_to_string(file).ok().and_then(|t| serde_json::from_str(&t).ok());
    }

    fn store(&self) {
        let (Some(file), Some(last)) = (&self.file, &self.last) else { return };
        let Ok(text) = serde_json::to_string(last) else { return };
        let tmp = file.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, file)) {
            tracing::warn!(file = %file.display(), error = %e, "kws-hostnet: cannot keep the table cache");
        }
    }

    /// Replaces the table unless it already holds exactly `desired`; true when replaced.
    ///
    /// Unchanged desired state and unchanged ruleset generation: nothing to read or write.
    /// Unchanged desired state but a newer generation (some tool changed some table): the table
    /// is listed and compared with the listing taken after kws's write.
    pub(super) fn converge(&mut self, desired: &HostNetState) -> Result<bool, Error> {
        let batch = render_batch(desired);
        self.load();
        if let Some(last) = self.last.as_mut().filter(|l| l.batch == batch) {
            let now = generation::current()?;
            if last.generation == Some(now) {
                return Ok(false);
            }
            if list_table()?.as_deref() == Some(last.listing.as_str()) {
                last.generation = Some(now);
                return Ok(false);
            }
        }
        self.last = None;
        run_ok("nft", &["-f", "-"], Some(&batch))?;
        let listing = list_table()?.ok_or_else(|| Error::Readback {
            what: "nftables table",
            message: format!("table {TABLE} missing right after it was created"),
        })?;
        self.last = Some(Written { batch, listing, generation: None });
        self.store();
        Ok(true)
    }

    /// Records the ruleset generation at the end of an apply (after every write kws made).
    pub(super) fn settle(&mut self) -> Result<(), Error> {
        if let Some(last) = self.last.as_mut() {
            last.generation = Some(generation::current()?);
        }
        Ok(())
    }

    /// Deletes kws's table when present (in one transaction with its `add`, so a missing table
    /// is not an error).
    pub(super) fn remove(&mut self) -> Result<(), Error> {
        self.last = None;
        if let Some(file) = &self.file {
            let _ = std::fs::remove_file(file);
        }
        run_ok("nft", &["-f", "-"], Some(&format!("add table {TABLE}\ndelete table {TABLE}\n")))
            .map(drop)
    }
}

fn table_args(json: bool) -> Vec<&'static str> {
    let mut args = if json { vec!["-j"] } else { vec![] };
    args.extend(["list", "table"]);
    args.extend(TABLE.split(' '));
    args
}

/// `nft list table inet kws`, or `None` when the table does not exist.
fn list_table() -> Result<Option<String>, Error> {
    listing(false)
}

fn listing(json: bool) -> Result<Option<String>, Error> {
    let args = table_args(json);
    let out = run("nft", &args, None)?;
    if out.success {
        Ok(Some(out.stdout))
    } else if out.stderr.contains("No such file or directory") {
        Ok(None)
    } else {
        Err(Error::Command { command: format!("nft {}", args.join(" ")), message: out.stderr })
    }
}

/// The netfilter items of kws's table (empty when the table is absent).
pub(super) fn read() -> Result<NetfilterReadback, Error> {
    let Some(json) = listing(true)? else { return Ok(NetfilterReadback::default()) };
    let value: serde_json::Value = serde_json::from_str(&json)
        .map_err(|e| Error::Readback { what: "nft -j output", message: e.to_string() })?;
    NetfilterReadback::from_json(&value)
        .map_err(|message| Error::Readback { what: "kws nftables table", message })
}

const FIREWALLS: [&str; 2] = ["iptables", "ip6tables"];

fn rule_args<'a>(action: &'a [&'a str]) -> Vec<&'a str> {
    let mut args = vec!["-w"];
    args.extend_from_slice(action);
    args.extend_from_slice(&DOCKER_USER_RULE);
    args
}

/// When Docker's `DOCKER-USER` chain exists (v4 or v6), makes sure kws's accept is in it.
/// Returns how many rules were inserted. A missing `iptables` binary means no such chain.
pub(super) fn docker_user_allow() -> Result<usize, Error> {
    let mut added = 0;
    let line = format!("-A DOCKER-USER {}", DOCKER_USER_RULE.join(" "));
    for tool in FIREWALLS {
        let Ok(listed) = run(tool, &["-w", "-S", "DOCKER-USER"], None) else { continue };
        if !listed.success || listed.stdout.lines().any(|l| l == line) {
            continue;
        }
        run_ok(tool, &rule_args(&["-I", "DOCKER-USER", "1"]), None)?;
        added += 1;
    }
    Ok(added)
}

/// Removes every copy of kws's accept from `DOCKER-USER`; returns the errors met.
pub(super) fn docker_user_remove() -> Vec<Error> {
    let mut errors = Vec::new();
    for tool in FIREWALLS {
        // Bounded: a rule that cannot be deleted must not spin forever.
        for _ in 0..16 {
            match run(tool, &rule_args(&["-C", "DOCKER-USER"]), None) {
                Ok(check) if check.success => {
                    if let Err(e) = run_ok(tool, &rule_args(&["-D", "DOCKER-USER"]), None) {
                        errors.push(e);
                        break;
                    }
                }
                _ => break,
            }
        }
    }
    errors
}
