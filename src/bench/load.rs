//! `wardrobe bench serve`: starts `wardrobe serve` as a child process on a free loopback port and
//! loads it from keep-alive connections with single-image OIP v2 infer requests (real test
//! images), measuring throughput, latency percentiles, errors, the server's resident memory over
//! time and the batch sizes the server formed. Before the server starts, the machine's own
//! steadiness is measured (see [`crate::bench::jitter`]) so the latency tail can be read against it.

use crate::bench::jitter::{self, Jitter};
use crate::bench::proc::{percentile, proc_cpu_seconds, proc_status_mib};
use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use serde::Serialize;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::TcpStream;

/// Load-test settings.
#[derive(Debug, Clone)]
pub struct LoadSettings {
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Measured duration.
    pub duration: Duration,
    /// Unmeasured warm-up before it.
    pub warmup: Duration,
    /// Offered load in requests per second over all connections (open loop, latency counted
    /// from each request's scheduled time); `None` sends as fast as answers come back.
    pub rate: Option<f64>,
    /// How long to time the reference work before the test (zero: skip it).
    pub reference: Duration,
    /// Images in each infer request.
    pub images_per_request: usize,
    /// Send the images, and ask for the probabilities, as binary tensor data instead of JSON.
    pub binary: bool,
    /// Send `Authorization: Bearer KEY` with every request.
    pub api_key: Option<String>,
    /// Leave the server's access log on (its lines are read and discarded).
    pub access_log: bool,
}

/// One block of the reference work: about a request's latency under the default load.
const REFERENCE_BLOCK: Duration = Duration::from_millis(5);

/// What the load test measured.
#[derive(Debug, Serialize)]
pub struct LoadReport {
    /// Concurrent connections.
    pub connections: usize,
    /// Offered load, requests per second (absent: as fast as possible).
    pub offered_rate: Option<f64>,
    /// Measured seconds.
    pub seconds: f64,
    /// Requests answered 200 in the measured window.
    pub requests: u64,
    /// Requests that failed (non-200 or connection errors).
    pub errors: u64,
    /// Requests per second.
    pub requests_per_second: f64,
    /// Latency percentiles, ms.
    pub latency_ms_p50: f64,
    /// 90th percentile, ms.
    pub latency_ms_p90: f64,
    /// 99th percentile, ms.
    pub latency_ms_p99: f64,
    /// Slowest request, ms.
    pub latency_ms_max: f64,
    /// CPU time the server used (all its threads) per answered request in the measured window,
    /// µs.
    pub server_cpu_us_per_request: f64,
    /// Server resident memory sampled once a second over the measured window, MiB.
    pub server_rss_mib: Vec<f64>,
    /// Mean images per model batch on the server (from its /metrics, warm-up included).
    pub mean_batch_size: f64,
    /// Mean time a request waited in the server's model queue, ms.
    pub mean_queue_wait_ms: f64,
    /// Mean time the model took per batch, ms.
    pub mean_batch_compute_ms: f64,
    /// Times of a fixed 5 ms of arithmetic on one thread of the idle machine, just before the
    /// test (absent when skipped).
    pub reference_work: Option<Jitter>,
}

