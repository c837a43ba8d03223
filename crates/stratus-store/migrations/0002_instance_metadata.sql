-- An instance's metadata (up to 512 KiB) is kept apart from its spec, so that what hosts poll
-- stays small; its digest tells an agent when to fetch it again. Rows of the baseline still
-- hold their metadata inside the spec until the store moves it out at start.

ALTER TABLE instances {add_column} metadata TEXT;

ALTER TABLE instances {add_column} metadata_digest TEXT;
