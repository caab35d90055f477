//! The route journal: what kws persisted, read back by the backends' `open` (nginx and Caddy)
//! and by nginx itself when it starts (`kws_routes.lua`), in the line format nginx's admin
//! server takes too.
//!
//! A journal is a header line, then batches: the lines of a batch (`+ <host> <upstream> <mode>
//! <scheme>` or `- <host>`) and a `.` line that commits it. Each batch is appended in one write
//! and flushed to disk (`fdatasync`) before nginx is told, so a crash leaves at most one batch
//! without its `.`, which every reader skips and the next `open` cuts off. When the journal holds
//! more than twice as many lines as there are routes (plus a slack), it is rewritten as one batch
//! of the live routes (temporary file, then a rename), so its size stays proportional to the
//! table and every change costs the same amortized.

use std::{
    collections::BTreeMap,
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use kws_core::Hostname;
use tokio::{fs::OpenOptions, io::AsyncWriteExt};

use crate::{ProxyError, Route, RouteKind, files};

/// The first line of every journal.
const HEADER: &str = "# kws routes 1";
/// Lines the journal may hold beyond twice the routes before it is compacted.
const COMPACT_SLACK: usize = 64;

/// One change of the table, as a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// Publish `route`, or replace the route of its host.
    Put(Route),
    /// Unpublish the route of the host.
    Remove(Hostname),
}

impl Op {
    /// The op's line, without its newline.
    pub(crate) fn line(&self) -> String {
        match self {
            Op::Put(route) => {
                let mode = match (route.kind(), route.websocket()) {
                    (RouteKind::Ide, _) => "ide",
                    (RouteKind::App, true) => "app_ws",
                    (RouteKind::App, false) => "app",
                };
                let scheme = if route.tls() { "tls" } else { "plain" };
                format!("+ {} {} {mode} {scheme}", route.host(), route.upstream())
            }
            Op::Remove(host) => format!("- {host}"),
        }
    }

    /// Parses a line written by `line` (or by nginx's admin server, which answers in the same
    /// format).
    pub(crate) fn parse(line: &str) -> Result<Op, String> {
        let fields: Vec<&str> = line.split(' ').collect();
        let host = |raw: &str| Hostname::parse(raw).map_err(|e| format!("bad host: {e}"));
        match fields.as_slice() {
            ["-", raw] => Ok(Op::Remove(host(raw)?)),
            ["+", raw, upstream, mode, scheme] => {
                let host = host(raw)?;
                let upstream: SocketAddr =
                    upstream.parse().map_err(|e| format!("bad upstream {upstream:?}: {e}"))?;
                let route = match *mode {
                    "ide" => Route::ide(host, upstream),
                    "app_ws" => Route::app(host, upstream).with_websocket(true),
                    "app" => Route::app(host, upstream),
                    other => return Err(format!("bad mode {other:?}")),
                };
                match *scheme {
                    "tls" => Ok(Op::Put(route)),
                    "plain" => Ok(Op::Put(route.with_tls(false))),
                    other => Err(format!("bad scheme {other:?}")),
                }
            }
            _ => Err(format!("not a route line: {line:?}")),
        }
    }

    /// Applies the op to `table`.
    pub(crate) fn apply(self, table: &mut BTreeMap<Hostname, Route>) {
        match self {
            Op::Put(route) => {
                table.insert(route.host().clone(), route);
            }
            Op::Remove(host) => {
                table.remove(&host);
            }
        }
    }
}

/// The text of a batch: one line per op, each ended by a newline (no `.` line).
pub(crate) fn batch_text<'a>(ops: impl IntoIterator<Item = &'a Op>) -> String {
    let mut text = String::new();
    for op in ops {
        text.push_str(&op.line());
        text.push('\n');
    }
    text
}

/// The published routes and the journal that persists them. A change is persisted first, then
/// applied by the backend; if that fails, it is cut off the journal again and the table stays as
/// it was.
#[derive(Debug)]
pub(crate) struct PersistedRoutes {
    table: BTreeMap<Hostname, Route>,
    journal: Journal,
}

impl PersistedRoutes {
    /// The routes of the journal at `path` (created if missing).
    pub(crate) async fn open(path: &Path) -> Result<Self, ProxyError> {
        let (journal, table) = Journal::open(path).await?;
        Ok(Self { table, journal })
    }

    /// The published routes.
    pub(crate) fn table(&self) -> &BTreeMap<Hostname, Route> {
        &self.table
    }

