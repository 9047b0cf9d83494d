//! A real sandbox for the code interpreter: the user's Python (or JavaScript, when Node.js is
//! installed) runs under bubblewrap with no network, limited CPU time, memory, processes,
//! output and wall time, on a throwaway file system.
//!
//! Why this mechanism: on a Linux server the kernel's own isolation is the cheapest real wall
//! (a cold start is tens of milliseconds, the standard CPython with its whole standard library
//! runs unchanged), and bubblewrap is the small, audited setuid-free tool that Flatpak uses to
//! set it up. A WebAssembly Python (wasmtime + a WASI CPython) would be portable but starts
//! slower, lacks most C extensions and needs a build we cannot install from a registry here;
//! Pyodide in the browser would leave the server unable to return files to the model.
//!
//! The walls, each of which the escape suite in `tests/api/plugins/code_interpreter.rs` attacks:
//! - **Namespaces** (bubblewrap): a new user namespace (the program is uid 65534 with no
//!   capabilities, and may not create more user namespaces), PID (it sees only itself; its
//!   init kills everything when the sandbox ends), network (only a downed loopback: no
//!   socket reaches anything), IPC, UTS; `--new-session` (no TTY injection),
//!   `--die-with-parent` (nothing outlives the server).
//! - **File system**: the root is an empty tmpfs; only `/usr` (and the `/lib*`, `/bin`
//!   links into it) is bound, read-only. The server's data directory, `/etc`, `/home`, `/root`
//!   and `/var` do not exist inside. The working directory `/mnt/data` and `/tmp` are small
//!   tmpfs mounts of their own size, thrown away with the sandbox.
//! - **rlimits**, set in the child before `exec` (below): CPU seconds per process, address
//!   space per process, processes, file size, open files, no core dumps.
//! - **A distinct uid per run** when the server is root: the process limit (`RLIMIT_NPROC`)
//!   does not apply to root, so the sandbox first drops to an unused uid of its own; a fork
//!   bomb then exhausts only its own count.
//! - **seccomp** (x86-64): a filter denies the system calls a sandboxed program has no use for
//!   and that widen the kernel's attack surface (`ptrace`, `mount`, `bpf`, `keyctl`, io_uring,
//!   new namespaces, module loading, …) and every socket but a Unix one.
//! - **Wall time**: the runner inside stops the program at the limit; the server kills the
//!   whole sandbox a few seconds later if even that did not end it.
//!
//! If bubblewrap or a system Python is missing, or the kernel refuses unprivileged user
//! namespaces, [`Sandbox::probe`] says why and the code tool is not offered: code is never run
//! without the sandbox.

mod seccomp;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The program that runs first inside the sandbox (copies inputs, runs the code, reports).
const RUNNER: &str = include_str!("runner.py");

/// The working directory inside the sandbox: inputs arrive and outputs are collected there.
pub const WORK_DIR: &str = "/mnt/data";

/// The most bytes of the report (the output files, base64) read back.
const MAX_REPORT_BYTES: usize = 64 * 1024 * 1024;

/// Seconds the server waits past the wall limit for the runner's report before it kills the
/// sandbox itself.
const GRACE_SECS: u64 = 5;

/// The language of a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// CPython 3, the system's.
    Python,
    /// Node.js, when installed.
    Javascript,
}

/// The limits of one run; the admin sets them in the plugin's settings (a field left out
/// takes its default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// CPU seconds each process may use (`RLIMIT_CPU`).
    pub cpu_secs: u64,
    /// Seconds the whole run may take.
    pub wall_secs: u64,
    /// Address space of each process, MiB (`RLIMIT_AS`).
    pub memory_mb: u64,
    /// Processes (and threads) the program may have at once.
    pub max_processes: u64,
    /// Bytes of stdout and of stderr kept (the rest is dropped and marked).
    pub output_bytes: u64,
    /// MiB each of `/mnt/data` and `/tmp` may hold, and the largest file.
    pub disk_mb: u64,
    /// Output files returned (more are listed as skipped).
    pub max_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu_secs: 10,
            wall_secs: 20,
            memory_mb: 512,
            max_processes: 32,
            output_bytes: 32 * 1024,
            disk_mb: 64,
            max_files: 10,
        }
    }
}

