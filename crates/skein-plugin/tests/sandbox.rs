//! The code sandbox's escape suite, run straight against [`Sandbox::run`]: a fork bomb, the
//! network, `rm -rf /`, an endless loop, a 4 GB allocation, reading the server's files, a
//! flood of output — each fails inside the sandbox with a clear outcome, and the host (this
//! test process, its files, its ability to start processes) is untouched. The same attacks
//! go through the real server and the chat tool loop in `crates/skein/tests/api/plugins/code_interpreter.rs`.
//!
//! These need bubblewrap and a system Python (`scripts/test` installs both); without them
//! they fail rather than pass vacuously.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use skein_plugin::sandbox::{InputFile, Language, Limits, RunOutcome, Sandbox};

async fn sandbox() -> Sandbox {
    Sandbox::probe()
        .await
        .unwrap_or_else(|reason| panic!("the sandbox must work on a test machine: {reason}"))
}

fn small() -> Limits {
    Limits {
        cpu_secs: 2,
        wall_secs: 6,
        memory_mb: 256,
        max_processes: 16,
        ..Limits::default()
    }
}

async fn python(code: &str, limits: &Limits) -> RunOutcome {
    sandbox()
        .await
        .run(Language::Python, code, Vec::new(), limits)
        .await
        .unwrap()
}

/// The host can still start processes and the sandbox can still run (nothing lingers).
async fn host_is_healthy() {
    let status = std::process::Command::new("true").status().unwrap();
    assert!(status.success());
    let after = python("print('still fine')", &small()).await;
    assert_eq!(after.stdout, "still fine\n", "{after:?}");
}

#[tokio::test]
async fn a_program_prints_reads_its_inputs_and_returns_files() {
    let code = "import json\n\
        rows = open('data.csv').read().splitlines()\n\
        print('rows', len(rows))\n\
        open('out.json', 'w').write(json.dumps({'rows': len(rows)}))\n\
        import os; os.makedirs('plots', exist_ok=True)\n\
        open('plots/a.txt', 'w').write('x')\n\
        import sys; print('careful', file=sys.stderr)\n";
    let inputs = vec![InputFile {
        name: "data.csv".into(),
        bytes: b"a,b\n1,2\n3,4\n".to_vec(),
    }];
    let run = sandbox()
        .await
        .run(Language::Python, code, inputs, &small())
        .await
        .unwrap();
    assert_eq!(
        (run.exit_code, run.signal, run.timed_out),
        (Some(0), None, false),
        "{run:?}"
    );
    assert_eq!(run.stdout, "rows 3\n");
    assert_eq!(run.stderr, "careful\n");
    let mut names: Vec<&str> = run.files.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    // The unchanged input is not handed back; what the program wrote is.
    assert_eq!(names, ["out.json", "plots/a.txt"]);
    let out = run.files.iter().find(|f| f.name == "out.json").unwrap();
    assert_eq!(out.bytes, br#"{"rows": 3}"#);
}

#[tokio::test]
async fn a_fork_bomb_hits_the_process_limit_and_everything_it_made_is_killed() {
    // Forks until the limit, then each process keeps trying: only the wall limit ends it.
    let code = "import os, time\n\
        n = 0\n\
        while True:\n\
        \x20   try:\n\
        \x20       os.fork(); n += 1\n\
        \x20   except OSError as e:\n\
        \x20       print('fork failed:', e, flush=True); time.sleep(0.2)\n";
    let limits = Limits {
        wall_secs: 3,
        ..small()
    };
    let started = Instant::now();
    let run = python(code, &limits).await;
    assert!(
        run.stdout.contains("Resource temporarily unavailable"),
        "{run:?}"
    );
    assert!(run.timed_out, "{run:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3 + 6),
        "{:?}",
        started.elapsed()
    );
    host_is_healthy().await;
}

#[tokio::test]
async fn the_network_is_unreachable() {
    // A real listener on the host's loopback: the sandbox must not reach it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let code = format!(
        "import socket, urllib.request\n\
        for target in [('127.0.0.1', {port}), ('1.1.1.1', 80)]:\n\
        \x20   try:\n\
        \x20       socket.create_connection(target, timeout=2); print('CONNECTED', target)\n\
        \x20   except OSError as e:\n\
        \x20       print('refused', e)\n\
        try:\n\
        \x20   urllib.request.urlopen('http://example.com', timeout=2); print('FETCHED')\n\
        except Exception as e:\n\
        \x20   print('no http', e)\n\
        s = socket.socket(socket.AF_UNIX); print('unix ok')\n"
    );
    let run = python(&code, &small()).await;
    assert_eq!(run.exit_code, Some(0), "{run:?}");
    assert!(
        !run.stdout.contains("CONNECTED") && !run.stdout.contains("FETCHED"),
        "{run:?}"
    );
    assert_eq!(run.stdout.matches("refused").count(), 2, "{run:?}");
    assert!(run.stdout.contains("Permission denied"), "{run:?}");
    assert!(
        run.stdout.contains("no http") && run.stdout.contains("unix ok"),
        "{run:?}"
    );
    assert!(listener.accept().is_err(), "nothing connected to the host");
}

