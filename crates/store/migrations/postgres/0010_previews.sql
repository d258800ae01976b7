-- Page previews that cannot be made (issue 5): the renderer refused the document, for a reason
-- no retry changes (an image over the pixel budget, a page it cannot draw). Readers then get a
-- clear "preview failed" instead of "pending" for ever. NULL while pending or once rendered.
ALTER TABLE envelopes ADD COLUMN previews_failed TEXT;
