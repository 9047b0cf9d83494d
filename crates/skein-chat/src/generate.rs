//! Answers being written. Each runs in a task of its own, apart from the request that started
//! it: a client that leaves does not stop it (the answer is finished and saved), another
//! client can attach to it and receive the rest, and a stop call ends it keeping what was
//! written. One answer at a time per conversation. When tools are offered, the model's tool
//! calls are run here between relay calls (see [`crate::tools`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use skein_core::api::{ChatEvent, ChatStream, RelayCaller, TokenUsage};
use skein_core::{ApiError, ids};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::ChatService;
use crate::errors;
use crate::store::{self, Finish, MessageStatus};
use crate::tools::{MAX_TOOL_ROUNDS, PendingCalls, ToolCall, ToolRecord, ToolResult, Toolbox};
use crate::turn::Turn;

/// How often the text of an answer in progress is saved.
const SAVE_EVERY: Duration = Duration::from_millis(1500);

/// Longest an answer in progress goes unwritten, so other instances can tell a live answer
/// from one whose server died.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);

pub use crate::event::{Event, sse};

#[derive(Debug, Default)]
struct Progress {
    content: String,
    reasoning: String,
    /// The saved message once finished, for clients that attach after `done`.
    done: Option<Value>,
    /// `End` was sent.
    ended: bool,
    /// This answer's tool steps so far, as the events that told them (calls, results,
    /// approvals still waiting, the latest progress reports), in order: a client attaching
    /// mid-answer is sent these after the text, so a call waiting for approval is shown
    /// (and can be approved) after a reload.
    tools: Vec<Event>,
    /// Where events go for clients attached through other instances, once one asked (see
    /// [`crate::live`]).
    forward: Option<tokio::sync::mpsc::UnboundedSender<crate::event::Live>>,
}

impl Progress {
    /// Keeps the last [`REPORTS_KEPT`] progress reports: the whole output comes with the
    /// result, and a tool printing for minutes must not grow what an attach replays.
    fn keep_recent_reports(&mut self) {
        let reports = self
            .tools
            .iter()
            .filter(|e| matches!(e, Event::ToolProgress(_)))
            .count();
        if reports > REPORTS_KEPT
            && let Some(oldest) = self
                .tools
                .iter()
                .position(|e| matches!(e, Event::ToolProgress(_)))
        {
            self.tools.remove(oldest);
        }
    }
}

/// How many of an answer's tool progress reports a client attaching mid-answer is sent.
const REPORTS_KEPT: usize = 50;

/// An answer being written.
#[derive(Debug)]
pub struct Generation {
    /// The assistant message being written.
    pub message_id: String,
    /// Its conversation.
    pub conversation_id: String,
    progress: Mutex<Progress>,
    events: broadcast::Sender<Event>,
    cancel: CancellationToken,
    /// Tool calls waiting for the user's approval: call id → where the decision goes.
    approvals: Mutex<HashMap<String, tokio::sync::oneshot::Sender<bool>>>,
}

/// How a wait for the user's approval of a tool call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// The user approved: the call runs.
    Approved,
    /// The user denied: it does not.
    Denied,
    /// No decision in time: it does not.
    TimedOut,
}

impl Generation {
    /// Hands the user's decision to tool call `call_id` waiting for approval; false when no
    /// such call waits (already decided, timed out, or never asked).
    pub fn decide(&self, call_id: &str, approve: bool) -> bool {
        let waiting = self
            .approvals
            .lock()
            .ok()
            .and_then(|mut waiting| waiting.remove(call_id));
        waiting.is_some_and(|sender| sender.send(approve).is_ok())
    }

    /// Waits up to `timeout` for the user's decision on `call_id` (asked for through a
    /// `tool_approval` event sent before this is awaited).
    async fn approval(&self, call_id: &str, timeout: Duration) -> Approval {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        if let Ok(mut waiting) = self.approvals.lock() {
            waiting.insert(call_id.to_string(), sender);
        }
        let decided = tokio::time::timeout(timeout, receiver).await;
        if let Ok(mut waiting) = self.approvals.lock() {
            waiting.remove(call_id);
        }
        // Decided (or timed out): a client attaching from now on is not asked again.
        if let Ok(mut progress) = self.progress.lock() {
            progress
                .tools
                .retain(|e| !matches!(e, Event::ToolApproval(a) if a["id"] == call_id));
        }
        match decided {
            Ok(Ok(true)) => Approval::Approved,
            Ok(Ok(false)) | Ok(Err(_)) => Approval::Denied,
            Err(_) => Approval::TimedOut,
        }
    }

