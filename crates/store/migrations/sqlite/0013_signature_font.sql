-- The script face of a typed signature (issue 6: typing with a choice of script fonts):
-- `dancing-script` or `kaushan-script`; NULL for drawn signatures, and for typed ones made
-- before the choice existed, which were all drawn in Dancing Script.
ALTER TABLE recipients ADD COLUMN signature_font TEXT;
