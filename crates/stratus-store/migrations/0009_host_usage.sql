-- What is placed on each host, kept as counters beside its capacity: placement reads the
-- zone's host rows and nothing else, instead of summing every instance of the region per
-- decision. The create that places an instance adds to its host's counters in the same
-- transaction, and the deletion that removes the row takes it away again (an instance never
-- changes hosts). GPUs are counted per host and type.

ALTER TABLE hosts {add_column} used_vcpus BIGINT NOT NULL DEFAULT 0;

ALTER TABLE hosts {add_column} used_memory_mb BIGINT NOT NULL DEFAULT 0;

ALTER TABLE hosts {add_column} placed_instances BIGINT NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS host_gpu_usage (
    host_id {uid} NOT NULL,
    gpu_type TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (host_id, gpu_type)
);

UPDATE hosts SET
    used_vcpus = COALESCE((SELECT CAST(SUM(vcpus) AS BIGINT) FROM instances WHERE host_id = hosts.id), 0),
    used_memory_mb = COALESCE((SELECT CAST(SUM(memory_mb) AS BIGINT) FROM instances WHERE host_id = hosts.id), 0),
    placed_instances = (SELECT COUNT(*) FROM instances WHERE host_id = hosts.id);

DELETE FROM host_gpu_usage;

INSERT INTO host_gpu_usage (host_id, gpu_type, n)
    SELECT host_id, gpu_type, CAST(SUM(gpu_count) AS BIGINT) FROM instances
    WHERE host_id IS NOT NULL AND gpu_type IS NOT NULL GROUP BY host_id, gpu_type;
