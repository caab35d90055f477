//! Running `nft` and `iptables` from the worker thread (so the child inherits its namespace).

use std::{
    io::Write as _,
    process::{Command, Stdio},
};

use crate::Error;

/// What a finished command said.
pub(super) struct Finished {
    pub(super) success: bool,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

/// Runs `program args...`, feeding `stdin` when given. Fails only when it cannot be started.
pub(super) fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<Finished, Error> {
    let shown = || format!("{program} {}", args.join(" "));
    let fail = |message: String| Error::Command { command: shown(), message };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot start: {e}")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(|e| fail(format!("cannot write stdin: {e}")))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(format!("cannot wait: {e}")))?;
    Ok(Finished {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

/// Runs and requires success; the error carries stderr.
pub(super) fn run_ok(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, Error> {
    let out = run(program, args, stdin)?;
    if out.success {
        Ok(out.stdout)
    } else {
        Err(Error::Command {
            command: format!("{program} {}", args.join(" ")),
            message: out.stderr,
        })
    }
}
