//! A Docker client for tests, and the labels that mark what a test run made.

use std::collections::HashMap;

use crate::{run_id, unavailable};

/// The label every test container, network and volume carries (value `1`).
pub const TEST_LABEL: &str = "kws.test";

/// A client for the engine at `DOCKER_HOST` (or the default socket) that answered a ping.
///
/// Returns `None` (after a loud skip message) when no engine answers; panics instead under
/// `KWS_TEST_REQUIRE=1`.
pub async fn docker() -> Option<bollard::Docker> {
    let docker = match bollard::Docker::connect_with_defaults() {
        Ok(d) => d,
        Err(e) => return unavailable("Docker", format!("no client: {e}")),
    };
    match docker.ping().await {
        Ok(_) => Some(docker),
        Err(e) => unavailable("Docker", format!("the engine does not answer: {e}")),
    }
}

/// `kws.test=1` and `kws.test.run=<run id>`, for everything a test makes in Docker.
pub fn test_labels() -> HashMap<String, String> {
    HashMap::from([
        (TEST_LABEL.to_owned(), "1".to_owned()),
        (format!("{TEST_LABEL}.run"), run_id().to_owned()),
    ])
}
