//! Sandbox containers: created hardened, killed, retired, and proven clean between jobs.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicU64, Ordering},
};

use bollard::{
    Docker,
    models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits},
    query_parameters::{
        CreateContainerOptionsBuilder, KillContainerOptionsBuilder, RemoveContainerOptionsBuilder,
    },
};
use kws_core::DnsLabel;
use kws_docker::already_gone;

use crate::{
    config::JobRunner,
    docker_exec::Armed,
    language::Language,
    limits::SandboxLimits,
    supervised::{Lost, SupervisorLink},
};

/// Label on every container of every exec engine.
pub const EXEC_LABEL: &str = "kws.exec";
/// Label naming the engine that owns a container.
pub const ENGINE_LABEL: &str = "kws.exec.engine";
/// Label naming a container's language.
pub const LANGUAGE_LABEL: &str = "kws.exec.language";
/// Where `scripts/images` puts the supervisor in a language image; the sandbox's process 1 with
/// [`JobRunner::Supervisor`].
pub const SUPERVISOR_PATH: &str = "/usr/libexec/kws-exec-supervisor";

/// Where the source is written and the program runs.
pub(crate) const WORK_DIR: &str = "/workspace";
/// The uid and gid programs run as.
pub(crate) const JOB_ID: u32 = 1000;
/// The uid and gid of the sandbox's long-lived process 1 (the idle `sleep`, or the supervisor
/// once it has set up): not root, and not the job's, so a job can neither signal nor ptrace it.
pub(crate) const RESIDENT_ID: u32 = 65534;
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
    /// What takes the next job.
    pub(crate) resident: Resident,
}

/// What waits in a warm sandbox for its next job.
#[derive(Debug)]
pub(crate) enum Resident {
    /// Nothing (taken by a job, or the sandbox is being retired).
    Nothing,
    /// The next job's process, started ahead by `docker exec` (see [`crate::docker_exec`]).
    Armed(Armed),
    /// The resident supervisor's channel (see [`crate::supervised`]).
    Supervisor(SupervisorLink),
}

/// What to do with a sandbox after a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aftermath {
    /// The program ended by itself: the sandbox may be reused once proven clean.
    ProveClean,
    /// Its supervisor proved it clean, and its cgroup holds only the supervisor: reuse it.
    Reuse,
    /// The sandbox was killed or is in doubt: retire it.
    Retire,
}

/// Makes and disposes of an engine's sandbox containers.
#[derive(Debug)]
pub(crate) struct Sandboxes {
    pub(crate) docker: Docker,
    pub(crate) engine: String,
    pub(crate) runner: JobRunner,
    labels: HashMap<String, String>,
    limits: SandboxLimits,
    /// Docker's `seccomp=` security option with the sandboxes' own profile, when the engine's
    /// architecture has one (see [`crate::seccomp`]); otherwise Docker's default profile.
    seccomp: Option<String>,
    serial: AtomicU64,
}

impl Sandboxes {
    pub(crate) fn new(
        docker: Docker,
        engine: String,
        config: &crate::config::ExecConfig,
        arch: Option<&str>,
    ) -> Self {
        let seccomp = arch
            .and_then(crate::seccomp::native_arch)
            .map(|arch| format!("seccomp={}", crate::seccomp::profile(arch)));
        Self {
            docker,
            engine,
            runner: config.runner,
            labels: config.labels.clone(),
            limits: config.sandbox,
            seccomp,
            serial: AtomicU64::new(0),
        }
    }

    /// The labels that mark this engine's containers.
    pub(crate) fn engine_filter(&self) -> String {
        format!("{ENGINE_LABEL}={}", self.engine)
    }

