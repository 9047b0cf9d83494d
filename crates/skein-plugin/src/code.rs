//! The built-in code interpreter: runs the model's Python (or JavaScript) in the
//! [`sandbox`](crate::sandbox) as the caller, with the caller's files copied in, and stores
//! every file the program writes as the caller's file through the File service. The model
//! reads one JSON object (exit, stdout, stderr, files, and what stopped the program when a
//! limit did); the web app renders the same object in the tool step.
//!
//! Not billed per call: the Plugin service has no per-tool price table yet (the image tool is
//! billed through the relay's image route, not here).

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use skein_core::api::{FilePurpose, NewFile, ToolCaller, ToolFile, ToolOutput};
use utoipa::ToSchema;

use crate::sandbox::{InputFile, Language, Limits, RunOutcome, Sandbox};
use crate::{Outcome, PluginService, StoredSettings};

/// The code tool's name.
pub const RUN_CODE: &str = "run_code";

/// Most input files one call may bring.
const MAX_INPUT_FILES: usize = 10;

/// The code interpreter as the admin set it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct StoredCode {
    /// Offered to users (only once the sandbox proved to work).
    #[serde(default)]
    pub enabled: bool,
    /// The limits of each run.
    #[serde(default)]
    pub limits: Limits,
}

/// The code interpreter's settings as shown to admins.
#[derive(Debug, Serialize, ToSchema)]
pub struct CodeView {
    /// The admin turned it on.
    pub enabled: bool,
    /// The sandbox works on this server (`unavailable_reason` says why not).
    pub available: bool,
    /// Why the sandbox cannot run here, when it cannot.
    pub unavailable_reason: Option<String>,
    /// JavaScript can run too (Node.js is installed).
    pub javascript: bool,
    /// The limits of each run.
    pub limits: Limits,
}

/// The code interpreter as set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeInput {
    /// Offer it to users; refused while the sandbox cannot run here.
    pub enabled: bool,
    /// The limits of each run; absent fields take their defaults.
    #[serde(default)]
    pub limits: Option<Limits>,
}

/// The tool as offered to a model.
pub(crate) fn tool(sandbox: &Sandbox, limits: &Limits) -> crate::openapi::ToolDef {
    let languages: Vec<&str> = if sandbox.has_javascript() {
        vec!["python", "javascript"]
    } else {
        vec!["python"]
    };
    crate::openapi::ToolDef {
        name: RUN_CODE.into(),
        description: format!(
            "Run a short {} program in a sandbox and get its output. No network; {} s of CPU, \
             {} MiB of memory, {} s in all. The working directory is {}: files named in `files` \
             are copied there, and every file the program writes there is given to the user \
             (images are shown). Print what you need to read.",
            languages.join(" or "),
            limits.cpu_secs,
            limits.memory_mb,
            limits.wall_secs,
            crate::sandbox::WORK_DIR
        ),
        parameters: json!({"type": "object",
            "properties": {
                "code": {"type": "string", "description": "The program's source."},
                "language": {"type": "string", "enum": languages, "description": "Default python."},
                "files": {"type": "array", "items": {"type": "string"},
                    "description": "Ids of the user's files to copy into the working directory."}},
            "required": ["code"]}),
        method: String::new(),
        path: String::new(),
        params: Vec::new(),
        body: false,
    }
}

/// One path component safe to create in the sandbox's working directory.
fn input_name(name: &str, id: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("").trim();
    if last.is_empty() || last.starts_with('.') || last.contains('\0') {
        id.to_string()
    } else {
        last.chars().take(200).collect()
    }
}

