-- Audio priced apart from text (issue #17): realtime and audio models charge several times
-- more per audio token than per text token. NULL: audio is billed at the text rates.
ALTER TABLE model_prices ADD COLUMN audio_input_per_mtok BIGINT;
ALTER TABLE model_prices ADD COLUMN audio_output_per_mtok BIGINT;