    fn push(&self, event: Event) {
        // Text is appended and sent under one lock, so an attaching client's snapshot plus
        // what it receives afterwards is exactly the whole text.
        let Ok(mut progress) = self.progress.lock() else {
            return;
        };
        if progress.ended {
            return;
        }
        match &event {
            Event::Delta(text) => progress.content.push_str(text),
            Event::Reasoning(text) => progress.reasoning.push_str(text),
            Event::Done(message) => progress.done = Some(message.clone()),
            Event::End => progress.ended = true,
            Event::ToolCall(_) | Event::ToolResult(_) | Event::ToolApproval(_) => {
                progress.tools.push(event.clone());
            }
            Event::ToolProgress(_) => {
                progress.tools.push(event.clone());
                progress.keep_recent_reports();
            }
            _ => {}
        }
        // Under the same lock as the text, so a remote client's snapshot plus what is
        // forwarded after it is the whole text too.
        if let Some(forward) = &progress.forward {
            let _ = forward.send(crate::event::Live::from(&event));
        }
        if progress.ended {
            progress.forward = None;
        }
        let _ = self.events.send(event);
    }

    /// Starts (or keeps) forwarding this answer's events to clients attached through other
    /// instances, and sends them a snapshot of the text so far, after which everything
    /// forwarded is new. `start` makes the forwarder the first time one is needed. An answer
    /// already done gets a snapshot that says so (the client reads the saved message).
    pub(crate) fn forward(
        &self,
        start: impl FnOnce() -> tokio::sync::mpsc::UnboundedSender<crate::event::Live>,
    ) {
        let Ok(mut progress) = self.progress.lock() else {
            return;
        };
        let finished = progress.ended || progress.done.is_some();
        let snapshot = crate::event::Live::Snapshot {
            content: progress.content.clone(),
            reasoning: progress.reasoning.clone(),
            finished,
            tools: progress
                .tools
                .iter()
                .filter_map(crate::event::Event::named_owned)
                .collect(),
        };
        if finished {
            // Nothing more will be forwarded: the snapshot alone goes out.
            let _ = start().send(snapshot);
            return;
        }
        let forward = progress.forward.get_or_insert_with(start);
        let _ = forward.send(snapshot);
    }

    /// What a client attaching now needs: the text so far (or the finished message) and a
    /// receiver of everything after it.
    pub fn attach(&self) -> Attached {
        match self.progress.lock() {
            Ok(progress) => Attached {
                content: progress.content.clone(),
                reasoning: progress.reasoning.clone(),
                tools: progress.tools.clone(),
                done: progress.done.clone(),
                ended: progress.ended,
                receiver: self.events.subscribe(),
            },
            Err(_) => Attached {
                content: String::new(),
                reasoning: String::new(),
                tools: Vec::new(),
                done: None,
                ended: true,
                receiver: self.events.subscribe(),
            },
        }
    }

    /// Asks the answer to stop; what was written is kept.
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// Starts the text with what a continued answer already says, before anything is sent:
    /// deltas append to it and a client attaching later gets the whole answer.
    pub(crate) fn seed(&self, content: &str, reasoning: &str) {
        if let Ok(mut progress) = self.progress.lock() {
            progress.content = content.to_string();
            progress.reasoning = reasoning.to_string();
        }
    }

    /// The text so far.
    pub fn text(&self) -> (String, String) {
        self.progress
            .lock()
            .map(|p| (p.content.clone(), p.reasoning.clone()))
            .unwrap_or_default()
    }
}

/// A snapshot of an answer for a client attaching to it.
pub struct Attached {
    /// Answer text so far.
    pub content: String,
    /// Reasoning so far.
    pub reasoning: String,
    /// The tool steps so far, as the events to send after the text (see `Progress::tools`).
    pub tools: Vec<Event>,
    /// The finished message, once `done` was sent.
    pub done: Option<Value>,
    /// Nothing more will be sent.
    pub ended: bool,
    /// Everything after the snapshot.
    pub receiver: broadcast::Receiver<Event>,
}

/// Holds a conversation's answer slot. Dropped — when the answer is finished, or when the
/// request or task that held it went away early — it frees the slot and ends the stream, so a
/// conversation can never stay locked.
pub struct Slot {
    svc: Arc<ChatService>,
    generation: Arc<Generation>,
    /// Ends the renewal of the conversation's lock in the database.
    lease: CancellationToken,
}

