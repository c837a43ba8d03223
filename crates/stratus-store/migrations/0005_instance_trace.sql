-- The request that last changed an instance: its W3C trace context and request id, which the
-- host's agent carries into the work it does for that change.

ALTER TABLE instances {add_column} traceparent TEXT;

ALTER TABLE instances {add_column} request_id TEXT;
