-- The language of each recipient's mail (issue 6: every mail in English, German, French or
-- Italian). Recipients added before it get English, as their mail was.
ALTER TABLE recipients ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
