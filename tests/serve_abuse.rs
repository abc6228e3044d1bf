//! `wardrobe serve` under abuse: slow clients, huge headers, a thousand connections at once,
//! malformed uploads. The server answers 4xx/503 or closes the connection, keeps its memory
//! bounded, and keeps serving good requests meanwhile.

mod common;

use common::http::{Server, connect, multipart};
use common::{load, shared_trained_model};
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use wardrobe::data::dataset::Split;

fn start(extra: &[&str]) -> Server {
    Server::start_logged(shared_trained_model("abuse-model"), &[&["--quiet"], extra].concat())
}

/// One good single-image infer request; panics unless it is answered 200.
fn good_request(server: &Server) {
    let body = json!({ "inputs": [{ "name": "images", "shape": [1, 784], "datatype": "UINT8", "data": load(Split::Test).image(0) }] });
    let r = server.post_json("/v2/models/wardrobe/infer", &body);
    assert_eq!(r.status, 200, "{}", r.text());
}

fn rss_mib(server: &Server) -> f64 {
    wardrobe::bench::proc::proc_status_mib(&server.child.id().to_string(), "VmRSS")
}

/// What the server answers on `stream` before closing it; panics if it neither answers nor
/// closes within `within` (a server that hangs until some timeout is a failure, not an answer).
fn answer_or_close(stream: &mut TcpStream, within: Duration) -> String {
    stream.set_read_timeout(Some(within)).unwrap();
    let started = Instant::now();
    let mut bytes = Vec::new();
    if let Err(e) = stream.read_to_end(&mut bytes) {
        let closed = matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe);
        assert!(closed, "neither an answer nor a close within {within:?}: {e}");
    }
    assert!(started.elapsed() < within, "the server took {:?} to answer", started.elapsed());
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Raises this process's open-file limit (which the server it starts inherits) to hold `files`,
/// up to the hard limit; panics naming the limit when even that is too low.
fn allow_open_files(files: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write only the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        assert!(
            limit.rlim_max >= files,
            "the hard open-file limit {} is below the {files} this test needs",
            limit.rlim_max
        );
        limit.rlim_cur = limit.rlim_cur.max(files);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// Whether the server has closed `stream` (end of file or reset), waiting up to `within`.
fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a 408 answer before closing
            Err(e) => return !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        }
    }
}

#[test]
fn slow_and_idle_clients_are_cut_off_while_others_are_served() {
    let server = start(&["--timeout-secs", "1"]);
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = connect(&server.addr);
            s.write_all(b"POST /v2/models/wardrobe/infer HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
            s
        })
        .collect();
    let mut idle: Vec<TcpStream> = (0..50).map(|_| connect(&server.addr)).collect();
    let started = Instant::now();
    for _ in 0..5 {
        for s in &mut slow {
            let _ = s.write_all(b"a");
        }
        good_request(&server);
        std::thread::sleep(Duration::from_millis(300));
    }
    for s in slow.iter_mut().chain(idle.iter_mut()) {
        assert!(closed_by_server(s, Duration::from_secs(5)), "a slow or idle connection was kept open");
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    good_request(&server);
}

