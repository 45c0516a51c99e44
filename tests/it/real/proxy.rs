//! A fault-injecting HTTP proxy in front of the real engine, on 127.0.0.1: it passes
//! requests through, or resets connections, answers 429 or 503 itself, or stalls, for all
//! requests or only those whose request line contains a given text (`_bulk`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward to the engine.
    Pass,
    /// Accept, then close at once: the client sees the connection drop.
    Reset,
    /// Answer this status with an Elasticsearch-shaped error body.
    Status(u16),
    /// Read the request and never answer (past any request timeout).
    Stall,
    /// Forward after this pause: keeps concurrent clients in flight together.
    Delay(std::time::Duration),
}

struct Rule {
    fault: Fault,
    /// Only requests whose request line contains this; `None`: every request.
    only: Option<String>,
}

pub struct Proxy {
    pub url: String,
    rule: Arc<Mutex<Rule>>,
    /// Requests that met a fault other than `Pass`.
    faulted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Start a proxy to `upstream` (`http://127.0.0.1:<port>`) on a free local port. It runs
    /// on the caller's runtime and stops with it, or when dropped.
    pub async fn start(upstream: &str) -> Proxy {
        let upstream = upstream
            .trim_end_matches('/')
            .strip_prefix("http://")
            .expect("the test engine speaks plain HTTP")
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let rule = Arc::new(Mutex::new(Rule {
            fault: Fault::Pass,
            only: None,
        }));
        let faulted = Arc::new(AtomicUsize::new(0));
        let (r, f) = (rule.clone(), faulted.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (r, f, upstream) = (r.clone(), f.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _ = serve(client, &upstream, &r, &f).await;
                });
            }
        });
        Proxy {
            url,
            rule,
            faulted,
            task,
        }
    }

    /// Apply `fault` to every request from now on.
    pub fn set(&self, fault: Fault) {
        *self.rule.lock().expect("proxy rule") = Rule { fault, only: None };
    }

    /// Apply `fault` only to requests whose request line contains `text`.
    pub fn set_for(&self, text: &str, fault: Fault) {
        *self.rule.lock().expect("proxy rule") = Rule {
            fault,
            only: Some(text.to_string()),
        };
    }

    pub fn faulted(&self) -> usize {
        self.faulted.load(Ordering::SeqCst)
    }
}

/// One client connection, request by request (keep-alive), each judged on its own.
async fn serve(
    mut client: TcpStream,
    upstream: &str,
    rule: &Mutex<Rule>,
    faulted: &AtomicUsize,
) -> std::io::Result<()> {
    let mut server: Option<TcpStream> = None;
    loop {
        let Some(request) = read_message(&mut client, false).await? else {
            return Ok(());
        };
        let line_end = request.iter().position(|&b| b == b'\r').unwrap_or(0);
        let line = String::from_utf8_lossy(&request[..line_end]).to_string();
        let fault = {
            let rule = rule.lock().expect("proxy rule");
            match &rule.only {
                Some(text) if !line.contains(text.as_str()) => Fault::Pass,
                _ => rule.fault.clone(),
            }
        };
        if fault != Fault::Pass {
            faulted.fetch_add(1, Ordering::SeqCst);
        }
        if let Fault::Delay(pause) = fault {
            tokio::time::sleep(pause).await;
        }
        match fault {
            Fault::Pass | Fault::Delay(_) => {
                if server.is_none() {
                    server = Some(TcpStream::connect(upstream).await?);
                }
                let Some(upstream) = server.as_mut() else {
                    return Ok(());
                };
                upstream.write_all(&request).await?;
                let Some(reply) = read_message(upstream, line.starts_with("HEAD ")).await? else {
                    return Ok(());
                };
                client.write_all(&reply).await?;
            }
            Fault::Reset => return Ok(()),
            Fault::Status(status) => {
                let body = format!(
                    r#"{{"error":{{"root_cause":[],"type":"injected_fault","reason":"status {status} injected by the test proxy"}},"status":{status}}}"#
                );
                let reply = format!(
                    "HTTP/1.1 {status} Injected\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                client.write_all(reply.as_bytes()).await?;
            }
            Fault::Stall => {
                // Hold the connection until the client gives up.
                let mut sink = [0u8; 1024];
                while client.read(&mut sink).await? > 0 {}
                return Ok(());
            }
        }
    }
}

/// One HTTP/1.1 message (headers and a `content-length` or chunked body; none when
/// `bodiless`), or `None` at the end of the stream.
async fn read_message(stream: &mut TcpStream, bodiless: bool) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let header_end = loop {
        if let Some(at) = find(&data, b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..header_end]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    if !bodiless && header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        while find(&data[header_end..], b"0\r\n\r\n").is_none() {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            data.extend_from_slice(&buf[..n]);
        }
        return Ok(Some(data));
    }
    let length: usize = header("content-length:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // A reply to HEAD announces the length of a body it does not carry.
    let length = if bodiless { 0 } else { length };
    while data.len() < header_end + length {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        data.extend_from_slice(&buf[..n]);
    }
    Ok(Some(data))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
