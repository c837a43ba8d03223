-- The address a host's overlay (VXLAN) traffic leaves from and arrives at, as its agent
-- reported it; hosts without one take no part in overlays.

ALTER TABLE hosts {add_column} underlay TEXT;
