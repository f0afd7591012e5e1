//! Headless Chromium for the browser tests: chromedriver started on a free
//! loopback port, one WebDriver session (its own Chromium, its own fresh
//! profile) per page, driven with fantoccini. Waits poll the page with a
//! bound; nothing sleeps to make an assertion pass.
#![allow(dead_code)] // not every test uses every helper

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a page may take to show what a test waits for: a bound on a
/// hang, not a timing assertion.
pub const PAGE_PATIENCE: Duration = Duration::from_secs(10);

/// Keys for `send_keys` (WebDriver code points).
pub const ENTER: &str = "\u{E007}";
pub const SHIFT: &str = "\u{E008}";
pub const CONTROL: &str = "\u{E009}";
pub const BACKSPACE: &str = "\u{E003}";
/// Releases the modifier keys pressed so far in one `send_keys`.
pub const RELEASE: &str = "\u{E000}";

fn chromium() -> String {
    std::env::var("SWITCHBOARD_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

fn chromedriver() -> String {
    std::env::var("SWITCHBOARD_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Where screenshots go: `<target dir>/screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let target = if target.is_relative() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(target)
    } else {
        target
    };
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("create the screenshots folder");
    dir
}

/// A running chromedriver.
pub struct Driver {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A test that failed did not close its windows, and chromedriver
        // killed hard leaves its browsers running: end every process that
        // uses one of this driver's profiles (and so only ours).
        kill_processes_using(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Kill (by pid) the processes whose command line names a profile under
/// `dir`, including their crash handlers, which only name their parent.
fn kill_processes_using(dir: &std::path::Path) {
    let needle = format!("--user-data-dir={}", dir.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let mut ours = Vec::new();
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let named = cmdline
            .split(|b| *b == 0)
            .any(|arg| arg.starts_with(needle.as_bytes()));
        if named {
            ours.push(pid);
        }
    }
    for pid in ours {
        // Crash handlers are started by the browser with no profile
        // argument; they are its children.
        for child in children_of(pid) {
            let _ = Command::new("kill")
                .arg("-9")
                .arg(child.to_string())
                .status();
        }
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    }
}

fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect()
}

impl Driver {
    pub async fn start() -> Driver {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("switchboard-browser-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("browser temp dir");
        let log = std::fs::File::create(dir.join("chromedriver.log")).expect("chromedriver log");
        let child = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start chromedriver (install the Debian package chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        let driver = Driver { child, url, dir };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http
                .get(format!("{}/status", driver.url))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if let Some(r) = ready {
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if v["value"]["ready"] == true {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    /// A new browser window with a fresh profile (its own storage), in
    /// English unless the test switches language in the page.
    /// A desktop page of `agent`, logged in on `base` and Available.
    pub async fn available_agent(&self, name: &str, base: &str, agent: &str) -> Page {
        let page = self.open(name).await;
        page.login(base, agent).await;
        page.set_available().await;
        page
    }

    pub async fn open(&self, name: &str) -> Page {
        let profile = self.dir.join(format!("profile-{name}"));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-extensions",
                    "--disable-background-timer-throttling",
                    "--disable-renderer-backgrounding",
                    "--lang=en-US",
                    "--window-size=1360,860",
                    format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": {"intl.accept_languages": "en-US,en"},
            },
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!("capabilities are an object"),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("open a Chromium session");
        Page {
            client,
            name: name.to_string(),
        }
    }
}

/// One browser window.
pub struct Page {
    pub client: Client,
    pub name: String,
}

impl Page {
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }

    /// Run JavaScript in the page and return its result.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("[{}] script failed: {e}\n{script}", self.name))
    }

    /// The text a user sees in the whole page.
    pub async fn visible_text(&self) -> String {
        self.js("return document.body ? document.body.innerText : ''")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's whole DOM as markup (what is there even when hidden).
    pub async fn html(&self) -> String {
        self.js("return document.documentElement.outerHTML")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn fail(&self, what: &str) -> ! {
        let text = self.visible_text().await;
        self.screenshot(&format!("FAILED-{}", self.name)).await;
        panic!(
            "[{}] gave up waiting for {what} after {:?}. The page shows:\n{text}",
            self.name, PAGE_PATIENCE
        );
    }

    /// Poll until `check` gives a value, or fail with what the page shows.
    pub async fn until<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + PAGE_PATIENCE;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if Instant::now() > deadline {
                self.fail(what).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first element matching `css` that is displayed.
    pub async fn shown(&self, css: &str) -> Element {
        self.until(&format!("{css} to be shown"), || async {
            let all = self.client.find_all(Locator::Css(css)).await.ok()?;
            for e in all {
                if e.is_displayed().await.unwrap_or(false) {
                    return Some(e);
                }
            }
            None
        })
        .await
    }

    /// The first displayed element matching `css` whose text contains
    /// `needle`.
    pub async fn shown_with_text(&self, css: &str, needle: &str) -> Element {
        self.until(&format!("{css} showing {needle:?}"), || async {
            let all = self.client.find_all(Locator::Css(css)).await.ok()?;
            for e in all {
                if e.is_displayed().await.unwrap_or(false)
                    && e.text().await.is_ok_and(|t| t.contains(needle))
                {
                    return Some(e);
                }
            }
            None
        })
        .await
    }

    /// Wait until no displayed element matches `css`.
    pub async fn gone(&self, css: &str) {
        self.until(&format!("{css} to disappear"), || async {
            let all = self.client.find_all(Locator::Css(css)).await.ok()?;
            for e in all {
                if e.is_displayed().await.unwrap_or(false) {
                    return None;
                }
            }
            Some(())
        })
        .await
    }

    /// Wait until the text of the element `css` is exactly `want`.
    pub async fn text_is(&self, css: &str, want: &str) {
        self.until(&format!("{css} to read {want:?}"), || async {
            let e = self.client.find(Locator::Css(css)).await.ok()?;
            (e.text().await.ok()? == want).then_some(())
        })
        .await
    }

    /// Wait until a JavaScript expression is true.
    pub async fn until_js(&self, what: &str, expr: &str) {
        let script = format!("return !!({expr});");
        self.until(what, || async {
            let v = self.client.execute(&script, vec![]).await.ok()?;
            (v == Value::Bool(true)).then_some(())
        })
        .await
    }

    pub async fn text(&self, css: &str) -> String {
        // Read again if the element was redrawn between finding and reading.
        self.until(&format!("the text of {css}"), || async {
            self.shown(css).await.text().await.ok()
        })
        .await
    }

    pub async fn click(&self, css: &str) {
        // A live page redraws (the console's tables, the desktop's list):
        // an element found a moment ago may have been replaced by the same
        // one drawn anew. A user would click the new one; so do we.
        let deadline = Instant::now() + PAGE_PATIENCE;
        loop {
            let e = self.shown(css).await;
            let clicked = match e.is_enabled().await {
                Ok(true) => e.click().await.map(|_| true),
                Ok(false) => Ok(false),
                Err(err) => Err(err),
            };
            match clicked {
                Ok(true) => return,
                Err(err) if !err.to_string().contains("stale element") => {
                    panic!("[{}] click {css}: {err}", self.name)
                }
                _ if Instant::now() > deadline => self.fail(&format!("{css} to be enabled")).await,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn type_in(&self, css: &str, keys: &str) {
        let e = self.shown(css).await;
        e.send_keys(keys)
            .await
            .unwrap_or_else(|err| panic!("[{}] type in {css}: {err}", self.name));
    }

    /// Select the option with `value` in the `<select>` `css`.
    pub async fn choose(&self, css: &str, value: &str) {
        let e = self.shown(css).await;
        e.select_by_value(value)
            .await
            .unwrap_or_else(|err| panic!("[{}] choose {value} in {css}: {err}", self.name));
    }

    /// Save a PNG of the window under target/screenshots/.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Open the agent desktop and log in.
    pub async fn login(&self, base: &str, agent: &str) {
        self.goto(&format!("{base}/")).await;
        self.log_in_dialog(agent).await;
    }

    /// Fill and submit the login dialog shown by the desktop.
    pub async fn log_in_dialog(&self, agent: &str) {
        let tenant = self.shown("#login-tenant").await;
        tenant.clear().await.expect("clear tenant");
        tenant.send_keys("demo").await.expect("type tenant");
        let who = self.shown("#login-agent").await;
        who.clear().await.expect("clear agent");
        who.send_keys(agent).await.expect("type agent");
        self.type_in("#login-password", &format!("demo{ENTER}"))
            .await;
        self.gone("#login-dialog").await;
        self.until_js(
            "the desktop to be connected",
            "document.getElementById('conn').dataset.state === 'online'",
        )
        .await;
    }

    /// Set the agent Available with the header's state selector.
    pub async fn set_available(&self) {
        self.choose("#state-select", "available").await;
        self.until_js(
            "the state to be Available",
            "document.body.dataset.agentState === 'available'",
        )
        .await;
    }

    /// The offer popup of conversation `id`.
    pub fn offer(id: u64) -> String {
        format!("#offers .offer[data-conversation=\"{id}\"]")
    }

    /// Accept the offer of conversation `id` from its popup and wait until
    /// the desktop shows it open, as the agent sees it.
    pub async fn accept_offer(&self, id: u64) {
        self.click(&format!("{} .offer-accept", Page::offer(id)))
            .await;
        self.shown(&format!("#pane[data-conversation=\"{id}\"]"))
            .await;
    }
}