    /// Creates and starts a hardened container for `language`, with the engine's runner ready
    /// in it: a supervisor that says the sandbox is clean, or an armed job process. `lost` is
    /// called if the supervisor's channel later ends by itself.
    pub(crate) async fn create(&self, language: &Language, lost: Lost) -> Result<Sandbox, String> {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let name = format!("kws-exec-{}-{}-{serial}", self.engine, language.name);
        let body = self.container_body(language);
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| format!("creating {name} from {}: {e}", language.image))?;
        let mut sandbox = Sandbox {
            id: created.id,
            language: language.name.clone(),
            resident: Resident::Nothing,
        };
        let ready = match self.runner {
            JobRunner::Supervisor => {
                match crate::supervised::start(&self.docker, &sandbox.id, language, lost).await {
                    Ok(link) => {
                        sandbox.resident = Resident::Supervisor(link);
                        self.prepare_next(&mut sandbox).await
                    }
                    Err(why) => Err(why),
                }
            }
            JobRunner::DockerExec => match self.start(&sandbox.id).await {
                Ok(()) => crate::docker_exec::arm(&self.docker, &mut sandbox, language).await,
                Err(why) => Err(why),
            },
        };
        match ready {
            Ok(()) => Ok(sandbox),
            Err(why) => {
                self.retire(&mut sandbox).await;
                Err(format!("{name}: {why}"))
            }
        }
    }

    async fn start(&self, id: &str) -> Result<(), String> {
        self.docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(|e| format!("starting: {e}"))
    }

    /// The container: no network, read-only root, size-capped tmpfs, memory, pids and CPU
    /// limits, every capability dropped but what the runner's process 1 needs, no new
    /// privileges, the engine's seccomp profile, and the runner's process 1.
    fn container_body(&self, language: &Language) -> ContainerCreateBody {
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
                format!("rw,nosuid,nodev,exec,size={size},uid={JOB_ID},gid={JOB_ID},mode=0700"),
            ),
            ("/tmp".to_owned(), tmp.clone()),
            ("/var/tmp".to_owned(), tmp),
        ]);
        let supervised = self.runner == JobRunner::Supervisor;
        // Root only until the supervisor has read its setup; then it is RESIDENT_ID with these
        // three capabilities, which it needs to start jobs as JOB_ID and to kill them. (Its
        // jobs raise their oom_score_adj to 1000, so the out-of-memory killer takes them
        // first; lowering the supervisor's own needs more than some engines allow.)
        let (user, cmd, cap_add) = if supervised {
            let caps = ["KILL", "SETUID", "SETGID"].map(String::from).to_vec();
            ("0:0".to_owned(), vec![SUPERVISOR_PATH.to_owned()], Some(caps))
        } else {
            let cmd = vec!["sleep".to_owned(), "2147483647".to_owned()];
            (format!("{RESIDENT_ID}:{RESIDENT_ID}"), cmd, None)
        };
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
            cap_add,
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
        ContainerCreateBody {
            image: Some(language.image.clone()),
            cmd: Some(cmd),
            entrypoint: Some(Vec::new()),
            user: Some(user),
            env: Some(BASE_ENV.iter().map(|s| (*s).to_owned()).collect()),
            working_dir: Some(if supervised { "/" } else { WORK_DIR }.to_owned()),
            hostname: Some("sandbox".to_owned()),
            network_disabled: Some(true),
            open_stdin: Some(supervised),
            stdin_once: Some(false),
            attach_stdin: Some(supervised),
            attach_stdout: Some(supervised),
            attach_stderr: Some(supervised),
            tty: Some(false),
            labels: Some(labels),
            host_config: Some(host_config),
            ..ContainerCreateBody::default()
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

    /// Kills the sandbox, and removes it if the kill failed (removal stops it even so).
    pub(crate) async fn kill_or_retire(&self, sandbox: &mut Sandbox) {
        if let Err(err) = self.kill(sandbox).await {
            tracing::warn!(container = %sandbox.id, "killing an exec sandbox failed: {err}");
            self.retire(sandbox).await;
        }
    }

    /// Kills and removes the container (with its tmpfs). Errors are logged, not returned: a
    /// leftover is found again by the engine's label at shutdown.
    pub(crate) async fn retire(&self, sandbox: &mut Sandbox) {
        // Docker does not finish stopping a container while an attached stream waits.
        sandbox.resident = Resident::Nothing;
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        if let Err(err) = self.docker.remove_container(&sandbox.id, Some(options)).await
            && !already_gone(&err)
        {
            tracing::warn!(container = %sandbox.id, "retiring an exec sandbox failed: {err}");
        }
    }

    /// Proves from outside that only the supervisor is in the sandbox, then lets it prepare
    /// the next job's process (a language with a warm command): in that order, so the check
    /// never sees that process. `Err` when either fails; the sandbox must then be retired.
    pub(crate) async fn prepare_next(&self, sandbox: &mut Sandbox) -> Result<(), String> {
        self.processes_gone(sandbox).await?;
        match &mut sandbox.resident {
            Resident::Supervisor(link) => link.proven_clean().await,
            _ => Err("the sandbox has no supervisor".to_owned()),
        }
    }

    /// Proves no process but process 1 is left: from outside the sandbox, by its cgroup. The
    /// host's cgroup file is read when the engine is local; otherwise Docker lists the
    /// processes (`top`). (A one-shot stats read of the pids count would be cheaper than `top`,
    /// but Docker 20.10 through bollard waits a second.)
    pub(crate) async fn processes_gone(&self, sandbox: &Sandbox) -> Result<(), String> {
        if let Some(count) = kws_docker::process_count(&sandbox.id) {
            return match count {
                1 => Ok(()),
                n => Err(format!("{n} processes in the sandbox's cgroup")),
            };
        }
        let top = self
            .docker
            .top_processes(&sandbox.id, None::<bollard::query_parameters::TopOptions>)
            .await
            .map_err(|e| format!("listing processes: {e}"))?;
        let processes = top.processes.unwrap_or_default();
        if processes.len() != 1 {
            return Err(format!("{} processes in the sandbox: {processes:?}", processes.len()));
        }
        Ok(())
    }
}
