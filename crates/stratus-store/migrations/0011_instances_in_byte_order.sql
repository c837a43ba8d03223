-- Pages of instances run in byte order of their ids (`id COLLATE "C"` on PostgreSQL), which an
-- index in the database's own collation cannot give: PostgreSQL sorted every instance of the
-- project for each page. The index of a project's instances with their labels is made again
-- with ids in byte order, so it serves plain pages and label-selected ones alike (on SQLite,
-- whose ids sort by bytes anyway, it is the same index as before).

DROP INDEX IF EXISTS instances_by_labels;

CREATE INDEX IF NOT EXISTS instances_by_labels ON instances (project, id{byte_order}, labels);