impl Limits {
    /// Whether each limit is within what the server allows; the first that is not, by name.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let ranges: [(&'static str, u64, u64, u64); 7] = [
            ("cpu_secs", self.cpu_secs, 1, 300),
            ("wall_secs", self.wall_secs, 1, 300),
            ("memory_mb", self.memory_mb, 128, 16 * 1024),
            ("max_processes", self.max_processes, 1, 1024),
            ("output_bytes", self.output_bytes, 1024, 1024 * 1024),
            ("disk_mb", self.disk_mb, 1, 4096),
            ("max_files", self.max_files, 0, 100),
        ];
        for (name, value, low, high) in ranges {
            if !(low..=high).contains(&value) {
                return Err((name, format!("{low} to {high}")));
            }
        }
        Ok(())
    }
}

/// A file given to the program, in its working directory.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Its name there (one path component).
    pub name: String,
    /// Its content.
    pub bytes: Vec<u8>,
}

/// A file the program wrote in its working directory.
#[derive(Debug, Clone)]
pub struct OutputFile {
    /// Its path under the working directory.
    pub name: String,
    /// Its content.
    pub bytes: Vec<u8>,
}

/// What one run did.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    /// The program's exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did (`SIGXCPU` at the CPU limit).
    pub signal: Option<i32>,
    /// It was stopped at the wall limit.
    pub timed_out: bool,
    /// What it printed (at most the output limit).
    pub stdout: String,
    /// Whether stdout was cut.
    pub stdout_truncated: bool,
    /// Its errors (at most the output limit).
    pub stderr: String,
    /// Whether stderr was cut.
    pub stderr_truncated: bool,
    /// The files it wrote, within the limits.
    pub files: Vec<OutputFile>,
    /// Files it wrote that were over the limits.
    pub skipped: Vec<String>,
    /// The sandbox ended without the runner's report (killed from outside, or the program
    /// killed the runner).
    pub no_report: bool,
    /// Wall time of the whole run, sandbox set-up included.
    pub elapsed: Duration,
}

/// What the runner reports on fd 3.
#[derive(Debug, Deserialize)]
struct Report {
    exit_code: Option<i32>,
    signal: Option<i32>,
    #[serde(default)]
    timed_out: bool,
    #[serde(default)]
    files: Vec<ReportFile>,
    #[serde(default)]
    skipped: Vec<String>,
    #[serde(default)]
    start_error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ReportFile {
    name: String,
    data: String,
}

/// A path on the host that the sandbox's root mirrors: a read-only bind of a directory, or
/// the same symbolic link (merged-`/usr` systems link `/lib` to `usr/lib`).
#[derive(Debug, Clone)]
enum RootEntry {
    Bind(PathBuf),
    Link(PathBuf, PathBuf),
}

/// The sandbox, once found to work on this machine.
#[derive(Debug, Clone)]
pub struct Sandbox {
    bwrap: PathBuf,
    python: PathBuf,
    node: Option<PathBuf>,
    root: Vec<RootEntry>,
    /// Runs at once in this process: each may use its memory limit per process, so the
    /// number of runs bounds what the host lends out.
    running: Arc<tokio::sync::Semaphore>,
}

/// The size of a run's /dev/shm, bytes.
const SHM_BYTES: &str = "16777216";

/// Most runs at once per process; more wait their turn (within the tool's deadline).
const MAX_CONCURRENT_RUNS: usize = 2;

/// The first of `candidates` that is an executable file under `/usr` (only `/usr` is visible
/// inside the sandbox, so a Python under `$HOME`, such as pyenv's, cannot be used).
fn find_program(candidates: &[&str]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    candidates.iter().find_map(|c| {
        let real = std::fs::canonicalize(c).ok()?;
        let meta = std::fs::metadata(&real).ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0 && real.starts_with("/usr"))
            .then(|| PathBuf::from(c))
    })
}