#[tokio::test]
async fn rm_rf_slash_removes_nothing_of_the_host() {
    let canary = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(canary.path(), b"still here").unwrap();
    // rm walks all of /usr (about 140,000 entries, each refused): seconds of CPU on a busy
    // machine, so this run gets more time than the others.
    let code = "import subprocess, os\n\
        r = subprocess.run(['rm', '-rf', '--no-preserve-root', '/'], capture_output=True, text=True)\n\
        print('rm exit', r.returncode, 'Read-only file system' in r.stderr)\n\
        print(os.path.exists('/usr/bin/python3'))\n";
    let limits = Limits {
        cpu_secs: 60,
        wall_secs: 120,
        ..small()
    };
    let run = python(code, &limits).await;
    assert_eq!(run.stdout, "rm exit 1 True\nTrue\n", "{run:?}");
    assert_eq!(std::fs::read(canary.path()).unwrap(), b"still here");
    assert!(std::path::Path::new("/usr/bin/python3").exists());
    host_is_healthy().await;
}

#[tokio::test]
async fn an_endless_loop_stops_at_the_cpu_limit_and_a_sleeper_at_the_wall_limit() {
    // One CPU second, and a wall limit long enough for it on a machine shared with builds.
    let limits = Limits {
        cpu_secs: 1,
        wall_secs: 60,
        ..small()
    };
    let run = python("while True:\n    pass\n", &limits).await;
    assert_eq!(run.signal, Some(24), "SIGXCPU: {run:?}");
    assert!(!run.timed_out);

    let limits = Limits {
        wall_secs: 2,
        ..small()
    };
    let started = Instant::now();
    let run = python(
        "import time\nprint('going', flush=True)\ntime.sleep(60)\n",
        &limits,
    )
    .await;
    assert!(run.timed_out, "{run:?}");
    assert_eq!(run.stdout, "going\n");
    assert!(
        started.elapsed() < Duration::from_secs(2 + 5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_4_gb_allocation_fails_at_the_memory_limit() {
    let code = "try:\n\
        \x20   x = bytearray(4 * 1024 ** 3)\n\
        \x20   print('ALLOCATED')\n\
        except MemoryError:\n\
        \x20   print('memory error')\n\
        x = bytearray(4 * 1024 ** 3)\n";
    let run = python(code, &small()).await;
    assert_eq!(run.stdout, "memory error\n", "{run:?}");
    assert_eq!(run.exit_code, Some(1));
    assert!(run.stderr.contains("MemoryError"), "{run:?}");
}

#[tokio::test]
async fn the_servers_files_cannot_be_read() {
    // A stand-in for the server's data directory and configuration, readable on the host.
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("skein.toml");
    std::fs::write(&config, "secret = 'server key'").unwrap();
    let cwd = std::env::current_dir().unwrap();
    let code = format!(
        "import os\n\
        for path in [{:?}, {:?}, {:?}, '/etc/shadow', '/etc/passwd', '/root', '/home', '/var/lib']:\n\
        \x20   try:\n\
        \x20       if os.path.isdir(path): print('LISTED', path, os.listdir(path))\n\
        \x20       else: print('READ', path, open(path).read()[:40])\n\
        \x20   except OSError as e:\n\
        \x20       print('denied', path, type(e).__name__)\n\
        print(os.getuid(), sorted(os.listdir('/')))\n",
        config.display().to_string(),
        data.path().display().to_string(),
        cwd.display().to_string(),
    );
    let run = python(&code, &small()).await;
    assert_eq!(run.exit_code, Some(0), "{run:?}");
    assert!(!run.stdout.contains("server key"), "{run:?}");
    assert!(
        !run.stdout.contains("READ") && !run.stdout.contains("LISTED /root"),
        "{run:?}"
    );
    assert_eq!(run.stdout.matches("denied").count(), 8, "{run:?}");
    // The program is nobody, in a root of its own.
    assert!(
        run.stdout.starts_with("denied") && run.stdout.contains("\n65534 ["),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("['bin', 'dev', 'lib'") || run.stdout.contains("'usr'"),
        "{run:?}"
    );
}

#[tokio::test]
async fn output_past_the_limit_is_cut_and_files_past_the_limits_are_skipped() {
    let limits = Limits {
        output_bytes: 4096,
        max_files: 2,
        ..small()
    };
    let code = "import sys\n\
        sys.stdout.write('x' * 10_000_000)\n\
        for i in range(4): open(f'f{i}.txt', 'w').write(str(i))\n";
    let run = python(code, &limits).await;
    assert_eq!(run.exit_code, Some(0), "{run:?}");
    assert_eq!(run.stdout.len(), 4096);
    assert!(run.stdout_truncated);
    assert_eq!(run.files.len(), 2);
    assert_eq!(run.skipped, ["f2.txt", "f3.txt"]);
}

#[tokio::test]
async fn javascript_runs_in_the_same_walls_when_node_is_installed() {
    let sandbox = sandbox().await;
    if !sandbox.has_javascript() {
        // A machine without Node.js offers Python only; the tool says so (tested in the API).
        return;
    }
    let code = "const fs = require('fs');\n\
        fs.writeFileSync('out.txt', 'from js');\n\
        console.log('sum', [1, 2, 3].reduce((a, b) => a + b));\n\
        require('net').connect(80, '1.1.1.1').on('error', e => console.log('net', e.code));\n";
    let run = sandbox
        .run(Language::Javascript, code, Vec::new(), &small())
        .await
        .unwrap();
    assert_eq!(run.exit_code, Some(0), "{run:?}");
    assert!(run.stdout.starts_with("sum 6\n"), "{run:?}");
    assert!(run.stdout.contains("net EACCES"), "{run:?}");
    assert_eq!(run.files.len(), 1);
    assert_eq!(run.files[0].bytes, b"from js");
}
