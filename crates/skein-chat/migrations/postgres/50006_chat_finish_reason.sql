-- Why the model stopped writing an answer, in OpenAI's words (`stop`, `length`, `tool_calls`,
-- `content_filter`, ...): an answer cut at its length limit can be continued. NULL for user
-- messages, answers written before this column, and answers that ended without a reason.
ALTER TABLE chat_messages ADD COLUMN finish_reason TEXT;