impl Slot {
    /// The answer this slot holds.
    pub fn generation(&self) -> &Arc<Generation> {
        &self.generation
    }

    /// Frees the conversation for the next answer while this one's stream finishes: here and,
    /// awaited, in the database, so a client that sends its next message on hearing `done`
    /// finds the conversation free on every instance.
    pub(crate) async fn release(&self) {
        self.lease.cancel();
        self.svc.running.end(&self.generation);
        if let Err(error) = store::unlock_answer(
            &self.svc.db,
            &self.generation.conversation_id,
            &self.generation.message_id,
        )
        .await
        {
            tracing::warn!(%error, "could not free a conversation's answer lock; it lapses on its own");
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Usually released already; a request or task that went away early frees it here.
        if !self.lease.is_cancelled() {
            self.lease.cancel();
            self.svc.running.end(&self.generation);
            let svc = self.svc.clone();
            let generation = self.generation.clone();
            if tokio::runtime::Handle::try_current().is_ok() {
                self.svc.tasks.spawn(async move {
                    let _ = store::unlock_answer(
                        &svc.db,
                        &generation.conversation_id,
                        &generation.message_id,
                    )
                    .await;
                });
            }
        }
        self.generation.push(Event::End);
    }
}

/// How long an answer's lock holds without renewal: a crashed instance's conversations are
/// free again after this.
pub const LOCK_LEASE: Duration = Duration::from_secs(30);

/// How often a writing instance renews its lock.
const LOCK_RENEW_EVERY: Duration = Duration::from_secs(10);

fn lease_ms() -> i64 {
    i64::try_from(LOCK_LEASE.as_millis()).unwrap_or(30_000)
}

/// The answers being written in this process, by conversation and by message.
#[derive(Default)]
pub struct Registry {
    running: Mutex<HashMap<String, Arc<Generation>>>,
}

impl Registry {
    /// Answers being written now (for the runtime report).
    pub fn len(&self) -> usize {
        self.running.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Whether no answer is being written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the conversation's answer slot; refuses while an answer is being written there,
    /// on this instance or (the lock in the database) on any other.
    pub async fn begin(
        svc: &Arc<ChatService>,
        conversation_id: &str,
        message_id: &str,
    ) -> Result<Slot, ApiError> {
        let generation = svc.running.insert(conversation_id, message_id)?;
        let lease = CancellationToken::new();
        // From here the slot frees the memory entry (and the lock, once taken) when dropped.
        let slot = Slot {
            svc: svc.clone(),
            generation,
            lease: lease.clone(),
        };
        let now = ids::now_ms();
        let taken = store::lock_answer(
            &svc.db,
            conversation_id,
            message_id,
            &svc.instance,
            now + lease_ms(),
            now,
        )
        .await;
        match taken {
            Ok(true) => {}
            Ok(false) => {
                // Held elsewhere: nothing of ours to unlock.
                lease.cancel();
                svc.running.end(&slot.generation);
                return Err(errors::busy());
            }
            Err(error) => return Err(error.into()),
        }
        let db = svc.db.clone();
        let (conversation, message) = (conversation_id.to_string(), message_id.to_string());
        svc.tasks.spawn(async move {
            let mut every = tokio::time::interval(LOCK_RENEW_EVERY);
            every.tick().await;
            loop {
                tokio::select! {
                    () = lease.cancelled() => return,
                    _ = every.tick() => {}
                }
                match store::renew_answer_lock(&db, &conversation, &message, ids::now_ms() + lease_ms()).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(conversation_id = %conversation, "an answer's lock was lost while it was being written");
                        return;
                    }
                    Err(error) => tracing::warn!(%error, "could not renew an answer's lock"),
                }
            }
        });
        Ok(slot)
    }

    fn insert(&self, conversation_id: &str, message_id: &str) -> Result<Arc<Generation>, ApiError> {
        let mut running = self
            .running
            .lock()
            .map_err(|_| ApiError::internal("chat registry poisoned"))?;
        if running.contains_key(conversation_id) {
            return Err(errors::busy());
        }
        let (events, _) = broadcast::channel(4096);
        let generation = Arc::new(Generation {
            message_id: message_id.to_string(),
            conversation_id: conversation_id.to_string(),
            progress: Mutex::new(Progress::default()),
            events,
            cancel: CancellationToken::new(),
            approvals: Mutex::new(HashMap::new()),
        });
        running.insert(conversation_id.to_string(), generation.clone());
        Ok(generation)
    }