/// Runs `arguments.code` for `caller`.
pub(crate) async fn run(
    service: &PluginService,
    caller: &ToolCaller,
    settings: &StoredSettings,
    arguments: &Value,
    deadline: Duration,
    progress: &skein_core::api::ToolProgress,
) -> Outcome {
    let sandbox = match service.sandbox().await {
        Ok(s) => s,
        Err(reason) => {
            return Outcome::failed(format!("Code cannot run on this server: {reason}."));
        }
    };
    let code = arguments["code"].as_str().unwrap_or_default();
    if code.trim().is_empty() {
        return Outcome::failed("The argument `code` is required.");
    }
    let language = match arguments["language"].as_str().unwrap_or("python") {
        "python" | "py" | "python3" => Language::Python,
        "javascript" | "js" | "node" if sandbox.has_javascript() => Language::Javascript,
        other => {
            return Outcome::failed(format!(
                "The language `{other}` cannot run here; use python{}.",
                if sandbox.has_javascript() {
                    " or javascript"
                } else {
                    ""
                }
            ));
        }
    };
    let mut limits = settings.code.limits;
    // The call's own deadline wins when it is shorter (a few seconds go to set-up and files).
    limits.wall_secs = limits
        .wall_secs
        .min(deadline.as_secs().saturating_sub(3).max(1));

    let mut inputs = Vec::new();
    let ids: Vec<&str> = arguments["files"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if ids.len() > MAX_INPUT_FILES {
        return Outcome::failed(format!("At most {MAX_INPUT_FILES} files can be given."));
    }
    if !ids.is_empty() {
        let Some(files) = &service.files else {
            return Outcome::failed("Files cannot be given to code on this server.");
        };
        let cap = (limits.disk_mb * 1024 * 1024) as usize;
        let mut total = 0usize;
        for id in ids {
            // The caller's own files only: another user's id reads as missing.
            let content = match files.open(&caller.user_id, id, None).await {
                Ok(c) => c,
                Err(_) => return Outcome::failed(format!("There is no file {id} you may use.")),
            };
            let mut bytes = Vec::new();
            let mut body = content.body;
            while let Some(chunk) = body.next().await {
                let Ok(chunk) = chunk else {
                    return Outcome::failed(format!("The file {id} could not be read."));
                };
                total += chunk.len();
                if total > cap {
                    return Outcome::failed(format!(
                        "The files given are over the sandbox's {} MiB.",
                        limits.disk_mb
                    ));
                }
                bytes.extend_from_slice(&chunk);
            }
            let name = input_name(&content.meta.name, id);
            if inputs.iter().any(|i: &InputFile| i.name == name) {
                return Outcome::failed(format!("Two files are called {name}."));
            }
            inputs.push(InputFile { name, bytes });
        }
    }

    // Each line the program prints reaches the user while it runs.
    let lines: crate::sandbox::LineSink = {
        let progress = progress.clone();
        std::sync::Arc::new(move |line: String| {
            progress(serde_json::json!({"stage": "output", "text": line}))
        })
    };
    progress(serde_json::json!({"stage": "running", "text": "Running the code"}));
    let outcome = match sandbox
        .run_reporting(language, code, inputs, &limits, Some(lines))
        .await
    {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "the code sandbox failed");
            return Outcome::failed(format!("The sandbox failed: {e}."));
        }
    };
    tracing::info!(user = %caller.user_id, exit_code = ?outcome.exit_code, signal = ?outcome.signal,
        timed_out = outcome.timed_out, files = outcome.files.len(),
        duration_ms = outcome.elapsed.as_millis() as u64, "code run");
    // The program ran: its answer is the tool's, even when it exited with an error or hit
    // a limit, so a paid call is charged for it.
    Outcome::worked(report(service, caller, &limits, outcome).await)
}

