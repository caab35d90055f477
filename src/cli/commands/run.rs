//! `kws run FILE`: submits the program as a job, streams its output as it comes, and exits
//! with its code (124 when it timed out, 137 when it was killed, 1 when the engine failed
//! it or its output passed the limit).

use std::{path::Path, process::ExitCode, time::Duration};

use serde_json::{Value, json};

use super::Context;
use crate::cli::{args::Run, client::CliError, output, sse::Event};

/// How often a broken event stream is reopened (resuming after its last event).
const RECONNECTS: u32 = 3;

/// Runs the program of `args`.
pub(crate) async fn run(ctx: &Context, args: Run) -> Result<ExitCode, CliError> {
    let source = read(&args.file)?;
    let language = match args.language {
        Some(language) => language,
        None => language_of(&args.file).map(str::to_owned).ok_or_else(|| {
            let file = args.file.display();
            CliError::local(format!("cannot tell the language of {file}: pass --language"))
        })?,
    };
    let mut body = json!({"language": language, "source": source});
    if let Some(input) = &args.stdin_file {
        body["stdin"] = json!(read(input)?);
    }
    if let Some(ms) = args.wall_time_ms {
        body["wall_time_ms"] = json!(ms);
    }
    // With an Idempotency-Key: a submit resent after a broken connection runs the job once.
    let job = ctx.client.create(&ctx.path("jobs")?, &body).await?;
    let id = job["name"]
        .as_str()
        .ok_or_else(|| CliError::Transport("the server's answer names no job".into()))?;
    let path = format!("{}/events", ctx.object_path("jobs", id)?);
    let mut last_id: Option<String> = None;
    let mut code: Option<u8> = None;
    let mut broken = 0;
    loop {
        let opened = ctx.client.events(&path, last_id.as_deref()).await;
        let mut events = match opened {
            Ok(events) => Some(events),
            Err(CliError::Transport(_)) if broken < RECONNECTS => None,
            Err(e) => return Err(e),
        };
        while let Some(stream) = events.as_mut() {
            let event = match stream.next().await {
                Ok(Some(event)) => event,
                Ok(None) | Err(CliError::Transport(_)) => break,
                Err(e) => return Err(e),
            };
            if event.id.is_some() {
                last_id.clone_from(&event.id);
            }
            match step(&event) {
                Step::Stdout(text) => output::out(&text)?,
                Step::Stderr(text) => output::err(&text)?,
                Step::Result { code: c, note } => {
                    code = Some(c);
                    if let Some(note) = note {
                        output::err(&format!("kws: {note}\n"))?;
                    }
                }
                Step::End => return finish(code),
                Step::Nothing => {}
            }
        }
        // The stream broke (or closed before `end`).
        if code.is_some() {
            return finish(code);
        }
        broken += 1;
        if broken > RECONNECTS {
            return Err(CliError::Transport(format!("the event stream of job {id} kept breaking")));
        }
        tokio::time::sleep(Duration::from_secs(u64::from(broken))).await;
    }
}

fn finish(code: Option<u8>) -> Result<ExitCode, CliError> {
    code.map(ExitCode::from)
        .ok_or_else(|| CliError::Transport("the job's events ended without its result".into()))
}

fn read(file: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(file)
        .map_err(|e| CliError::local(format!("cannot read {}: {e}", file.display())))
}

/// The language of `file` by its extension: `.py` python3, `.sh` sh, `.js` node.
fn language_of(file: &Path) -> Option<&'static str> {
    match file.extension()?.to_str()? {
        "py" => Some("python3"),
        "sh" => Some("sh"),
        "js" => Some("node"),
        _ => None,
    }
}

/// What one of the job's events asks of us.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Stdout(String),
    Stderr(String),
    /// The job ended: exit with `code`, after saying `note` on stderr.
    Result {
        code: u8,
        note: Option<String>,
    },
    /// The stream's last event.
    End,
    Nothing,
}

fn step(event: &Event) -> Step {
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    let text = || data["text"].as_str().unwrap_or_default().to_owned();
    let reason = || data["reason"].as_str().unwrap_or("no reason given").to_owned();
    let ended = |code, note: String| Step::Result { code, note: Some(note) };
    match event.event.as_str() {
        "stdout" => Step::Stdout(text()),
        "stderr" => Step::Stderr(text()),
        "exited" => {
            let code = data["code"].as_i64().unwrap_or(1);
            Step::Result { code: u8::try_from(code).unwrap_or(1), note: None }
        }
        "timed_out" => ended(124, "the job passed its wall-time limit".into()),
        "killed" => ended(137, format!("the job was killed: {}", reason())),
        "failed" => ended(1, format!("the job failed: {}", reason())),
        "output_limit_exceeded" => ended(1, "the job's output passed its limit".into()),
        "end" => Step::End,
        _ => Step::Nothing, // queued, started, and events of newer servers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(name: &str, data: &str) -> Event {
        Event { event: name.into(), data: data.into(), id: Some("1".into()) }
    }

    #[test]
    fn languages_come_from_extensions() {
        assert_eq!(language_of(Path::new("a/hello.py")), Some("python3"));
        assert_eq!(language_of(Path::new("x.sh")), Some("sh"));
        assert_eq!(language_of(Path::new("x.js")), Some("node"));
        assert_eq!(language_of(Path::new("x.rb")), None);
        assert_eq!(language_of(Path::new("Makefile")), None);
    }

    #[test]
    fn events_map_to_output_and_exit_codes() {
        assert_eq!(step(&ev("stdout", r#"{"text":"hi\n"}"#)), Step::Stdout("hi\n".into()));
        assert_eq!(step(&ev("stderr", r#"{"text":"oops"}"#)), Step::Stderr("oops".into()));
        let code = |e: &Event| match step(e) {
            Step::Result { code, .. } => Some(code),
            _ => None,
        };
        assert_eq!(code(&ev("exited", r#"{"code":3,"wall_ms":5}"#)), Some(3));
        assert_eq!(code(&ev("exited", r#"{"code":-1,"wall_ms":5}"#)), Some(1));
        assert_eq!(code(&ev("timed_out", "{}")), Some(124));
        assert_eq!(code(&ev("killed", r#"{"reason":"memory"}"#)), Some(137));
        assert_eq!(code(&ev("failed", r#"{"reason":"no sandbox"}"#)), Some(1));
        assert_eq!(step(&ev("queued", r#"{"position":0}"#)), Step::Nothing);
        assert_eq!(step(&ev("end", r#"{"reason":"done"}"#)), Step::End);
    }
}