    /// The running answer of a conversation.
    pub fn by_conversation(&self, conversation_id: &str) -> Option<Arc<Generation>> {
        self.running.lock().ok()?.get(conversation_id).cloned()
    }

    /// The running answer that writes `message_id`.
    pub fn by_message(&self, message_id: &str) -> Option<Arc<Generation>> {
        self.running
            .lock()
            .ok()?
            .values()
            .find(|g| g.message_id == message_id)
            .cloned()
    }

    /// Stops tracking `generation` (a newer answer in the same conversation is left alone).
    fn end(&self, generation: &Arc<Generation>) {
        if let Ok(mut running) = self.running.lock()
            && running
                .get(&generation.conversation_id)
                .is_some_and(|g| Arc::ptr_eq(g, generation))
        {
            running.remove(&generation.conversation_id);
        }
    }

    /// Asks every running answer to stop (shutdown).
    pub fn stop_all(&self) {
        if let Ok(running) = self.running.lock() {
            for generation in running.values() {
                generation.stop();
            }
        }
    }
}

/// Everything a run needs, prepared by the request that started it.
pub struct Plan {
    /// Who pays.
    pub user_id: String,
    /// For the ledger.
    pub request_id: String,
    /// The OpenAI request body (messages already trimmed).
    pub request: Value,
    /// Generate a title after this answer.
    pub title_from: Option<String>,
    /// Older turns to fold into the conversation summary before answering.
    pub summarize: Option<crate::Summarize>,
    /// How many older turns did not fit the window.
    pub trimmed: usize,
    /// The tools offered to the model (already in `request`); `None` when none are, and the
    /// answer is one relay call.
    pub tools: Option<ToolUse>,
    /// What the answer held before, when this continues it (its text is in `request`'s last
    /// message and already in the generation).
    pub earlier: Option<Earlier>,
}

/// What a continued answer had before it was continued: its charge and its tool calls stay
/// on the message beside the continuation's.
#[derive(Debug, Default)]
pub struct Earlier {
    /// Prompt tokens, completion tokens and cost already charged for the message.
    pub usage: Option<(i64, i64, i64)>,
    /// The tools it called.
    pub tools: Vec<ToolRecord>,
}

/// The tools an answer offers, and the turn their runners are given.
pub struct ToolUse {
    /// The tools, each with its runner.
    pub toolbox: Toolbox,
    /// The turn being answered.
    pub turn: Turn,
}

/// Longest to wait for the relay's charge after the answer was stopped.
const CHARGE_WAIT: Duration = Duration::from_secs(30);

/// Longest a title may take before the stream ends without one.
const TITLE_TIMEOUT: Duration = Duration::from_secs(30);

impl Plan {
    fn model(&self) -> &str {
        self.request["model"].as_str().unwrap_or_default()
    }
}

/// What the relayed answer said: one relay call's, or the whole answer's over its rounds.
#[derive(Default)]
struct Outcome {
    /// The reader stopped because the user asked it to.
    stopped: bool,
    /// What the relay charged (summed over the rounds of tool calls).
    charge: Option<skein_core::api::RelayCharge>,
    /// The tokens the upstream reported.
    usage: Option<TokenUsage>,
    error: Option<String>,
    /// Why the model stopped (`tool_calls` asks for the calls to be run).
    finish: Option<String>,
    /// The tool calls of this round, being gathered.
    calls: PendingCalls,
    /// The tools called in the answer so far, with their results.
    tools: Vec<ToolRecord>,
}

impl Outcome {
    /// Adds one round's charge to the answer's.
    fn add_charge(&mut self, charge: Option<skein_core::api::RelayCharge>) {
        let Some(charge) = charge else { return };
        self.charge = Some(match self.charge.take() {
            Some(sum) => skein_core::api::RelayCharge {
                prompt_tokens: sum.prompt_tokens + charge.prompt_tokens,
                completion_tokens: sum.completion_tokens + charge.completion_tokens,
                cost: sum.cost + charge.cost,
                status: charge.status,
            },
            None => charge,
        });
    }
}

