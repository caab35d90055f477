//! Frames between the engine and a sandbox's supervisor.
//!
//! A frame is one kind byte, a little-endian `u32` payload length, and the payload. Payload
//! fields are little-endian integers and length-prefixed byte strings, in the order the types
//! below declare them. The engine sends [`Request`]s on the supervisor's standard input; the
//! supervisor answers with [`Report`]s on its standard output:
//!
//! ```text
//! engine                          supervisor
//! Setup ───────────────────────▶  drops to its own uid, wipes and checks the sandbox
//!        ◀─────────────────────── Ready            (or Fault, then it exits)
//! Prepare ─────────────────────▶  (a language with a warm command) starts the next job's
//!                                  process, which waits for its source
//! Run   ───────────────────────▶  starts the job as the job's user (or hands the prepared
//!                                  process its source)
//!        ◀─────────────────────── Stdout / Stderr  (as the job writes them)
//!        ◀─────────────────────── Done             (every process of the job reaped)
//!                                  wipes and checks the sandbox
//!        ◀─────────────────────── Ready            (or Fault, then it exits)
//! Prepare / Run ───────────────▶  ...
//! ```
//!
//! The engine sends `Prepare` only after its own check from outside that nothing but the
//! supervisor is left, so that check never sees the next job's process.
//!
//! Anything else (a frame out of turn, an unknown kind, a payload that does not parse, a frame
//! longer than [`MAX_PAYLOAD`]) is a protocol error: the supervisor reports a `Fault` and exits,
//! the engine retires the sandbox.

use std::fmt;

/// The longest payload either side accepts: a source and a stdin of at most 96 KiB each, or an
/// output chunk, with room to spare.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// How long a frame's header is.
const HEADER: usize = 5;

/// What the engine asks of the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The first frame: how jobs run in this sandbox.
    Setup(Setup),
    /// Run one job; only after `Ready`.
    Run(Run),
    /// Start the next job's process now, from the setup's `warm` command, so that its
    /// interpreter is up when the `Run` comes; only after `Ready`, at most once per job.
    Prepare,
}

/// How the sandbox's jobs run. Strings are what the language configuration says; none comes
/// from a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// The uid and gid every job process runs as.
    pub job_uid: u32,
    /// See `job_uid`.
    pub job_gid: u32,
    /// The uid and gid the supervisor keeps after setup (not the job's, not root).
    pub supervisor_uid: u32,
    /// See `supervisor_uid`.
    pub supervisor_gid: u32,
    /// The directory the job starts in; its source is written there.
    pub work_dir: String,
    /// The source's file name inside `work_dir`.
    pub source_file: String,
    /// The command that builds the program first (stdin empty), if any.
    pub compile: Option<Vec<String>>,
    /// The command that runs the program.
    pub run: Vec<String>,
    /// A command that starts the program's interpreter ahead of the job (on `Prepare`): it
    /// reads the job's source from descriptor 3 until end of file, writes it to `source_file`
    /// and runs it as `run` would. None: every job starts with `run`. Never with `compile`.
    pub warm: Option<Vec<String>>,
    /// The job's whole environment (`NAME=value`); its `PATH` finds the commands.
    pub env: Vec<String>,
    /// Every path a job can write to: wiped, then checked empty, after every job.
    pub writable: Vec<String>,
    /// How long killing and reaping the job's processes may take before the sandbox counts
    /// as dirty.
    pub kill_limit_ms: u64,
    /// How long wiping the writable paths may take before the sandbox counts as dirty.
    pub wipe_limit_ms: u64,
}

/// One job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Wall-clock milliseconds from the start of its process (or, prepared, from the `Run`);
    /// then it is killed.
    pub wall_ms: u64,
    /// Bytes of stdout and stderr together it may write; past them it is killed.
    pub output_bytes: u64,
    /// The program, written to `work_dir/source_file`.
    pub source: Vec<u8>,
    /// What the program reads on its standard input (then end of file).
    pub stdin: Vec<u8>,
}

/// What the supervisor tells the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The sandbox was wiped and is clean (after the setup, and after each job's `Done`): send
    /// a `Run`.
    Ready,
    /// A chunk of the job's standard output, as it was written.
    Stdout(Vec<u8>),
    /// A chunk of the job's standard error, as it was written.
    Stderr(Vec<u8>),
    /// The job is over and every process of it is reaped; `Ready` or `Fault` follows.
    Done(Done),
    /// The supervisor cannot go on (bad request, a sandbox it cannot clean, processes that
    /// would not die: then no `Done` comes); it exits after this.
    Fault(String),
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// How the job ended.
    pub end: End,
    /// Microseconds from the start of the job's process to its end (or its kill).
    pub wall_us: u64,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Its main process exited with this code.
    Exited(i32),
    /// Its main process was killed by this signal; `oom` when the sandbox's memory limit did it.
    Signaled {
        /// The signal's number.
        signal: i32,
        /// Whether the kernel's out-of-memory killer sent it.
        oom: bool,
    },
    /// The wall time passed first.
    TimedOut,
    /// The output cap was passed first (what fit was reported).
    OutputLimit,
    /// It could not be started.
    NotStarted(String),
}