    /// Appends `ops` to the journal as one batch, then runs `change` (which applies them in
    /// the proxy); if `change` fails, cuts the batch off the journal and returns its error.
    pub(crate) async fn commit(
        &mut self,
        ops: Vec<Op>,
        change: impl Future<Output = Result<(), ProxyError>>,
    ) -> Result<(), ProxyError> {
        let mark = self.journal.append(&ops).await?;
        if let Err(e) = change.await {
            if let Err(cut) = self.journal.rollback(mark).await {
                tracing::error!(error = %cut, "cannot cut a refused change off the route journal");
            }
            return Err(e);
        }
        for op in ops {
            op.apply(&mut self.table);
        }
        if let Err(e) = self.journal.compact_if_due(&self.table).await {
            tracing::warn!(error = %e, "route journal compaction failed; retried at the next change");
        }
        Ok(())
    }
}

/// The journal file, open for appending.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: tokio::fs::File,
    /// Its length: where the next batch starts.
    len: u64,
    /// Its op lines, for the compaction rule.
    lines: usize,
}

/// Where a journal stood before an append, to cut the batch off again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    len: u64,
    lines: usize,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and returns the routes of its committed
    /// batches; cuts off a batch a crash left without its `.`.
    pub(crate) async fn open(path: &Path) -> Result<(Self, BTreeMap<Hostname, Route>), ProxyError> {
        let text = match tokio::fs::read(path).await {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ProxyError::io("read", path)(e)),
        };
        let Some(bytes) = text.filter(|bytes| !bytes.is_empty()) else {
            files::write_atomic(path, &format!("{HEADER}\n"), false).await?;
            files::sync_parent(path).await?;
            let file = append_handle(path).await?;
            let len = HEADER.len() as u64 + 1;
            return Ok((Self { path: path.to_path_buf(), file, len, lines: 0 }, BTreeMap::new()));
        };
        let corrupt = |why: String| ProxyError::CorruptRouteFile { path: path.to_path_buf(), why };
        let text = std::str::from_utf8(&bytes).map_err(|e| corrupt(format!("not UTF-8: {e}")))?;
        let (table, committed, lines) = read(text).map_err(corrupt)?;
        let file = append_handle(path).await?;
        if committed < bytes.len() {
            tracing::warn!(path = %path.display(), "cutting off a route batch left without its commit line");
            file.set_len(committed as u64).await.map_err(ProxyError::io("truncate", path))?;
            file.sync_data().await.map_err(ProxyError::io("sync", path))?;
        }
        Ok((Self { path: path.to_path_buf(), file, len: committed as u64, lines }, table))
    }

    /// Appends `ops` as one committed batch and flushes it to disk; returns the mark to cut it
    /// off with `rollback`. On failure the journal is as it was.
    pub(crate) async fn append(&mut self, ops: &[Op]) -> Result<Mark, ProxyError> {
        let mark = Mark { len: self.len, lines: self.lines };
        let mut text = batch_text(ops);
        text.push_str(".\n");
        let written = async {
            self.file.write_all(text.as_bytes()).await?;
            self.file.sync_data().await
        }
        .await;
        if let Err(e) = written {
            self.rollback(mark).await?;
            return Err(ProxyError::io("append to", &self.path)(e));
        }
        self.len += text.len() as u64;
        self.lines += ops.len();
        Ok(mark)
    }

    /// Cuts the journal back to `mark`.
    pub(crate) async fn rollback(&mut self, mark: Mark) -> Result<(), ProxyError> {
        self.file.set_len(mark.len).await.map_err(ProxyError::io("truncate", &self.path))?;
        self.file.sync_data().await.map_err(ProxyError::io("sync", &self.path))?;
        self.len = mark.len;
        self.lines = mark.lines;
        Ok(())
    }

    /// Rewrites the journal as one batch of `table` if it holds more than twice as many lines
    /// as `table` has routes, plus a slack.
    pub(crate) async fn compact_if_due(
        &mut self,
        table: &BTreeMap<Hostname, Route>,
    ) -> Result<(), ProxyError> {
        if self.lines <= 2 * table.len() + COMPACT_SLACK {
            return Ok(());
        }
        let ops: Vec<Op> = table.values().cloned().map(Op::Put).collect();
        let mut text = format!("{HEADER}\n{}", batch_text(&ops));
        if !ops.is_empty() {
            text.push_str(".\n");
        }
        let tmp = files::tmp_path(&self.path);
        files::remove(&tmp).await?;
        // The append handle is opened on the new file before the rename, so appends after the
        // compaction can only go to the file that now holds the name.
        let handle = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            file.write_all(text.as_bytes()).await?;
            file.sync_all().await?;
            OpenOptions::new().append(true).open(&tmp).await
        }
        .await;
        let handle = match handle {
            Ok(handle) => handle,
            Err(e) => {
                let _ = files::remove(&tmp).await;
                return Err(ProxyError::io("write", &tmp)(e));
            }
        };
        files::rename(&tmp, &self.path).await?;
        self.file = handle;
        files::sync_parent(&self.path).await?;
        self.len = text.len() as u64;
        self.lines = ops.len();
        Ok(())
    }
}