/// Writes the answer: calls the relay, passes deltas on, saves progress, and records the end.
pub async fn run(slot: Slot, mut plan: Plan) {
    let svc = slot.svc.clone();
    let generation = slot.generation.clone();
    let caller = RelayCaller {
        user_id: plan.user_id.clone(),
        group: None,
        request_id: plan.request_id.clone(),
        conversation_id: Some(generation.conversation_id.clone()),
        cancel: Some(generation.cancel.clone()),
    };
    if let Some(summarize) = plan.summarize.take() {
        tokio::select! {
            _ = generation.cancel.cancelled() => {}
            _ = crate::summarize(&svc, &caller, summarize, &mut plan.request) => {}
        }
    }
    let mut outcome = if generation.cancel.is_cancelled() {
        // Stopped before the model was called: nothing to call, nothing to pay.
        Outcome {
            stopped: true,
            ..Outcome::default()
        }
    } else {
        answer(&svc, &generation, &caller, &mut plan).await
    };
    // Recorded after the answer, off the path to its first token.
    if let Err(error) = store::save_context(
        &svc.db,
        &generation.message_id,
        &context_record(&plan.request, plan.trimmed),
    )
    .await
    {
        tracing::warn!(%error, "could not record the context of an answer");
    }
    let stopped = outcome.stopped;
    let (content, reasoning) = generation.text();
    let status = match (&outcome.error, stopped) {
        (Some(_), _) => MessageStatus::Failed,
        (None, true) => MessageStatus::Stopped,
        (None, false) => MessageStatus::Done,
    };
    let usage = outcome
        .charge
        .as_ref()
        .map(|c| (c.prompt_tokens, c.completion_tokens, c.cost));
    // A continued answer shows what it cost in all, and every tool it called.
    let earlier = plan.earlier.take().unwrap_or_default();
    let usage = match (earlier.usage, usage) {
        (Some((p, c, cost)), Some((p2, c2, cost2))) => Some((p + p2, c + c2, cost + cost2)),
        (before, now) => now.or(before),
    };
    let mut tools = earlier.tools;
    tools.append(&mut outcome.tools);
    let tool_calls = (!tools.is_empty())
        .then(|| serde_json::to_string(&tools).ok())
        .flatten();
    let finish = Finish {
        content: &content,
        reasoning: &reasoning,
        status,
        error: outcome.error.clone(),
        usage,
        tool_calls,
        finish_reason: outcome.finish.clone(),
    };
    if let Err(error) = store::finish(&svc.db, &generation.message_id, &finish, ids::now_ms()).await
    {
        tracing::error!(%error, message_id = %generation.message_id, "could not save a finished answer");
    }
    // The conversation is free for the next message from here (before `done`, which a
    // client may answer at once); the title only rides along on this stream for the
    // clients still reading it.
    slot.release().await;
    if let Some((prompt, completion, cost)) = usage {
        generation.push(Event::Usage(json!({
            "prompt_tokens": prompt, "completion_tokens": completion, "cost": cost,
        })));
    }
    if let Some(error) = &outcome.error {
        let value: Value = serde_json::from_str(error).unwrap_or_default();
        generation.push(Event::Error(value));
    }
    match crate::message_view(
        &svc,
        &plan.user_id,
        &generation.conversation_id,
        &generation.message_id,
    )
    .await
    {
        Ok(Some(view)) => generation.push(Event::Done(view)),
        Ok(None) => {}
        Err(error) => tracing::error!(%error, "could not read a finished answer back"),
    }
    if status == MessageStatus::Done
        && let Some(question) = plan.title_from.take()
    {
        let title = tokio::time::timeout(
            TITLE_TIMEOUT,
            crate::make_title(&svc, &caller, plan.model(), &question, &content),
        )
        .await
        .ok()
        .flatten();
        if let Some(title) = title {
            match store::set_generated_title(&svc.db, &generation.conversation_id, &title).await {
                Ok(true) => generation.push(Event::Title(title)),
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "could not save a generated title"),
            }
        }
    }
    drop(slot);
}

