//! Runs a snippet in the exec engine's sandbox and prints its events as they arrive.
//!
//! `cargo run --example exec_submit --features docker [-- LANGUAGE FILE]` (needs Docker at
//! `DOCKER_HOST` and the images of `scripts/images`). Without arguments it runs a python
//! snippet that prints a line every 100 ms.

use std::io::Write;

use futures::StreamExt;
use kws_core::{DnsLabel, OwnerId};
use kws_exec::{ExecConfig, ExecEngine, JobEvent, Limits};

const SNIPPET: &str =
    "import time\nfor i in range(5):\n    print('line', i)\n    time.sleep(0.1)\n";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let language: DnsLabel = args.next().as_deref().unwrap_or("python3").parse()?;
    let source = match args.next() {
        Some(path) => std::fs::read_to_string(path)?,
        None => SNIPPET.to_owned(),
    };
    let config = ExecConfig { pool_size: 1, ..ExecConfig::default() };
    let engine = ExecEngine::start_local(config).await?;
    let user: OwnerId = "example".parse()?;
    let outcome = async {
        let id = engine.submit(&user, &language, &source, "", Limits::default()).await?;
        println!("job {id}");
        let mut events = engine.events(id).ok_or("the job vanished")?;
        let mut last = None;
        let started = std::time::Instant::now();
        while let Some(event) = events.next().await {
            // Output goes out as it arrives (python's -u writes each piece on its own).
            match &event {
                JobEvent::Stdout(bytes) => std::io::stdout().write_all(bytes)?,
                JobEvent::Stderr(bytes) => std::io::stderr().write_all(bytes)?,
                other => println!("[{:>6} ms] {other:?}", started.elapsed().as_millis()),
            }
            std::io::stdout().flush()?;
            last = Some(event);
        }
        Ok::<_, Box<dyn std::error::Error>>(last)
    }
    .await;
    engine.shutdown().await?;
    match outcome? {
        Some(JobEvent::Exited { code: 0, .. }) => Ok(()),
        other => Err(format!("the job did not succeed: {other:?}").into()),
    }
}
