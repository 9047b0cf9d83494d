//! OpenAI's `POST /v1/images/generations` on a native DashScope channel: Model Studio's
//! text-to-image models (Tongyi Wanxiang `wan*`/`wanx*`, `qwen-image*`) answer through an
//! asynchronous task, as its API reference documents:
//!
//! 1. `POST {base}/services/aigc/text2image/image-synthesis` with the header
//!    `X-DashScope-Async: enable` and `{"model", "input": {"prompt", "negative_prompt"},
//!    "parameters": {"size": "1024*1024", "n", "seed", ...}}` answers at once with
//!    `{"output": {"task_id", "task_status": "PENDING"}, "request_id"}`;
//! 2. `GET {base}/tasks/{task_id}` answers the task as it stands: `task_status` `PENDING`,
//!    `RUNNING` (or `SUSPENDED`) until it ends `SUCCEEDED` — `output.results[]` with each
//!    image's `url` (or, for an image that failed, its `code` and `message`), `usage.image_count`
//!    — or `FAILED` with `output.code` and `output.message` (`CANCELED` and `UNKNOWN` too).
//!
//! The relay submits, polls until the task ends (within the channel's timeout; a poll that
//! fails is asked again, and a task that cannot be read in time is a 504 rather than a second,
//! paid submission on another channel), and answers
//! the client as OpenAI does: `{"created", "data": [{"url", "revised_prompt"}]}`, or with
//! `response_format: "b64_json"` each image fetched (through the same address checks as image
//! URLs in chat) and inlined. Failures are classified with DashScope's error codes, as its
//! text-generation errors are; an image that failed inside a task that succeeded is left out
//! (and not billed: the charge counts the images answered).

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Map, Value, json};
use skein_core::ApiResult;

use super::{ImagePolicy, idle_timeout, read_limited, send_request};
use crate::channels::LiveChannel;
use crate::errors;
use crate::vendor::compat::profiles::DASHSCOPE;
use crate::vendor::{Attempt, Upstream, adapter};

/// The text-to-image path under the native base URL.
pub const SYNTHESIS_PATH: &str = "/services/aigc/text2image/image-synthesis";

/// Where a task is read, under the native base URL.
pub const TASKS_PATH: &str = "/tasks/";

/// Time between two reads of a task (a text-to-image task takes seconds).
const POLL_EVERY: Duration = Duration::from_millis(500);

/// The most of a task answer read (a few URLs and prompts).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// OpenAI's fields that have no place at DashScope and change nothing a client relies on:
/// accepted and not sent.
const DROPPED: &[&str] = &["quality", "style", "user", "moderation", "background"];

/// DashScope's own parameters a client that knows them may send: passed under `parameters`.
const NATIVE_PARAMETERS: &[&str] = &["seed", "prompt_extend", "watermark"];

/// The DashScope task request for an OpenAI images request, with the model as the channel
/// knows it. Fields DashScope cannot express are refused with a 400 naming them.
pub fn request(openai: &Value, model: &str) -> ApiResult<Value> {
    let Some(fields) = openai.as_object() else {
        return Err(errors::cannot_carry("body", "DashScope"));
    };
    let mut input = Map::new();
    let mut parameters = Map::new();
    for (field, value) in fields {
        if value.is_null() {
            continue;
        }
        match field.as_str() {
            "model" | "response_format" => {}
            "prompt" | "negative_prompt" => {
                input.insert(field.clone(), value.clone());
            }
            "n" => {
                parameters.insert("n".into(), value.clone());
            }
            // OpenAI's "1024x1024" is DashScope's "1024*1024"; "auto" leaves it to the model.
            "size" => match value.as_str() {
                Some("auto") => {}
                Some(size) => {
                    let (w, h) = size
                        .split_once('x')
                        .filter(|(w, h)| w.parse::<u32>().is_ok() && h.parse::<u32>().is_ok())
                        .ok_or_else(|| {
                            errors::invalid_input(
                                "size",
                                "must be WIDTHxHEIGHT, e.g. 1024x1024.",
                                "必须是 宽x高 的形式，例如 1024x1024。",
                            )
                        })?;
                    parameters.insert("size".into(), json!(format!("{w}*{h}")));
                }
                None => {
                    return Err(errors::invalid_input(
                        "size",
                        "must be a string.",
                        "必须是字符串。",
                    ));
                }
            },
            f if NATIVE_PARAMETERS.contains(&f) => {
                parameters.insert(field.clone(), value.clone());
            }
            f if DROPPED.contains(&f) => {}
            other => return Err(errors::cannot_carry(other, "DashScope")),
        }
    }
    Ok(json!({"model": model, "input": input, "parameters": parameters}))
}