/// Calls the relay for the answer and, while the model asks for tools it was offered, runs
/// them and calls it again with their results (at most [`MAX_TOOL_ROUNDS`] rounds with tools).
/// Each call is billed on its own; the outcome carries their sum.
async fn answer(
    svc: &ChatService,
    generation: &Arc<Generation>,
    caller: &RelayCaller,
    plan: &mut Plan,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut rounds = 0;
    loop {
        let before = generation.text().0.len();
        // The relay settles after the last token and says what it charged: that is the usage
        // shown, so the message and the ledger agree (a stopped answer included).
        let round = match svc.relay.chat(caller.clone(), plan.request.clone()).await {
            Ok(events) => read(svc, generation, events).await,
            Err(error) => Outcome {
                error: Some(error_json(&error, &plan.request_id).to_string()),
                ..Outcome::default()
            },
        };
        outcome.add_charge(round.charge);
        outcome.usage = round.usage.or(outcome.usage);
        outcome.stopped = round.stopped;
        outcome.error = round.error;
        outcome.finish.clone_from(&round.finish);
        let Some(tools) = plan.tools.as_ref() else {
            return outcome;
        };
        let wants_tools = round.finish.as_deref() == Some("tool_calls") && !round.calls.is_empty();
        if outcome.stopped || outcome.error.is_some() || !wants_tools {
            return outcome;
        }
        let mut calls = round.calls.finish();
        for (position, call) in calls.iter_mut().enumerate() {
            // The answer's message id is made by the server and the position is the call's
            // place in the round (a model may repeat an id), so this key is unique to this
            // call and cannot be replayed by a client (a paid tool is charged once per key).
            call.key = format!("{}:{rounds}:{position}", generation.message_id);
            generation.push(Event::ToolCall(json!({
                "id": call.id, "name": call.name, "arguments": call.arguments,
                "requires_approval": tools.toolbox.requires_approval(&call.name),
            })));
        }
        let wait = Duration::from_secs(svc.config.tool_approval_timeout_secs);
        let running = futures::future::join_all(calls.iter().map(|call| async move {
            if tools.toolbox.requires_approval(&call.name) {
                generation.push(Event::ToolApproval(json!({
                    "id": call.id, "name": call.name, "arguments": call.arguments,
                    "message_id": generation.message_id, "timeout_secs": wait.as_secs(),
                })));
                match generation.approval(&call.id, wait).await {
                    Approval::Approved => {}
                    Approval::Denied => {
                        return ToolResult::error(format!(
                            "The user denied this call of {}; it did not run.",
                            call.name
                        ));
                    }
                    Approval::TimedOut => {
                        return ToolResult::error(format!(
                            "The user did not approve this call of {} within {} seconds; it did not run.",
                            call.name,
                            wait.as_secs()
                        ));
                    }
                }
            }
            // Reports go to the clients with the call's id and name.
            let progress: crate::tools::Progress = {
                let (id, name) = (call.id.clone(), call.name.clone());
                let generation = generation.clone();
                Arc::new(move |mut report: Value| {
                    if let Some(map) = report.as_object_mut() {
                        map.insert("id".into(), json!(id));
                        map.insert("name".into(), json!(name));
                    }
                    generation.push(Event::ToolProgress(report));
                })
            };
            tools.toolbox.run(&tools.turn, call, &progress).await
        }));
        // While the tools run (or wait for approval) the answer is saved now and then, so
        // other instances do not take a long wait for a server that went away.
        let mut running = std::pin::pin!(running);
        let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
        beat.tick().await;
        let results = loop {
            tokio::select! {
                biased;
                _ = generation.cancel.cancelled() => {
                    // Stopped while the tools ran: what was written is kept, nothing is called.
                    outcome.stopped = true;
                    return outcome;
                }
                results = &mut running => break results,
                _ = beat.tick() => {
                    let (content, reasoning) = generation.text();
                    if let Err(error) = store::save_progress(&svc.db, &generation.message_id, &content, &reasoning, ids::now_ms()).await {
                        tracing::warn!(%error, "could not save an answer in progress");
                    }
                }
            }
        };
        let (content, _) = generation.text();
        let said = content.get(before..).unwrap_or_default();
        append_round(&mut plan.request, said, &calls, &results);
        for (call, result) in calls.iter().zip(&results) {
            generation.push(Event::ToolResult(json!({
                "id": call.id, "name": call.name, "content": result.content,
                "is_error": result.is_error, "citations": result.citations,
            })));
            outcome.tools.push(ToolRecord::new(call, result));
        }
        rounds += 1;
        if rounds >= MAX_TOOL_ROUNDS
            && let Some(request) = plan.request.as_object_mut()
        {
            // Enough rounds: the model must now answer in words.
            request.remove("tools");
            request.remove("tool_choice");
        }
    }
}

/// Adds a round of tool calls to the request: the assistant's message with what it said and
/// its calls, then one `tool` message per result, in the calls' order.
fn append_round(request: &mut Value, said: &str, calls: &[ToolCall], results: &[ToolResult]) {
    let Some(messages) = request["messages"].as_array_mut() else {
        return;
    };
    let tool_calls: Vec<Value> = calls
        .iter()
        .map(|call| {
            json!({"id": call.id, "type": "function",
                "function": {"name": call.name, "arguments": call.arguments}})
        })
        .collect();
    let content = if said.is_empty() {
        Value::Null
    } else {
        json!(said)
    };
    messages.push(json!({"role": "assistant", "content": content, "tool_calls": tool_calls}));
    for (call, result) in calls.iter().zip(results) {
        messages.push(result.message(call));
    }
}