#[test]
fn huge_headers_and_malformed_uploads_get_4xx() {
    let server = start(&[]);
    let mut s = connect(&server.addr);
    let huge = format!("GET /v2 HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n", "a".repeat(1 << 20));
    // The server may close before the whole head is written: the write may then fail.
    let _ = s.write_all(huge.as_bytes());
    let answer = answer_or_close(&mut s, Duration::from_secs(5));
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{}", &answer[..answer.len().min(200)]);
    let many: String = (0..2000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let mut s = connect(&server.addr);
    let _ = s.write_all(format!("GET /v2 HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes());
    let answer = answer_or_close(&mut s, Duration::from_secs(5));
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{}", &answer[..answer.len().min(200)]);

    let (ct, _) = multipart(&[]);
    for body in [&b"--wardrobe-test-boundary-7f3a\r\n\r\n\r\n"[..], b"\x00\xff garbage", b"--wrong-boundary\r\n"] {
        let r = server.request("POST", "/v1/label", Some(&ct), body);
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.error().starts_with("malformed upload") || r.error().starts_with("no photos"), "{}", r.error());
    }
    let (ct, body) = multipart(&[("a.png", &[0x89, b'P', b'N', b'G', 0, 0, 0, 13])]);
    let r = server.request("POST", "/v1/label", Some(&ct), &body);
    assert_eq!(r.status, 422, "{}", r.text());
    good_request(&server);
}

#[test]
fn a_thousand_connections_at_once_get_answers_and_memory_stays_bounded() {
    // A thousand sockets here and a thousand in the server, with room for everything else.
    allow_open_files(2_500);
    let server = start(&["--max-concurrent", "256"]);
    good_request(&server);
    let rss_before = rss_mib(&server);
    let body = json!({ "inputs": [{ "name": "images", "shape": [1, 784], "datatype": "UINT8", "data": load(Split::Test).image(1) }] }).to_string();
    let request = format!(
        "POST /v2/models/wardrobe/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut streams: Vec<TcpStream> = (0..1000).map(|_| connect(&server.addr)).collect();
    for s in &mut streams {
        s.write_all(request.as_bytes()).unwrap();
    }
    let (mut ok, mut busy) = (0, 0);
    for s in &mut streams {
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        match answer.split_whitespace().nth(1) {
            Some("200") => ok += 1,
            Some("503") => busy += 1,
            other => panic!("unexpected answer {other:?}: {}", &answer[..answer.len().min(200)]),
        }
    }
    assert_eq!(ok + busy, 1000);
    assert!(ok >= 256, "only {ok} of 1000 served");
    let rss_after = rss_mib(&server);
    assert!(rss_after < rss_before + 200.0, "RSS grew from {rss_before:.0} to {rss_after:.0} MiB");
    good_request(&server);
}

/// A binary-data infer request with the given JSON header length header and body.
fn binary_request(server: &Server, header_len: &str, body: &[u8]) -> common::http::Response {
    let mut stream = connect(&server.addr);
    let head = format!(
        "POST /v2/models/wardrobe/infer HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Inference-Header-Content-Length: {header_len}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    common::http::read_response(&mut stream)
}

#[test]
fn malformed_binary_tensor_data_gets_a_400_naming_the_field_and_big_bodies_a_413() {
    let server = start(&["--max-body-bytes", "100000"]);
    let header = |size: usize| {
        json!({ "inputs": [{ "name": "images", "shape": [1, 28, 28], "datatype": "UINT8",
                             "parameters": { "binary_data_size": size } }] })
        .to_string()
    };
    let with_pixels = |json: &str, pixels: usize| [json.as_bytes(), &vec![7u8; pixels]].concat();
    let ok_header = header(784);
    let r = binary_request(&server, &ok_header.len().to_string(), &with_pixels(&ok_header, 784));
    assert_eq!(r.status, 200, "{}", r.text());
    let cases = [
        (binary_request(&server, "9999", &with_pixels(&ok_header, 784)), 400, "but the body has only"),
        (
            binary_request(&server, "ten", &with_pixels(&ok_header, 784)),
            400,
            "Inference-Header-Content-Length must be a byte count",
        ),
        (
            binary_request(&server, &ok_header.len().to_string(), &with_pixels(&ok_header, 700)),
            400,
            "the body has 700 bytes of binary data",
        ),
        (
            binary_request(&server, &header(5).len().to_string(), &with_pixels(&header(5), 5)),
            400,
            "binary_data_size is 5, its shape needs 784 bytes",
        ),
    ];
    for (r, status, needle) in cases {
        assert_eq!(r.status, status, "{}", r.text());
        assert!(r.error().contains(needle), "'{}' lacks '{needle}'", r.error());
    }
    let huge = header(200 * 784);
    let r = binary_request(&server, &huge.len().to_string(), &with_pixels(&huge, 200 * 784));
    assert_eq!(r.status, 413, "{}", r.text());
    good_request(&server);
}

/// A PNG of `side × side` grey pixels, all zero, compressed as well as deflate can: a few tens of
/// kilobytes that decode to `side²` bytes.
fn png_bomb(side: u32) -> Vec<u8> {
    let mut png = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new_with_quality(
        &mut png,
        image::codecs::png::CompressionType::Best,
        image::codecs::png::FilterType::NoFilter,
    );
    image::ImageEncoder::write_image(
        encoder,
        &vec![0u8; (side * side) as usize],
        side,
        side,
        image::ExtendedColorType::L8,
    )
    .unwrap();
    png
}

/// A PNG of noise (incompressible), `side × side` RGB.
fn noise_png(side: u32) -> Vec<u8> {
    let mut state = 7u32;
    let img = image::RgbImage::from_fn(side, side, |_, _| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        image::Rgb([(state >> 24) as u8, (state >> 16) as u8, (state >> 8) as u8])
    });
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    png
}

#[test]
fn photos_are_decoded_within_the_memory_budget_and_the_deadline() {
    let bomb = png_bomb(7000);
    assert!(bomb.len() < 60_000, "{} bytes", bomb.len());
    let server = start(&["--memory-budget-mib", "16", "--photo-deadline-secs", "0.5"]);
    let upload = |files: &[(&str, &[u8])]| {
        let (content_type, body) = multipart(files);
        server.request("POST", "/v1/label", Some(&content_type), &body)
    };
    let started = Instant::now();
    let r = upload(&[("a.png", &bomb), ("b.png", &bomb), ("c.png", &bomb), ("d.png", &bomb)]);
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.error().contains("implausible compression"), "{}", r.error());
    assert!(started.elapsed() < Duration::from_secs(2), "refused from the header, not decoded");
    // Plausible but larger than the whole budget: 2000 × 2000 RGB needs 36 MiB.
    let big = noise_png(2000);
    let r = upload(&[("big.png", &big)]);
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.error().contains("more than the memory budget of 16 MiB"), "{}", r.error());
    let metrics = server.get("/metrics").text();
    assert!(metrics.contains("wardrobe_decode_budget_refusals_total 1"), "{metrics}");
    assert!(metrics.contains("wardrobe_decode_budget_in_use_bytes 0"), "{metrics}");
    assert!(metrics.contains(&format!("wardrobe_decode_budget_bytes {}", 16 << 20)), "{metrics}");
    assert!(rss_mib(&server) < 100.0, "{} MiB", rss_mib(&server));
    good_request(&server);
}

#[test]
fn a_photo_that_takes_too_long_to_decode_is_refused() {
    let server = start(&["--photo-deadline-secs", "0.001"]);
    let (content_type, body) = multipart(&[("slow.png", &noise_png(1500))]);
    let r = server.request("POST", "/v1/label", Some(&content_type), &body);
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.error().contains("decoding took longer than the limit of 0.001 s"), "{}", r.error());
}

