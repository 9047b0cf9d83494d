//! `mock-upstream`: the test kit's mock OpenAI server as a process, for end-to-end tests of
//! the web app. Prints `MOCK_BASE_URL=http://127.0.0.1:PORT` and serves until it is stopped
//! (Ctrl-C or SIGTERM).
//!
//! Options: `--key KEY` (the API key it accepts, default `sk-mock`) and
//! `--stream-pause-ms N` (pause between the pieces of each stream, default 0).

use std::io::Write;
use std::time::Duration;

use skein_testkit::mock_openai::MockOpenAi;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let mut key = "sk-mock".to_string();
    let mut pause_ms = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--key", Some(value)) => key = value,
            ("--stream-pause-ms", Some(value)) => match value.parse() {
                Ok(ms) => pause_ms = ms,
                Err(_) => return usage(),
            },
            _ => return usage(),
        }
    }
    let mock = MockOpenAi::start(&key).await;
    mock.stop_recording();
    mock.set_stream_pause(Duration::from_millis(pause_ms));
    println!("MOCK_BASE_URL={}", mock.base_url);
    let _ = std::io::stdout().flush();
    // SIGTERM ends the process by its default action; Ctrl-C is awaited here.
    let _ = tokio::signal::ctrl_c().await;
    drop(mock);
    std::process::ExitCode::SUCCESS
}

fn usage() -> std::process::ExitCode {
    eprintln!("usage: mock-upstream [--key KEY] [--stream-pause-ms N]");
    std::process::ExitCode::from(2)
}