/// A frame that does not follow the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "protocol error: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

fn error(what: impl Into<String>) -> ProtocolError {
    ProtocolError(what.into())
}

mod kind {
    pub(super) const SETUP: u8 = 1;
    pub(super) const RUN: u8 = 2;
    pub(super) const PREPARE: u8 = 3;
    pub(super) const READY: u8 = 10;
    pub(super) const STDOUT: u8 = 11;
    pub(super) const STDERR: u8 = 12;
    pub(super) const DONE: u8 = 13;
    pub(super) const FAULT: u8 = 14;
}

mod end {
    pub(super) const EXITED: u8 = 0;
    pub(super) const SIGNALED: u8 = 1;
    pub(super) const TIMED_OUT: u8 = 2;
    pub(super) const OUTPUT_LIMIT: u8 = 3;
    pub(super) const NOT_STARTED: u8 = 4;
}

/// Builds one frame.
struct FrameWriter(Vec<u8>);

impl FrameWriter {
    fn new(kind: u8) -> Self {
        Self(vec![kind, 0, 0, 0, 0])
    }

    fn u8(mut self, value: u8) -> Self {
        self.0.push(value);
        self
    }

    fn u32(mut self, value: u32) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    fn u64(mut self, value: u64) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    fn i32(mut self, value: i32) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    fn bytes(self, value: &[u8]) -> Self {
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        let mut this = self.u32(len);
        this.0.extend_from_slice(value);
        this
    }

    fn strings(self, values: &[String]) -> Self {
        let len = u32::try_from(values.len()).unwrap_or(u32::MAX);
        values.iter().fold(self.u32(len), |w, s| w.bytes(s.as_bytes()))
    }

    fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.0.len() - HEADER).unwrap_or(u32::MAX);
        self.0[1..HEADER].copy_from_slice(&len.to_le_bytes());
        self.0
    }
}

/// Reads one frame's payload field by field.
struct FieldReader<'a>(&'a [u8]);

impl<'a> FieldReader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.0.len() < n {
            return Err(error(format!("a field needs {n} bytes, {} are left", self.0.len())));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, ProtocolError> {
        let mut raw = [0; 4];
        raw.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(raw))
    }

    fn u64(&mut self) -> Result<u64, ProtocolError> {
        let mut raw = [0; 8];
        raw.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(raw))
    }

    fn i32(&mut self) -> Result<i32, ProtocolError> {
        let mut raw = [0; 4];
        raw.copy_from_slice(self.take(4)?);
        Ok(i32::from_le_bytes(raw))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, ProtocolError> {
        let len = self.u32()? as usize;
        Ok(self.take(len)?.to_vec())
    }

    fn string(&mut self) -> Result<String, ProtocolError> {
        String::from_utf8(self.bytes()?).map_err(|_| error("a string is not UTF-8"))
    }

    fn strings(&mut self) -> Result<Vec<String>, ProtocolError> {
        let count = self.u32()? as usize;
        if count > self.0.len() / 4 {
            return Err(error(format!("{count} strings cannot fit in {} bytes", self.0.len())));
        }
        (0..count).map(|_| self.string()).collect()
    }

    fn end(self) -> Result<(), ProtocolError> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(error(format!("{n} bytes after the last field"))),
        }
    }
}

