-- An instance's labels in a column of their own (its labels as a JSON object, each label the
-- pair it is), so that a label-selected page can tell from an index which rows may match
-- (migration 0011). Rows written before hold their whole spec in the column, which contains
-- the same pairs, until their next write.

ALTER TABLE instances {add_column} labels TEXT NOT NULL DEFAULT '';

UPDATE instances SET labels = spec WHERE labels = '';