/// A served model in a child process; killed when dropped.
struct ServerProcess {
    child: Child,
    addr: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(model: &Path, extra: &[String], access_log: bool) -> Result<ServerProcess> {
    let exe = std::env::current_exe().map_err(|e| Error::System(format!("cannot find the wardrobe binary: {e}")))?;
    let mut child = Command::new(exe)
        .args(["serve", "--addr", "127.0.0.1:0", "--model"])
        .arg(model)
        .args((!access_log).then_some("--quiet"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::System(format!("cannot start the server: {e}")))?;
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    BufReader::new(stdout).read_line(&mut line).map_err(|e| Error::Invalid(format!("server output: {e}")))?;
    let addr = crate::serve::address_in_serving_line(&line).map(String::from);
    match addr {
        Some(addr) => {
            std::thread::spawn(move || match access_log {
                true => std::io::copy(&mut stderr, &mut std::io::sink()),
                false => std::io::copy(&mut stderr, &mut std::io::stderr()),
            });
            Ok(ServerProcess { child, addr })
        }
        None => {
            let mut said = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut said);
            let said = said.trim().trim_start_matches("error: ");
            Err(Error::Invalid(format!("the server did not start: {said}")))
        }
    }
}

/// The model name the server is started under: its `--name`, else the default.
fn served_name(server_args: &[String]) -> &str {
    let mut name = "wardrobe";
    for (i, arg) in server_args.iter().enumerate() {
        if let Some(value) = arg.strip_prefix("--name=") {
            name = value;
        } else if arg == "--name"
            && let Some(value) = server_args.get(i + 1)
        {
            name = value;
        }
    }
    name
}

/// `count` complete HTTP/1.1 keep-alive infer requests of the model served as `name`, each of
/// `settings.images_per_request` consecutive test images (UINT8 `[k,28,28]`), in JSON or as
/// binary tensor data, with the API key if any.
fn requests(images: &Dataset, count: usize, settings: &LoadSettings, name: &str) -> Vec<Vec<u8>> {
    let (k, binary) = (settings.images_per_request.clamp(1, images.len().max(1)), settings.binary);
    let auth = settings.api_key.as_ref().map(|key| format!("Authorization: Bearer {key}\r\n")).unwrap_or_default();
    (0..count)
        .map(|r| {
            let first = (r * k) % (images.len() - k + 1);
            let pixels = &images.images[first * images.pixels()..(first + k) * images.pixels()];
            let shape = [k, images.rows, images.cols];
            let (json, binary_part) = if binary {
                let header = serde_json::json!({
                    "inputs": [{ "name": "images", "shape": shape, "datatype": "UINT8",
                                 "parameters": { "binary_data_size": pixels.len() } }],
                    "parameters": { "binary_data_output": true }
                });
                (header.to_string(), pixels)
            } else {
                let body = serde_json::json!({
                    "inputs": [{ "name": "images", "shape": shape, "datatype": "UINT8", "data": pixels }]
                });
                (body.to_string(), &[][..])
            };
            let length = if binary { format!("Inference-Header-Content-Length: {}\r\n", json.len()) } else { String::new() };
            let extra = format!("{auth}{length}");
            let mut request = format!(
                "POST /v2/models/{name}/infer HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{json}",
                json.len() + binary_part.len()
            )
            .into_bytes();
            request.extend_from_slice(binary_part);
            request
        })
        .collect()
}

/// Runs the load test against a fresh server over `model`, started with `server_args` besides.
pub fn run(model: &Path, server_args: &[String], images: &Dataset, settings: LoadSettings) -> Result<LoadReport> {
    let reference_work = (!settings.reference.is_zero()).then(|| jitter::measure(REFERENCE_BLOCK, settings.reference));
    let server = start_server(model, server_args, settings.access_log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("load-generator")
        .enable_all()
        .build()
        .map_err(|e| Error::System(format!("cannot start the runtime: {e}")))?;
    let requests = std::sync::Arc::new(requests(images, 256, &settings, served_name(server_args)));
    let pid = server.child.id().to_string();
    let (latencies, errors, rss, cpu, measured) = runtime.block_on(async {
        let start = Instant::now();
        let measure_from = start + settings.warmup;
        let end = measure_from + settings.duration;
        let tasks: Vec<_> = (0..settings.connections)
            .map(|c| {
                let pacing = settings.rate.map(|rate| Pacing::new(rate, settings.connections, c, start));
                tokio::spawn(connection(server.addr.clone(), requests.clone(), c, pacing, measure_from, end))
            })
            .collect();
        let mut rss = Vec::new();
        tokio::time::sleep_until(measure_from.into()).await;
        let cpu_before = proc_cpu_seconds(&pid);
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_secs(1)).await;
            rss.push(proc_status_mib(&pid, "VmRSS"));
        }
        let cpu = proc_cpu_seconds(&pid) - cpu_before;
        let (mut latencies, mut errors) = (Vec::new(), 0);
        for task in tasks {
            let (l, e) = task.await.unwrap_or_default();
            latencies.extend(l);
            errors += e;
        }
        (latencies, errors, rss, cpu, (end - measure_from).as_secs_f64())
    });
    let mut report = report(latencies, errors, rss, measured, settings.connections);
    report.server_cpu_us_per_request = cpu * 1e6 / (report.requests.max(1) as f64);
    let means = ServerMeans::scrape(&server.addr);
    report.mean_batch_size = means.mean("wardrobe_batch_size");
    report.mean_queue_wait_ms = means.mean("wardrobe_queue_wait_seconds") * 1e3;
    report.mean_batch_compute_ms = means.mean("wardrobe_batch_compute_seconds") * 1e3;
    report.offered_rate = settings.rate;
    report.reference_work = reference_work;
    Ok(report)
}

/// When one connection of an open-loop test sends its requests.
struct Pacing {
    next: Instant,
    interval: Duration,
}

impl Pacing {
    /// Connection `index` of `connections` sharing `rate` requests per second, staggered.
    fn new(rate: f64, connections: usize, index: usize, start: Instant) -> Pacing {
        let interval = Duration::from_secs_f64(connections as f64 / rate.max(1e-3));
        Pacing { next: start + interval.mul_f64(index as f64 / connections as f64), interval }
    }

    /// Waits for the next scheduled send and returns its time.
    async fn tick(&mut self) -> Instant {
        let scheduled = self.next;
        self.next += self.interval;
        tokio::time::sleep_until(scheduled.into()).await;
        scheduled
    }
}