/// uids handed to runs when the server is root, so that each run's process count is its own.
/// Far above any uid a distribution gives out; a random start keeps two servers on one
/// machine apart.
const UID_POOL_BASE: u32 = 0x7000_0000;
const UID_POOL_SIZE: u32 = 1 << 16;
static NEXT_UID: AtomicU32 = AtomicU32::new(0);

fn pool_uid() -> u32 {
    let start = std::process::id().wrapping_mul(7919);
    UID_POOL_BASE + (start.wrapping_add(NEXT_UID.fetch_add(1, Ordering::Relaxed)) % UID_POOL_SIZE)
}

/// A pipe, both ends close-on-exec (the child gets only the end it is handed).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [-1, -1];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill; on success both are
    // fresh descriptors this process owns and nothing else refers to.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above, each fd is open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Where a run's output lines go while it runs (each line once, as it is completed).
pub type LineSink = std::sync::Arc<dyn Fn(String) + Send + Sync>;

/// Most output lines a run reports while it runs (its whole output still comes at the end).
const MAX_REPORTED_LINES: usize = 200;

/// Longest line reported while a run runs, characters.
const MAX_REPORTED_LINE: usize = 500;

/// Reads `reader` to its end, keeping the first `cap` bytes (the rest is read and dropped so
/// the writer never blocks); whether anything was dropped. Lines kept are told to `lines`
/// as they complete.
async fn read_capped<R: AsyncRead + Unpin>(
    mut reader: R,
    cap: usize,
    lines: Option<LineSink>,
) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut cut = false;
    let mut buf = vec![0u8; 16 * 1024];
    // Where the next line to report starts in `kept`, and how many were reported.
    let (mut line_start, mut reported) = (0usize, 0usize);
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                if n > room {
                    cut = true;
                }
                if let Some(sink) = &lines {
                    while reported < MAX_REPORTED_LINES
                        && let Some(end) = kept[line_start..].iter().position(|b| *b == b'\n')
                    {
                        let line = String::from_utf8_lossy(&kept[line_start..line_start + end]);
                        sink(line.chars().take(MAX_REPORTED_LINE).collect());
                        line_start += end + 1;
                        reported += 1;
                    }
                }
            }
        }
    }
    (kept, cut)
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