/// A GET with an optional `Authorization` header.
fn get_with(server: &Server, path: &str, authorization: Option<&str>) -> common::http::Response {
    send_with(server, "GET", path, authorization, b"")
}

/// A request with an optional `Authorization` header and a JSON body.
fn send_with(
    server: &Server,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> common::http::Response {
    let mut stream = connect(&server.addr);
    let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    common::http::read_response(&mut stream)
}

#[test]
fn with_api_keys_a_review_is_signed_by_the_key_holder() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "ana-key-123 Ana Lima\nsecond-key-456\n").unwrap();
    let labels = dir.path().join("labels.csv");
    std::fs::write(
        &labels,
        "path,label,confidence,top3,needs_review,ood_score,verdict,reviewed_label\n\
         a.png,Bag,0.41,Bag:0.41,true,1.0,review,\n\
         b.png,Bag,0.40,Bag:0.40,true,1.0,review,\n",
    )
    .unwrap();
    let args = ["--quiet", "--api-key-file", keys.to_str().unwrap(), "--review", labels.to_str().unwrap()];
    let server = Server::start_logged(shared_trained_model("abuse-model"), &args);
    let review = |id: usize, key: Option<&str>| {
        let body = json!({ "reviewed_label": "Sandal", "reviewer": "Mallory" }).to_string();
        send_with(&server, "POST", &format!("/v1/review/{id}"), key, body.as_bytes())
    };
    assert_eq!(review(0, None).status, 401);
    let listed = get_with(&server, "/v1/review", Some("Bearer ana-key-123")).json();
    let id_of = |path: &str| {
        let rows = listed["rows"].as_array().unwrap();
        rows.iter().find(|r| r["path"] == path).unwrap()["id"].as_u64().unwrap() as usize
    };
    let r = review(id_of("a.png"), Some("Bearer ana-key-123"));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = review(id_of("b.png"), Some("Bearer second-key-456"));
    assert_eq!(r.status, 200, "{}", r.text());
    let mut reader = csv::Reader::from_path(&labels).unwrap();
    let header = reader.headers().unwrap().clone();
    let by = header.iter().position(|h| h == "reviewed_by").unwrap();
    let signed: Vec<(String, String)> =
        reader.records().map(|r| r.unwrap()).map(|r| (r[0].to_string(), r[by].to_string())).collect();
    assert_eq!(
        signed,
        [("a.png".to_string(), "Ana Lima".to_string()), ("b.png".to_string(), "key 2".to_string())],
        "the key's holder signs, whatever the body claims"
    );
}

