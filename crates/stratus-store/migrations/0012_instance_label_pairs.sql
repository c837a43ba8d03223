-- On PostgreSQL a label-selected page asks which instances' labels contain the selector's
-- `key=value` pairs as JSON containment, which a GIN index over the labels answers: its index
-- of pages cannot carry the labels (migration 0011), and without this every listing of a
-- selection read every instance of the project. Rows from before migration 0010 hold their
-- whole spec in the column; there they get their labels alone. SQLite finds the pairs in its
-- index of pages, and has nothing to do here.

{postgres} UPDATE instances SET labels = COALESCE((spec::jsonb -> 'labels')::text, '{}') WHERE labels = spec OR labels = '';

{postgres} CREATE INDEX IF NOT EXISTS instances_by_label_pairs ON instances USING GIN ((NULLIF(labels, '')::jsonb) jsonb_path_ops);
