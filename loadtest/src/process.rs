//! One `herald` child process: started with a given environment, its
//! address read from the line it prints when it listens, its output kept
//! in a log file, and killed when dropped, so a failed, panicking or
//! interrupted run leaves nothing running.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::resources::Started;

/// What `herald` prints on stdout once its HTTP server is bound.
const LISTENING: &str = "herald is listening on ";
/// How long a process may take to listen, and then to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a process may take to finish its work in hand after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// How to start a `herald`: the binary, the settings every process shares,
/// and where their logs go.
#[derive(Debug, Clone)]
pub struct Launcher {
    binary: PathBuf,
    env: Vec<(String, String)>,
    logs: PathBuf,
    started: Started,
}

impl Launcher {
    pub fn new(binary: PathBuf, logs: PathBuf) -> anyhow::Result<Launcher> {
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        Ok(Launcher {
            binary,
            env: Vec::new(),
            logs,
            started: Started::default(),
        })
    }

    /// Every long-running process started from this launcher and its
    /// clones, as it grows.
    pub fn started(&self) -> Started {
        self.started.clone()
    }

    /// Sets a `HERALD_…` variable for every process started from now on.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.into()));
    }

    /// Runs a command that exits by itself (`herald migrate`) and checks it succeeded.
    pub async fn run(&self, name: &str, args: &[&str]) -> anyhow::Result<()> {
        let log = self.log_path(name);
        let mut command = self.command(args, &[], &log)?;
        command
            .stdout(Stdio::from(open_log(&log)?))
            .kill_on_drop(true);
        let status = tokio::time::timeout(START_TIMEOUT, command.status())
            .await
            .with_context(|| format!("`herald {}` did not finish", args.join(" ")))??;
        if !status.success() {
            bail!(
                "`herald {}` failed ({status}):\n{}",
                args.join(" "),
                log_tail(&log)
            );
        }
        Ok(())
    }

    /// Starts a long-running service on a free port and waits until its
    /// `/readyz` answers 200.
    pub async fn start(
        &self,
        name: &str,
        args: &[&str],
        extra: &[(&str, String)],
    ) -> anyhow::Result<Process> {
        let log = self.log_path(name);
        let mut command = self.command(args, extra, &log)?;
        command.stdout(Stdio::piped()).kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        if let Some(pid) = child.id() {
            self.started.add(name, pid);
        }
        let stdout = child.stdout.take().context("the child's stdout")?;
        let mut process = Process {
            name: name.to_owned(),
            base: String::new(),
            child,
            log: log.clone(),
        };
        let mut lines = BufReader::new(stdout).lines();
        let mut out = tokio::fs::File::from_std(open_log(&log)?);
        let deadline = Instant::now() + START_TIMEOUT;
        process.base = loop {
            let line = match tokio::time::timeout_at(deadline, lines.next_line()).await {
                Err(_) => bail!(
                    "{name} did not listen within {START_TIMEOUT:?}:\n{}",
                    log_tail(&log)
                ),
                Ok(line) => line?,
            };
            let Some(line) = line else {
                bail!("{name} exited before listening:\n{}", log_tail(&log));
            };
            out.write_all(format!("{line}\n").as_bytes()).await?;
            if let Some(base) = line.trim().strip_prefix(LISTENING) {
                break base.to_owned();
            }
        };
        // Keep draining stdout so the process never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if out.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        process.wait_ready(deadline).await?;
        Ok(process)
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    fn command(
        &self,
        args: &[&str],
        extra: &[(&str, String)],
        log: &Path,
    ) -> anyhow::Result<Command> {
        let mut command = Command::new(&self.binary);
        command.args(args);
        // Only the settings this run chose: nothing from the caller's shell.
        for (key, _) in std::env::vars() {
            if key.starts_with("HERALD_") {
                command.env_remove(key);
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command.envs(extra.iter().map(|(k, v)| (*k, v.as_str())));
        command
            .stdin(Stdio::null())
            .stderr(Stdio::from(open_log(log)?));
        Ok(command)
    }
}

/// A running `herald` child.
#[derive(Debug)]
pub struct Process {
    pub name: String,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    async fn wait_ready(&mut self, deadline: Instant) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let url = format!("{}/readyz", self.base);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited ({status}):\n{}", self.name, log_tail(&self.log));
            }
            let answer = client
                .get(&url)
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            if answer.is_ok_and(|a| a.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} was not ready in time:\n{}",
                    self.name,
                    log_tail(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9`: no goodbye, no work finished, as a crash would.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// SIGTERM, then up to [`STOP_TIMEOUT`] to finish; SIGKILL after that.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            eprintln!(
                "{} did not stop within {STOP_TIMEOUT:?}; killing it",
                self.name
            );
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

fn open_log(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// The last lines of a log, to show why a process failed.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    format!("--- last lines of {} ---\n{tail}", path.display())
}