/// Submits the task for `openai` (with the model as the channel knows it), waits for it within
/// the channel's timeout, and answers as OpenAI's images route does. `Err` when the request
/// has a field DashScope cannot carry (the next channel is tried).
pub async fn generate(
    http: &reqwest::Client,
    channel: &LiveChannel,
    openai: &Value,
    model: &str,
    images: ImagePolicy,
) -> ApiResult<Attempt> {
    let body = request(openai, model)?;
    let adapter = adapter(channel.kind);
    let submit = http
        .post(format!("{}{SYNTHESIS_PATH}", channel.base_url))
        .bearer_auth(channel.key())
        .header("X-DashScope-Async", "enable")
        .json(&body);
    let resp = match send_request(adapter, channel, submit).await {
        Attempt::Ok(resp) => resp,
        other => return Ok(other),
    };
    let submitted = match read_json(resp).await {
        Ok(v) => v,
        Err(reason) => return Ok(Attempt::Retry(reason)),
    };
    let Some(task_id) = submitted["output"]["task_id"]
        .as_str()
        .filter(|id| !id.is_empty() && id.len() <= 128 && !id.contains(['/', '?', '#']))
    else {
        return Ok(Attempt::Retry(
            "DashScope accepted the image task without a task id".into(),
        ));
    };
    // Once submitted, the task is paid for at DashScope: a poll that fails is asked again,
    // and a task that cannot be read in time ends the request here instead of being submitted
    // on another channel, which would pay for it twice.
    let deadline = Instant::now() + idle_timeout(channel);
    let mut problem = String::from("it did not finish in time");
    let task = loop {
        tokio::time::sleep(POLL_EVERY).await;
        if Instant::now() >= deadline {
            return Ok(unfinished(task_id, &problem));
        }
        let read = http
            .get(format!("{}{TASKS_PATH}{task_id}", channel.base_url))
            .bearer_auth(channel.key());
        let task = match send_request(adapter, channel, read).await {
            Attempt::Ok(resp) => match read_json(resp).await {
                Ok(task) => task,
                Err(reason) => {
                    problem = reason;
                    continue;
                }
            },
            Attempt::Retry(reason) => {
                tracing::debug!(task_id, %reason, "a DashScope task poll failed; polling again");
                problem = format!("its status could not be read ({reason})");
                continue;
            }
            other => return Ok(other),
        };
        match task["output"]["task_status"].as_str() {
            Some("SUCCEEDED") => break task,
            Some("FAILED") => return Ok(failed(&task["output"])),
            Some("PENDING" | "RUNNING" | "SUSPENDED") => {
                problem = String::from("it did not finish in time");
            }
            other => {
                return Ok(Attempt::Retry(format!(
                    "the DashScope image task {task_id} ended as {}",
                    other.unwrap_or("nothing")
                )));
            }
        }
    };
    let wants_b64 = openai["response_format"].as_str() == Some("b64_json");
    let mut data = Vec::new();
    let mut first_failure = None;
    for result in task["output"]["results"].as_array().into_iter().flatten() {
        let Some(url) = result["url"].as_str() else {
            first_failure.get_or_insert_with(|| result.clone());
            continue;
        };
        let mut image = Map::new();
        if wants_b64 {
            match crate::vendor::gemini::images::fetch_data_url(url, images).await {
                Ok(data_url) => {
                    let b64 = data_url.split_once(";base64,").map_or("", |(_, b)| b);
                    image.insert("b64_json".into(), json!(b64));
                }
                Err(_) => {
                    return Ok(Attempt::Retry(
                        "a DashScope image could not be fetched".into(),
                    ));
                }
            }
        } else {
            image.insert("url".into(), json!(url));
        }
        if let Some(actual) = result["actual_prompt"].as_str() {
            image.insert("revised_prompt".into(), json!(actual));
        }
        data.push(Value::Object(image));
    }
    if data.is_empty() {
        // Every image of the task failed: its first failure says why.
        return Ok(failed(&first_failure.unwrap_or_default()));
    }
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let answer = json!({"created": created, "data": data});
    let mut rebuilt = axum::http::Response::new(Bytes::from(answer.to_string()));
    rebuilt.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Ok(Attempt::Ok(reqwest::Response::from(rebuilt)))
}

