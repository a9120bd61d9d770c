//! `--via ndjson`: every message as one JSON line on stdout or in `--output FILE`, for piping into any
//! other broker's command-line producer. A message counts as confirmed once its line is flushed (and,
//! in a file, on disk): what happens after the pipe is the consumer's business.
//!
//! A line is the envelope `{"message_id":…,"correlation_id":…,"routing_key":…,"content_type":…,
//! "body":{…}}`; `jq -c .body` gives the bare request.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde::Serialize;

use super::{Delivery, Message, Transport, CONTENT_TYPE};

enum Sink {
    Stdout,
    File { path: PathBuf, file: File },
}

pub struct NdjsonTransport {
    sink: Mutex<Sink>,
}

#[derive(Serialize)]
struct Line<'a> {
    message_id: &'a str,
    correlation_id: &'a str,
    routing_key: &'a str,
    content_type: &'a str,
    body: &'a serde_json::Value,
}

impl NdjsonTransport {
    /// Stdout, or `path` (appended to: a resumed run adds its lines after the first run's).
    pub fn open(path: Option<PathBuf>) -> anyhow::Result<NdjsonTransport> {
        let sink = match path {
            None => Sink::Stdout,
            Some(path) => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .with_context(|| format!("cannot open --output {} for the messages", path.display()))?;
                Sink::File { path, file }
            }
        };
        Ok(NdjsonTransport { sink: Mutex::new(sink) })
    }

    fn write(&self, batch: &[Message]) -> anyhow::Result<Vec<Delivery>> {
        let mut bytes = Vec::with_capacity(batch.len() * 256);
        for m in batch {
            serde_json::to_writer(
                &mut bytes,
                &Line {
                    message_id: &m.message_id,
                    correlation_id: &m.correlation_id,
                    routing_key: &m.routing_key,
                    content_type: CONTENT_TYPE,
                    body: &m.body,
                },
            )?;
            bytes.push(b'\n');
        }
        let mut sink = self.sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &mut *sink {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)
                    .and_then(|()| out.flush())
                    .context("cannot write the messages to stdout")?;
            }
            Sink::File { path, file } => {
                file.write_all(&bytes)
                    .and_then(|()| file.sync_data())
                    .with_context(|| format!("cannot write the messages to {}", path.display()))?;
            }
        }
        Ok(vec![Delivery::Confirmed; batch.len()])
    }
}

impl Transport for NdjsonTransport {
    fn publish<'a>(&'a self, batch: &'a [Message]) -> BoxFuture<'a, anyhow::Result<Vec<Delivery>>> {
        async move { tokio::task::block_in_place(|| self.write(batch)) }.boxed()
    }

    fn describe(&self) -> String {
        match &*self.sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
            Sink::Stdout => "NDJSON on stdout".into(),
            Sink::File { path, .. } => format!("NDJSON in {}", path.display()),
        }
    }

    fn close(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        async { Ok(()) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::{Request, REQUEST_SCHEMA};
    use serde_json::{json, Value};

    #[tokio::test(flavor = "multi_thread")]
    async fn each_message_is_one_envelope_line_appended_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let request = Request {
            schema: REQUEST_SCHEMA.into(),
            key: json!("A-1"),
            kind: "missing".into(),
            run: "r".into(),
            requested_at: "t".into(),
            paths: vec![],
        };
        let m = Message::request("r-1".into(), "k".into(), &request);
        for _ in 0..2 {
            let t = NdjsonTransport::open(Some(path.clone())).unwrap();
            assert_eq!(
                t.publish(std::slice::from_ref(&m)).await.unwrap(),
                [Delivery::Confirmed]
            );
        }
        let lines: Vec<Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            json!({"message_id": "r-1", "correlation_id": "r", "routing_key": "k",
                   "content_type": "application/json", "body": serde_json::to_value(&request).unwrap()})
        );
    }
}
