//! Docker plumbing that kws-runtime (instances) and kws-exec (code-execution sandboxes) share,
//! so neither depends on the other: connecting to the engine, reading its answers' status codes,
//! counting a container's processes from the host's cgroup file system, and removing every
//! container of a label.

mod cgroup;

pub use cgroup::{process_count, processes};

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use bollard::{
    Docker,
    errors::Error,
    query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder},
};

/// Connects to the engine at `DOCKER_HOST` (or the default socket), checks it answers, and agrees
/// on an API version with it.
pub async fn connect() -> Result<Docker, Error> {
    let docker = Docker::connect_with_defaults()?;
    docker.ping().await?;
    docker.negotiate_version().await
}

/// The engine's HTTP status of an error, if it is one of the engine's answers.
pub fn status(err: &Error) -> Option<u16> {
    match err {
        Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// True for the answers that mean "that container is already gone or stopped" (404, 409 while a
/// removal is in progress, 304): killing or removing it again is then a no-op, never an error.
pub fn already_gone(err: &Error) -> bool {
    matches!(status(err), Some(404 | 409 | 304))
}

/// Why [`remove_labelled`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RemoveError {
    /// The engine refused or failed a request.
    Engine {
        /// What was being done.
        what: String,
        /// The engine's error.
        source: Error,
    },
    /// Containers were still listed when the time was up.
    Timeout {
        /// How long it waited.
        limit: Duration,
    },
}

impl std::fmt::Display for RemoveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Engine { what, source } => write!(f, "docker: {what}: {source}"),
            Self::Timeout { limit } => write!(f, "containers were still there after {limit:?}"),
        }
    }
}

impl std::error::Error for RemoveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Engine { source, .. } => Some(source),
            Self::Timeout { .. } => None,
        }
    }
}

/// Force-removes (with their anonymous volumes) every container carrying `label` (`key=value`),
/// and waits until the engine lists none, at most `limit`. A removal already in progress answers
/// 409 and finishes on its own; this waits for it.
pub async fn remove_labelled(
    docker: &Docker,
    label: &str,
    limit: Duration,
) -> Result<(), RemoveError> {
    let filters = HashMap::from([("label", vec![label.to_owned()])]);
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let deadline = Instant::now() + limit;
    loop {
        let containers = docker
            .list_containers(Some(options.clone()))
            .await
            .map_err(|source| RemoveError::Engine { what: format!("listing {label}"), source })?;
        if containers.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(RemoveError::Timeout { limit });
        }
        for id in containers.into_iter().filter_map(|c| c.id) {
            let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
            match docker.remove_container(&id, Some(options)).await {
                Err(err) if !already_gone(&err) => {
                    let what = format!("removing {id}");
                    return Err(RemoveError::Engine { what, source: err });
                }
                _ => {}
            }
        }
        // Only while the engine finishes removals it already started.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
