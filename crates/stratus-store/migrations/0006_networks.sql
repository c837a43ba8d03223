-- Networks of projects, their subnets, and every address handed out in them (IPAM). An
-- address row is either an address a project reserved (it has an `id`) or one a NIC took by
-- itself (no `id`); either may be held by an instance's NIC. No address is ever in two rows of
-- one space: a subnet (its uid) or the region's external pool ('external').

CREATE TABLE IF NOT EXISTS networks (
    uid {uid} PRIMARY KEY,
    project TEXT NOT NULL REFERENCES projects (id),
    id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    cidr TEXT NOT NULL,
    vni BIGINT NOT NULL UNIQUE,
    generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (project, id)
);

CREATE TABLE IF NOT EXISTS subnets (
    uid {uid} PRIMARY KEY,
    project TEXT NOT NULL,
    id TEXT NOT NULL,
    network_uid {uid} NOT NULL REFERENCES networks (uid) ON DELETE CASCADE,
    network TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    ipv4_cidr TEXT NOT NULL,
    ipv6_cidr TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (project, id)
);

CREATE INDEX IF NOT EXISTS subnets_by_network ON subnets (network_uid);

CREATE TABLE IF NOT EXISTS addresses (
    uid {uid} PRIMARY KEY,
    project TEXT NOT NULL,
    id TEXT,
    space TEXT NOT NULL,
    ip TEXT NOT NULL,
    address_type TEXT NOT NULL,
    network TEXT,
    subnet TEXT,
    instance_uid {uid},
    nic BIGINT,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (space, ip)
);

CREATE UNIQUE INDEX IF NOT EXISTS addresses_by_id ON addresses (project, id) WHERE id IS NOT NULL;

CREATE INDEX IF NOT EXISTS addresses_by_instance ON addresses (instance_uid);