/// Reads the relay's events to the end of the answer (or until stopped), saving as it goes.
async fn read(svc: &ChatService, generation: &Generation, mut events: ChatStream) -> Outcome {
    let mut outcome = Outcome::default();
    let mut save = tokio::time::interval(SAVE_EVERY);
    save.tick().await;
    let mut dirty = false;
    let mut written = tokio::time::Instant::now();
    loop {
        let event = tokio::select! {
            biased;
            _ = generation.cancel.cancelled() => {
                outcome.stopped = true;
                break;
            }
            _ = save.tick() => {
                if dirty || written.elapsed() >= HEARTBEAT_EVERY {
                    written = tokio::time::Instant::now();
                    let (content, reasoning) = generation.text();
                    if let Err(error) = store::save_progress(&svc.db, &generation.message_id, &content, &reasoning, ids::now_ms()).await {
                        tracing::warn!(%error, "could not save an answer in progress");
                    }
                    dirty = false;
                }
                continue;
            }
            event = events.next() => event,
        };
        let Some(event) = event else { break };
        dirty |= apply(event, generation, &mut outcome);
    }
    if outcome.stopped {
        // The relay watches the same token: it stops too, bills what was delivered and says
        // so. Text after the stop is not kept; only the charge is waited for.
        let charge = async {
            while let Some(event) = events.next().await {
                if let ChatEvent::Done(charge) = event {
                    return Some(charge);
                }
            }
            None
        };
        outcome.charge = tokio::time::timeout(CHARGE_WAIT, charge)
            .await
            .ok()
            .flatten();
    }
    outcome
}

/// Applies one event of the relayed answer; true when text arrived.
fn apply(event: ChatEvent, generation: &Generation, outcome: &mut Outcome) -> bool {
    match event {
        ChatEvent::Reasoning(text) => {
            generation.push(Event::Reasoning(text));
            true
        }
        ChatEvent::Delta(text) => {
            generation.push(Event::Delta(text));
            true
        }
        ChatEvent::Usage(usage) => {
            outcome.usage = Some(usage);
            false
        }
        ChatEvent::Error(error) => {
            outcome.error = Some(
                json!({"code": error.code, "message": error.message, "request_id": null})
                    .to_string(),
            );
            false
        }
        ChatEvent::Done(charge) => {
            outcome.charge = Some(charge);
            false
        }
        // Gathered for `answer`, which runs them once the stream ends.
        ChatEvent::ToolCallDelta(delta) => {
            outcome.calls.push(delta);
            false
        }
        ChatEvent::Finish(reason) => {
            outcome.finish = Some(reason);
            false
        }
    }
}

/// The error event of a refused call.
pub fn error_json(error: &ApiError, request_id: &str) -> Value {
    json!({
        "code": error.code(),
        "message": error.message(skein_core::i18n::Lang::En),
        "message_zh": error.message(skein_core::i18n::Lang::Zh),
        "request_id": request_id,
    })
}

