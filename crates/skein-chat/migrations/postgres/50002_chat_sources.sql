-- What an answer drew on (knowledge passages, search results, ...), as a JSON array of
-- citations written with the answer by the context sources that found them; NULL when none.
ALTER TABLE chat_messages ADD COLUMN sources TEXT;
