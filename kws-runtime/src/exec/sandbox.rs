//! Sandbox containers: created hardened, killed, retired, and proven clean between jobs.

use std::{collections::HashMap, sync::atomic::AtomicU64, sync::atomic::Ordering, time::Duration};

use bollard::{
    Docker,
    exec::{CreateExecOptions, StartExecOptions, StartExecResults},
    models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits},
    query_parameters::{
        CreateContainerOptionsBuilder, KillContainerOptionsBuilder, RemoveContainerOptionsBuilder,
    },
};
use futures::StreamExt;
use kws_core::DnsLabel;

use super::{language::Language, limits::SandboxLimits};

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
const WRITABLE: [&str; 5] = [WORK_DIR, "/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue"];

/// One warm container of a language's pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sandbox {
    pub(crate) id: String,
    pub(crate) language: DnsLabel,
}

/// Makes and disposes of an engine's sandbox containers.
#[derive(Debug)]
pub(crate) struct Sandboxes {
    pub(crate) docker: Docker,
    pub(crate) engine: String,
    labels: HashMap<String, String>,
    limits: SandboxLimits,
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
    ) -> Self {
        Self { docker, engine, labels, limits, serial: AtomicU64::new(0) }
    }

    /// The labels that mark this engine's containers.
    pub(crate) fn engine_filter(&self) -> String {
        format!("{ENGINE_LABEL}={}", self.engine)
    }

    /// Creates and starts a hardened, idle container for `language`.
    pub(crate) async fn create(
        &self,
        language: &Language,
    ) -> Result<Sandbox, bollard::errors::Error> {
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
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
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
        let created = self.docker.create_container(Some(options), body).await?;
        let sandbox = Sandbox { id: created.id, language: language.name.clone() };
        if let Err(err) = self
            .docker
            .start_container(&sandbox.id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
        {
            self.retire(&sandbox).await;
            return Err(err);
        }
        Ok(sandbox)
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
    pub(crate) async fn retire(&self, sandbox: &Sandbox) {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        if let Err(err) = self.docker.remove_container(&sandbox.id, Some(options)).await
            && !already_gone(&err)
        {
            tracing::warn!(container = %sandbox.id, "retiring an exec sandbox failed: {err}");
        }
    }

    /// Proves the sandbox holds nothing of the last job: only process 1 (the idle `sleep`) is
    /// left, then a fresh process wipes every writable path and checks each is empty and no
    /// System V IPC object is left. `Err` says what is left; the caller then retires it.
    pub(crate) async fn prove_clean(&self, sandbox: &Sandbox) -> Result<(), String> {
        let top = self
            .docker
            .top_processes(&sandbox.id, None::<bollard::query_parameters::TopOptions>)
            .await
            .map_err(|e| format!("listing processes: {e}"))?;
        let processes = top.processes.unwrap_or_default();
        if processes.len() != 1 {
            return Err(format!("{} processes left: {processes:?}", processes.len()));
        }
        let script = wipe_script();
        let (code, output) = self
            .exec_collect(sandbox, vec!["sh".into(), "-c".into(), script], Duration::from_secs(5))
            .await?;
        if code != Some(0) || output != b"clean\n" {
            return Err(format!(
                "wipe exited {code:?}: {}",
                String::from_utf8_lossy(&output).trim_end()
            ));
        }
        Ok(())
    }

    /// Runs a short command of the engine's own in the sandbox and collects its output.
    async fn exec_collect(
        &self,
        sandbox: &Sandbox,
        cmd: Vec<String>,
        limit: Duration,
    ) -> Result<(Option<i64>, Vec<u8>), String> {
        let options = CreateExecOptions {
            cmd: Some(cmd),
            user: Some(JOB_USER.to_owned()),
            env: Some(BASE_ENV.iter().map(|s| (*s).to_owned()).collect()),
            working_dir: Some("/".to_owned()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..CreateExecOptions::default()
        };
        let exec =
            self.docker.create_exec(&sandbox.id, options).await.map_err(|e| e.to_string())?;
        let start = StartExecOptions { detach: false, tty: false, output_capacity: None };
        let collect = async {
            let StartExecResults::Attached { mut output, .. } =
                self.docker.start_exec(&exec.id, Some(start)).await.map_err(|e| e.to_string())?
            else {
                return Err("the exec started detached".to_owned());
            };
            let mut bytes = Vec::new();
            while let Some(chunk) = output.next().await {
                let chunk = chunk.map_err(|e| e.to_string())?;
                if bytes.len() < 4096 {
                    bytes.extend_from_slice(&chunk.into_bytes());
                }
            }
            let inspect = self.docker.inspect_exec(&exec.id).await.map_err(|e| e.to_string())?;
            Ok::<_, String>((inspect.exit_code, bytes))
        };
        tokio::time::timeout(limit, collect)
            .await
            .map_err(|_| format!("no answer within {limit:?}"))?
    }
}

/// Wipes every writable path, then fails unless each is empty and no System V IPC object is
/// left. Runs as the job's uid, so it can delete all the job made (after making it writable).
fn wipe_script() -> String {
    let dirs = WRITABLE.join(" ");
    format!(
        r#"for d in {dirs}; do
  [ -d "$d" ] || continue
  chmod -R u+rwx "$d"/* "$d"/.[!.]* "$d"/..?* 2>/dev/null
  rm -rf "$d"/* "$d"/.[!.]* "$d"/..?* 2>/dev/null
  [ -z "$(ls -A "$d")" ] || {{ echo "left in $d: $(ls -A "$d" | head -c 200)"; exit 1; }}
done
for f in shm sem msg; do
  [ -r /proc/sysvipc/$f ] || continue
  [ "$(wc -l < /proc/sysvipc/$f)" -le 1 ] || {{ echo "System V $f objects left"; exit 1; }}
done
echo clean"#
    )
}
