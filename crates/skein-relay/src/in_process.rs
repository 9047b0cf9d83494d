//! The Relay as other services in this process call it ([`RelayApi`]): typed requests go
//! through the same [`crate::pipeline`] as the vendor-compatible routes — the same plan,
//! holds, failover and bills — with the caller a user acting through a service
//! ([`Caller::User`]) and typed answers instead of vendor bytes.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Value, json};
use skein_core::ApiError;
use skein_core::api::{
    AudioUpload, ChatStream, EmbedRequest, Embeddings, GeneratedImage, ImageRequest, Images,
    PricedModel, RelayApi, RelayCaller, RerankRequest, RerankScore, Reranking, Speech,
    SpeechRequest, Transcript,
};

use crate::errors;
use crate::pipeline::calls::{self, AudioForm};
use crate::pipeline::{Caller, Reply, chat};
use crate::{RelayService, multipart};

/// The Relay as other services in this process call it ([`RelayApi`]).
#[derive(Clone)]
pub struct InProcessRelay(pub Arc<RelayService>);

impl InProcessRelay {
    /// The price group a service's call for `user_id` goes through: the one `wanted` if the
    /// user was granted it, else (`None`) the first the user was granted in configuration
    /// order. The rule is the one API keys follow, so a user is never billed at a group they
    /// could not have picked for a key of their own.
    async fn group_of(&self, user_id: &str, wanted: Option<&str>) -> Result<String, ApiError> {
        match wanted {
            Some(group) => {
                self.0.check_group(user_id, group).await?;
                Ok(group.to_string())
            }
            None => self
                .0
                .allowed_groups(user_id)
                .await?
                .first()
                .cloned()
                .ok_or_else(|| errors::group_not_allowed("", &[])),
        }
    }

    /// The pipeline's caller for a service's call, and the request id it is recorded under.
    async fn caller_of(&self, caller: RelayCaller) -> Result<(Caller, String), ApiError> {
        let group = self
            .group_of(&caller.user_id, caller.group.as_deref())
            .await?;
        Ok((
            Caller::User {
                user_id: caller.user_id,
                group,
                conversation_id: caller.conversation_id,
            },
            caller.request_id,
        ))
    }
}

/// The JSON of a whole reply, or 502 if the upstream's answer cannot be read.
fn reply_json(reply: &Reply) -> Result<Value, ApiError> {
    reply
        .bytes()
        .and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok())
        .ok_or_else(errors::unreadable)
}

#[async_trait]
impl RelayApi for InProcessRelay {
    async fn chat(&self, caller: RelayCaller, request: Value) -> Result<ChatStream, ApiError> {
        let cancel = caller.cancel.clone();
        let (caller, request_id) = self.caller_of(caller).await?;
        chat::for_service(self.0.clone(), caller, request_id, request, cancel).await
    }

    async fn priced_models(
        &self,
        user_id: &str,
        group: Option<&str>,
    ) -> Result<Vec<PricedModel>, ApiError> {
        let group = self.group_of(user_id, group).await?;
        let group = group.as_str();
        Ok(self
            .0
            .table()
            .models(group)
            .into_iter()
            .filter_map(|id| {
                let price = self.0.price_for(group, &id).filter(|p| p.priced)?;
                let shown = |rate: i64| price.scaled_rate(rate);
                Some(PricedModel {
                    input_price: shown(price.rates.input_per_mtok),
                    output_price: shown(price.rates.output_per_mtok),
                    cache_read_price: shown(price.rates.cache_read_per_mtok),
                    per_call: shown(price.rates.per_call),
                    id,
                })
            })
            .collect())
    }

    async fn embed(
        &self,
        caller: RelayCaller,
        request: EmbedRequest,
    ) -> Result<Embeddings, ApiError> {
        let (caller, request_id) = self.caller_of(caller).await?;
        let mut body = json!({"model": request.model, "input": request.inputs,
            "encoding_format": "float"});
        if let Some(dimensions) = request.dimensions {
            body["dimensions"] = json!(dimensions);
        }
        let reply = calls::embeddings(self.0.clone(), caller, request_id, body)
            .await?
            .or_refusal(
                "The embedding provider refused the request",
                "向量模型服务商拒绝了请求",
            )?;
        let answer = reply_json(&reply)?;
        let mut rows: Vec<(u64, Vec<f32>)> = answer["data"]
            .as_array()
            .ok_or_else(errors::unreadable)?
            .iter()
            .enumerate()
            .map(|(position, item)| {
                let vector = item["embedding"].as_array().map(|v| {
                    v.iter()
                        .filter_map(Value::as_f64)
                        .map(|x| x as f32)
                        .collect()
                });
                let index = item["index"].as_u64().unwrap_or(position as u64);
                vector.map(|v| (index, v)).ok_or_else(errors::unreadable)
            })
            .collect::<Result<_, _>>()?;
        // OpenAI answers in input order with an index on each; an upstream that shuffled
        // them is put back in order.
        rows.sort_by_key(|(index, _)| *index);
        if rows.len() != request.inputs.len() {
            return Err(errors::unreadable());
        }
        Ok(Embeddings {
            vectors: rows.into_iter().map(|(_, v)| v).collect(),
            charge: reply.charge.unwrap_or_default(),
        })
    }

