//! The code runner: a language, the source and stdin; the tenant's jobs; one job's output,
//! streaming live (with no script, the page reloads until the job ends).

use askama::Template;
use axum::{
    extract::{Path, State},
    response::Response,
};
use futures::{FutureExt as _, StreamExt as _};
use kws_exec::JobEvent;
use serde::Deserialize;

use super::{
    super::{
        error::WebError,
        forms::{Form, Viewer},
        view::{Frame, html},
    },
    render_all,
    rows::JobRow,
    see,
};
use crate::{
    http::{ApiError, AppState},
    platform::{SubmitJob, model::JobSpec, store::PlatformStoreExt as _},
};

#[derive(Template)]
#[template(path = "runner.html")]
struct RunnerPage {
    frame: Frame,
    tenant: String,
    languages: Vec<String>,
    unavailable: Option<String>,
    rows: Vec<String>,
}

/// `GET /t/{tenant}/run`: the form and the tenant's jobs, newest first.
pub(crate) async fn runner(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.reads(&tenant)?;
    let platform = state.platform();
    let (languages, unavailable) = match platform.exec() {
        Ok(exec) => (exec.languages().iter().map(ToString::to_string).collect(), None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let mut jobs = platform.store().list_all::<JobSpec>(&scope, Some(&tenant)).await?;
    jobs.sort_by_key(|j| std::cmp::Reverse(j.meta.created_at));
    let rows: Vec<_> = jobs.iter().map(JobRow::of).collect();
    let page = RunnerPage {
        frame: Frame::tenant(&viewer, &tenant, "/run", "Code runner"),
        tenant: tenant.to_string(),
        languages,
        unavailable,
        rows: render_all(&rows)?,
    };
    html(&page)
}

#[derive(Debug, Deserialize)]
pub(crate) struct Run {
    language: String,
    source: String,
    #[serde(default)]
    stdin: String,
}

/// `POST /t/{tenant}/run`: submits the job (the `exec` right), then to its page.
pub(crate) async fn submit(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Form(form): Form<Run>,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.0.in_tenant(&tenant, kws_accounts::TokenScope::Exec)?;
    // Browsers send textarea line ends as CRLF; programs expect LF.
    let request = SubmitJob {
        language: form.language,
        source: form.source.replace("\r\n", "\n"),
        stdin: form.stdin.replace("\r\n", "\n"),
        wall_time_ms: None,
        output_bytes: None,
    };
    let by = viewer.0.user.to_string();
    let job = state.platform().submit_job(&scope, &tenant, request, Some(&by), None).await?;
    Ok(see(format!("/t/{tenant}/jobs/{}", job.meta.name)))
}

/// A piece of output.
pub(crate) struct Chunk {
    stream: &'static str,
    text: String,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    frame: Frame,
    row: JobRow,
    row_html: String,
    output: Vec<Chunk>,
    seen: usize,
    ended: bool,
    outcome: String,
}

/// How a job ended, as the page says it; `None` for an event that is not an end.
pub(crate) fn outcome(e: &JobEvent) -> Option<String> {
    Some(match e {
        JobEvent::Exited { code, wall_ms } => format!("Exited with code {code} in {wall_ms} ms."),
        JobEvent::TimedOut => "Stopped: it ran past its time limit.".into(),
        JobEvent::OutputLimitExceeded => "Stopped: it wrote more output than allowed.".into(),
        JobEvent::Killed { reason } => format!("Killed: {reason}."),
        JobEvent::Failed { error } => format!("Failed: {error}."),
        _ => return None,
    })
}

/// `GET /t/{tenant}/jobs/{id}`: the job and the output it has written so far.
pub(crate) async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.reads(&tenant)?;
    let platform = state.platform();
    let job = platform.store().get::<JobSpec>(&scope, &tenant, &id).await?;
    let row = JobRow::of(&job);
    let mut output = Vec::new();
    let mut seen = 0;
    let mut ended = job.status.value.as_ref().is_some_and(|s| s.ended_at.is_some());
    let mut said = if ended { format!("Ended: {}.", row.state) } else { "Running…".into() };
    match platform.job_events(&scope, &tenant, &id).await {
        Ok(mut events) => {
            // What the job has written so far, without waiting for more.
            while let Some(Some(e)) = events.next().now_or_never() {
                seen += 1;
                match &e {
                    JobEvent::Stdout(b) => output.push(Chunk { stream: "stdout", text: lossy(b) }),
                    JobEvent::Stderr(b) => output.push(Chunk { stream: "stderr", text: lossy(b) }),
                    other => {
                        if let Some(text) = outcome(other) {
                            said = text;
                            ended = true;
                        }
                    }
                }
            }
        }
        Err(e) if e.kind() == crate::platform::ErrorKind::NotFound => {
            said = format!("{said} Its output is no longer kept.");
            ended = true;
        }
        Err(e) => return Err(WebError(ApiError::from(e))),
    }
    let page = JobPage {
        frame: Frame::tenant(&viewer, &tenant, "/run", &format!("Job {id}")),
        row_html: row.render().map_err(|e| WebError(ApiError::internal(e)))?,
        row,
        output,
        seen,
        ended,
        outcome: said,
    };
    html(&page)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
