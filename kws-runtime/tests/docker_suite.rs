//! The conformance suite on the Docker backend, directly and through `Arc<dyn Runtime>`.

mod docker_env;

use std::sync::Arc;

use docker_env::TestEnv;
use kws_runtime::{Runtime, testkit};

macro_rules! both_ways {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn direct() {
                let Some(env) = TestEnv::new().await else { return };
                testkit::$check(env.rt.as_ref(), &env.fixture()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn as_dyn() {
                let Some(env) = TestEnv::new().await else { return };
                let rt: Arc<dyn Runtime> = env.rt.clone();
                testkit::$check(rt.as_ref(), &env.fixture()).await;
            }
        }
    )*};
}

both_ways!(
    health_is_reported_and_gates_redeploy,
    remove_keeps_or_deletes_the_workspace,
    stop_is_graceful_then_kills,
    lifecycle,
    not_found,
    workspace_survives,
    redeploy_failure_keeps_old,
    logs_follow,
    bad_specs,
    purge_and_networks,
    watch_reports_changes
);
