//! Sandbox containers: created hardened, killed, retired, and proven clean between jobs.

use std::{
    collections::HashMap,
    fmt,
    pin::Pin,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bollard::container::LogOutput;
use bollard::{
    Docker,
    exec::{CreateExecOptions, StartExecOptions, StartExecResults},
    models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits},
    query_parameters::{
        CreateContainerOptionsBuilder, KillContainerOptionsBuilder, RemoveContainerOptionsBuilder,
    },
};
use futures::{Stream, StreamExt};
use kws_core::DnsLabel;
use tokio::io::AsyncWrite;

use crate::{language::Language, limits::SandboxLimits, script::armed_script};

/// Label on every container of every exec engine.
pub const EXEC_LABEL: &str = "kws.exec";
/// Label naming the engine that owns a container.
pub const ENGINE_LABEL: &str = "kws.exec.engine";
/// Label naming a container's language.
pub const LANGUAGE_LABEL: &str = "kws.exec.language";

/// Where the source is written and the program runs.
pub(crate) const WORK_DIR: &str = "/workspace";
/// The uid:gid programs run as.
pub(crate) const JOB_USER: &str = "1000:1000";
/// The uid:gid of the idle process 1: not root, and not the job's uid, so a job can neither
/// signal nor ptrace it.
const IDLE_USER: &str = "65534:65534";
/// The environment of a sandbox and of every program: nothing of the engine's own.
pub(crate) const BASE_ENV: [&str; 4] =
    ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8", "TMPDIR=/tmp"];
/// Every path a job can write to; all are tmpfs, wiped between jobs.
pub(crate) const WRITABLE: [&str; 5] = [WORK_DIR, "/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue"];

/// One warm container of a language's pool.
#[derive(Debug)]
pub(crate) struct Sandbox {
    pub(crate) id: String,
    pub(crate) language: DnsLabel,
    /// The job's process, started ahead and waiting for its source (see [`Sandboxes::arm`]).
    pub(crate) armed: Option<Armed>,
}

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

/// Makes and disposes of an engine's sandbox containers.
#[derive(Debug)]
pub(crate) struct Sandboxes {
    pub(crate) docker: Docker,
    pub(crate) engine: String,
    labels: HashMap<String, String>,
    limits: SandboxLimits,
    /// Docker's `seccomp=` security option with the sandboxes' own profile, when the engine's
    /// architecture has one (see [`crate::seccomp`]); otherwise Docker's default profile.
    seccomp: Option<String>,
    serial: AtomicU64,
}

/// True for Docker's answers that mean "that container is already gone or stopped": killing
/// or removing it again is then a no-op, never an error.
fn already_gone(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError { status_code: 404 | 409 | 304, .. }
    )
}

impl Sandboxes {
    pub(crate) fn new(
        docker: Docker,
        engine: String,
        labels: HashMap<String, String>,
        limits: SandboxLimits,
        arch: Option<&str>,
    ) -> Self {
        let seccomp = arch
            .and_then(crate::seccomp::native_arch)
            .map(|arch| format!("seccomp={}", crate::seccomp::profile(arch)));
        Self { docker, engine, labels, limits, seccomp, serial: AtomicU64::new(0) }
    }

    /// The labels that mark this engine's containers.
    pub(crate) fn engine_filter(&self) -> String {
        format!("{ENGINE_LABEL}={}", self.engine)
    }

