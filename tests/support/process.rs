//! Child processes for fixtures: started so that they die with the test binary (even when it is killed or
//! its statics are never dropped), with their output in log files, and helpers to wait on readiness.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};
use std::time::{Duration, Instant};

type SpawnRequest = (Command, Sender<std::io::Result<Child>>);

/// Spawns `cmd` with stdout and stderr appended to `log`, and with the parent-death signal set to SIGKILL.
///
/// Linux delivers the parent-death signal when the *thread* that forked the child exits, and test threads
/// exit after every test; so all fixtures are forked by one dedicated thread that lives as long as the process.
pub fn spawn_tied(mut cmd: Command, log: &Path) -> Child {
    static SPAWNER: Mutex<Option<Sender<SpawnRequest>>> = Mutex::new(None);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
    let err = file.try_clone().expect("dup log file");
    cmd.stdin(Stdio::null()).stdout(file).stderr(err);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let program = cmd.get_program().to_string_lossy().into_owned();
    let sender = {
        let mut guard = SPAWNER.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .get_or_insert_with(|| {
                let (tx, rx) = channel::<SpawnRequest>();
                std::thread::Builder::new()
                    .name("fixture-spawner".into())
                    .spawn(move || {
                        for (mut cmd, reply) in rx {
                            let _ = reply.send(cmd.spawn());
                        }
                        // The sender lives in a static, so this loop never ends while the process lives.
                    })
                    .expect("spawn fixture thread");
                tx
            })
            .clone()
    };
    let (reply_tx, reply_rx) = channel();
    sender.send((cmd, reply_tx)).expect("fixture spawner is gone");
    reply_rx
        .recv()
        .expect("fixture spawner is gone")
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Polls `ready` every 50 ms until it returns true; panics with `what` and the log's tail on timeout or if
/// `child` exits first.
pub fn wait_until(what: &str, child: &mut Child, log: &Path, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before it was ready; log {}:\n{}",
                log.display(),
                tail(log, 40)
            );
        }
        if Instant::now() > deadline {
            panic!(
                "{what} was not ready after {timeout:?}; log {}:\n{}",
                log.display(),
                tail(log, 40)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `lines` lines of a file, for failure messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Stops a child politely (SIGTERM), then forcibly after `grace`.
pub fn stop(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // SAFETY: sending a signal to our own child's pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A working directory for one fixture instance under the system temp dir. Directories left by earlier
/// test processes that are no longer alive are removed first, so shared fixtures (never dropped) leak nothing
/// beyond the next run.
pub fn fixture_dir(kind: &str) -> PathBuf {
    let base = std::env::temp_dir().join("kgo-test-env");
    std::fs::create_dir_all(&base).expect("create fixture base dir");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').nth(1).and_then(|p| p.parse::<i32>().ok());
            // SAFETY: kill with signal 0 only checks that the pid exists.
            if let Some(pid) = pid
                && pid != std::process::id() as i32
                && unsafe { libc::kill(pid, 0) } != 0
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = base.join(crate::support::unique_name(kind));
    std::fs::create_dir_all(&dir).expect("create fixture dir");
    dir
}