/// A submitted task that could not be read to its end within the channel's timeout: a 504 the
/// client sees (no other channel is tried: the task may still be running, and paid for).
fn unfinished(task_id: &str, problem: &str) -> Attempt {
    let body = json!({"code": "TaskTimeout", "message": format!(
        "The DashScope image task {task_id} was accepted but {problem}; it was not submitted again on another channel, which would pay for it twice.")});
    Attempt::Refused(504, Bytes::from(body.to_string()))
}

/// A task (or an image of one) that failed, classified by its DashScope error code as an
/// error answer with that code would be: the client's prompt refused, a parameter invalid, or
/// the vendor's own failure (another channel may do better).
fn failed(output: &Value) -> Attempt {
    let code = output["code"].as_str().unwrap_or("InternalError");
    let message = output["message"]
        .as_str()
        .unwrap_or("The image task failed.");
    let status = if code.starts_with("InvalidParameter") || code == "DataInspectionFailed" {
        400
    } else if code.starts_with("Throttling") {
        429
    } else {
        500
    };
    let body = json!({"code": code, "message": message}).to_string();
    DASHSCOPE.classify(status, None, Bytes::from(body))
}

async fn read_json(resp: reqwest::Response) -> Result<Value, String> {
    let bytes = read_limited(resp, MAX_ANSWER_BYTES).await?;
    serde_json::from_slice(&bytes)
        .map_err(|_| "DashScope answered the image task with something that is not JSON".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_openai_images_request_becomes_a_dashscope_task() {
        let openai = json!({"model": "wanx", "prompt": "a cat", "n": 2, "size": "1024x768",
            "quality": "standard", "response_format": "url", "seed": 7, "negative_prompt": "dogs"});
        assert_eq!(
            request(&openai, "wan2.2-t2i-flash").unwrap(),
            json!({"model": "wan2.2-t2i-flash",
                "input": {"prompt": "a cat", "negative_prompt": "dogs"},
                "parameters": {"n": 2, "size": "1024*768", "seed": 7}})
        );
        let unknown = json!({"prompt": "a cat", "mask": "x"});
        assert!(request(&unknown, "m").is_err());
        let bad_size = json!({"prompt": "a cat", "size": "big"});
        assert!(request(&bad_size, "m").is_err());
    }

    #[test]
    fn failed_tasks_are_classified_by_their_code() {
        let refused = failed(&json!({"code": "DataInspectionFailed", "message": "no"}));
        assert!(matches!(refused, Attempt::Refused(400, _)));
        let invalid = failed(&json!({"code": "InvalidParameter", "message": "size"}));
        assert!(matches!(invalid, Attempt::Refused(400, _)));
        assert!(matches!(
            failed(&json!({"code": "InternalError"})),
            Attempt::Retry(_)
        ));
    }
}
