//! Headless Chromium driven through WebDriver (`fantoccini` talking to `chromedriver`).
//!
//! Chromium and its driver are Debian's `chromium` and `chromium-driver`. When `chromedriver` is
//! not on the machine, the first test installs both with `apt-get` (the machines run as root
//! and reach Debian's registry; CI installs them the same way on a fresh machine). When that
//! fails, every test fails with the reason: a browser test that cannot run a browser must not
//! pass by skipping.
//!
//! Each [`Browser`] is its own `chromedriver` (on a free port, in its own process group, ended
//! with it) and one Chromium session. Screenshots of the pages visited go to
//! `<target dir>/screenshots/` (`target/screenshots/` by default; `$CARGO_TARGET_DIR/screenshots/`
//! when that is set).

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A file named `name` holding `bytes`, for a browser to upload (in a directory of its own
/// under the target directory's `tmp/`).
pub fn upload(name: &str, bytes: &[u8]) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("uploads-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// An HTTP client that does not follow redirects, for what a browser cannot tell (statuses,
/// headers, a form posted by hand).
pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A form posted by hand as the holder of the session `session` (same-site `Origin`, the
/// fields already encoded), as a browser would post it; the answer not followed.
pub async fn post_form(base: &str, path: &str, session: &str, fields: &str) -> reqwest::Response {
    plain_client()
        .post(format!("{base}{path}"))
        .header(reqwest::header::COOKIE, format!("pettycash_session={session}"))
        .header(reqwest::header::ORIGIN, base)
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(fields.to_string())
        .send()
        .await
        .unwrap()
}

/// The CSRF token the pages give the holder of the session `session` (the dashboard's).
pub async fn session_csrf_token(base: &str, session: &str) -> String {
    let dashboard = plain_client()
        .get(format!("{base}/dashboard/"))
        .header(reqwest::header::COOKIE, format!("pettycash_session={session}"))
        .send()
        .await
        .unwrap();
    csrf_token_in(&dashboard.text().await.unwrap())
}

/// The `value` of the first hidden `csrf_token` field of a page.
pub fn csrf_token_in(html: &str) -> String {
    let (_, after) = html.split_once(r#"name="csrf_token" value=""#).expect("a csrf_token field");
    after.split('"').next().unwrap().to_string()
}

/// Where screenshots are saved: beside the target directory's `tmp/`.
pub fn screenshot_dir() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().map(|target| target.join("screenshots")).unwrap_or(tmp)
}

const CHROMIUM: &str = "/usr/bin/chromium";

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

fn apt_get(args: &[&str]) -> Result<(), String> {
    let output = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(format!("apt-get {} failed ({}): {}", args.join(" "), output.status, stderr.trim()))
}

/// `chromedriver`, installed with Chromium from Debian's packages when missing.
fn install() -> Result<PathBuf, String> {
    if let (Some(driver), true) = (on_path("chromedriver"), std::path::Path::new(CHROMIUM).exists()) {
        return Ok(driver);
    }
    let packages = ["install", "-y", "--no-install-recommends", "chromium", "chromium-driver"];
    // The package lists may be missing or stale on a fresh machine: update once and retry.
    if let Err(first) = apt_get(&packages) {
        apt_get(&["update"]).map_err(|e| format!("{first}; then {e}"))?;
        apt_get(&packages)?;
    }
    on_path("chromedriver")
        .ok_or_else(|| "chromium-driver is installed but `chromedriver` is not on PATH".to_string())
}

/// The path of `chromedriver`; panics (the test fails) when it cannot be had.
fn chromedriver() -> PathBuf {
    static DRIVER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match DRIVER.get_or_init(install) {
        Ok(path) => path.clone(),
        Err(e) => {
            panic!("the browser tests need Chromium and chromedriver, which could not be installed: {e}")
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The screen a browser has.
#[derive(Debug, Clone, Copy)]
pub enum Screen {
    /// 1280 × 900.
    Desktop,
    /// A phone 375 CSS pixels wide (Chromium's mobile emulation: touch, device pixel ratio 2,
    /// and the layout viewport the page's `<meta name="viewport">` asks for).
    Phone,
}

/// A Chromium session against the server at `base`.
pub struct Browser {
    pub client: Client,
    pub base: String,
    /// Prefix of this test's screenshot names.
    name: String,
    shots: u32,
    driver: Child,
}

impl Browser {
    /// Starts chromedriver and a Chromium session. `name` names the screenshots.
    pub async fn open(base: &str, screen: Screen, name: &str) -> Self {
        let driver_path = chromedriver();
        let port = free_port();
        let mut command = Command::new(&driver_path);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group: ending it ends the Chromium it started too (see Drop).
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver =
            command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_path.display()));
        let webdriver = format!("http://127.0.0.1:{port}");
        let status = format!("{webdriver}/status");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !reqwest::get(&status).await.is_ok_and(|r| r.status().is_success()) {
            assert!(Instant::now() < deadline, "chromedriver did not answer on port {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut options = json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,900", "--no-first-run", "--disable-extensions"],
        });
        if let Screen::Phone = screen {
            options["mobileEmulation"] =
                json!({"deviceMetrics": {"width": 375, "height": 812, "pixelRatio": 2.0, "touch": true}});
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&webdriver)
            .await
            .unwrap_or_else(|e| panic!("cannot start a Chromium session: {e}"));
        Browser { client, base: base.to_string(), name: name.to_string(), shots: 0, driver }
    }

    /// Opens `path` of the server.
    pub async fn goto(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.expect("navigate");
    }

    /// The path and query of the page shown.
    pub async fn location(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no `{css}`: {e}"));
        element.text().await.expect("text")
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.expect("find").len()
    }

    /// Types `text` into the field matching `css`.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no `{css}`: {e}"));
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    /// Sets the `value` of the control matching `css` by script (a date-time field, a
    /// `<select>`): no keystrokes, no page loads.
    pub async fn set_value(&self, css: &str, value: &str) {
        self.run(&format!("document.querySelector(\"{css}\").value = '{value}'")).await;
    }

    /// Sets the `<select>` matching `css` to its option `value` (no page loads).
    pub async fn select(&self, css: &str, value: &str) {
        self.set_value(css, value).await;
        let chosen = self.run(&format!("return document.querySelector(\"{css}\").value")).await;
        assert_eq!(chosen, value, "`{css}` has no option {value}");
    }

    /// Chooses the file at `path` in the file control `css` (see [`upload`]).
    pub async fn choose_file(&self, css: &str, path: &Path) {
        let control = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no `{css}`: {e}"));
        control.send_keys(path.to_str().unwrap()).await.expect("choose the file");
    }

    /// The texts of the elements matching `css`, trimmed.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let script =
            format!("return [...document.querySelectorAll(\"{css}\")].map(e => e.textContent.trim())");
        let value = self.run(&script).await;
        value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    }

    /// Clicks the element matching `css`, a link or a form's button, and waits until the page
    /// it leads to has loaded. WebDriver's click returns once a navigation has begun, but a form
    /// whose answer takes a moment (a sign-in hashes a password) may not have begun one yet:
    /// the old page is marked, and the wait is for a complete document without the mark.
    pub async fn click(&self, css: &str) {
        self.run("window.__before_click = true").await;
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no `{css}`: {e}"));
        element.click().await.expect("click");
        let loaded = "return window.__before_click === undefined && document.readyState === 'complete'";
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.client.execute(loaded, vec![]).await.ok() != Some(Value::Bool(true)) {
            assert!(Instant::now() < deadline, "clicking `{css}` loaded no page");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Runs `script` in the page (through WebDriver, not as a script of the page: the
    /// Content-Security-Policy does not apply to it) and returns its value.
    pub async fn run(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("`{script}`: {e}"))
    }

    /// Signs in through the sign-in form (the browser must be on it).
    pub async fn sign_in(&self, email: &str, password: &str) {
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.click("form.stacked button[type=submit]").await;
    }

    /// Saves a screenshot of the page as `<test name>-<n>-<what>.png`; returns its path. On a
    /// desktop screen the window is first made as tall as the page (up to 4000 px), so that
    /// the picture shows all of it.
    pub async fn screenshot(&mut self, what: &str) -> PathBuf {
        if !self.is_phone().await {
            let height =
                self.run("return document.documentElement.scrollHeight").await.as_u64().unwrap_or(900);
            let _ = self.client.set_window_size(1280, height.clamp(600, 4000) as u32 + 120).await;
        }
        let png = self.client.screenshot().await.expect("screenshot");
        self.shots += 1;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("create the screenshot directory");
        let path = dir.join(format!("{}-{:02}-{what}.png", self.name, self.shots));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    async fn is_phone(&self) -> bool {
        self.run("return window.innerWidth").await.as_u64().is_some_and(|w| w <= 400)
    }

    /// Ends the session (Chromium quits) and chromedriver.
    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = client.close().await;
        self.stop();
    }

    fn stop(&mut self) {
        // The whole group: chromedriver and the Chromium it started. The group's id is
        // chromedriver's pid (`process_group(0)`); `killpg` with it reaches that group only.
        // Never through a `kill` program: some read `-<pid>` as an option, or as every process.
        let group = self.driver.id() as libc::pid_t;
        if group > 1 {
            // SAFETY: killpg only sends a signal; the group is the one this test created.
            unsafe { libc::killpg(group, libc::SIGKILL) };
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if matches!(self.driver.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}
