//! A `wardrobe serve` child process on a free loopback port, and a tiny HTTP/1.1 client over
//! plain TCP, so tests can send exactly the bytes they mean (including malformed ones).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running server; killed when dropped.
pub struct Server {
    /// The child process.
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Where its standard error (the access log) goes.
    pub log: PathBuf,
    /// Its standard output, kept open so it can print until it exits.
    pub stdout: BufReader<std::process::ChildStdout>,
}

impl Server {
    /// Starts `wardrobe serve --model MODEL --addr 127.0.0.1:0 EXTRA…` and waits until it listens.
    pub fn start(model: &Path, extra: &[&str], log: PathBuf) -> Server {
        Server::start_with(&[&["--model", model.to_str().unwrap()], extra].concat(), log)
    }

    /// Starts `wardrobe serve --addr 127.0.0.1:0 ARGS…` and waits until it listens.
    pub fn start_with(args: &[&str], log: PathBuf) -> Server {
        let mut child = Command::new(super::bin())
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("server starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = wardrobe::serve::address_in_serving_line(&line)
            .unwrap_or_else(|| panic!("no address in {line:?}: {}", std::fs::read_to_string(&log).unwrap()))
            .to_string();
        Server { child, addr, log, stdout }
    }

    /// Starts a server whose log goes to a file of its own in the temporary directory.
    pub fn start_logged(model: &Path, extra: &[&str]) -> Server {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = std::env::temp_dir().join(format!("wardrobe-serve-{}-{n}.log", std::process::id()));
        Server::start(model, extra, log)
    }

    /// The log once `ready` holds for it (the server writes its log in batches), or as it is
    /// after 5 s.
    pub fn log_when(&self, ready: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if ready(&log) || std::time::Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a request and reads the whole response.
    pub fn request(&self, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Response {
        request(&self.addr, method, path, content_type, body)
    }

    /// GET `path`.
    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, None, b"")
    }

    /// POST a JSON body.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Response {
        self.request("POST", path, Some("application/json"), body.to_string().as_bytes())
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends `signal` (SIGINT is what Ctrl-C sends).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a valid pid and signal number has no memory effects.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header block, as text.
    pub headers: String,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics with the text if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The `error` field of a JSON error body.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_else(|| panic!("no error field: {}", self.text())).to_string()
    }
}

/// How long a test waits on one of its servers before failing.
const PATIENCE: Duration = Duration::from_secs(30);

/// Opens a connection with generous timeouts (a hung server fails the test, never hangs it).
pub fn connect(addr: &str) -> TcpStream {
    connect_within(addr, PATIENCE)
}

/// Opens a connection whose reads and writes fail after `patience`.
pub fn connect_within(addr: &str, patience: Duration) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(patience)).unwrap();
    stream.set_write_timeout(Some(patience)).unwrap();
    stream
}

/// The request head for `body_len` bytes of body.
pub fn head(method: &str, path: &str, content_type: Option<&str>, body_len: usize) -> String {
    let ct = content_type.map(|c| format!("Content-Type: {c}\r\n")).unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{ct}Content-Length: {body_len}\r\n\r\n"
    )
}

/// One request on a fresh connection.
pub fn request(addr: &str, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Response {
    request_within(addr, (method, path, content_type, body), PATIENCE)
}

/// One request on a fresh connection that waits up to `patience` for each read and write.
pub fn request_within(
    addr: &str,
    (method, path, content_type, body): (&str, &str, Option<&str>, &[u8]),
    patience: Duration,
) -> Response {
    let mut stream = connect_within(addr, patience);
    stream.write_all(head(method, path, content_type, body.len()).as_bytes()).unwrap();
    // The server may answer (e.g. 413) and close before reading the whole body.
    let _ = stream.write_all(body);
    read_response(&mut stream)
}

/// Reads one response: up to its Content-Length, the last chunk, or the connection's end.
pub fn read_response(stream: &mut TcpStream) -> Response {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(end) = response_end(&raw) {
            raw.truncate(end);
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading the response failed after {} bytes: {e}", raw.len()),
        }
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("response has a header block");
    let headers = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = headers.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status code");
    let body = raw[split + 4..].to_vec();
    let chunked = headers.to_ascii_lowercase().contains("transfer-encoding: chunked");
    Response { status, body: if chunked { dechunk(&body) } else { body }, headers }
}

/// Where the response in `raw` ends, once it is complete.
fn response_end(raw: &[u8]) -> Option<usize> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let headers = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    if headers.contains("transfer-encoding: chunked") {
        return raw[split..].windows(5).position(|w| w == b"0\r\n\r\n").map(|p| split + p + 5);
    }
    let length = headers.lines().find_map(|l| l.strip_prefix("content-length:")?.trim().parse::<usize>().ok())?;
    (raw.len() >= split + length).then_some(split + length)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 4 + size..];
    }
}

/// A multipart/form-data body with one file field per `(file name, bytes)`; returns the content
/// type and the body.
pub fn multipart(files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "wardrobe-test-boundary-7f3a";
    let mut body = Vec::new();
    for (name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
