//! A minimal Chrome DevTools Protocol client: headless Chromium started with
//! `--remote-debugging-pipe`, which reads commands on its fd 3 and writes replies and
//! events on its fd 4, each one JSON message ended by a NUL byte. Enough to open a page,
//! evaluate script, move and click the mouse, and capture a screenshot.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long one command may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// The Chromium executable: `$LOGITLENS_CHROMIUM`, else the first of the usual names on
/// `PATH`.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("LOGITLENS_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let names = [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ];
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// A running headless Chromium.
pub struct Browser {
    child: Child,
    commands: std::io::PipeWriter,
    replies: Receiver<Value>,
    next_id: u64,
    /// Events received and not yet taken, with their session.
    events: VecDeque<Value>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts `exe` headless, with a fresh profile.
    pub fn launch(exe: &Path) -> std::io::Result<Self> {
        let profile = tempfile::tempdir()?;
        let (cmd_read, commands) = std::io::pipe()?;
        let (replies_read, replies_write) = std::io::pipe()?;
        let (r, w) = (cmd_read.as_raw_fd(), replies_write.as_raw_fd());
        let mut command = Command::new(exe);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--mute-audio",
                "--hide-scrollbars",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec. The pipe ends are
        // close-on-exec; copies made with F_DUPFD and then dup2 onto 3 and 4 are not.
        unsafe {
            command.pre_exec(move || {
                let (r2, w2) = (
                    libc::fcntl(r, libc::F_DUPFD, 10),
                    libc::fcntl(w, libc::F_DUPFD, 10),
                );
                if r2 < 0 || w2 < 0 || libc::dup2(r2, 3) < 0 || libc::dup2(w2, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        drop((cmd_read, replies_write));
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(replies_read);
            let mut message = Vec::new();
            loop {
                message.clear();
                match reader.read_until(0, &mut message) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if message.last() == Some(&0) {
                    message.pop();
                }
                let Ok(value) = serde_json::from_slice::<Value>(&message) else {
                    continue;
                };
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            commands,
            replies,
            next_id: 1,
            events: VecDeque::new(),
            _profile: profile,
        })
    }

    /// Sends `method` (to `session`, or to the browser) and waits for its result; events
    /// that arrive meanwhile are kept.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("{method}: cannot write to Chromium: {e}"));
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.replies.recv_timeout(left) {
                Ok(reply) if reply["id"] == json!(id) => {
                    if let Some(error) = reply.get("error") {
                        panic!("{method} failed: {error}");
                    }
                    return reply["result"].clone();
                }
                Ok(event) => self.events.push_back(event),
                Err(RecvTimeoutError::Timeout) => panic!("{method}: no reply from Chromium"),
                Err(RecvTimeoutError::Disconnected) => panic!("{method}: Chromium exited"),
            }
        }
    }

    /// Waits up to `timeout` for an event `method` of `session`; takes and returns it.
    pub fn wait_event(&mut self, session: &str, method: &str, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let matches = |e: &Value| e["method"] == method && e["sessionId"] == session;
            if let Some(i) = self.events.iter().position(matches) {
                return self.events.remove(i);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.replies.recv_timeout(left) {
                Ok(event) => self.events.push_back(event),
                Err(_) => return None,
            }
        }
    }

    /// Takes every event of `session` received so far.
    pub fn take_events(&mut self, session: &str) -> Vec<Value> {
        while let Ok(event) = self.replies.try_recv() {
            self.events.push_back(event);
        }
        let (mine, others) = self
            .events
            .drain(..)
            .partition(|e| e["sessionId"] == session);
        self.events = others;
        mine.into_iter().collect()
    }

    /// Opens a new page of `width`×`height` CSS pixels with the runtime, log, network and
    /// page domains enabled, so that nothing it does goes unseen.
    pub fn page(&mut self, width: u32, height: u32) -> Page<'_> {
        let target = self.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].as_str().unwrap().to_string();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        let session = attached["sessionId"].as_str().unwrap().to_string();
        let mut page = Page {
            browser: self,
            session,
            target,
        };
        for domain in ["Runtime", "Log", "Network", "Page"] {
            page.call(&format!("{domain}.enable"), json!({}));
        }
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One page (a target with its own session).
pub struct Page<'a> {
    browser: &'a mut Browser,
    session: String,
    target: String,
}

impl Page<'_> {
    /// Sends `method` to this page.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.browser.call(Some(&self.session), method, params)
    }

    /// Loads `url` and waits for its load event.
    pub fn navigate(&mut self, url: &str) {
        let result = self.call("Page.navigate", json!({"url": url}));
        assert!(
            result.get("errorText").is_none(),
            "navigate {url}: {result}"
        );
        let loaded = self.browser.wait_event(
            &self.session,
            "Page.loadEventFired",
            Duration::from_secs(60),
        );
        assert!(loaded.is_some(), "{url} did not load within 60 s");
    }

    /// The value of the expression `js` (awaited if it is a promise); panics on an exception.
    pub fn eval(&mut self, js: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = result.get("exceptionDetails") {
            panic!("evaluating {js}: {e}");
        }
        result["result"]["value"].clone()
    }

    /// Evaluates `js` every 20 ms until it is true, for at most `timeout`.
    pub fn wait_for(&mut self, js: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.eval(js) == json!(true) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// A mouse event (`mouseMoved`, `mousePressed`, `mouseReleased`) at (x, y) CSS pixels.
    pub fn mouse(&mut self, kind: &str, x: f64, y: f64) {
        let mut params = json!({"type": kind, "x": x, "y": y});
        if kind != "mouseMoved" {
            params["button"] = json!("left");
            params["clickCount"] = json!(1);
        }
        self.call("Input.dispatchMouseEvent", params);
    }

    /// A left click at (x, y).
    pub fn click(&mut self, x: f64, y: f64) {
        self.mouse("mouseMoved", x, y);
        self.mouse("mousePressed", x, y);
        self.mouse("mouseReleased", x, y);
    }

    /// A key press and release of `key` (a DOM key name such as "Escape").
    pub fn key(&mut self, key: &str) {
        for kind in ["keyDown", "keyUp"] {
            self.call("Input.dispatchKeyEvent", json!({"type": kind, "key": key}));
        }
    }

    /// The page as a PNG.
    pub fn screenshot(&mut self) -> Vec<u8> {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        base64_decode(shot["data"].as_str().unwrap())
    }

    /// Every event the page has sent so far.
    pub fn events(&mut self) -> Vec<Value> {
        self.browser.take_events(&self.session)
    }
}

impl Drop for Page<'_> {
    fn drop(&mut self) {
        let target = self.target.clone();
        self.browser
            .call(None, "Target.closeTarget", json!({"targetId": target}));
    }
}

/// Standard base64 (with padding), as CDP sends binary data.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= (value(c) as u32) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
