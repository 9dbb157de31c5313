//! Running external programs (docker, initdb, pg_ctl, psql) behind one small trait, so the setup
//! logic can be driven by a scripted runner in unit tests and by stand-in executables end to end.

use std::io::Write;
use std::process::{Command, Stdio};

/// One command line. `stdin` carries anything secret (SQL with a password): never argv, which
/// other users can read in /proc.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub stdin: Option<String>,
    /// Run as this system user (through `runuser`); set when root drives PostgreSQL's tools.
    pub as_user: Option<String>,
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Cmd {
        Cmd {
            program: program.into(),
            ..Cmd::default()
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Cmd {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Cmd {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn stdin(mut self, text: impl Into<String>) -> Cmd {
        self.stdin = Some(text.into());
        self
    }

    pub fn run_as(mut self, user: Option<&str>) -> Cmd {
        self.as_user = user.map(str::to_owned);
        self
    }

    /// The command as a person would type it (for `--dry-run` and error messages).
    pub fn display(&self) -> String {
        let mut parts = Vec::new();
        if let Some(u) = &self.as_user {
            parts.extend([
                "runuser".to_owned(),
                "-u".to_owned(),
                u.clone(),
                "--".to_owned(),
            ]);
        }
        parts.push(self.program.clone());
        parts.extend(self.args.iter().map(|a| shell_quote(a)));
        parts.join(" ")
    }
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%{}".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// What a finished command left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The most useful line to quote in an error: stderr's last non-empty line, else stdout's.
    pub fn reason(&self) -> String {
        let last = |s: &str| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::trim)
                .map(str::to_owned)
        };
        last(&self.stderr)
            .or_else(|| last(&self.stdout))
            .unwrap_or_else(|| "no output".into())
    }
}

pub trait Runner {
    /// Runs `cmd` to completion. `Err` only when it could not be started (e.g. not installed).
    fn run(&self, cmd: &Cmd) -> std::io::Result<Outcome>;
}

/// Runs real processes.
pub struct SystemRunner;

impl Runner for SystemRunner {
    fn run(&self, cmd: &Cmd) -> std::io::Result<Outcome> {
        let mut command = match &cmd.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&cmd.program);
                c
            }
            None => Command::new(&cmd.program),
        };
        command
            .args(&cmd.args)
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        if let (Some(text), Some(mut pipe)) = (&cmd.stdin, child.stdin.take()) {
            // A write error means the program exited early; its status and stderr say why.
            let _ = pipe.write_all(text.as_bytes());
        }
        let out = child.wait_with_output()?;
        Ok(Outcome {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}