/// One connection's loop: send, read the response, record; reconnect after an error.
async fn connection(
    addr: String,
    requests: std::sync::Arc<Vec<Vec<u8>>>,
    offset: usize,
    mut pacing: Option<Pacing>,
    measure_from: Instant,
    end: Instant,
) -> (Vec<f64>, u64) {
    let (mut latencies, mut errors) = (Vec::new(), 0u64);
    let mut i = offset;
    while Instant::now() < end {
        let Ok(stream) = TcpStream::connect(&addr).await else {
            errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut stream = AsyncBufReader::new(stream);
        while Instant::now() < end {
            let sent = match pacing.as_mut() {
                Some(p) => p.tick().await,
                None => Instant::now(),
            };
            let ok = exchange(&mut stream, &requests[i % requests.len()]).await;
            i += 1;
            let counted = sent >= measure_from && Instant::now() <= end;
            match ok {
                Ok(true) if counted => latencies.push(sent.elapsed().as_secs_f64() * 1e3),
                Ok(true) => {}
                _ if counted => errors += 1,
                _ => {}
            }
            if !matches!(ok, Ok(true)) {
                break;
            }
        }
    }
    (latencies, errors)
}

/// Sends one request and reads its response; `Ok(true)` for a 200.
async fn exchange(stream: &mut AsyncBufReader<TcpStream>, request: &[u8]) -> std::io::Result<bool> {
    stream.get_mut().write_all(request).await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let ok = line.split_whitespace().nth(1) == Some("200");
    let mut length = 0;
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await?;
    Ok(ok)
}

/// The server's /metrics text, for the means of its histograms.
struct ServerMeans(String);

impl ServerMeans {
    /// Fetches /metrics (empty if the server does not answer).
    fn scrape(addr: &str) -> ServerMeans {
        use std::io::{Read, Write};
        let mut text = String::new();
        if let Ok(mut stream) = std::net::TcpStream::connect(addr) {
            let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
            let _ = stream.read_to_string(&mut text);
        }
        ServerMeans(text)
    }

    /// `sum / count` of the unlabelled histogram `name` (0 when absent or empty).
    fn mean(&self, name: &str) -> f64 {
        let value = |suffix: &str| {
            let prefix = format!("{name}_{suffix} ");
            self.0.lines().find_map(|l| l.strip_prefix(&prefix)?.trim().parse::<f64>().ok()).unwrap_or(0.0)
        };
        let count = value("count");
        if count > 0.0 { value("sum") / count } else { 0.0 }
    }
}

fn report(
    mut latencies: Vec<f64>,
    errors: u64,
    server_rss_mib: Vec<f64>,
    seconds: f64,
    connections: usize,
) -> LoadReport {
    latencies.sort_by(f64::total_cmp);
    LoadReport {
        connections,
        offered_rate: None,
        seconds,
        requests: latencies.len() as u64,
        errors,
        requests_per_second: latencies.len() as f64 / seconds,
        latency_ms_p50: percentile(&latencies, 50),
        latency_ms_p90: percentile(&latencies, 90),
        latency_ms_p99: percentile(&latencies, 99),
        latency_ms_max: latencies.last().copied().unwrap_or(0.0),
        server_cpu_us_per_request: 0.0,
        server_rss_mib,
        mean_batch_size: 0.0,
        mean_queue_wait_ms: 0.0,
        mean_batch_compute_ms: 0.0,
        reference_work: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(images_per_request: usize, binary: bool, api_key: Option<&str>) -> LoadSettings {
        LoadSettings {
            connections: 1,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            rate: None,
            reference: Duration::ZERO,
            images_per_request,
            binary,
            api_key: api_key.map(String::from),
            access_log: false,
        }
    }

    #[test]
    fn requests_go_to_the_name_the_server_is_given() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(served_name(&args(&["--max-batch", "8"])), "wardrobe");
        assert_eq!(served_name(&args(&["--name", "shop", "--quiet"])), "shop");
        assert_eq!(served_name(&args(&["--name=boutique"])), "boutique");
        let images = Dataset::fashion(vec![0; 2 * 784], vec![1, 2], 28, 28).unwrap();
        let request = String::from_utf8(requests(&images, 1, &settings(1, false, None), "shop").remove(0)).unwrap();
        assert!(request.starts_with("POST /v2/models/shop/infer HTTP/1.1\r\n"), "{request}");
        assert!(!request.contains("Authorization"), "{request}");
        let keyed = requests(&images, 1, &settings(1, false, Some("k-1")), "shop").remove(0);
        assert!(String::from_utf8(keyed).unwrap().contains("\r\nAuthorization: Bearer k-1\r\n"));
    }

    #[test]
    fn binary_requests_decode_to_the_same_images_as_json_ones() {
        let pixels: Vec<u8> = (0..3 * 784).map(|i| (i % 251) as u8).collect();
        let images = Dataset::fashion(pixels, vec![1, 2, 3], 28, 28).unwrap();
        let body_of = |binary: bool| {
            let request = requests(&images, 2, &settings(2, binary, None), "m").remove(1);
            let split = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let head = String::from_utf8(request[..split].to_vec()).unwrap();
            let json_len = head
                .lines()
                .find_map(|l| l.strip_prefix("Inference-Header-Content-Length: "))
                .map(|v| v.parse::<usize>().unwrap());
            let shape = crate::data::photo::PhotoShape::FASHION;
            crate::serve::oip::decode(&request[split..], json_len, shape).unwrap().1
        };
        let (json, binary) = (body_of(false), body_of(true));
        assert_eq!((json.count, binary.count), (2, 2));
        assert_eq!(json.pixels, binary.pixels);
        assert_eq!(json.pixels, images.images[..2 * 784]);
    }
}
