//! The web pages in a real browser: headless Chromium, driven over the WebDriver protocol by
//! ChromeDriver, uploads a seller photo through the page's file input and the label appears in
//! the DOM; on the review page a key press and a click set `reviewed_label` in the labels file.
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them).

mod common;

use common::http::{Server, request, request_within};
use common::{load, trained_model, write_photo};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wardrobe::data::dataset::{CLASS_NAMES, Split};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// WebDriver's key for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long one WebDriver command may take: starting Chromium on a busy two-core machine has
/// taken over 30 s (once in a fresh-clone CI run), though it usually takes a second.
const DRIVER_PATIENCE: Duration = Duration::from_secs(120);

/// A ChromeDriver process; killed when dropped.
struct Driver {
    child: Child,
    addr: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, addr }
    }

    /// A WebDriver command; returns its `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let r = request_within(&self.addr, (method, path, Some("application/json"), body.as_bytes()), DRIVER_PATIENCE);
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
        r.json()["value"].clone()
    }
}

/// A browser session on the driver.
struct Session<'d> {
    driver: &'d Driver,
    id: String,
}

impl Session<'_> {
    /// A fresh browser with its profile in `profile`, that reaches for nothing but the page:
    /// no first-run setup, sync, component updates or other background connections, which
    /// this machine's closed network refuses or lets time out.
    fn open<'d>(driver: &'d Driver, profile: &Path) -> Session<'d> {
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,800",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-quic", format!("--user-data-dir={}", profile.display())
            ] }
        } } });
        let value = driver.call("POST", "/session", Some(capabilities));
        Session { driver, id: value["sessionId"].as_str().unwrap().to_string() }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.driver.call(method, &format!("/session/{}{path}", self.id), body)
    }

    /// The elements matching a CSS selector.
    fn find_all(&self, css: &str) -> Vec<String> {
        let found = self.call("POST", "/elements", Some(json!({ "using": "css selector", "value": css })));
        found.as_array().unwrap().iter().map(|e| e[ELEMENT].as_str().unwrap().to_string()).collect()
    }

    /// The first element matching `css`, waiting for it to appear.
    fn wait_for(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(e) = self.find_all(css).into_iter().next() {
                return e;
            }
            let status = self.find_all("#status").first().map(|s| self.text(s)).unwrap_or_default();
            assert!(Instant::now() < deadline, "'{css}' never appeared; status: {status}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn text(&self, element: &str) -> String {
        self.call("GET", &format!("/element/{element}/text"), None).as_str().unwrap().to_string()
    }

    /// Runs a script in the page; returns its value.
    fn script(&self, body: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({ "script": body, "args": [] })))
    }

    /// Presses and releases a key, as a person typing on the page.
    fn press(&self, key: &str) {
        let actions = json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": [
            { "type": "keyDown", "value": key }, { "type": "keyUp", "value": key }
        ] }] });
        self.call("POST", "/actions", Some(actions));
    }

    /// Waits until `script` returns true.
    fn wait_until(&self, script: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.script(script) != json!(true) {
            assert!(Instant::now() < deadline, "{what} never happened");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = request(&self.driver.addr, "DELETE", &format!("/session/{}", self.id), None, b"");
    }
}

/// Fails, naming the packages, when the browser is not installed.
fn require_browser() {
    assert!(
        Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
        "browser tests need {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
    );
}

#[test]
fn uploading_a_photo_through_the_page_shows_its_label() {
    require_browser();
    let dir = tempfile::tempdir().unwrap();
    trained_model(&dir.path().join("model"));
    let server = Server::start(&dir.path().join("model"), &["--quiet"], dir.path().join("server.log"));
    let test = load(Split::Test);
    let item = 2; // a pair of trousers: distinctive, so a briefly trained model gets it right
    assert_eq!(CLASS_NAMES[test.labels[item] as usize], "Trouser");
    let photo = write_photo(test.image(item), item, dir.path());

    let driver = Driver::start();
    let session = Session::open(&driver, &dir.path().join("profile"));
    session.call("POST", "/url", Some(json!({ "url": format!("http://{}/", server.addr) })));
    let input = session.wait_for("#photos");
    session.call("POST", &format!("/element/{input}/value"), Some(json!({ "text": photo.to_str().unwrap() })));
    let label = session.wait_for(".result .label");
    assert_eq!(session.text(&label), "Trouser");
    assert_eq!(session.find_all(".result img.model-input").len(), 1, "the 28×28 model input is shown");
    assert_eq!(session.find_all(".result .bar").len(), 10, "one probability bar per class");
    let status = session.wait_for("#status");
    assert_eq!(session.text(&status), "Labelled 1 photo(s).");

    let screenshot = session.call("GET", "/screenshot", None);
    let png = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, screenshot.as_str().unwrap()).unwrap();
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-label.png");
    std::fs::write(&shot, &png).unwrap();
    eprintln!("screenshot: {} ({} bytes)", shot.display(), png.len());
    assert!(png.starts_with(b"\x89PNG"));
}