#[test]
fn api_keys_guard_every_route_but_health_and_reload_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "# shop\nfirst-key-123\n").unwrap();
    // Logging on: the access log must not show the keys.
    let server = Server::start_logged(shared_trained_model("abuse-model"), &["--api-key-file", keys.to_str().unwrap()]);
    let model = "/v2/models/wardrobe";
    let no_key = get_with(&server, model, None);
    assert_eq!(no_key.status, 401, "{}", no_key.text());
    assert!(no_key.error().contains("missing or unknown API key"), "{}", no_key.error());
    assert_eq!(get_with(&server, model, Some("Bearer wrong")).status, 401);
    assert_eq!(get_with(&server, model, Some("Bearer first-key-123")).status, 200);
    assert_eq!(get_with(&server, "/", None).status, 401, "the page too");
    assert_eq!(get_with(&server, "/v2/health/live", None).status, 200);
    assert_eq!(get_with(&server, "/v2/health/ready", None).status, 200);
    assert_eq!(get_with(&server, "/metrics", None).status, 200);
    std::fs::write(&keys, "second-key-456\n").unwrap();
    let hup = std::process::Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_with(&server, model, Some("Bearer second-key-456")).status != 200 {
        assert!(Instant::now() < deadline, "the new key never worked");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get_with(&server, model, Some("Bearer first-key-123")).status, 401, "the old key is gone");
    let log =
        server.log_when(|log| log.contains("GET /v2/models/wardrobe 401") && log.contains("API keys reloaded: 1"));
    assert!(log.contains("GET /v2/models/wardrobe 401") && log.contains("API keys reloaded: 1"), "{log}");
    assert!(!log.contains("second-key-456") && !log.contains("first-key-123"), "keys are never logged: {log}");
}

#[test]
fn protect_metrics_puts_metrics_behind_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "metrics-key-789\n").unwrap();
    let server = start(&["--api-key-file", keys.to_str().unwrap(), "--protect-metrics"]);
    assert_eq!(get_with(&server, "/metrics", None).status, 401);
    let with_key = get_with(&server, "/metrics", Some("Bearer metrics-key-789"));
    assert_eq!(with_key.status, 200);
    assert!(with_key.text().contains("wardrobe_requests_total"), "{}", with_key.text());
    assert_eq!(get_with(&server, "/v2/health/live", None).status, 200, "health stays open");
}