    async fn rerank(
        &self,
        caller: RelayCaller,
        request: RerankRequest,
    ) -> Result<Reranking, ApiError> {
        let (caller, request_id) = self.caller_of(caller).await?;
        let count = request.documents.len();
        let mut body = json!({"model": request.model, "query": request.query,
            "documents": request.documents});
        if let Some(top_n) = request.top_n {
            body["top_n"] = json!(top_n);
        }
        let reply = calls::rerank(self.0.clone(), caller, request_id, body)
            .await?
            .or_refusal(
                "The rerank provider refused the request",
                "重排序服务商拒绝了请求",
            )?;
        let answer = reply_json(&reply)?;
        let mut results: Vec<RerankScore> = answer["results"]
            .as_array()
            .ok_or_else(errors::unreadable)?
            .iter()
            .map(|item| {
                let index = item["index"]
                    .as_u64()
                    .and_then(|i| usize::try_from(i).ok())
                    .filter(|i| *i < count);
                match (index, item["relevance_score"].as_f64()) {
                    (Some(index), Some(score)) => Ok(RerankScore { index, score }),
                    _ => Err(errors::unreadable()),
                }
            })
            .collect::<Result<_, _>>()?;
        results.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(Reranking {
            results,
            charge: reply.charge.unwrap_or_default(),
        })
    }

    async fn transcribe(
        &self,
        caller: RelayCaller,
        audio: AudioUpload,
    ) -> Result<Transcript, ApiError> {
        let (caller, request_id) = self.caller_of(caller).await?;
        let mut fields = vec![("model", audio.model.as_str()), ("response_format", "json")];
        if let Some(language) = &audio.language {
            fields.push(("language", language));
        }
        // Only a plain name reaches the vendor: its extension tells it the format.
        let file_name: String = audio
            .file_name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .take(100)
            .collect();
        let (body, parts) = multipart::form(
            &fields,
            ("file", &file_name, &audio.content_type, &audio.bytes),
        );
        let boundary = format!("skein-{}", skein_core::ids::new_id());
        let form = AudioForm {
            model: Some(audio.model.clone()),
            file_len: audio.bytes.len(),
            content_type: format!("multipart/form-data; boundary={boundary}"),
            body: Box::new(move |upstream_model: &str| {
                Bytes::from(multipart::rebuild(
                    &body,
                    &parts,
                    &boundary,
                    Some(("model", upstream_model.as_bytes())),
                ))
            }),
        };
        let reply = calls::audio(
            self.0.clone(),
            caller,
            request_id,
            form,
            "/v1/audio/transcriptions",
        )
        .await?
        .or_refusal(
            "The speech-to-text provider refused the audio",
            "语音识别服务商拒绝了该音频",
        )?;
        let answer = reply_json(&reply)?;
        let text = answer["text"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ApiError::internal("the transcription answer had no text"))?;
        Ok(Transcript {
            text,
            charge: reply.charge.unwrap_or_default(),
        })
    }

    async fn image(&self, caller: RelayCaller, request: ImageRequest) -> Result<Images, ApiError> {
        let (caller, request_id) = self.caller_of(caller).await?;
        let mut body = json!({"model": request.model, "prompt": request.prompt, "n": request.n});
        if let Some(size) = &request.size {
            body["size"] = json!(size);
        }
        let reply = calls::images(self.0.clone(), caller, request_id, body)
            .await?
            .or_refusal(
                "The image provider refused the request",
                "图像服务商拒绝了请求",
            )?;
        let answer = reply_json(&reply)?;
        let text = |v: &Value| v.as_str().map(str::to_string);
        let images = answer["data"]
            .as_array()
            .ok_or_else(errors::unreadable)?
            .iter()
            .map(|item| GeneratedImage {
                url: text(&item["url"]),
                b64_json: text(&item["b64_json"]),
                revised_prompt: text(&item["revised_prompt"]),
            })
            .collect();
        Ok(Images {
            images,
            charge: reply.charge.unwrap_or_default(),
        })
    }

    async fn speak(&self, caller: RelayCaller, request: SpeechRequest) -> Result<Speech, ApiError> {
        let (caller, request_id) = self.caller_of(caller).await?;
        let body = json!({
            "model": request.model, "input": request.input, "voice": request.voice,
            "response_format": request.format,
        });
        let reply = calls::speech_whole(self.0.clone(), caller, request_id, body)
            .await?
            .or_refusal(
                "The text-to-speech provider refused the request",
                "语音合成服务商拒绝了请求",
            )?;
        let audio = reply.bytes().cloned().ok_or_else(errors::unreadable)?;
        let content_type = reply
            .content_type
            .to_str()
            .unwrap_or("application/octet-stream")
            .to_string();
        // A 2xx that is JSON is an error some vendors send instead of audio.
        if audio.is_empty() || content_type.starts_with("application/json") {
            return Err(errors::unreadable());
        }
        Ok(Speech {
            audio,
            content_type,
            charge: reply.charge.unwrap_or_default(),
        })
    }
}