impl Request {
    /// The request as one frame.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Setup(s) => {
                let compile = s.compile.as_deref().unwrap_or_default();
                let warm = s.warm.as_deref().unwrap_or_default();
                FrameWriter::new(kind::SETUP)
                    .u32(s.job_uid)
                    .u32(s.job_gid)
                    .u32(s.supervisor_uid)
                    .u32(s.supervisor_gid)
                    .bytes(s.work_dir.as_bytes())
                    .bytes(s.source_file.as_bytes())
                    .u8(u8::from(s.compile.is_some()))
                    .strings(compile)
                    .strings(&s.run)
                    .u8(u8::from(s.warm.is_some()))
                    .strings(warm)
                    .strings(&s.env)
                    .strings(&s.writable)
                    .u64(s.kill_limit_ms)
                    .u64(s.wipe_limit_ms)
                    .finish()
            }
            Self::Run(r) => FrameWriter::new(kind::RUN)
                .u64(r.wall_ms)
                .u64(r.output_bytes)
                .bytes(&r.source)
                .bytes(&r.stdin)
                .finish(),
            Self::Prepare => FrameWriter::new(kind::PREPARE).finish(),
        }
    }

    fn decode(kind: u8, payload: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = FieldReader(payload);
        let request = match kind {
            kind::SETUP => {
                let (job_uid, job_gid, supervisor_uid, supervisor_gid) =
                    (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
                let (work_dir, source_file) = (r.string()?, r.string()?);
                let has_compile = r.u8()? != 0;
                let compile = r.strings()?;
                let run = r.strings()?;
                let has_warm = r.u8()? != 0;
                let warm = r.strings()?;
                Self::Setup(Setup {
                    job_uid,
                    job_gid,
                    supervisor_uid,
                    supervisor_gid,
                    work_dir,
                    source_file,
                    compile: has_compile.then_some(compile),
                    run,
                    warm: has_warm.then_some(warm),
                    env: r.strings()?,
                    writable: r.strings()?,
                    kill_limit_ms: r.u64()?,
                    wipe_limit_ms: r.u64()?,
                })
            }
            kind::RUN => Self::Run(Run {
                wall_ms: r.u64()?,
                output_bytes: r.u64()?,
                source: r.bytes()?,
                stdin: r.bytes()?,
            }),
            kind::PREPARE => Self::Prepare,
            other => return Err(error(format!("unknown request kind {other}"))),
        };
        r.end()?;
        Ok(request)
    }
}

impl Report {
    /// The report as one frame.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Ready => FrameWriter::new(kind::READY).finish(),
            Self::Stdout(b) => FrameWriter::new(kind::STDOUT).bytes(b).finish(),
            Self::Stderr(b) => FrameWriter::new(kind::STDERR).bytes(b).finish(),
            Self::Fault(why) => FrameWriter::new(kind::FAULT).bytes(why.as_bytes()).finish(),
            Self::Done(done) => {
                let w = FrameWriter::new(kind::DONE);
                let w = match &done.end {
                    End::Exited(code) => w.u8(end::EXITED).i32(*code),
                    End::Signaled { signal, oom } => {
                        w.u8(end::SIGNALED).i32(*signal).u8(u8::from(*oom))
                    }
                    End::TimedOut => w.u8(end::TIMED_OUT),
                    End::OutputLimit => w.u8(end::OUTPUT_LIMIT),
                    End::NotStarted(why) => w.u8(end::NOT_STARTED).bytes(why.as_bytes()),
                };
                w.u64(done.wall_us).finish()
            }
        }
    }

    fn decode(kind: u8, payload: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = FieldReader(payload);
        let report = match kind {
            kind::READY => Self::Ready,
            kind::STDOUT => Self::Stdout(r.bytes()?),
            kind::STDERR => Self::Stderr(r.bytes()?),
            kind::FAULT => Self::Fault(r.string()?),
            kind::DONE => {
                let end = match r.u8()? {
                    end::EXITED => End::Exited(r.i32()?),
                    end::SIGNALED => End::Signaled { signal: r.i32()?, oom: r.u8()? != 0 },
                    end::TIMED_OUT => End::TimedOut,
                    end::OUTPUT_LIMIT => End::OutputLimit,
                    end::NOT_STARTED => End::NotStarted(r.string()?),
                    other => return Err(error(format!("unknown end {other}"))),
                };
                Self::Done(Done { end, wall_us: r.u64()? })
            }
            other => return Err(error(format!("unknown report kind {other}"))),
        };
        r.end()?;
        Ok(report)
    }
}

/// Bytes received so far, cut into frames as they complete.
#[derive(Debug, Default)]
pub struct FrameBuffer {
    bytes: Vec<u8>,
    start: usize,
}

