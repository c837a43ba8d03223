-- Pages of instances run in byte order of their ids (`id COLLATE "C"` on PostgreSQL), which an
-- index in the database's own collation cannot give: PostgreSQL sorted every instance of the
-- project for each page. This index holds a project's instances in byte order of their ids,
-- and on SQLite their labels too, so that a label-selected page finds its ids in the index
-- alone. PostgreSQL keeps index entries under about 2.7 kB, which an instance's labels may
-- pass, so there the labels stay in the table.

DROP INDEX IF EXISTS instances_by_labels;

CREATE INDEX IF NOT EXISTS instances_in_page_order ON instances (project, id{byte_order}{labels_in_index});