/// The `reviewed_label` of each row of a labels CSV, by path.
fn reviewed(labels: &Path) -> std::collections::HashMap<String, String> {
    let mut reader = csv::Reader::from_path(labels).unwrap();
    let column = reader.headers().unwrap().iter().position(|h| h == "reviewed_label").unwrap();
    reader.records().map(|r| r.unwrap()).map(|r| (r[0].to_string(), r[column].to_string())).collect()
}

/// Sets `column` of the rows with the given paths, as a spreadsheet would, keeping the rest.
fn edit_cells(labels: &Path, column: &str, values: &[(&str, &str)]) {
    let mut reader = csv::Reader::from_path(labels).unwrap();
    let header = reader.headers().unwrap().clone();
    let at = header.iter().position(|h| h == column).unwrap();
    let records: Vec<csv::StringRecord> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let mut fields: Vec<String> = r.iter().map(String::from).collect();
            if let Some((_, v)) = values.iter().find(|(p, _)| *p == &r[0]) {
                fields[at] = v.to_string();
            }
            csv::StringRecord::from(fields)
        })
        .collect();
    let mut w = csv::Writer::from_path(labels).unwrap();
    w.write_record(&header).unwrap();
    records.iter().for_each(|r| w.write_record(r).unwrap());
    w.flush().unwrap();
}