impl FrameBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.bytes.len() {
            self.bytes.clear();
            self.start = 0;
        }
        self.bytes.extend_from_slice(bytes);
    }

    /// Whether no byte of an unfinished frame is waiting.
    pub fn is_empty(&self) -> bool {
        self.start == self.bytes.len()
    }

    /// The next complete frame, as `(kind, payload)`.
    fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, ProtocolError> {
        let waiting = &self.bytes[self.start..];
        if waiting.len() < HEADER {
            return Ok(None);
        }
        let mut len = [0; 4];
        len.copy_from_slice(&waiting[1..HEADER]);
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_PAYLOAD {
            return Err(error(format!("a frame of {len} bytes is over {MAX_PAYLOAD}")));
        }
        if waiting.len() < HEADER + len {
            return Ok(None);
        }
        let frame = (waiting[0], waiting[HEADER..HEADER + len].to_vec());
        self.start += HEADER + len;
        if self.start == self.bytes.len() {
            self.bytes.clear();
            self.start = 0;
        }
        Ok(Some(frame))
    }

    /// The next complete request.
    pub fn next_request(&mut self) -> Result<Option<Request>, ProtocolError> {
        self.next_frame()?.map(|(kind, payload)| Request::decode(kind, &payload)).transpose()
    }

    /// The next complete report.
    pub fn next_report(&mut self) -> Result<Option<Report>, ProtocolError> {
        self.next_frame()?.map(|(kind, payload)| Report::decode(kind, &payload)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> Setup {
        Setup {
            job_uid: 1000,
            job_gid: 1000,
            supervisor_uid: 65534,
            supervisor_gid: 65534,
            work_dir: "/workspace".into(),
            source_file: "main.py".into(),
            compile: Some(vec!["cc".into(), "-o".into(), "a b".into()]),
            run: vec!["python3".into(), "-I".into()],
            warm: None,
            env: vec!["PATH=/bin".into(), "LANG=C.UTF-8".into()],
            writable: vec!["/tmp".into(), "/workspace".into()],
            kill_limit_ms: 2000,
            wipe_limit_ms: 5000,
        }
    }

    #[test]
    fn every_frame_survives_a_round_trip_split_anywhere() {
        let requests = [
            Request::Setup(setup()),
            Request::Setup(Setup { compile: None, env: Vec::new(), ..setup() }),
            Request::Setup(Setup {
                compile: None,
                warm: Some(vec!["python3".into(), "-c".into(), "load".into()]),
                ..setup()
            }),
            Request::Prepare,
            Request::Run(Run {
                wall_ms: 5000,
                output_bytes: 65536,
                source: b"print('\0\xff')".to_vec(),
                stdin: Vec::new(),
            }),
        ];
        let reports = [
            Report::Ready,
            Report::Stdout(b"hello\n".to_vec()),
            Report::Stderr(Vec::new()),
            Report::Fault("no".into()),
            Report::Done(Done { end: End::Exited(-3), wall_us: 7 }),
            Report::Done(Done { end: End::Signaled { signal: 9, oom: true }, wall_us: u64::MAX }),
            Report::Done(Done { end: End::TimedOut, wall_us: 1 }),
            Report::Done(Done { end: End::OutputLimit, wall_us: 1 }),
            Report::Done(Done { end: End::NotStarted("fork".into()), wall_us: 0 }),
        ];
        let stream: Vec<u8> = requests.iter().flat_map(Request::encode).collect();
        for cut in [1, 2, 5, 7, 100] {
            let mut buffer = FrameBuffer::new();
            let mut got = Vec::new();
            for piece in stream.chunks(cut) {
                buffer.extend(piece);
                while let Some(request) = buffer.next_request().expect("valid") {
                    got.push(request);
                }
            }
            assert_eq!(got, requests, "pieces of {cut}");
            assert!(buffer.is_empty());
        }
        let mut buffer = FrameBuffer::new();
        buffer.extend(&reports.iter().flat_map(Report::encode).collect::<Vec<_>>());
        for report in &reports {
            assert_eq!(buffer.next_report().expect("valid").as_ref(), Some(report));
        }
        assert_eq!(buffer.next_report().expect("valid"), None);
    }

    #[test]
    fn malformed_frames_are_protocol_errors() {
        let mut oversized = FrameBuffer::new();
        oversized.extend(&[kind::RUN, 0xff, 0xff, 0xff, 0x7f]);
        assert!(oversized.next_request().expect_err("too long").0.contains("over"));

        let mut unknown = FrameBuffer::new();
        unknown.extend(&[99, 0, 0, 0, 0]);
        assert!(unknown.next_request().expect_err("unknown").0.contains("unknown"));

        let mut run = Request::Run(Run {
            wall_ms: 1,
            output_bytes: 1,
            source: b"x".to_vec(),
            stdin: Vec::new(),
        })
        .encode();
        run.push(0);
        let len = u32::try_from(run.len() - HEADER).expect("small");
        run[1..HEADER].copy_from_slice(&len.to_le_bytes());
        let mut trailing = FrameBuffer::new();
        trailing.extend(&run);
        assert!(trailing.next_request().expect_err("trailing").0.contains("after"));

        // A string count larger than the payload could hold is refused before any allocation.
        let mut counted = FrameBuffer::new();
        let frame = FrameWriter::new(kind::SETUP).u32(0).u32(0).u32(0).u32(0);
        let frame = frame.bytes(b"/w").bytes(b"m").u8(1).u32(u32::MAX).finish();
        counted.extend(&frame);
        assert!(counted.next_request().expect_err("count").0.contains("cannot fit"));

        // A report is not a request.
        let mut crossed = FrameBuffer::new();
        crossed.extend(&Report::Ready.encode());
        assert!(crossed.next_request().is_err());
    }
}
