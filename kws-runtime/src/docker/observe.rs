//! Stats, logs and exec.

use std::collections::VecDeque;

use bollard::{
    container::LogOutput,
    exec::{StartExecOptions, StartExecResults},
    models::ExecConfig,
    query_parameters::{LogsOptions, StatsOptions},
};
use bytes::Bytes;
use futures::{Stream, StreamExt, stream};

use super::{
    DockerRuntime,
    names::{container_name, engine},
};
use crate::{
    Error, ExecOutput, ExecRequest, InstanceKey, InstanceStats, LogLine, LogOptions, LogSource,
    LogStream, WORKSPACE_PATH,
    spec::{check_command, check_env},
};

impl DockerRuntime {
    async fn running(&self, key: &InstanceKey) -> Result<String, Error> {
        let name = container_name(key);
        let found = self.find_container(key, &name).await?;
        if found.state.and_then(|s| s.running) == Some(true) {
            Ok(name)
        } else {
            Err(Error::NotRunning { owner: key.owner.clone(), instance: key.name.clone() })
        }
    }

    pub(super) async fn instance_stats(&self, key: &InstanceKey) -> Result<InstanceStats, Error> {
        let name = self.running(key).await?;
        // Not one-shot: the engine samples twice, a second apart, so CPU use has an interval.
        let options = StatsOptions { stream: false, one_shot: false };
        let sample = self
            .docker
            .stats(&name, Some(options))
            .next()
            .await
            .ok_or_else(|| Error::Backend {
                backend: "docker",
                source: format!("stats {name}: the engine sent no sample").into(),
            })?
            .map_err(engine)?;
        let cpu = |s: &Option<bollard::models::ContainerCpuStats>| {
            let s = s.clone().unwrap_or_default();
            let total = s.cpu_usage.and_then(|u| u.total_usage).unwrap_or(0);
            (total, s.system_cpu_usage.unwrap_or(0), s.online_cpus.unwrap_or(1))
        };
        let (total, system, cpus) = cpu(&sample.cpu_stats);
        let (pre_total, pre_system, _) = cpu(&sample.precpu_stats);
        let cpu_delta = total.saturating_sub(pre_total) as f64;
        let system_delta = system.saturating_sub(pre_system) as f64;
        let cpu_percent = if system_delta > 0.0 {
            cpu_delta / system_delta * f64::from(cpus) * 100.0
        } else {
            0.0
        };
        let memory = sample.memory_stats.unwrap_or_default();
        // cgroup v1 counts page cache in usage; v2 calls it inactive_file.
        let cache = memory.stats.as_ref().map_or(0, |s| {
            s.get("total_inactive_file").or_else(|| s.get("inactive_file")).copied().unwrap_or(0)
        });
        let (rx_bytes, tx_bytes) =
            sample.networks.iter().flatten().fold((0, 0), |(rx, tx), (_, n)| {
                (rx + n.rx_bytes.unwrap_or(0), tx + n.tx_bytes.unwrap_or(0))
            });
        Ok(InstanceStats {
            cpu_percent,
            memory_bytes: memory.usage.unwrap_or(0).saturating_sub(cache),
            memory_limit_bytes: memory.limit.unwrap_or(0),
            rx_bytes,
            tx_bytes,
            pids: sample.pids_stats.and_then(|p| p.current).unwrap_or(0),
        })
    }

    pub(super) async fn instance_logs(
        &self,
        key: &InstanceKey,
        options: LogOptions,
    ) -> Result<LogStream, Error> {
        let name = container_name(key);
        self.find_container(key, &name).await?;
        self.container_logs(&name, options)
    }

    pub(super) fn container_logs(
        &self,
        name: &str,
        options: LogOptions,
    ) -> Result<LogStream, Error> {
        let options = LogsOptions {
            follow: options.follow,
            stdout: true,
            stderr: true,
            tail: options.tail.map_or_else(|| "all".to_owned(), |n| n.to_string()),
            ..Default::default()
        };
        let chunks = self.docker.logs(name, Some(options));
        Ok(lines(chunks.map(|c| c.map_err(engine))).boxed())
    }

    pub(super) async fn instance_exec(
        &self,
        key: &InstanceKey,
        request: ExecRequest,
    ) -> Result<ExecOutput, Error> {
        check_command("exec command", &request.cmd)?;
        check_env(&request.env)?;
        let name = self.running(key).await?;
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(request.cmd.clone()),
            env: Some(request.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: Some(request.workdir.clone().unwrap_or_else(|| WORKSPACE_PATH.to_owned())),
            ..Default::default()
        };
        let exec = self.docker.create_exec(&name, config).await.map_err(engine)?;
        let options = StartExecOptions { detach: false, tty: false, output_capacity: None };
        let started = self.docker.start_exec(&exec.id, Some(options)).await.map_err(engine)?;
        let mut out =
            ExecOutput { exit_code: -1, stdout: Vec::new(), stderr: Vec::new(), truncated: false };
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(chunk) = output.next().await {
                let (sink, bytes) = match chunk.map_err(engine)? {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        (&mut out.stdout, message)
                    }
                    LogOutput::StdErr { message } => (&mut out.stderr, message),
                    LogOutput::StdIn { .. } => continue,
                };
                let room = request.max_output_bytes.saturating_sub(sink.len());
                out.truncated |= bytes.len() > room;
                sink.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
        }
        let inspected = self.docker.inspect_exec(&exec.id).await.map_err(engine)?;
        out.exit_code = inspected.exit_code.unwrap_or(-1);
        Ok(out)
    }
}

/// Splits the engine's chunks (which may hold part of a line, or many) into lines per stream;
/// a last line without its line end comes out when the stream ends.
fn lines(
    chunks: impl Stream<Item = Result<LogOutput, Error>> + Send + 'static,
) -> impl Stream<Item = Result<LogLine, Error>> + Send + 'static {
    struct State<S> {
        chunks: S,
        partial: [Vec<u8>; 2],
        ready: VecDeque<Result<LogLine, Error>>,
        done: bool,
    }
    let state = State {
        chunks: Box::pin(chunks),
        partial: [Vec::new(), Vec::new()],
        ready: VecDeque::new(),
        done: false,
    };
    stream::unfold(state, |mut st| async move {
        loop {
            if let Some(line) = st.ready.pop_front() {
                return Some((line, st));
            }
            if st.done {
                return None;
            }
            match st.chunks.next().await {
                Some(Ok(chunk)) => {
                    let (source, bytes): (LogSource, Bytes) = match chunk {
                        LogOutput::StdErr { message } => (LogSource::Stderr, message),
                        LogOutput::StdOut { message } | LogOutput::Console { message } => {
                            (LogSource::Stdout, message)
                        }
                        LogOutput::StdIn { .. } => continue,
                    };
                    let buf = &mut st.partial[source as usize];
                    buf.extend_from_slice(&bytes);
                    while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=end).collect();
                        st.ready.push_back(Ok(to_line(source, &line)));
                    }
                }
                Some(Err(e)) => {
                    st.ready.push_back(Err(e));
                    st.done = true;
                }
                None => {
                    for source in [LogSource::Stdout, LogSource::Stderr] {
                        let rest = std::mem::take(&mut st.partial[source as usize]);
                        if !rest.is_empty() {
                            st.ready.push_back(Ok(to_line(source, &rest)));
                        }
                    }
                    st.done = true;
                }
            }
        }
    })
}

fn to_line(source: LogSource, raw: &[u8]) -> LogLine {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    LogLine { source, text: String::from_utf8_lossy(raw).into_owned() }
}