/// What stopped the program, in words for the model, when a limit did.
fn limit_note(outcome: &RunOutcome, limits: &Limits) -> Option<String> {
    const SIGKILL: i32 = 9;
    const SIGXCPU: i32 = 24;
    const SIGXFSZ: i32 = 25;
    let stderr = &outcome.stderr;
    if outcome.timed_out {
        return Some(format!(
            "Stopped at the wall-time limit of {} s.",
            limits.wall_secs
        ));
    }
    match outcome.signal {
        Some(SIGXCPU) => {
            return Some(format!(
                "Stopped at the CPU-time limit of {} s.",
                limits.cpu_secs
            ));
        }
        Some(SIGXFSZ) => {
            return Some(format!(
                "Stopped at the file-size limit of {} MiB.",
                limits.disk_mb
            ));
        }
        _ => {}
    }
    if outcome.signal == Some(SIGKILL) {
        return Some(format!(
            "Killed past the CPU-time limit of {} s, or out of memory ({} MiB per process).",
            limits.cpu_secs, limits.memory_mb
        ));
    }
    if stderr.contains("MemoryError")
        || stderr.contains("heap out of memory")
        || stderr.contains("Cannot allocate memory")
    {
        return Some(format!(
            "Memory is limited to {} MiB per process.",
            limits.memory_mb
        ));
    }
    if stderr.contains("Resource temporarily unavailable") || stderr.contains("EAGAIN") {
        return Some(format!(
            "Processes are limited to {}.",
            limits.max_processes
        ));
    }
    if stderr.contains("Permission denied")
        && (stderr.contains("socket") || stderr.contains("connect"))
        || stderr.contains("Network is unreachable")
        || stderr.contains("EACCES")
    {
        return Some("The sandbox has no network.".into());
    }
    if stderr.contains("Read-only file system") || stderr.contains("No space left on device") {
        return Some(format!(
            "Only {} and /tmp are writable, {} MiB each; the rest is read-only.",
            crate::sandbox::WORK_DIR,
            limits.disk_mb
        ));
    }
    None
}

/// Stores the files the program wrote and builds the answer.
async fn report(
    service: &PluginService,
    caller: &ToolCaller,
    limits: &Limits,
    outcome: RunOutcome,
) -> ToolOutput {
    let mut listed = Vec::new();
    let mut tool_files = Vec::new();
    let mut skipped = outcome.skipped.clone();
    for file in &outcome.files {
        let Some(files) = &service.files else {
            skipped.push(file.name.clone());
            continue;
        };
        let bytes = Bytes::from(file.bytes.clone());
        let body: skein_core::api::ByteStream =
            Box::pin(futures::stream::once(async move { Ok(bytes) }));
        let new = NewFile {
            owner_id: caller.user_id.clone(),
            name: file
                .name
                .rsplit('/')
                .next()
                .unwrap_or(&file.name)
                .to_string(),
            purpose: FilePurpose::Plugin,
        };
        match files.store(new, body).await {
            Ok(meta) => {
                let url = format!("/api/v1/files/{}/content", meta.id);
                listed.push(json!({"name": file.name, "file_id": meta.id,
                    "content_type": meta.content_type, "size": meta.size}));
                tool_files.push(ToolFile {
                    id: meta.id,
                    content_type: meta.content_type,
                    url,
                });
            }
            Err(e) => {
                tracing::warn!(error = %e.message(skein_core::i18n::Lang::En), "a code output was not stored");
                skipped.push(file.name.clone());
            }
        }
    }
    let note = if outcome.no_report && !outcome.timed_out {
        Some(
            "The sandbox ended before it could report; the program may have killed its runner."
                .to_string(),
        )
    } else {
        limit_note(&outcome, limits)
    };
    let failed = outcome.timed_out
        || outcome.no_report
        || outcome.signal.is_some()
        || outcome.exit_code.is_some_and(|c| c != 0);
    let mut body = json!({
        "exit_code": outcome.exit_code,
        "signal": outcome.signal,
        "timed_out": outcome.timed_out,
        "stdout": outcome.stdout,
        "stderr": outcome.stderr,
        "files": listed,
    });
    if outcome.stdout_truncated || outcome.stderr_truncated {
        body["truncated"] = json!(format!(
            "Output past {} bytes was dropped.",
            limits.output_bytes
        ));
    }
    if !skipped.is_empty() {
        body["skipped_files"] = json!(skipped);
    }
    if let Some(note) = note {
        body["limit"] = json!(note);
    }
    ToolOutput {
        content: body.to_string(),
        is_error: failed,
        files: tool_files,
        ..ToolOutput::default()
    }
}

#[cfg(test)]
mod tests {
    use super::input_name;

    #[test]
    fn input_names_are_one_harmless_component() {
        assert_eq!(input_name("data.csv", "f1"), "data.csv");
        assert_eq!(input_name("../../etc/passwd", "f1"), "passwd");
        assert_eq!(input_name("..", "f1"), "f1");
        assert_eq!(input_name(".bashrc", "f1"), "f1");
        assert_eq!(input_name("dir/", "f1"), "f1");
    }
}