/// What is kept for the context inspector: the request without image data.
fn context_record(request: &Value, trimmed: usize) -> String {
    let mut record = json!({ "request": request, "trimmed_turns": trimmed });
    let record_request = &mut record["request"];
    if let Some(messages) = record_request["messages"].as_array_mut() {
        for message in messages {
            if let Some(parts) = message["content"].as_array_mut() {
                for part in parts {
                    if let Some(url) = part["image_url"]["url"].as_str()
                        && url.starts_with("data:")
                    {
                        part["image_url"]["url"] =
                            Value::String(format!("data:… ({} bytes)", url.len()));
                    }
                }
            }
        }
    }
    record.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation() -> Arc<Generation> {
        Registry::default().insert("c", "m").unwrap()
    }

    #[test]
    fn events_build_the_answer_and_record_usage_and_charge() {
        let g = generation();
        let mut outcome = Outcome::default();
        let charge = skein_core::api::RelayCharge {
            prompt_tokens: 7,
            completion_tokens: 2,
            cost: 9,
            status: "ok".into(),
        };
        let usage = TokenUsage {
            prompt_tokens: 7,
            completion_tokens: 2,
            cached_tokens: 0,
        };
        let texts: Vec<bool> = [
            ChatEvent::Reasoning("Think".into()),
            ChatEvent::Delta("Hel".into()),
            ChatEvent::Delta("lo".into()),
            ChatEvent::Finish("stop".into()),
            ChatEvent::Usage(usage),
            ChatEvent::Done(charge.clone()),
        ]
        .into_iter()
        .map(|event| apply(event, &g, &mut outcome))
        .collect();
        assert_eq!(texts, [true, true, true, false, false, false]);
        assert_eq!(g.text(), ("Hello".to_string(), "Think".to_string()));
        assert_eq!(outcome.usage, Some(usage));
        assert_eq!(outcome.charge, Some(charge));
        assert!(outcome.error.is_none());
    }

    #[test]
    fn an_attaching_client_gets_the_text_so_far_then_the_rest() {
        let g = generation();
        g.push(Event::Delta("one ".into()));
        let mut attached = g.attach();
        g.push(Event::Delta("two".into()));
        assert_eq!(attached.content, "one ");
        match attached.receiver.try_recv() {
            Ok(Event::Delta(text)) => assert_eq!(text, "two"),
            other => panic!("unexpected {other:?}"),
        }
        // After the end, an attaching client learns at once that nothing more will come.
        g.push(Event::Done(json!({"id": "m"})));
        g.push(Event::End);
        let late = g.attach();
        assert!(late.ended && late.done.is_some());
    }

    #[test]
    fn tool_calls_are_gathered_and_a_round_goes_back_in_openai_format() {
        let g = generation();
        let mut outcome = Outcome::default();
        for event in [
            ChatEvent::Delta("Let me look.".into()),
            ChatEvent::ToolCallDelta(skein_core::api::ToolCallDelta {
                index: 0,
                id: Some("call_1".into()),
                name: Some("weather".into()),
                arguments: "{\"city\":".into(),
            }),
            ChatEvent::ToolCallDelta(skein_core::api::ToolCallDelta {
                index: 0,
                arguments: "\"Paris\"}".into(),
                ..Default::default()
            }),
            ChatEvent::Finish("tool_calls".into()),
        ] {
            apply(event, &g, &mut outcome);
        }
        assert_eq!(outcome.finish.as_deref(), Some("tool_calls"));
        let calls = std::mem::take(&mut outcome.calls).finish();
        let results = [ToolResult {
            content: "sunny".into(),
            ..ToolResult::default()
        }];
        let mut request =
            json!({"model": "m", "messages": [{"role": "user", "content": "weather?"}]});
        append_round(&mut request, &g.text().0, &calls, &results);
        assert_eq!(
            request["messages"],
            json!([
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "Let me look.", "tool_calls": [{"id": "call_1",
                    "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ])
        );
    }

    #[test]
    fn the_charges_of_rounds_add_up() {
        let mut outcome = Outcome::default();
        let charge = |cost, status: &str| skein_core::api::RelayCharge {
            prompt_tokens: 10,
            completion_tokens: 2,
            cost,
            status: status.into(),
        };
        outcome.add_charge(Some(charge(5, "ok")));
        outcome.add_charge(None);
        outcome.add_charge(Some(charge(7, "stopped")));
        assert_eq!(
            outcome.charge,
            Some(skein_core::api::RelayCharge {
                prompt_tokens: 20,
                completion_tokens: 4,
                cost: 12,
                status: "stopped".into(),
            })
        );
    }

    #[test]
    fn an_error_mid_stream_is_recorded() {
        let g = generation();
        let mut outcome = Outcome::default();
        apply(
            ChatEvent::Error(skein_core::api::StreamError {
                code: "upstream_error".into(),
                message: "The upstream stream broke off.".into(),
            }),
            &g,
            &mut outcome,
        );
        let error: Value = serde_json::from_str(&outcome.error.unwrap()).unwrap();
        assert_eq!(error["code"], "upstream_error");
        assert_eq!(error["message"], "The upstream stream broke off.");
    }

    #[test]
    fn a_second_answer_in_one_conversation_is_refused() {
        let registry = Registry::default();
        let first = registry.insert("c", "m1").unwrap();
        assert_eq!(
            registry.insert("c", "m2").unwrap_err().code(),
            "generation_in_progress"
        );
        registry.end(&first);
        let third = registry.insert("c", "m3").unwrap();
        // Ending an old answer again does not free the conversation from the new one.
        registry.end(&first);
        assert!(
            registry
                .by_message("m3")
                .is_some_and(|g| Arc::ptr_eq(&g, &third))
        );
    }
}
