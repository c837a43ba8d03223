-- An instance's labels in a column of their own (its labels as a JSON object, each label the
-- pair it is), and an index of a project's instances in id order that carries them: a
-- label-selected page finds its ids in the index alone and reads only the rows that may
-- match. Rows written before hold their whole spec in the column, which contains the same
-- pairs, until their next write.

ALTER TABLE instances {add_column} labels TEXT NOT NULL DEFAULT '';

UPDATE instances SET labels = spec WHERE labels = '';

CREATE INDEX IF NOT EXISTS instances_by_labels ON instances (project, id, labels);
