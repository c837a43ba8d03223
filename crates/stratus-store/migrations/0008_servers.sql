-- Bare-metal servers and what Stratus did with their BMCs. A server's BMC credentials are
-- kept sealed (`bmc_secret`: nonce and ciphertext, with a key that lives only in the data
-- directory); `host_id` is the host row a ready server serves its instance through.

CREATE TABLE IF NOT EXISTS servers (
    uid {uid} PRIMARY KEY,
    project TEXT NOT NULL REFERENCES projects (id),
    id TEXT NOT NULL,
    zone TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    bmc_address TEXT NOT NULL,
    bmc_secret TEXT NOT NULL,
    hardware TEXT NOT NULL,
    provisioning_state TEXT NOT NULL,
    status_message TEXT,
    health TEXT NOT NULL,
    power_state TEXT,
    tags TEXT NOT NULL,
    persona TEXT NOT NULL,
    host_id {uid} REFERENCES hosts (id),
    generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (project, id)
);

-- One BMC serves one server until that server is decommissioned.
CREATE UNIQUE INDEX IF NOT EXISTS servers_by_bmc ON servers (bmc_address)
    WHERE provisioning_state <> 'decommissioned';

CREATE TABLE IF NOT EXISTS server_logs (
    server_uid {uid} NOT NULL REFERENCES servers (uid) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (server_uid, seq)
);