async fn append_handle(path: &Path) -> Result<tokio::fs::File, ProxyError> {
    OpenOptions::new().append(true).open(path).await.map_err(ProxyError::io("open", path))
}

/// The routes of the committed batches of `text`, the length of the committed part, and the
/// number of op lines in it. A bad line is an error only once a `.` commits it: before, it is
/// the torn tail of a crash.
fn read(text: &str) -> Result<(BTreeMap<Hostname, Route>, usize, usize), String> {
    let mut table = BTreeMap::new();
    let mut pending: Vec<(usize, Result<Op, String>)> = Vec::new();
    let (mut committed, mut lines, mut offset) = (0, 0, 0);
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        offset += raw.len();
        let Some(line) = raw.strip_suffix('\n') else { break };
        if index == 0 {
            if line != HEADER {
                return Err(format!("its first line is not {HEADER:?}"));
            }
            committed = offset;
        } else if line == "." {
            for (number, op) in pending.drain(..) {
                op.map_err(|why| format!("line {number}: {why}"))?.apply(&mut table);
                lines += 1;
            }
            committed = offset;
        } else if !line.starts_with('#') {
            pending.push((index + 1, Op::parse(line)));
        }
    }
    if committed == 0 {
        return Err(format!("its first line is not {HEADER:?}"));
    }
    Ok((table, committed, lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(raw: &str) -> Hostname {
        Hostname::parse(raw).expect("host")
    }

    #[test]
    fn every_kind_of_route_round_trips_through_its_line() {
        let up = "10.0.0.5:8080".parse().expect("addr");
        let v6 = "[fd00::5]:443".parse().expect("addr");
        for route in [
            Route::app(host("a.example.test"), up),
            Route::app(host("b.example.test"), v6).with_websocket(true),
            Route::app(host("c.example.test"), up).with_tls(false),
            Route::ide(host("d.example.test"), up),
            Route::ide(host("e.example.test"), v6).with_tls(false),
        ] {
            let line = Op::Put(route.clone()).line();
            assert_eq!(Op::parse(&line), Ok(Op::Put(route)), "{line}");
        }
        let remove = Op::Remove(host("a.example.test"));
        assert_eq!(Op::parse(&remove.line()), Ok(remove));
        assert_eq!(
            Op::Put(Route::ide(host("i.example.test"), up)).line(),
            "+ i.example.test 10.0.0.5:8080 ide tls"
        );
        for bad in [
            "",
            "+",
            "- a;b.example.test",
            "+ a.example.test x app tls",
            "+ a.example.test 10.0.0.1:1 web tls",
            "+ a.example.test 10.0.0.1:1 app ssl",
            "- a.example.test extra",
        ] {
            assert!(Op::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_committed_batches_count_and_a_torn_tail_is_cut() {
        let text = "# kws routes 1\n+ a.example.test 10.0.0.1:80 app tls\n.\n+ b.example.test 10.0.0.2:80 app tls\n- a.example.test\n.\n+ c.example.test 10.0.0.3:80 app tls\n+ d.exa";
        let (table, committed, lines) = read(text).expect("read");
        assert_eq!(table.keys().map(|h| h.to_string()).collect::<Vec<_>>(), ["b.example.test"]);
        assert_eq!(
            &text[..committed],
            "# kws routes 1\n+ a.example.test 10.0.0.1:80 app tls\n.\n+ b.example.test 10.0.0.2:80 app tls\n- a.example.test\n.\n"
        );
        assert_eq!(lines, 3);
        // A bad line in the uncommitted tail is the crash's torn write; once committed, an error.
        assert!(read("# kws routes 1\n+ junk\n").is_ok());
        let err = read("# kws routes 1\n+ junk\n.\n").expect_err("committed junk");
        assert!(err.contains("line 2"), "{err}");
        assert!(read("# something else\n").is_err());
        assert!(read("# kws rou").is_err());
    }
}
