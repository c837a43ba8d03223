-- What operators see and steer of a host: whether placement may use it (SCHEDULABLE, CORDONED,
-- DRAINING), and what its agent reported of itself.

ALTER TABLE hosts {add_column} scheduling TEXT NOT NULL DEFAULT 'SCHEDULABLE';

ALTER TABLE hosts {add_column} accelerator TEXT;

ALTER TABLE hosts {add_column} agent_version TEXT;
