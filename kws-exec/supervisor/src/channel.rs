//! The supervisor's channel to the engine: requests on standard input, reports on standard
//! output (the container's attached stdio, which no job process holds).

use kws_exec_supervisor::protocol::{FrameBuffer, Report, Request};

use crate::sys;

/// Reads requests from descriptor 0 and writes reports to descriptor 1.
#[derive(Debug, Default)]
pub(crate) struct Channel {
    received: FrameBuffer,
}

impl Channel {
    /// The next request, waiting for it; `Ok(None)` when the engine closed the channel
    /// between frames.
    pub(crate) fn receive(&mut self) -> Result<Option<Request>, String> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(request) = self.received.next_request().map_err(|e| e.to_string())? {
                return Ok(Some(request));
            }
            match sys::read(0, &mut buf) {
                Ok(0) if self.received.is_empty() => return Ok(None),
                Ok(0) => return Err("the channel closed in the middle of a frame".to_owned()),
                Ok(n) => self.received.extend(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading the channel: {e}")),
            }
        }
    }

    /// Sends one report, waiting until it is written.
    pub(crate) fn send(&mut self, report: &Report) -> Result<(), String> {
        sys::write_all(1, &report.encode()).map_err(|e| format!("writing the channel: {e}"))
    }
}