    /// Creates and starts a hardened, idle container for `language`, and arms it.
    pub(crate) async fn create(&self, language: &Language) -> Result<Sandbox, String> {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let name = format!("kws-exec-{}-{}-{serial}", self.engine, language.name);
        let mut labels = self.labels.clone();
        labels.insert(EXEC_LABEL.to_owned(), "1".to_owned());
        labels.insert(ENGINE_LABEL.to_owned(), self.engine.clone());
        labels.insert(LANGUAGE_LABEL.to_owned(), language.name.to_string());
        let size = self.limits.tmpfs_bytes;
        let tmp = format!("rw,nosuid,nodev,noexec,size={size},mode=1777");
        let tmpfs = HashMap::from([
            // exec: a compiled language runs its binary from here.
            (
                WORK_DIR.to_owned(),
                format!("rw,nosuid,nodev,exec,size={size},uid=1000,gid=1000,mode=0700"),
            ),
            ("/tmp".to_owned(), tmp.clone()),
            ("/var/tmp".to_owned(), tmp),
        ]);
        let host_config = HostConfig {
            network_mode: Some("none".to_owned()),
            readonly_rootfs: Some(true),
            tmpfs: Some(tmpfs),
            shm_size: Some(size),
            memory: Some(self.limits.memory_bytes),
            memory_swap: Some(self.limits.memory_bytes),
            pids_limit: Some(self.limits.pids),
            nano_cpus: Some(self.limits.nano_cpus),
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(
                std::iter::once("no-new-privileges".to_owned())
                    .chain(self.seccomp.clone())
                    .collect(),
            ),
            ipc_mode: Some("private".to_owned()),
            init: Some(false),
            ulimits: Some(vec![ResourcesUlimits {
                name: Some("nofile".to_owned()),
                soft: Some(256),
                hard: Some(256),
            }]),
            log_config: Some(HostConfigLogConfig { typ: Some("none".to_owned()), config: None }),
            ..HostConfig::default()
        };
        let body = ContainerCreateBody {
            image: Some(language.image.clone()),
            cmd: Some(vec!["sleep".to_owned(), "2147483647".to_owned()]),
            entrypoint: Some(Vec::new()),
            user: Some(IDLE_USER.to_owned()),
            env: Some(BASE_ENV.iter().map(|s| (*s).to_owned()).collect()),
            working_dir: Some(WORK_DIR.to_owned()),
            hostname: Some("sandbox".to_owned()),
            network_disabled: Some(true),
            labels: Some(labels),
            host_config: Some(host_config),
            ..ContainerCreateBody::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| format!("creating {name}: {e}"))?;
        let mut sandbox = Sandbox { id: created.id, language: language.name.clone(), armed: None };
        let started = self
            .docker
            .start_container(&sandbox.id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(|e| format!("starting {name}: {e}"));
        let armed = match started {
            Ok(()) => self.arm(&mut sandbox, language).await,
            Err(why) => Err(why),
        };
        match armed {
            Ok(()) => Ok(sandbox),
            Err(why) => {
                self.retire(&mut sandbox).await;
                Err(why)
            }
        }
    }

    /// SIGKILLs every process of the sandbox at once. A sandbox that is already stopped or gone
    /// is fine: the kill targets the container, never a pid that may have been reused.
    pub(crate) async fn kill(&self, sandbox: &Sandbox) -> Result<(), bollard::errors::Error> {
        let options = KillContainerOptionsBuilder::default().signal("KILL").build();
        match self.docker.kill_container(&sandbox.id, Some(options)).await {
            Err(err) if !already_gone(&err) => Err(err),
            _ => Ok(()),
        }
    }

    /// Kills and removes the container (with its tmpfs). Errors are logged, not returned: a
    /// leftover is found again by the engine's label at shutdown.
    pub(crate) async fn retire(&self, sandbox: &mut Sandbox) {
        // Docker does not finish stopping a container while an exec's output waits.
        sandbox.armed = None;
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        if let Err(err) = self.docker.remove_container(&sandbox.id, Some(options)).await
            && !already_gone(&err)
        {
            tracing::warn!(container = %sandbox.id, "retiring an exec sandbox failed: {err}");
        }
    }

    /// Proves no process of the last job is left: from outside the sandbox, by its cgroup, only
    /// process 1 (the idle `sleep`) is there. The host's cgroup file is read when the engine is
    /// local; otherwise Docker lists the processes (`top`). (A one-shot stats read of the pids
    /// count would be cheaper than `top`, but Docker 20.10 through bollard waits a second.)
    pub(crate) async fn processes_gone(&self, sandbox: &Sandbox) -> Result<(), String> {
        if let Some(count) = crate::cgroup::process_count(&sandbox.id) {
            return match count {
                1 => Ok(()),
                n => Err(format!("{n} processes left in the sandbox's cgroup")),
            };
        }
        let top = self
            .docker
            .top_processes(&sandbox.id, None::<bollard::query_parameters::TopOptions>)
            .await
            .map_err(|e| format!("listing processes: {e}"))?;
        let processes = top.processes.unwrap_or_default();
        if processes.len() != 1 {
            return Err(format!("{} processes left: {processes:?}", processes.len()));
        }
        Ok(())
    }

    /// Starts the next job's process ahead of time. Call only on a fresh sandbox or after
    /// `processes_gone`: nothing else runs in it, so nothing can tamper with that process. It
    /// wipes every writable path, checks each is empty and no System V IPC object is left,
    /// prints `kws-ready`, then waits for the source. `Err` says what was left.
    pub(crate) async fn arm(
        &self,
        sandbox: &mut Sandbox,
        language: &Language,
    ) -> Result<(), String> {
        let env = BASE_ENV.iter().map(|s| (*s).to_owned()).chain(language.env.iter().cloned());
        let options = CreateExecOptions {
            cmd: Some(vec!["sh".to_owned(), "-c".to_owned(), armed_script(language)]),
            user: Some(JOB_USER.to_owned()),
            env: Some(env.collect()),
            working_dir: Some(WORK_DIR.to_owned()),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..CreateExecOptions::default()
        };
        let exec = self
            .docker
            .create_exec(&sandbox.id, options)
            .await
            .map_err(|e| format!("creating the job process: {e}"))?;
        let start = StartExecOptions { detach: false, tty: false, output_capacity: None };
        let StartExecResults::Attached { mut output, input } = self
            .docker
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
                sandbox.armed = Some(Armed { exec: exec.id, io });
                Ok(())
            }
            Ok(Ok(())) => Err(format!("not clean: {}", String::from_utf8_lossy(&said).trim_end())),
            Ok(Err(e)) => Err(format!("reading the job process: {e}")),
            Err(_) => Err(format!("the job process was not ready within {ARM_LIMIT:?}")),
        }
    }
}

/// How long wiping and checking a sandbox may take.
const ARM_LIMIT: Duration = Duration::from_secs(5);
