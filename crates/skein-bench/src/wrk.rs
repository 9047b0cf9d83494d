//! Driving Debian's `wrk` as a closed-loop load generator and reading its report, for runs
//! where the load generator must cost as little CPU as an operator's would.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// What one wrk run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkRun {
    /// Requests completed.
    pub requests: u64,
    /// Requests per second, as wrk reports it.
    pub per_sec: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Answers that were not 2xx/3xx, plus socket errors.
    pub errors: u64,
}

impl WrkRun {
    /// The run as a JSON row of a benchmark's results.
    pub fn to_json(&self) -> Value {
        json!({"requests": self.requests, "requests_per_sec": self.per_sec,
            "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "errors": self.errors})
    }
}

/// Runs `wrk` for `secs` seconds with `connections` keep-alive connections on `threads`
/// threads, each POSTing `body` (JSON) to `url` with `Authorization: Bearer token`.
pub fn run(
    wrk: &Path,
    url: &str,
    token: &str,
    body: &str,
    threads: usize,
    connections: usize,
    secs: u64,
) -> anyhow::Result<WrkRun> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("post.lua");
    std::fs::write(&script, lua_script(token, body)?)?;
    let output = Command::new(wrk)
        .arg("--latency")
        .arg(format!("-t{}", threads.max(1)))
        .arg(format!("-c{}", connections.max(threads.max(1))))
        .arg(format!("-d{secs}s"))
        .arg("-s")
        .arg(&script)
        .arg(url)
        .output()
        .with_context(|| format!("running {}", wrk.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed: {}{}",
            text,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse(&text)
}

/// The Lua script that makes every wrk request a POST of `body` with the bearer token.
fn lua_script(token: &str, body: &str) -> anyhow::Result<String> {
    if body.contains("]==]") || token.contains('"') || token.contains('\\') {
        bail!("the body or token cannot be written into wrk's script as is");
    }
    Ok(format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.headers[\"Authorization\"] = \"Bearer {token}\"\nwrk.body = [==[{body}]==]\n"
    ))
}

/// Reads wrk's `--latency` report.
pub fn parse(text: &str) -> anyhow::Result<WrkRun> {
    let mut run = WrkRun {
        requests: 0,
        per_sec: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        errors: 0,
    };
    let mut saw_rate = false;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => run.p50_ms = millis(value)?,
            ["99%", value] => run.p99_ms = millis(value)?,
            [count, "requests", "in", ..] => run.requests = count.parse()?,
            ["Requests/sec:", value] => {
                run.per_sec = value.parse()?;
                saw_rate = true;
            }
            ["Non-2xx", "or", "3xx", "responses:", count] => run.errors += count.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                // "connect 0, read 0, write 0, timeout 0"
                for count in rest.iter().skip(1).step_by(2) {
                    run.errors += count.trim_end_matches(',').parse::<u64>()?;
                }
            }
            _ => {}
        }
    }
    if !saw_rate {
        bail!("wrk's report has no Requests/sec line: {text}");
    }
    Ok(run)
}

/// A wrk duration (`812.00us`, `1.23ms`, `1.01s`, `2.00m`) in milliseconds.
fn millis(value: &str) -> anyhow::Result<f64> {
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in {value}"))?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse()?;
    Ok(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        other => bail!("unknown unit {other} in {value}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 10s test @ http://127.0.0.1:4000/v1/chat/completions
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.21ms  640.12us  21.03ms   91.02%
    Req/Sec    19.91k     1.02k   21.40k    80.00%
  Latency Distribution
     50%  812.00us
     75%    3.40ms
     90%    3.80ms
     99%    1.02s
  198231 requests in 10.00s, 80.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  19822.43
Transfer/sec:      8.01MB
";

    #[test]
    fn a_report_is_read_whole() {
        let run = parse(REPORT).unwrap();
        assert_eq!(
            run,
            WrkRun {
                requests: 198_231,
                per_sec: 19_822.43,
                p50_ms: 0.812,
                p99_ms: 1020.0,
                errors: 12,
            }
        );
    }

    #[test]
    fn a_report_without_its_rate_is_an_error() {
        assert!(parse("Running 10s test @ http://x\n").is_err());
        assert!(millis("12.0xs").is_err());
    }

    #[test]
    fn the_script_posts_the_body_with_the_key() {
        let script = lua_script("sk-abc", r#"{"model":"m"}"#).unwrap();
        assert!(script.contains("wrk.method = \"POST\""));
        assert!(script.contains("Bearer sk-abc"));
        assert!(script.contains(r#"[==[{"model":"m"}]==]"#));
        assert!(lua_script("sk-\"", "{}").is_err());
    }
}