#[test]
fn the_review_page_sets_reviewed_labels_by_key_and_by_click() {
    require_browser();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    trained_model(&model);
    let test = load(Split::Test);
    for i in 0..6 {
        write_photo(test.image(i), i, &dir.path().join("uploads"));
    }
    let labels = dir.path().join("labels.csv");
    let (ok, _, err) = common::run(&[
        "label",
        "--model",
        model.to_str().unwrap(),
        dir.path().join("uploads").to_str().unwrap(),
        "--out",
        labels.to_str().unwrap(),
        "--review-below",
        "1.01",
    ]);
    assert!(ok, "{err}");
    // The last two photos stand for uploads the model called unknown; the page's queues follow the
    // verdict column.
    let paths: Vec<String> = reviewed(&labels).into_keys().collect();
    let mut sorted = paths.clone();
    sorted.sort();
    let verdicts: Vec<(&str, &str)> =
        sorted.iter().enumerate().map(|(i, p)| (p.as_str(), if i < 4 { "review" } else { "unknown" })).collect();
    edit_cells(&labels, "verdict", &verdicts);
    let server =
        Server::start(&model, &["--quiet", "--review", labels.to_str().unwrap()], dir.path().join("server.log"));
    let listed = server.get("/v1/review").json();
    let all = listed["rows"].as_array().unwrap();
    assert_eq!(all.len(), 6, "every row needs review at --review-below 1.01");
    let rows: Vec<Value> = all.iter().filter(|r| r["queue"] == "review").cloned().collect();
    let unknown: Vec<Value> = all.iter().filter(|r| r["queue"] == "unknown").cloned().collect();
    assert_eq!((rows.len(), unknown.len()), (4, 2));
    let confidences: Vec<f64> = rows.iter().map(|r| r["confidence"].as_f64().unwrap()).collect();
    assert!(confidences.windows(2).all(|w| w[0] <= w[1]), "least confident first: {confidences:?}");
    let path_of = |k: usize| rows[k]["path"].as_str().unwrap().to_string();

    let driver = Driver::start();
    let session = Session::open(&driver, &dir.path().join("profile"));
    session.call("POST", "/url", Some(json!({ "url": format!("http://{}/review", server.addr) })));
    session.wait_for(".row.selected");
    let ids = session.script("return [...document.querySelectorAll('.row')].map(r => Number(r.dataset.id))");
    let expected: Vec<Value> = rows.iter().map(|r| r["id"].clone()).collect();
    assert_eq!(ids, json!(expected), "the page lists the rows in the server's order");
    session.wait_until(
        "return [...document.images].every(i => i.complete && i.naturalWidth > 0)",
        "the photos and model inputs loading",
    );

    // Key 2 is the second category; the next row is selected after it.
    session.press("2");
    session.wait_until(
        "return document.querySelectorAll('.row')[0].querySelector('.reviewed').textContent === 'reviewed: Trouser'",
        "the first row showing its review",
    );
    assert_eq!(reviewed(&labels)[&path_of(0)], "Trouser");
    let selected = session
        .script("return [...document.querySelectorAll('.row')].findIndex(r => r.classList.contains('selected'))");
    assert_eq!(selected, json!(1));

    let bag = session.wait_for(&format!(".row[data-id='{}'] button[data-class='Bag']", rows[2]["id"]));
    session.call("POST", &format!("/element/{bag}/click"), Some(json!({})));
    session.wait_until(
        "return document.getElementById('status').textContent === 'Reviewed 2 of 4 photo(s).'",
        "the status counting two reviews",
    );
    let after = reviewed(&labels);
    assert_eq!((after[&path_of(0)].as_str(), after[&path_of(2)].as_str()), ("Trouser", "Bag"));
    assert_eq!(after.values().filter(|v| v.is_empty()).count(), 4, "the other rows are untouched");

    // The unknown queue: "-" says not ours. Then a spreadsheet sets another row's label while the
    // page shows it empty; the page's choice for it is a conflict showing both, and "keep mine" wins.
    let queue = session.wait_for("#queues button[data-queue='unknown']");
    session.call("POST", &format!("/element/{queue}/click"), Some(json!({})));
    session.wait_until(
        &format!("return document.querySelector('.row.selected')?.dataset.id === '{}'", unknown[0]["id"]),
        "the unknown queue's first row selected",
    );
    session.press("-");
    let not_ours = |labels: &Path| reviewed(labels)[unknown[0]["path"].as_str().unwrap()].clone();
    session.wait_until(
        "return document.querySelector('.row .reviewed').textContent === 'reviewed: (not ours)'",
        "the row marked not ours",
    );
    assert_eq!(not_ours(&labels), "(not ours)");
    let second = unknown[1]["path"].as_str().unwrap().to_string();
    let first_review = rows[1]["path"].as_str().unwrap().to_string();
    edit_cells(&labels, "reviewed_label", &[(&second, "Bag"), (&first_review, "Sandal")]);
    session.press("1");
    let mine = session.wait_for(".row.selected .conflict button.keep-mine");
    let shown = session.script("return document.querySelector('.row.selected .conflict').textContent");
    assert!(shown.as_str().unwrap().contains("Bag") && shown.as_str().unwrap().contains("T-shirt/top"), "{shown}");
    assert_eq!(reviewed(&labels)[&second], "Bag", "a conflict writes nothing");
    session.call("POST", &format!("/element/{mine}/click"), Some(json!({})));
    session.wait_until("return document.querySelectorAll('.row')[1].querySelector('.reviewed').textContent === 'reviewed: T-shirt/top'", "keep mine");
    let after = reviewed(&labels);
    assert_eq!(
        (after[&second].as_str(), after[&first_review].as_str()),
        ("T-shirt/top", "Sandal"),
        "the spreadsheet's other edit survives"
    );
    assert_eq!(not_ours(&labels), "(not ours)");

    let r = server.post_json(&format!("/v1/review/{}", rows[1]["id"]), &json!({ "reviewed_label": "Hat" }));
    assert_eq!(r.status, 400);
    assert!(r.error().contains("'Hat' is not one of the model's classes"), "{}", r.error());
    assert_eq!(server.post_json("/v1/review/999", &json!({ "reviewed_label": "Bag" })).status, 404);
    assert_eq!(server.get("/v1/review/x/photo").status, 400);
}
