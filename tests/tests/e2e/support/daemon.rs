//! Runs the real `hragd` in a private temp dir and drives it with the real `hragctl`.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>/`, where cargo put the binaries (the test binary lives in its `deps/`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    for b in ["hragd", "hragctl"] {
        assert!(
            dir.join(b).is_file(),
            "{} is missing: build the binaries first (`cargo build --workspace --bins`, \
             or run scripts/test)",
            dir.join(b).display()
        );
    }
    dir
}

pub fn hragd() -> PathBuf {
    bin_dir().join("hragd")
}

pub fn hragctl() -> PathBuf {
    bin_dir().join("hragctl")
}

/// A temp dir with a registry, socket and state dir, and (once started) a daemon.
pub struct TestDaemon {
    pub dir: tempfile::TempDir,
    pub registry: PathBuf,
    pub socket: PathBuf,
    pub state: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    extra_args: Vec<String>,
    extra_env: Vec<(String, String)>,
}

impl TestDaemon {
    /// A fresh directory; `registry` text may use `{dir}` for the directory's path.
    pub fn new(registry: &str) -> TestDaemon {
        let dir = tempfile::Builder::new()
            .prefix("hrag-e2e.")
            .tempdir_in("/tmp")
            .unwrap();
        let root = dir.path().to_path_buf();
        let reg = root.join("registry.yaml");
        if !registry.is_empty() {
            std::fs::write(&reg, registry.replace("{dir}", root.to_str().unwrap())).unwrap();
        }
        TestDaemon {
            registry: reg,
            socket: root.join("d.sock"),
            state: root.join("state"),
            log: root.join("hragd.log"),
            dir,
            child: None,
            extra_args: vec![],
            extra_env: vec![],
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.extra_args.push(a.to_owned());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.extra_env.push((k.to_owned(), v.to_owned()));
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(hragd());
        c.arg("--registry")
            .arg(&self.registry)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--state-dir")
            .arg(&self.state)
            .args(&self.extra_args)
            .env_remove("NOTIFY_SOCKET")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        c
    }

    /// Starts hragd and waits until its socket answers.
    pub fn start(&mut self) -> &mut Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = self
            .command()
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.socket.exists() && self.ctl(&["status"]).status.success() {
                self.wait_until_opened();
                return self;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("hragd exited early ({status}); log:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "hragd did not come up; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) until no database is still `starting`: hragd answers once its stores
    /// have had a few seconds to open, which a loaded machine can exceed; tests assert on the
    /// state that follows.
    fn wait_until_opened(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let out = self.ctl(&["--json", "status"]);
            let starting = serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .ok()
                .and_then(|s| {
                    s["databases"]
                        .as_array()
                        .map(|dbs| dbs.iter().any(|d| d["state"] == "starting"))
                })
                .unwrap_or(false);
            if !starting {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs hragd to completion (for start-up failures).
    pub fn run_to_exit(&self, timeout: Duration) -> Output {
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + timeout;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("hragd did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Waits for the daemon to exit and returns its status.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                self.child = None;
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "hragd did not exit; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait(Duration::from_secs(30))
    }

    pub fn kill9(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        self.wait(Duration::from_secs(10));
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(hragctl())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs `hragctl --json ARGS`, asserts success and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ctl(&all);
        assert!(
            out.status.success(),
            "hragctl {all:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "hragctl {all:?} printed non-JSON ({e}):\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn registry_text(&self) -> String {
        std::fs::read_to_string(&self.registry).unwrap()
    }

    /// The state of database `db` in `status --json`.
    pub fn state_of(&self, db: &str) -> String {
        let s = self.json(&["status"]);
        s["databases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == db)
            .map(|d| d["state"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("{db} not in status: {s}"))
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
