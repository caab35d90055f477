//! The exec engine against the real Docker engine: running, streaming, late subscribers,
//! retention, rate limits, `Busy`, refused input.
#![cfg(feature = "docker")]

#[path = "exec_support.rs"]
mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use kws_exec::{JobEvent, Limits, RateLimit, SubmitError};
use support::{engine, finish, label, run, user, wall};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_sh_run_with_stdin_and_exit_codes() {
    let Some(engine) = engine(1, |_| {}).await else { return };
    let hello = run(&engine, "python3", "print('hello')", "", Limits::default()).await;
    assert_eq!(hello.stdout(), "hello\n");
    assert!(matches!(hello.outcome(), JobEvent::Exited { code: 0, .. }), "{:?}", hello.events);
    assert_eq!(hello.events[1], JobEvent::Started);

    let echo = "import sys\ndata = sys.stdin.read()\nprint(data.upper(), end='')\nsys.exit(3)";
    let upper = run(&engine, "python3", echo, "a'b\"c $x `y`\n", Limits::default()).await;
    assert_eq!(upper.stdout(), "A'B\"C $X `Y`\n");
    assert!(matches!(upper.outcome(), JobEvent::Exited { code: 3, .. }), "{:?}", upper.events);

    let sh = run(
        &engine,
        "sh",
        "read x; echo \"got $x\" >&2; exit 7",
        "line\n",
        wall(Duration::from_secs(5)),
    )
    .await;
    assert_eq!(sh.stderr(), "got line\n");
    assert!(matches!(sh.outcome(), JobEvent::Exited { code: 7, .. }), "{:?}", sh.events);
    let whoami = run(&engine, "sh", "id -u; pwd", "", Limits::default()).await;
    assert_eq!(whoami.stdout(), "1000\n/workspace\n");
    finish(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_streams_line_by_line_and_late_subscribers_get_everything() {
    let Some(engine) = engine(1, |_| {}).await else { return };
    let source = "import time\nfor i in range(8):\n    print(i)\n    time.sleep(0.1)\n";
    let id = engine
        .submit(&user("streamer"), &label("python3"), source, "", Limits::default())
        .await
        .expect("submitted");
    let mut events = engine.events(id).expect("known");
    let mut arrivals = Vec::new();
    while let Some(event) = events.next().await {
        if let JobEvent::Stdout(bytes) = &event {
            arrivals.push((Instant::now(), String::from_utf8_lossy(bytes).into_owned()));
        }
    }
    let lines: String = arrivals.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(lines, "0\n1\n2\n3\n4\n5\n6\n7\n");
    assert!(arrivals.len() >= 6, "lines arrive one by one, not at the end: {arrivals:?}");
    let spread = arrivals.last().expect("lines").0 - arrivals[0].0;
    assert!(spread >= Duration::from_millis(500), "arrivals spread over the run: {spread:?}");

    // A subscriber joining after the end replays the whole stream; so does `result`.
    let late: Vec<_> = engine.events(id).expect("retained").collect().await;
    let result = engine.result(id).expect("retained");
    assert_eq!(late, result.events);
    assert_eq!(String::from_utf8_lossy(&result.stdout()), lines);
    assert!(matches!(result.outcome(), Some(JobEvent::Exited { code: 0, .. })));
    finish(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_joining_mid_run_gets_the_history_then_live_events() {
    let Some(engine) = engine(1, |_| {}).await else { return };
    let source = "import sys, time\nsys.stdout.write('early\\n')\ntime.sleep(0.6)\n\
                  sys.stdout.write('late\\n')\n";
    let id = engine
        .submit(&user("mid"), &label("python3"), source, "", Limits::default())
        .await
        .expect("submitted");
    let mut first = engine.events(id).expect("known");
    while let Some(event) = first.next().await {
        if event == JobEvent::Stdout(b"early\n".to_vec()) {
            break;
        }
    }
    let joined: Vec<_> = engine.events(id).expect("known").collect().await;
    assert!(matches!(joined[0], JobEvent::Queued { .. }));
    assert_eq!(joined[1], JobEvent::Started);
    assert_eq!(joined[2], JobEvent::Stdout(b"early\n".to_vec()));
    assert_eq!(joined[3], JobEvent::Stdout(b"late\n".to_vec()));
    assert!(matches!(joined[4], JobEvent::Exited { code: 0, .. }));
    finish(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_kept_for_the_retention_period_only() {
    let Some(engine) = engine(1, |c| c.retention = Duration::from_millis(300)).await else {
        return;
    };
    let done = run(&engine, "sh", "echo kept", "", Limits::default()).await;
    assert_eq!(engine.result(done.id).expect("still retained").stdout(), b"kept\n");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(engine.result(done.id).is_none(), "forgotten after retention");
    assert!(engine.events(done.id).is_none());
    finish(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_has_a_token_bucket() {
    let rate = RateLimit { per_second: 2.0, burst: 3 };
    let Some(engine) = engine(1, |c| c.rate = rate).await else { return };
    let (alice, bob, sh) = (user("alice"), user("bob"), label("sh"));
    for _ in 0..3 {
        engine.submit(&alice, &sh, "true", "", Limits::default()).await.expect("within burst");
    }
    let limited = engine.submit(&alice, &sh, "true", "", Limits::default()).await;
    let Err(SubmitError::RateLimited { user, retry_after }) = limited else {
        panic!("expected RateLimited, got {limited:?}");
    };
    assert_eq!(user, alice);
    assert!(retry_after <= Duration::from_millis(500), "{retry_after:?}");
    engine.submit(&bob, &sh, "true", "", Limits::default()).await.expect("bob has his own");
    tokio::time::sleep(retry_after + Duration::from_millis(20)).await;
    engine.submit(&alice, &sh, "true", "", Limits::default()).await.expect("refilled");
    engine.wait_until_full(Duration::from_secs(30)).await.expect("all jobs ran");
    finish(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_busy_and_jobs_run_in_fifo_order() {
    let Some(engine) = engine(1, |c| c.queue_capacity = 3).await else { return };
    let (owner, sh) = (user("carol"), label("sh"));
    // One job holds the only sandbox; three wait; the fifth is refused.
    let blocker = engine.submit(&owner, &sh, "sleep 1; echo first", "", Limits::default()).await;
    let blocker = blocker.expect("runs");
    let mut started = engine.events(blocker).expect("known");
    while started.next().await != Some(JobEvent::Started) {}
    let mut waiting = Vec::new();
    for i in 0..3 {
        let id = engine
            .submit(&owner, &sh, &format!("echo {i}"), "", Limits::default())
            .await
            .expect("queued");
        let queued = engine.result(id).expect("known").events[0].clone();
        assert_eq!(queued, JobEvent::Queued { position: i });
        waiting.push(id);
    }
    let busy = engine.submit(&owner, &sh, "echo no", "", Limits::default()).await;
    let Err(SubmitError::Busy { language, capacity }) = busy else {
        panic!("expected Busy, got {busy:?}");
    };
    assert_eq!((language.as_str(), capacity), ("sh", 3));
    // python3 has its own queue.
    engine.submit(&owner, &label("python3"), "pass", "", Limits::default()).await.expect("ok");
    // Ends in submission order: each job's Started comes after the previous one's end.
    let mut ends = Vec::new();
    for id in waiting {
        let events: Vec<_> = engine.events(id).expect("known").collect().await;
        assert!(matches!(events.last(), Some(JobEvent::Exited { code: 0, .. })), "{events:?}");
        ends.push(String::from_utf8_lossy(&engine.result(id).expect("kept").stdout()).into_owned());
    }
    assert_eq!(ends, ["0\n", "1\n", "2\n"]);
    engine.wait_until_full(Duration::from_secs(30)).await.expect("settles");
    finish(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_submissions_are_refused_by_name_and_nothing_is_queued() {
    let Some(engine) = engine(1, |_| {}).await else { return };
    let (owner, py) = (user("mallory"), label("python3"));
    let big = "x".repeat(64 * 1024 + 1);
    let cases: Vec<(&str, &str, Limits, &str)> = vec![
        ("", "", Limits::default(), "source"),
        (big.as_str(), "", Limits::default(), "source"),
        ("print(1)\0", "", Limits::default(), "NUL"),
        ("print(1)", "a\0b", Limits::default(), "stdin"),
        ("print(1)", big.as_str(), Limits::default(), "stdin"),
        ("print(1)", "", wall(Duration::ZERO), "wall_time"),
        ("print(1)", "", wall(Duration::from_secs(3600)), "wall_time"),
        ("print(1)", "", Limits { output_bytes: 0, ..Limits::default() }, "output_bytes"),
    ];
    for (source, stdin, limits, named) in cases {
        let err = engine.submit(&owner, &py, source, stdin, limits).await.expect_err("refused");
        assert!(err.to_string().contains(named), "{err}");
    }
    let unknown = engine.submit(&owner, &label("cobol"), "x", "", Limits::default()).await;
    assert!(matches!(unknown, Err(SubmitError::UnknownLanguage(l)) if l.as_str() == "cobol"));
    let pools = engine.pools();
    assert!(pools.values().all(|p| p.queued == 0 && p.busy == 0), "{pools:?}");
    finish(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_cap_bounds_jobs_running_at_once() {
    let Some(engine) = engine(2, |c| c.max_concurrent = 1).await else { return };
    let owner = user("dave");
    let mut ids = Vec::new();
    for language in ["sh", "python3", "sh"] {
        let source = match language {
            "sh" => "sleep 0.3",
            _ => "import time\ntime.sleep(0.3)",
        };
        let id = engine.submit(&owner, &label(language), source, "", Limits::default()).await;
        ids.push(id.expect("queued"));
    }
    let mut spans = Vec::new();
    for id in ids {
        let mut events = engine.events(id).expect("known");
        let mut start = None;
        while let Some(event) = events.next().await {
            match event {
                JobEvent::Started => start = Some(Instant::now()),
                JobEvent::Exited { code: 0, .. } => {
                    spans.push((start.expect("started first"), Instant::now()));
                }
                other if other.is_terminal() => panic!("{other:?}"),
                _ => {}
            }
        }
    }
    // One at a time: each job starts after the one before it ended.
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1 - Duration::from_millis(50), "{spans:?}");
    }
    finish(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_running_and_queued_jobs_and_removes_every_container() {
    let Some(engine) = engine(1, |_| {}).await else { return };
    let owner = user("erin");
    let running = engine.submit(&owner, &label("sh"), "sleep 100", "", Limits::default()).await;
    let running = running.expect("runs");
    let queued = engine.submit(&owner, &label("sh"), "echo never", "", Limits::default()).await;
    let queued = queued.expect("waits");
    let mut events = engine.events(running).expect("known");
    while events.next().await != Some(JobEvent::Started) {}
    let (mut running_events, queued_events) =
        (engine.events(running).expect("known"), engine.events(queued).expect("known"));
    finish(engine).await;
    let mut last = None;
    while let Some(event) = running_events.next().await {
        last = Some(event);
    }
    assert!(last.as_ref().is_some_and(JobEvent::is_terminal), "{last:?}");
    let queued_events: Vec<_> = queued_events.collect().await;
    assert!(
        matches!(queued_events.last(), Some(JobEvent::Failed { error }) if error.contains("shut down")),
        "{queued_events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_arrive_byte_for_byte_and_a_closed_output_still_yields_the_exit_code() {
    let Some(engine) = engine(1, |_| {}).await else { return };
    let tricky = "s = '\\\\c \\\\n %s %b \\\\0101 é ✓ $HOME `id`'\nprint(s)\r\n";
    let job = run(&engine, "python3", tricky, "", Limits::default()).await;
    assert_eq!(job.stdout(), "\\c \\n %s %b \\0101 é ✓ $HOME `id`\n", "{:?}", job.events);
    // The program closes its output, then exits by itself: the exit comes from Docker's
    // `exec_die` event, before the deadline.
    let closed = "echo closing; exec >&- 2>&-; sleep 0.5; exit 3";
    let job = run(&engine, "sh", closed, "", Limits::default()).await;
    assert!(matches!(job.outcome(), JobEvent::Exited { code: 3, .. }), "{:?}", job.events);
    assert!(job.took < Duration::from_secs(3), "{:?}", job.took);
    finish(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_whose_image_is_missing_fails_to_start_naming_it() {
    let Some(docker) = kws_testenv::docker().await else { return };
    let mut missing = kws_exec::Language::sh();
    missing.image = "kws-test/missing:1".to_owned();
    let config = kws_exec::ExecConfig {
        languages: kws_exec::Languages::new([missing]).expect("valid"),
        pool_size: 1,
        labels: kws_testenv::test_labels(),
        ..kws_exec::ExecConfig::default()
    };
    let err = kws_exec::ExecEngine::start(docker, config).await.expect_err("no image");
    assert!(err.to_string().contains("kws-test/missing:1"), "{err}");
}
