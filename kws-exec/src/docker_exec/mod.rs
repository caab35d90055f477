//! The `docker exec` runner ([`JobRunner::DockerExec`](crate::JobRunner)), the fallback for
//! engines that refuse what the supervisor needs: the sandbox's process 1 is an idle `sleep`
//! under another uid, and each job's process is started ahead ("armed") by a `docker exec`
//! after the previous job was proven gone. The armed process wipes every writable path, checks
//! each is empty and no System V IPC object is left, says `kws-ready`, and waits on its stdin
//! for the source line and the job's stdin. Nothing else runs in the sandbox then, so nothing
//! can tamper with it. Wall time and output caps are enforced by killing the container (Docker
//! cannot kill an exec), so such a job's sandbox is retired.

mod run;
mod script;
mod watcher;

pub(crate) use run::JobRun;
pub(crate) use watcher::EventWatch;

use std::{fmt, pin::Pin, sync::Mutex, time::Duration};

use bollard::{
    Docker,
    container::LogOutput,
    exec::{CreateExecOptions, StartExecOptions, StartExecResults},
};
use futures::{Stream, StreamExt};
use tokio::io::AsyncWrite;

use crate::{
    language::Language,
    sandbox::{BASE_ENV, JOB_ID, Resident, Sandbox, WORK_DIR},
};
use script::armed_script;

/// A fresh process in a sandbox that wiped and checked every writable path, said so, and now
/// waits on its stdin for a job: one line with the source, then the job's stdin. Starting it
/// ahead takes Docker's exec start off the job's latency.
pub(crate) struct Armed {
    pub(crate) exec: String,
    /// Behind a mutex only so a `Sandbox` is `Sync`; it is taken out whole to run the job.
    pub(crate) io: Mutex<ArmedIo>,
}

/// The armed process's output and input.
pub(crate) struct ArmedIo {
    pub(crate) output:
        Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>,
    pub(crate) input: Pin<Box<dyn AsyncWrite + Send>>,
}

impl fmt::Debug for Armed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Armed").field("exec", &self.exec).finish_non_exhaustive()
    }
}

/// What the armed process prints once the sandbox is proven empty.
const READY: &[u8] = b"kws-ready\n";

/// How long wiping and checking a sandbox may take.
const ARM_LIMIT: Duration = Duration::from_secs(5);

/// Starts the next job's process ahead of time. Call only on a fresh sandbox or after
/// `processes_gone`: nothing else runs in it, so nothing can tamper with that process. It
/// wipes every writable path, checks each is empty and no System V IPC object is left,
/// prints `kws-ready`, then waits for the source. `Err` says what was left.
pub(crate) async fn arm(
    docker: &Docker,
    sandbox: &mut Sandbox,
    language: &Language,
) -> Result<(), String> {
    let env = BASE_ENV.iter().map(|s| (*s).to_owned()).chain(language.env.iter().cloned());
    let options = CreateExecOptions {
        cmd: Some(vec!["sh".to_owned(), "-c".to_owned(), armed_script(language)]),
        user: Some(format!("{JOB_ID}:{JOB_ID}")),
        env: Some(env.collect()),
        working_dir: Some(WORK_DIR.to_owned()),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..CreateExecOptions::default()
    };
    let exec = docker
        .create_exec(&sandbox.id, options)
        .await
        .map_err(|e| format!("creating the job process: {e}"))?;
    let start = StartExecOptions { detach: false, tty: false, output_capacity: None };
    let StartExecResults::Attached { mut output, input } = docker
        .start_exec(&exec.id, Some(start))
        .await
        .map_err(|e| format!("starting the job process: {e}"))?
    else {
        return Err("the job process started detached".to_owned());
    };
    let mut said = Vec::new();
    let ready = async {
        while said.len() < READY.len() {
            match output.next().await {
                Some(Ok(LogOutput::StdOut { message })) => said.extend_from_slice(&message),
                Some(Ok(other)) => said.extend_from_slice(&other.into_bytes()),
                Some(Err(e)) => return Err(e.to_string()),
                None => break,
            }
        }
        Ok(())
    };
    match tokio::time::timeout(ARM_LIMIT, ready).await {
        Ok(Ok(())) if said == READY => {
            let io = Mutex::new(ArmedIo { output, input });
            sandbox.resident = Resident::Armed(Armed { exec: exec.id, io });
            Ok(())
        }
        Ok(Ok(())) => Err(format!("not clean: {}", String::from_utf8_lossy(&said).trim_end())),
        Ok(Err(e)) => Err(format!("reading the job process: {e}")),
        Err(_) => Err(format!("the job process was not ready within {ARM_LIMIT:?}")),
    }
}
