//! A guest's stdout and stderr, written line by line to the Redis log.

use crate::services::{HostServices, LogLevel};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Lines longer than this are logged in pieces.
const MAX_LINE: usize = 16 * 1024;

#[derive(Clone)]
pub(crate) struct LogStream {
    pub warning: bool,
    pub services: Arc<dyn HostServices>,
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineLogger { warning: self.warning, services: Arc::clone(&self.services), line: Vec::new() })
    }
}

struct LineLogger {
    warning: bool,
    services: Arc<dyn HostServices>,
    line: Vec<u8>,
}

impl LineLogger {
    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches('\r');
        if self.warning {
            self.services.log(LogLevel::Warning, &format!("GEARS (stderr): {text}"));
        } else {
            self.services.log(LogLevel::Notice, &format!("GEARS (stdout): {text}"));
        }
        self.line.clear();
    }
}

impl tokio::io::AsyncWrite for LineLogger {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        for &b in buf {
            if b == b'\n' {
                self.emit();
            } else {
                self.line.push(b);
                if self.line.len() >= MAX_LINE {
                    self.emit();
                }
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.line.is_empty() {
            self.emit();
        }
        Poll::Ready(Ok(()))
    }
}
