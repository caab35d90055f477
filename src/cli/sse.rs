//! Server-Sent Events, as the API streams them: a [`Parser`] of the `text/event-stream`
//! format (fields `event`, `data`, `id`, `retry`; a blank line ends an event; lines starting
//! with `:` are comments; lines end with LF, CRLF or CR), and [`SseStream`], the events of a
//! response as they arrive.

use std::{collections::VecDeque, time::Duration};

use reqwest::Response;

use super::error::{CliError, chain};

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its name (`message` when the stream named none).
    pub event: String,
    /// Its data: the `data` lines joined by `\n`.
    pub data: String,
    /// The last event id the stream set, as of this event.
    pub id: Option<String>,
}

/// An incremental parser: feed it bytes as they come, it answers the events they end.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    after_cr: bool,
    first_line: bool,
    event: String,
    data: String,
    last_id: Option<String>,
    retry: Option<Duration>,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self { first_line: true, ..Self::default() }
    }

    /// Parses `bytes` (any split of the stream) and answers the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        for &b in bytes {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue; // the LF of a CRLF
            }
            match b {
                b'\n' => self.end_line(&mut out),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut out);
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    /// The last event id the stream set (what to send as `Last-Event-ID` to resume).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// The reconnection delay the stream asked for, if any.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    fn end_line(&mut self, out: &mut Vec<Event>) {
        // Line ends never split a UTF-8 sequence: CR and LF are never part of one.
        let raw = std::mem::take(&mut self.line);
        let mut line = String::from_utf8_lossy(&raw).into_owned();
        if std::mem::take(&mut self.first_line) {
            if let Some(rest) = line.strip_prefix('\u{feff}') {
                line = rest.to_owned();
            }
        }
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return; // a comment (the server's keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => {
                self.last_id = (!value.is_empty()).then(|| value.to_owned());
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok().map(Duration::from_millis);
            }
            _ => {} // unknown fields are ignored
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        let mut data = std::mem::take(&mut self.data);
        let event = std::mem::take(&mut self.event);
        if data.is_empty() {
            return; // no data: nothing to dispatch
        }
        data.pop(); // the last data line's `\n`
        let event = if event.is_empty() { "message".to_owned() } else { event };
        out.push(Event { event, data, id: self.last_id.clone() });
    }
}

/// The events of a streaming response, as they arrive.
#[derive(Debug)]
pub struct SseStream {
    response: Response,
    parser: Parser,
    ready: VecDeque<Event>,
}

impl SseStream {
    /// The events of `response`.
    pub fn new(response: Response) -> Self {
        Self { response, parser: Parser::new(), ready: VecDeque::new() }
    }

    /// The next event; `None` when the server closed the stream (an event it did not end
    /// with a blank line is dropped, as the format says).
    pub async fn next(&mut self) -> Result<Option<Event>, CliError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            let chunk = self.response.chunk().await.map_err(|e| {
                CliError::Transport(format!("the event stream broke: {}", chain(&e)))
            })?;
            match chunk {
                Some(bytes) => self.ready.extend(self.parser.feed(&bytes)),
                None => return Ok(None),
            }
        }
    }

    /// The last event id the stream set.
    pub fn last_event_id(&self) -> Option<&str> {
        self.parser.last_event_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str, id: Option<&str>) -> Event {
        Event { event: event.into(), data: data.into(), id: id.map(Into::into) }
    }

    #[test]
    fn events_end_at_blank_lines() {
        let mut p = Parser::new();
        let text = "event: log\nid: 1\ndata: {\"line\":\"a\"}\n\nevent: end\ndata: {}\n\n";
        assert_eq!(
            p.feed(text.as_bytes()),
            [ev("log", "{\"line\":\"a\"}", Some("1")), ev("end", "{}", Some("1"))]
        );
        assert_eq!(p.last_event_id(), Some("1"));
    }

    #[test]
    fn any_split_of_the_bytes_parses_the_same() {
        let text = "\u{feff}: keep-alive\r\nevent: stdout\r\nid: 7\r\ndata: h\u{e9}\r\n\r\n\
                    data: one\rdata:two\r\rdata\n\n";
        let whole = Parser::new().feed(text.as_bytes());
        let want = [
            ev("stdout", "h\u{e9}", Some("7")),
            ev("message", "one\ntwo", Some("7")),
            ev("message", "", Some("7")),
        ];
        assert_eq!(whole, want);
        for split in 0..text.len() {
            let mut p = Parser::new();
            let mut got = p.feed(&text.as_bytes()[..split]);
            got.extend(p.feed(&text.as_bytes()[split..]));
            assert_eq!(got, want, "split at {split}");
        }
        let mut p = Parser::new();
        let got: Vec<_> = text.bytes().flat_map(|b| p.feed(&[b])).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn comments_unknown_fields_and_eventless_blocks_dispatch_nothing() {
        let mut p = Parser::new();
        let text = ": comment\n\nevent: lonely\n\nfoo: bar\nretry: 1500\nretry: x\n\n";
        assert!(p.feed(text.as_bytes()).is_empty());
        assert_eq!(p.retry(), Some(Duration::from_millis(1500)));
        // The name of an event without data does not leak into the next one.
        assert_eq!(p.feed(b"data: d\n\n"), [ev("message", "d", None)]);
    }

    #[test]
    fn ids_persist_reset_and_ignore_nul() {
        let mut p = Parser::new();
        let got = p.feed(b"id: 3\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 4\0\ndata: d\n\n");
        assert_eq!(
            got,
            [
                ev("message", "a", Some("3")),
                ev("message", "b", Some("3")),
                ev("message", "c", None),
                ev("message", "d", None)
            ]
        );
    }

    #[test]
    fn an_unterminated_event_waits_for_its_blank_line() {
        let mut p = Parser::new();
        assert!(p.feed(b"event: end\ndata: {}").is_empty());
        assert!(p.feed(b"\n").is_empty());
        assert_eq!(p.feed(b"\n"), [ev("end", "{}", None)]);
        // Only the first space after the colon goes.
        assert_eq!(p.feed(b"data:  two\n\n"), [ev("message", " two", None)]);
    }
}
