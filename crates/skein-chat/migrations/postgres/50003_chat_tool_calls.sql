-- The tools an answer called and what they answered, as a JSON array written when the answer
-- ends (see skein_chat::tools); NULL when it called none.
ALTER TABLE chat_messages ADD COLUMN tool_calls TEXT;