impl Sandbox {
    /// Finds bubblewrap and a system Python (and Node.js), without running anything.
    pub fn detect() -> Result<Sandbox, String> {
        let bwrap = find_program(&["/usr/bin/bwrap", "/usr/local/bin/bwrap"]).ok_or(
            "bubblewrap (bwrap) is not installed; install the `bubblewrap` package".to_string(),
        )?;
        let python = find_program(&["/usr/bin/python3", "/usr/local/bin/python3"])
            .ok_or("no Python 3 under /usr; install the `python3` package".to_string())?;
        let node = find_program(&["/usr/bin/node", "/usr/local/bin/node", "/usr/bin/nodejs"]);
        let mut root = vec![RootEntry::Bind("/usr".into())];
        for dir in ["/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"] {
            let Ok(meta) = std::fs::symlink_metadata(dir) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                if let Ok(target) = std::fs::read_link(dir) {
                    root.push(RootEntry::Link(target, dir.into()));
                }
            } else if meta.is_dir() {
                root.push(RootEntry::Bind(dir.into()));
            }
        }
        Ok(Sandbox {
            bwrap,
            python,
            node,
            root,
            running: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_RUNS)),
        })
    }

    /// Finds the sandbox and proves it works here: a Python program must run inside it and
    /// fail to reach the network. The error is the reason shown to admins.
    pub async fn probe() -> Result<Sandbox, String> {
        let sandbox = Self::detect()?;
        let code = "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=1)\n    print('NETWORK')\nexcept OSError:\n    print('ok')\n";
        let limits = Limits {
            wall_secs: 10,
            ..Limits::default()
        };
        let run = sandbox
            .run(Language::Python, code, Vec::new(), &limits)
            .await?;
        match run.stdout.trim() {
            "ok" => Ok(sandbox),
            "NETWORK" => Err("the sandbox could reach the network; code execution is off".into()),
            _ => Err(format!(
                "the sandbox does not start here (are unprivileged user namespaces allowed?): {}",
                run.stderr.trim().chars().take(300).collect::<String>()
            )),
        }
    }

    /// Whether JavaScript can run (Node.js is installed under `/usr`).
    pub fn has_javascript(&self) -> bool {
        self.node.is_some()
    }

    /// The arguments of bubblewrap for a run whose own files are in `host_dir`.
    fn bwrap_args(
        &self,
        host_dir: &Path,
        limits: &Limits,
        seccomp_fd: Option<RawFd>,
    ) -> Vec<String> {
        let mut args: Vec<String> = [
            "--unshare-user",
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--uid",
            "65534",
            "--gid",
            "65534",
            "--hostname",
            "sandbox",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for entry in &self.root {
            match entry {
                RootEntry::Bind(dir) => {
                    let dir = dir.display().to_string();
                    args.extend(["--ro-bind".into(), dir.clone(), dir]);
                }
                RootEntry::Link(target, link) => {
                    args.extend([
                        "--symlink".into(),
                        target.display().to_string(),
                        link.display().to_string(),
                    ]);
                }
            }
        }
        let size = (limits.disk_mb * 1024 * 1024).to_string();
        args.extend(
            [
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--size",
                &size,
                "--tmpfs",
                "/tmp",
                "--size",
                &size,
                "--tmpfs",
                WORK_DIR,
                "--ro-bind",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        args.extend([host_dir.display().to_string(), "/sandbox".into()]);
        // The root and /dev are memory file systems with no size of their own: a program
        // writing there would fill the host's memory. /dev/shm gets a small size; the rest
        // is made read-only once every mount is in place (the sized /tmp and work dir stay
        // writable).
        args.extend(
            [
                "--size",
                SHM_BYTES,
                "--tmpfs",
                "/dev/shm",
                "--remount-ro",
                "/dev",
                "--remount-ro",
                "/",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        args.extend(["--chdir".into(), WORK_DIR.into()]);
        if let Some(fd) = seccomp_fd {
            args.extend(["--seccomp".into(), fd.to_string()]);
        }
        args.extend([
            "--".into(),
            self.python.display().to_string(),
            "-I".into(),
            "-S".into(),
            "/sandbox/runner.py".into(),
        ]);
        args
    }

    /// Runs `code` in a fresh sandbox with `inputs` in its working directory. An `Err` means
    /// the sandbox itself could not be set up (the program did not run); everything the
    /// program does, limits hit included, is in the outcome.
    pub async fn run(
        &self,
        language: Language,
        code: &str,
        inputs: Vec<InputFile>,
        limits: &Limits,
    ) -> Result<RunOutcome, String> {
        self.run_reporting(language, code, inputs, limits, None)
            .await
    }

    /// [`Sandbox::run`], telling `lines` each line of standard output as it is written.
    pub async fn run_reporting(
        &self,
        language: Language,
        code: &str,
        inputs: Vec<InputFile>,
        limits: &Limits,
        lines: Option<LineSink>,
    ) -> Result<RunOutcome, String> {
        let _turn = self
            .running
            .acquire()
            .await
            .map_err(|_| "the sandbox is shutting down".to_string())?;
        let started = Instant::now();
        let (file, command, extra_memory_mb) = match language {
            Language::Python => (
                "main.py",
                vec![
                    self.python.display().to_string(),
                    "-u".into(),
                    "/sandbox/main.py".into(),
                ],
                0,
            ),
            Language::Javascript => {
                let Some(node) = &self.node else {
                    return Err("JavaScript is not available (Node.js is not installed)".into());
                };
                // V8 reserves about 1 GiB of address space it never touches (its code range
                // and pointer cage); its heap is capped at the memory limit instead.
                (
                    "main.js",
                    vec![
                        node.display().to_string(),
                        format!("--max-old-space-size={}", limits.memory_mb),
                        "/sandbox/main.js".into(),
                    ],
                    1024,
                )
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("skein-sandbox-")
            .tempdir()
            .map_err(|e| format!("cannot make the sandbox's directory: {e}"))?;
        let job = serde_json::json!({
            "command": command,
            "wall_secs": limits.wall_secs,
            "max_files": limits.max_files,
            "max_file_bytes": limits.disk_mb * 1024 * 1024,
        });
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(dir.path().join(name), bytes)
                .map_err(|e| format!("cannot write the sandbox's {name}: {e}"))
        };
        write("runner.py", RUNNER.as_bytes())?;
        write("job.json", job.to_string().as_bytes())?;
        write(file, code.as_bytes())?;
        std::fs::create_dir(dir.path().join("in"))
            .map_err(|e| format!("cannot make the sandbox's inputs: {e}"))?;
        for input in &inputs {
            write(&format!("in/{}", input.name), &input.bytes)?;
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let run_as = if root {
            let uid = pool_uid();
            chown_tree(dir.path(), uid)
                .map_err(|e| format!("cannot hand the sandbox its files: {e}"))?;
            Some(uid)
        } else {
            None
        };

        let (report_read, report_write) = pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
        let seccomp = match seccomp::program() {
            Some(program) => {
                let (read, write) = pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
                let mut writer = std::fs::File::from(write);
                std::io::Write::write_all(&mut writer, &program)
                    .map_err(|e| format!("cannot hand over the seccomp filter: {e}"))?;
                drop(writer);
                Some(read)
            }
            None => None,
        };
        const REPORT_FD: RawFd = 3;
        const SECCOMP_FD: RawFd = 4;
        let args = self.bwrap_args(dir.path(), limits, seccomp.as_ref().map(|_| SECCOMP_FD));

        let mb = 1024 * 1024;
        // Processes of this run's uid: bubblewrap's two, the runner, then the program's. Not
        // root, the kernel also counts every other task of the server's uid against the
        // limit (in the parent user namespace), so those are added.
        let others = if run_as.is_some() {
            0
        } else {
            tasks_of_current_uid()
        };
        let nproc = limits.max_processes + 3 + others;
        // (resource, soft, hard). At the CPU soft limit the kernel sends SIGXCPU, which says
        // what happened; the hard limit a second later is SIGKILL for a program that ignores it
        // (with both equal the kernel sends only SIGKILL).
        let rlimits = [
            (libc::RLIMIT_CPU, limits.cpu_secs, limits.cpu_secs + 1),
            (
                libc::RLIMIT_AS,
                (limits.memory_mb + extra_memory_mb) * mb,
                (limits.memory_mb + extra_memory_mb) * mb,
            ),
            (libc::RLIMIT_NPROC, nproc, nproc),
            (libc::RLIMIT_FSIZE, limits.disk_mb * mb, limits.disk_mb * mb),
            (libc::RLIMIT_NOFILE, 256, 256),
            (libc::RLIMIT_CORE, 0, 0),
        ];
        let moves: Vec<(RawFd, RawFd)> = std::iter::once((report_write.as_raw_fd(), REPORT_FD))
            .chain(seccomp.as_ref().map(|fd| (fd.as_raw_fd(), SECCOMP_FD)))
            .collect();

        let mut cmd = tokio::process::Command::new(&self.bwrap);
        cmd.args(&args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", WORK_DIR)
            .env("TMPDIR", "/tmp")
            .env("LANG", "C.UTF-8")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("MPLBACKEND", "Agg")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: the closure runs in the forked child before exec, so it may only make
        // async-signal-safe calls: fcntl, dup2, setrlimit, setgroups, setgid and setuid are;
        // it allocates nothing (`moves` and `rlimits` were built before the fork) and
        // touches no lock. Every descriptor it names is open in the parent until spawn
        // returns.
        unsafe {
            cmd.pre_exec(move || {
                // First lift each descriptor above the targets, so moving one onto 3 cannot
                // close another that happens to be 3 or 4; dup2 then clears close-on-exec.
                let mut lifted = [-1 as RawFd; 2];
                for (i, &(fd, _)) in moves.iter().enumerate() {
                    let high = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
                    if high < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    lifted[i] = high;
                }
                for (i, &(_, target)) in moves.iter().enumerate() {
                    if libc::dup2(lifted[i], target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for &(resource, soft, hard) in &rlimits {
                    let limit = libc::rlimit {
                        rlim_cur: soft,
                        rlim_max: hard,
                    };
                    if libc::setrlimit(resource, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(uid) = run_as
                    && (libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(uid) != 0
                        || libc::setuid(uid) != 0)
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start bubblewrap: {e}"))?;
        drop(report_write);
        drop(seccomp);
        let cap = limits.output_bytes as usize;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let out_task = tokio::spawn(async move {
            match stdout {
                Some(s) => read_capped(s, cap, lines).await,
                None => (Vec::new(), false),
            }
        });
        let err_task = tokio::spawn(async move {
            match stderr {
                Some(s) => read_capped(s, cap, None).await,
                None => (Vec::new(), false),
            }
        });
        let report_task = tokio::spawn(async move {
            let file = tokio::fs::File::from_std(std::fs::File::from(report_read));
            read_capped(file, MAX_REPORT_BYTES, None).await
        });

        let hard_limit = Duration::from_secs(limits.wall_secs + GRACE_SECS);
        let killed = match tokio::time::timeout(hard_limit, child.wait()).await {
            Ok(_) => false,
            Err(_) => {
                // The runner did not end the run: kill bubblewrap, and with it (its
                // PID namespace's init dies with it) everything inside.
                child.kill().await.ok();
                true
            }
        };
        let (stdout, stdout_truncated) = out_task.await.unwrap_or_default();
        let (stderr, stderr_truncated) = err_task.await.unwrap_or_default();
        let (report, _) = report_task.await.unwrap_or_default();
        drop(dir);

        let mut outcome = RunOutcome {
            stdout: text(stdout),
            stdout_truncated,
            stderr: text(stderr),
            stderr_truncated,
            timed_out: killed,
            elapsed: started.elapsed(),
            ..RunOutcome::default()
        };
        match serde_json::from_slice::<Report>(&report) {
            Ok(report) => {
                if let Some(error) = report.start_error {
                    return Err(format!("the program could not start: {error}"));
                }
                outcome.exit_code = report.exit_code;
                outcome.signal = report.signal;
                outcome.timed_out |= report.timed_out;
                outcome.skipped = report.skipped;
                // The report is the runner's, but checked again: what reaches the user's
                // files stays within the run's limits whatever wrote it.
                let mut budget = limits.disk_mb * 1024 * 1024;
                for file in report.files {
                    let bytes = match base64::engine::general_purpose::STANDARD.decode(&file.data) {
                        Ok(bytes) => bytes,
                        Err(_) => continue,
                    };
                    let safe_name = !file.name.is_empty()
                        && file.name.len() <= 255
                        && !file
                            .name
                            .split('/')
                            .any(|p| p.is_empty() || p == "." || p == "..");
                    if outcome.files.len() as u64 >= limits.max_files
                        || bytes.len() as u64 > budget
                        || !safe_name
                    {
                        outcome.skipped.push(file.name);
                        continue;
                    }
                    budget -= bytes.len() as u64;
                    outcome.files.push(OutputFile {
                        name: file.name,
                        bytes,
                    });
                }
            }
            Err(_) => outcome.no_report = true,
        }
        Ok(outcome)
    }
}

/// How many tasks (threads included, as `RLIMIT_NPROC` counts them) this process's uid has.
fn tasks_of_current_uid() -> u64 {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| e.metadata().is_ok_and(|m| m.uid() == uid))
        .map(|e| std::fs::read_dir(e.path().join("task")).map_or(0, |t| t.count() as u64))
        .sum()
}

/// Hands `dir` and everything in it to `uid` (the run's own uid, when the server is root).
fn chown_tree(dir: &Path, uid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(dir, Some(uid), Some(uid))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            chown_tree(&entry.path(), uid)?;
        } else {
            std::os::unix::fs::chown(entry.path(), Some(uid), Some(uid))?;
        }
    }
    Ok(())
}
